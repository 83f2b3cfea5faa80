"""``keel impact``: story 03g — blast radius, contract consumers, notices, sign-offs, incidents."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(
    help="Impact of contract changes: analyse, consumers, notify, sign off, post-change incidents.",
    no_args_is_help=True,
)

API = "/api/v1"
SchemaId = Annotated[str, typer.Argument(help="Contract id, e.g. GDP-AR.")]
Subject = Annotated[str, typer.Argument(help="The change, e.g. SC-2025-09-29-01 or GDP-AR@1.1.0.")]
Fields = Annotated[
    list[str] | None, typer.Option("--field", help="A changed field (repeatable); unset: the whole contract.")
]
DELIVERY_COLUMNS = ["delivery_id", "recipient_id", "channel", "status", "attempts", "detail"]


@app.command("analyse")
def analyse(
    ctx: typer.Context,
    schema_id: SchemaId,
    subject: Annotated[
        str | None, typer.Option("--subject", help="The change id (default: the contract).")
    ] = None,
    fields: Fields = None,
) -> None:
    """The blast radius of a change (Schema Steward); an incomplete graph opens a review ticket."""
    state = state_of(ctx)
    body = {"subject_id": subject, "fields": fields or None}
    result = state.api().post(
        f"{API}/contracts/{schema_id}/impact", json={k: v for k, v in body.items() if v}
    )
    if state.json:
        render.print_json(result)
        return
    summary = {**result["impact_scope"], "risk": result["risk"], "complete": result["complete"]}
    render.show(state, summary, title=f"Impact of {schema_id}")
    if result["gaps"]:
        render.show(
            state, [{"gap": g} for g in result["gaps"]], title="Gaps (flagged for review)", columns=["gap"]
        )
        render.message(state, f"review ticket {result['review_ticket_id']}")


@app.command("consumers")
def consumers(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="One tenant's consumers.")] = None,
    schema_id: Annotated[
        str | None, typer.Option("--schema", help="Only consumers of this contract.")
    ] = None,
) -> None:
    """Dashboards, KPI views, workflows, reports and exports that read contracts."""
    state = state_of(ctx)
    items = state.api().get_all(f"{API}/contract-consumers", {"tenant_id": tenant, "schema_id": schema_id})
    render.show(
        state, items, title="Consumers", columns=["consumer_id", "kind", "name", "tenant_id", "depends_on"]
    )


@app.command("add-consumer")
def add_consumer(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="dashboard, kpi_view, workflow, report or export.")],
    name: Annotated[str, typer.Argument(help="e.g. finance_overview.")],
    depends_on: Annotated[list[str], typer.Option("--on", help="A contract id it reads (repeatable).")],
    recipients: Annotated[
        list[str] | None, typer.Option("--recipient", help="A user id told about changes (repeatable).")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="Second channel for its recipients.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Default: yours (a tenant user).")] = None,
) -> None:
    """Register a consumer (a tenant's TA or DE; a platform-wide one: PA)."""
    state = state_of(ctx)
    body = {"kind": kind, "name": name, "depends_on": depends_on, "recipients": recipients or []}
    body |= {k: v for k, v in {"webhook_url": webhook, "tenant_id": tenant}.items() if v}
    render.show(state, state.api().post(f"{API}/contract-consumers", json=body), title="Consumer registered")


@app.command("notify")
def notify(
    ctx: typer.Context,
    subject_id: Subject,
    schema_id: SchemaId,
    fields: Fields = None,
    subject: Annotated[str | None, typer.Option("--subject-line", help="Default: names the change.")] = None,
    body: Annotated[str | None, typer.Option("--body", help="Default: the impact in brief.")] = None,
) -> None:
    """Notify everyone the change reaches (Platform Admin)."""
    state = state_of(ctx)
    request = {"subject_id": subject_id, "schema_id": schema_id, "fields": fields or None}
    request |= {"subject": subject, "body": body}
    notice = state.api().post(f"{API}/notices", json={k: v for k, v in request.items() if v})
    _show_notice(state, notice)


@app.command("deliveries")
def deliveries(ctx: typer.Context, subject_id: Subject) -> None:
    """Every delivery attempt about a change, fallbacks included."""
    state = state_of(ctx)
    items = state.api().get_all(f"{API}/notices/deliveries", {"subject_id": subject_id})
    render.show(state, items, title=f"Deliveries about {subject_id}", columns=DELIVERY_COLUMNS)


@app.command("sign-off")
def sign_off(
    ctx: typer.Context,
    subject_id: Subject,
    approve: Annotated[bool, typer.Option("--approve/--reject", help="Your decision.")],
    note: Annotated[str, typer.Option("--note", help="Kept by you; the ledger holds its hash.")] = "",
) -> None:
    """Record your sign-off on a change you were notified of."""
    state = state_of(ctx)
    body = {"subject_id": subject_id, "approve": approve, "note": note}
    render.show(state, state.api().post(f"{API}/signoffs", json=body), title="Sign-off recorded")


@app.command("signoffs")
def signoffs(ctx: typer.Context, subject_id: Subject) -> None:
    """The sign-offs recorded on a change."""
    state = state_of(ctx)
    items = state.api().get_all(f"{API}/signoffs", {"subject_id": subject_id})
    render.show(state, items, title=f"Sign-offs on {subject_id}", columns=["user_id", "roles", "decision"])


@app.command("incident")
def incident(
    ctx: typer.Context,
    subject_id: Subject,
    summary: Annotated[str, typer.Option("--summary", help="What went wrong after the change.")],
    severity: Annotated[str, typer.Option("--severity", help="SEV1 to SEV4.")] = "SEV2",
    schema_id: Annotated[
        str | None, typer.Option("--schema", help="Also inform this contract's radius.")
    ] = None,
) -> None:
    """A post-change incident (SRE, PA): incident, review ticket, everyone told of the change informed."""
    state = state_of(ctx)
    body = {"subject_id": subject_id, "summary": summary, "severity": severity, "schema_id": schema_id}
    result = state.api().post(f"{API}/post-change-incidents", json={k: v for k, v in body.items() if v})
    if state.json:
        render.print_json(result)
        return
    render.message(state, f"incident {result['incident_id']}, review ticket {result['ticket_id']}")
    _show_notice(state, result["notice"])


def _show_notice(state, notice: dict) -> None:
    if state.json:
        render.print_json(notice)
        return
    render.show(
        state, {k: notice[k] for k in ("message_id", "subject_id", "status", "counts")}, title="Notice"
    )
    render.show(state, notice["deliveries"], title="Deliveries", columns=DELIVERY_COLUMNS)
