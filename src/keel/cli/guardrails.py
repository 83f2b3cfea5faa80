"""``keel guardrail``: guardrails and cost controls (04, 05b)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(
    help="Guardrails: quotas, residency, export limits, spend caps (04, 05b).", no_args_is_help=True
)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"guardrail": app}

GUARDRAILS = "/api/v1/guardrails"
COLUMNS = ["guardrail_id", "kind", "version", "tenant_scope", "status", "description"]
GuardrailId = Annotated[str, typer.Argument(help="Guardrail id, e.g. ACT-QUOTA-01.")]


@app.command("define")
def define(
    ctx: typer.Context,
    spec: Annotated[
        str,
        typer.Argument(
            help='The definition as JSON, e.g. \'{"policy_id": "ACT-QUOTA-01", "quota_per_day": 5}\'; '
            "@FILE reads it from a file."
        ),
    ],
) -> None:
    """Define a guardrail or a new version of one (Security Admin); it starts disabled."""
    state = state_of(ctx)
    text = open(spec[1:], encoding="utf-8").read() if spec.startswith("@") else spec  # noqa: SIM115
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="SPEC") from None
    render.show(state, state.api().post(GUARDRAILS, json=body), title="Guardrail")


@app.command("list")
def list_guardrails(
    ctx: typer.Context,
    kind: Annotated[
        str | None, typer.Option("--kind", help="action_quota, residency, export_limit or spend_cap.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Global ones and this tenant's.")] = None,
) -> None:
    """The newest version of each guardrail."""
    state = state_of(ctx)
    items = state.api().get_all(GUARDRAILS, {"kind": kind, "tenant_id": tenant})
    render.show(state, items, title="Guardrails", columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, guardrail_id: GuardrailId) -> None:
    """One guardrail's newest version."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{GUARDRAILS}/{guardrail_id}"), title="Guardrail")


@app.command("enable")
def enable(ctx: typer.Context, guardrail_id: GuardrailId) -> None:
    """Enforce the newest version of a guardrail (Platform Admin)."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{GUARDRAILS}/{guardrail_id}/enable"), title="Guardrail")


@app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the action is for.")],
    action: Annotated[str, typer.Option("--action", help="The action, e.g. workflow:Execute.")],
    essential: Annotated[bool, typer.Option("--essential", help="Runs even past a spend cap.")] = False,
    rows: Annotated[int | None, typer.Option("--rows", help="Rows an export moves.")] = None,
    nbytes: Annotated[int | None, typer.Option("--bytes", help="Bytes an export moves.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Region the data would go to.")] = None,
) -> None:
    """Check an action against the tenant's enabled guardrails; a refusal names the guardrail."""
    state = state_of(ctx)
    body = {"action": action, "essential": essential, "rows": rows, "bytes": nbytes, "region": region}
    body = {k: v for k, v in body.items() if v is not None}
    result = state.api().post(f"/api/v1/tenants/{tenant}/guardrail-evaluations", json=body)
    render.show(state, result, title="Guardrail evaluation")


@app.command("spend")
def spend(ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant", help="The tenant.")]) -> None:
    """Today's spend of a tenant and its ratio to each enabled spend cap."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"/api/v1/tenants/{tenant}/spend"), title="Spend today")


@app.command("events")
def events(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="One tenant's events.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 (default: 24 hours ago).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 (default: now).")] = None,
) -> None:
    """The policy-events dashboard: enforcements, rule outcomes and the newest refusals (04)."""
    state = state_of(ctx)
    params = {k: v for k, v in (("tenant_id", tenant), ("since", since), ("until", until)) if v}
    render.show(state, state.api().get("/api/v1/policy-events", params=params), title="Policy events")
