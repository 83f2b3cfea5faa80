"""``keel demo``: the chain built so far, in a fresh KEEL_HOME, through the API in-process.

First-start seeding (deploy, RBAC baseline, tenant ``acme``), then the whole
life of a second tenant ``initech``: provisioned, validated, offboarded,
archived, decommissioned and wiped, each step by the persona its story names,
signed in with the seeded demo credentials. Ends by verifying the ledger.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from keel.cli import render
from keel.cli.client import (
    EXIT_BLOCKED,
    EXIT_FAILURE,
    EXIT_INPUT,
    ApiClient,
    CliError,
    in_process,
    read_settings,
    state_of,
)
from keel.identity.personas import Persona

TENANTS = "/api/v1/tenants"
PERSONAS = ("PA", "PO", "SA", "CO", "AU")
SEED_ID = re.compile(r"\(([A-Z]+-\d{8}-\w+)\)")


@dataclass
class Step:
    name: str
    persona: str
    subject: str
    status: str


@dataclass
class Demo:
    home: Path
    steps: list[Step] = field(default_factory=list)
    as_persona: dict[str, ApiClient] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def command(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="A fresh (missing or empty) directory; a new temp dir if absent."),
    ] = None,
) -> None:
    """Run the chain built so far in a fresh KEEL_HOME and print a summary."""
    state = state_of(ctx)
    demo = Demo(home=fresh_home(home))
    run(demo)
    if state.json:
        render.print_json(demo.summary)
    else:
        print_summary(demo)
    if not demo.summary["verify"]["ok"]:
        raise typer.Exit(EXIT_FAILURE)


def fresh_home(home: Path | None) -> Path:
    if home is None:
        return Path(tempfile.mkdtemp(prefix="keel-demo-"))
    home = home.expanduser().resolve()
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise CliError(
            f"home: {home} is not an empty directory; the demo needs a fresh KEEL_HOME",
            EXIT_INPUT,
            field="home",
        )
    return home


def run(demo: Demo) -> None:
    # Imported here: building Keel pulls in the store and every service, which the other
    # commands (notably the offline verifiers) should not pay for at start-up.
    from keel.bootstrap import build
    from keel.samples.crm import serve_crm
    from keel.seed import credentials_file, email_for, seed

    settings = read_settings(home=demo.home, seed_demo=True)
    keel = build(settings)
    api = in_process(keel)
    crm = serve_crm()  # the demo tenant's CRM source, for the demo's lifetime
    try:
        with render.progress() as bar:
            task = bar.add_task("seeding the platform", total=len(CHAIN) + 2)
            seeded = seed(keel, crm=crm)
            if not seeded.created:
                raise CliError(
                    "the control-plane store is not empty; the demo needs a fresh store "
                    "(unset KEEL_DATABASE_URL, or point it at an empty database or schema)",
                    EXIT_BLOCKED,
                )
            for line in seeded.steps:
                found = SEED_ID.search(line)
                name = SEED_ID.sub("", line).strip()
                demo.steps.append(Step(name, "seed", found.group(1) if found else "-", "done"))
            bar.update(task, advance=1, description="signing in the personas")
            passwords = json.loads(credentials_file(keel).read_text())
            for persona in PERSONAS:
                email = email_for(Persona(persona))
                token = api.sign_in_for_token(email, passwords[email], "keel-demo")
                demo.as_persona[persona] = api.with_token(token["token"])
            bar.update(task, advance=1)
            context: dict[str, Any] = {}
            for name, persona, action in CHAIN:
                bar.update(task, description=name)
                subject, status = action(demo.as_persona[persona], context)
                demo.steps.append(Step(name, persona, subject, status))
                bar.update(task, advance=1)
            bar.update(task, description="chain complete")
        summarize(demo, context)
    finally:
        crm.stop()
        api.close()
        keel.close()


# The chain: (step, persona, action(api, context) -> (subject id, status)).
def _provision(api: ApiClient, ctx: dict) -> tuple[str, str]:
    body = {"slug": "initech", "name": "Initech", "admin_email": "ta@initech.example"}
    tenant = api.post(TENANTS, json=body)
    ctx["tenant_id"] = tenant["tenant_id"]
    return tenant["tenant_id"], tenant["status"]


def _validate(api: ApiClient, ctx: dict) -> tuple[str, str]:
    tenant = api.post(f"{TENANTS}/{ctx['tenant_id']}/validate")
    return ctx["tenant_id"], tenant["status"]


def _offboard(api: ApiClient, ctx: dict) -> tuple[str, str]:
    body = {"reason": "demo: the customer's contract ended"}
    request = api.post(f"{TENANTS}/{ctx['tenant_id']}/offboarding-requests", json=body)
    ctx["request_id"] = request["request_id"]
    return ctx["request_id"], request["status"]


def _approve(api: ApiClient, ctx: dict) -> tuple[str, str]:
    decision = api.post(
        f"{TENANTS}/offboarding-requests/{ctx['request_id']}/decision", json={"approve": True}
    )
    return ctx["request_id"], decision["status"]


def _archive(api: ApiClient, ctx: dict) -> tuple[str, str]:
    archive = api.post(f"{TENANTS}/{ctx['tenant_id']}/evidence-archives")
    return archive["archive_id"], f"sha256 {archive['sha256'][:16]}..."


def _decommission(api: ApiClient, ctx: dict) -> tuple[str, str]:
    body = {"request_id": ctx["request_id"]}
    tenant = api.post(f"{TENANTS}/{ctx['tenant_id']}/decommission", json=body)
    return ctx["tenant_id"], tenant["status"]


def _confirm_wipe(api: ApiClient, ctx: dict) -> tuple[str, str]:
    tenant = api.post(f"{TENANTS}/{ctx['tenant_id']}/wipe-validation")
    ctx["tenant"] = tenant
    return ctx["tenant_id"], "wipe confirmed"


def _audit(api: ApiClient, ctx: dict) -> tuple[str, str]:
    audit = api.post(f"{TENANTS}/{ctx['tenant_id']}/decommission-audit")
    return ctx["tenant_id"], f"policy adherence {audit['policy_adherence']}"


CHAIN: list[tuple[str, str, Callable[[ApiClient, dict], tuple[str, str]]]] = [
    ("provision tenant initech", "PA", _provision),
    ("validate tenant isolation", "SA", _validate),
    ("request offboarding", "PA", _offboard),
    ("approve offboarding", "PO", _approve),
    ("archive tenant evidence", "CO", _archive),
    ("decommission tenant", "PA", _decommission),
    ("confirm wipe", "SA", _confirm_wipe),
    ("audit the decommissioning", "AU", _audit),
]


def summarize(demo: Demo, context: dict) -> None:
    co = demo.as_persona["CO"]
    head = co.get("/api/v1/evidence/tree-head")
    report = co.get("/api/v1/evidence/verify")
    tenant = context.get("tenant") or {}
    receipts = [
        {"status": r.get("status"), "signed_off": sorted(k for k, v in r.items() if k.endswith("_by") and v)}
        for r in tenant.get("receipts", [])
    ]
    demo.summary = {
        "home": str(demo.home),
        "steps": [vars(s) for s in demo.steps],
        "tenant": {
            "tenant_id": tenant.get("tenant_id"),
            "slug": tenant.get("slug"),
            "status": tenant.get("status"),
        },
        "receipts": receipts,
        "ledger_size": head["tree_size"],
        "verify": report,
    }


def print_summary(demo: Demo) -> None:
    console = render.out()
    steps = Table(title="keel demo: the chain built so far", title_justify="left")
    for column in ("#", "step", "by", "id", "result"):
        steps.add_column(column, no_wrap=column == "id")
    for number, step in enumerate(demo.steps, 1):
        steps.add_row(str(number), step.name, step.persona, step.subject, step.status)
    console.print(steps)
    console.print(
        render.rows(demo.summary["receipts"], ["status", "signed_off"], title="Receipts of initech")
    )
    report = demo.summary["verify"]
    verdict = "verifies" if report["ok"] else "does NOT verify"
    render.line(f"ledger: {demo.summary['ledger_size']} entries, {verdict}: {report['reason']}")
    render.line(f"state kept in {demo.home}; explore it with: KEEL_HOME={demo.home} keel serve")
