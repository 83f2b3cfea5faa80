"""Every Keel setting, declared once with its type, default and help text.

Values come from environment variables (``KEEL_<NAME>``), then from an optional
``keel.toml`` (in the working directory, or the file named by ``KEEL_CONFIG``),
then from the defaults below. ``docs/configuration.md`` is generated from this
class and a test fails when the two disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _toml_file() -> Path:
    return Path(os.environ.get("KEEL_CONFIG", "keel.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_", extra="ignore")

    home: Path = Field(
        Path(".keel"),
        description="Directory holding the embedded store, tenant data planes, keys and archives.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the control-plane store, e.g. postgresql+psycopg://host/db. "
        "Unset: SQLite (WAL) at $KEEL_HOME/keel.db.",
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (tests use one schema per test). Unset: the default."
    )
    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(8000, description="Port the HTTP server listens on.", ge=1, le=65535)
    master_key: str | None = Field(
        None,
        description="Base64 of the 32-byte master key that wraps tenant data keys. Unset: generated on "
        "first start into $KEEL_HOME/master.key (mode 0600).",
        repr=False,
    )
    url: str | None = Field(None, description="Base URL of a remote Keel for the CLI (remote mode).")
    token: str | None = Field(None, description="API token the CLI presents.", repr=False)
    session_ttl_minutes: int = Field(480, description="Console session lifetime.", ge=1)
    token_ttl_days: int = Field(30, description="Default API token lifetime.", ge=1, le=365)
    invitation_ttl_hours: int = Field(72, description="Lifetime of a tenant-admin invitation.", ge=1)
    max_tenants: int = Field(
        100, description="Platform quota: most tenants that may be active at once.", ge=0
    )
    tenant_storage_quota_mb: int = Field(
        10240, description="Default data-plane storage quota of a new tenant, in MiB.", ge=1
    )
    max_body_bytes: int = Field(1_048_576, description="Largest accepted request body, in bytes.", ge=1024)
    break_glass_max_minutes: int = Field(
        120, description="Longest break-glass elevation that may be granted.", ge=1, le=120
    )
    secure_cookies: bool = Field(False, description="Mark session cookies Secure (set true behind HTTPS).")
    ingestion_batch_size: int = Field(5000, description="Records per ingestion batch.", ge=1, le=1_000_000)
    ingestion_max_attempts: int = Field(
        3, description="Attempts per ingestion run before it is handed to the Platform Admin.", ge=1, le=20
    )
    ingestion_retry_base_seconds: float = Field(
        1.0, description="First retry delay; doubles each attempt, with full jitter.", ge=0
    )
    ingestion_retry_max_seconds: float = Field(30.0, description="Longest delay between attempts.", ge=0)
    ingestion_lease_minutes: int = Field(
        30, description="A run still RUNNING after this long is taken as interrupted (crashed worker).", ge=1
    )
    replay_max_days: int = Field(
        366, description="Guardrail: widest window an Integration Operator may replay or backfill.", ge=1
    )
    health_check_interval_seconds: int = Field(
        300, description="How often `keel serve` health-checks every ACTIVE connector (0: never).", ge=0
    )
    breaker_failure_threshold: int = Field(
        3, description="Consecutive connector failures that open its circuit breaker.", ge=1
    )
    breaker_cooldown_seconds: int = Field(
        300, description="How long an open breaker refuses runs before one trial run.", ge=1
    )
    sample_crm_port: int = Field(
        8001,
        description="Port of the sample CRM `keel serve` runs beside the demo tenant (0: any).",
        ge=0,
        le=65535,
    )
    seed_demo: bool = Field(True, description="`keel serve` seeds the demo tenant on first start.")
    webhook_allow_private_networks: bool = Field(
        False,
        description="Let consumers register webhooks on loopback, private or link-local addresses "
        "(off: such a URL is refused, so a webhook cannot be aimed at Keel's own network).",
    )
    contract_templates_dir: Path | None = Field(
        None,
        description="A directory of the platform's own contract templates (raw-*, gdp-*, kpi-*.yaml), "
        "loaded with the built-in ones by `keel contract load-templates`.",
    )
    smtp_host: str | None = Field(
        None, description="SMTP server the e-mail notification channel sends through. Unset: e-mail is off."
    )
    smtp_port: int = Field(25, description="Port of the SMTP server.", ge=1, le=65535)
    smtp_sender: str = Field("keel@localhost", description="From address of notification e-mails.")
    smtp_starttls: bool = Field(
        False, description="Upgrade the SMTP connection with STARTTLS before sending."
    )
    smtp_ssl: bool = Field(
        False, description="Connect to the SMTP server over TLS from the start (port 465); not with STARTTLS."
    )
    smtp_username: str | None = Field(None, description="SMTP login user. Unset: no login.")
    smtp_password: str | None = Field(None, description="SMTP login password.", repr=False)
    smtp_timeout_seconds: float = Field(
        10.0, description="Longest wait for the SMTP server to connect or answer.", gt=0
    )
    webhook_signing_secret: str | None = Field(
        None,
        description="Key of the `X-Keel-Signature: sha256=<HMAC>` header on notification webhooks. "
        "Unset: webhooks are not signed.",
        repr=False,
    )
    webhook_timeout_seconds: float = Field(
        10.0, description="Longest wait for a notification webhook to connect or answer, per attempt.", gt=0
    )
    # -- issue 5: pipeline
    # -- issue 5: quality
    dq_over_blocking_rate: float = Field(
        0.2,
        description="A data-quality rule goes to review (a `dq_over_blocking` ticket) once more than this "
        "share of its reviewed quarantined rows in a tenant were released as false positives.",
        gt=0,
        le=1,
    )
    dq_over_blocking_min_rows: int = Field(
        5, description="Reviewed rows a rule needs in a tenant before its false-positive share counts.", ge=1
    )
    # -- issue 5: guardrails
    guardrail_price_compute_hour_usd: float = Field(
        0.40, description="Price of one compute hour (pipeline and ingestion runs) in a tenant's spend.", ge=0
    )
    guardrail_price_storage_gb_day_usd: float = Field(
        0.001, description="Price of one GB of a tenant's data plane held for a day, in its spend.", ge=0
    )
    # -- issue 5: housekeeping
    scheduler_enabled: bool = Field(
        False,
        description="Run the scheduler (`keel.scheduling`) on a background thread of `keel serve`. Off by "
        "default: jobs then run only when someone calls `keel scheduler tick` (cron, a test).",
    )
    scheduler_tick_seconds: float = Field(
        60.0, description="How often the background scheduler looks for due jobs.", gt=0
    )
    housekeeping_retention_every_hours: float = Field(
        24.0, description="Interval of the scheduled retention job (every tenant's approved policies).", gt=0
    )
    housekeeping_compaction_every_hours: float = Field(
        168.0, description="Interval of the scheduled compaction/vacuum of every tenant's data plane.", gt=0
    )
    housekeeping_footprint_every_hours: float = Field(
        1.0, description="Interval of the job that records storage_footprint_gb and compute_hours.", gt=0
    )
    # -- issue 5: lineage
    openlineage_url: str | None = Field(
        None,
        description="Base URL of an OpenLineage HTTP endpoint (e.g. Marquez); each run event is POSTed "
        "to `<url>/api/v1/lineage` after it is stored. Unset: lineage is only stored.",
    )
    openlineage_timeout_seconds: float = Field(
        5.0, description="Longest wait for the OpenLineage endpoint to answer, per event.", gt=0
    )
    # -- issue 5: kpis
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_file())
        return (init_settings, env_settings, toml)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'keel.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_table() -> str:
    """The Markdown table of every setting, as ``docs/configuration.md`` shows it (a test compares)."""
    lines = [
        "| Environment variable | keel.toml key | Type | Default | What it does |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        kind = str(annotation).replace("typing.", "").replace("pathlib.", "")
        kind = getattr(annotation, "__name__", None) or kind.replace("|", "\\|")  # a | splits a cell
        default = "(unset)" if field.default is None else f"`{field.default}`"
        lines.append(f"| `KEEL_{name.upper()}` | `{name}` | {kind} | {default} | {field.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
