"""``keel serve``: build Keel, seed the demo on first start, and serve the API over HTTP.

Seeding runs once: a restart finds the store populated, keeps every bit of state,
and only says where the demo credentials file is.
"""

from __future__ import annotations

from collections.abc import Callable

import uvicorn

from keel import __version__
from keel.api.app import create_app
from keel.bootstrap import Keel, build
from keel.identity.personas import Persona
from keel.kernel.settings import Settings, load_settings
from keel.onboarding.monitor import HealthMonitor
from keel.samples.crm import serve_crm
from keel.scheduling.runner import SchedulerThread
from keel.seed import SeedResult, credentials_file, seed


def main(
    host: str | None = None,
    port: int | None = None,
    *,
    settings: Settings | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Start Keel on ``host:port`` (default ``KEEL_HOST``:``KEEL_PORT``) until interrupted."""
    settings = settings or load_settings()
    host = host or settings.host
    port = port or settings.port
    keel = build(settings)
    crm = _sample_crm(settings, echo) if settings.seed_demo else None
    monitor = scheduler = None
    try:
        result = seed(keel, crm=crm) if settings.seed_demo else None
        for line in startup_lines(keel, f"http://{host}:{port}", result):
            echo(line)
        interval = settings.health_check_interval_seconds
        monitor = HealthMonitor(keel, interval).start() if interval else None
        if settings.scheduler_enabled:  # off by default: `keel scheduler tick` (cron) runs the jobs then
            scheduler = SchedulerThread(keel, settings.scheduler_tick_seconds).start()
        uvicorn.run(create_app(keel), host=host, port=port, log_level=settings.log_level.lower())
    finally:
        if scheduler is not None:
            scheduler.stop()
        if monitor is not None:
            monitor.stop()
        if crm is not None:
            crm.stop()
        keel.close()


def _sample_crm(settings: Settings, echo: Callable[[str], None]):
    """The demo tenant's CRM source, served beside Keel; a busy port leaves the demo without it."""
    try:
        crm = serve_crm(settings.host, settings.sample_crm_port)
    except OSError as exc:
        echo(f"Sample CRM not started on port {settings.sample_crm_port} ({exc}); set KEEL_SAMPLE_CRM_PORT")
        return None
    echo(f"Sample CRM (a source of the demo tenant) on {crm.url}")
    return crm


def startup_lines(keel: Keel, url: str, result: SeedResult | None) -> list[str]:
    """What a person needs to start: the URL, and how to sign in."""
    home = keel.settings.home
    lines = [f"Keel {__version__} on {url} (API docs {url}/docs; state in {home})"]
    creds = credentials_file(keel)
    if result is None:
        lines.append("Demo seeding is off (KEEL_SEED_DEMO=false): create users with the API or CLI.")
    elif result.created:
        lines.append("First start: seeded the demo platform:")
        lines += [f"  - {step}" for step in result.steps]
        lines.append(
            f"Sign in with one of these users (passwords shown this once; also in {creds}, mode 0600):"
        )
        width = max(len(email) for email in result.credentials)
        for email, password in sorted(result.credentials.items(), key=_provider_first):
            lines.append(f"  {email:<{width}}  {password}  {_persona_title(email)}")
        lines += _how_to_sign_in(url)
    else:
        lines.append(f"Existing state kept in {home}; nothing was seeded again.")
        if creds.exists():
            lines.append(f"Demo credentials: {creds}")
        lines += _how_to_sign_in(url)
    return lines


def _how_to_sign_in(url: str) -> list[str]:
    return [
        "Sign in: `keel login --email pa@keel.local` (CLI), "
        f"or POST {url}/api/v1/auth/sign-in with {{'email': ..., 'password': ...}}",
    ]


def _provider_first(item: tuple[str, str]) -> tuple[bool, str, str]:
    local, _, domain = item[0].partition("@")
    return (not domain.endswith("keel.local"), domain, local)


def _persona_title(email: str) -> str:
    code = email.partition("@")[0].upper()
    try:
        return Persona(code).title
    except ValueError:
        return ""
