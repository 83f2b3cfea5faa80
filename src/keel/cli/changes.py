"""``keel change``, ``keel rollout`` and ``keel build``: stories 03d and 03f.

Change requests (TA files, SS validates with impact and risk, TP decides, PA books a
window), staged rollouts with automatic rollback (PA plans, SS signs readiness after a
dry run, PA starts and widens), and building a tenant's GDP tables and KPIs from the
contract versions it runs. ``--tenant`` defaults to the caller's own tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import EXIT_FAILURE, state_of
from keel.cli.connectors import Tenant, tenant_path
from keel.cli.inputs import read_document

change_app = typer.Typer(help="Tenant schema change requests (03d).", no_args_is_help=True)
rollout_app = typer.Typer(help="Staged rollouts with automatic rollback (03f).", no_args_is_help=True)

CHANGE_COLUMNS = ["change_id", "schema", "change", "status", "risk", "proposed_version", "window_start"]
ROLLOUT_COLUMNS = ["rollout_id", "schema_id", "from_version", "to_version", "status", "current_stage"]
ChangeId = Annotated[str, typer.Argument(help="Change request id (SC-...).")]
RolloutId = Annotated[str, typer.Argument(help="Rollout id (RO-...).")]


def _changes(state, tenant: str | None) -> str:
    return f"{tenant_path(state, tenant)}/schema-changes"


@change_app.command("request")
def request(
    ctx: typer.Context,
    schema_id: Annotated[str, typer.Option("--schema", help="The contract to change, e.g. GDP-INVOICE.")],
    change: Annotated[str, typer.Option("--change", help="What changes, e.g. 'add field payment_terms'.")],
    justification: Annotated[str, typer.Option("--justification", help="Why the tenant needs it.")],
    rollback_plan: Annotated[str, typer.Option("--rollback-plan", help="How to undo it.")] = "",
    tenant: Tenant = None,
) -> None:
    """File a justified change request (Tenant Admin)."""
    state = state_of(ctx)
    body = {
        "schema_id": schema_id,
        "change": change,
        "justification": justification,
        "rollback_plan": rollback_plan,
    }
    render.show(state, state.api().post(_changes(state, tenant), json=body), title="Change requested")


@change_app.command("list")
def list_changes(ctx: typer.Context, tenant: Tenant = None) -> None:
    """The tenant's change requests."""
    state = state_of(ctx)
    render.show(state, state.api().get_all(_changes(state, tenant)), title="Changes", columns=CHANGE_COLUMNS)


@change_app.command("show")
def show(ctx: typer.Context, change_id: ChangeId, tenant: Tenant = None) -> None:
    state = state_of(ctx)
    render.show(state, state.api().get(f"{_changes(state, tenant)}/{change_id}"), title="Change request")


@change_app.command("clarify")
def clarify(
    ctx: typer.Context,
    change_id: ChangeId,
    question: Annotated[str, typer.Option("--question", help="What the request lacks.")],
    tenant: Tenant = None,
) -> None:
    """Send an incomplete request back to its author (Schema Steward)."""
    state = state_of(ctx)
    path = f"{_changes(state, tenant)}/{change_id}/clarification"
    render.show(state, state.api().post(path, json={"question": question}), title="Change request")


@change_app.command("amend")
def amend(
    ctx: typer.Context,
    change_id: ChangeId,
    justification: Annotated[str, typer.Option("--justification")] = "",
    rollback_plan: Annotated[str, typer.Option("--rollback-plan")] = "",
    tenant: Tenant = None,
) -> None:
    """Answer a clarification (the requester)."""
    state = state_of(ctx)
    body = {"justification": justification, "rollback_plan": rollback_plan}
    render.show(
        state, state.api().post(f"{_changes(state, tenant)}/{change_id}/amendment", json=body), title="Change"
    )


@change_app.command("validate")
def validate(
    ctx: typer.Context,
    change_id: ChangeId,
    proposed_version: Annotated[str, typer.Option("--version", help="The contract version carrying it.")],
    risk: Annotated[str, typer.Option("--risk", help="low, medium or high.")],
    tenant: Tenant = None,
) -> None:
    """Attach the version, the impact analysis and a risk rating (Schema Steward); exit 1 if rejected."""
    state = state_of(ctx)
    body = {"proposed_version": proposed_version, "risk": risk}
    row = state.api().post(f"{_changes(state, tenant)}/{change_id}/validation", json=body)
    render.show(state, row, title="Change request")
    if row["status"] == "REJECTED":
        raise typer.Exit(EXIT_FAILURE)


@change_app.command("decide")
def decide(
    ctx: typer.Context,
    change_id: ChangeId,
    approve: Annotated[bool, typer.Option("--approve/--decline")],
    reason: Annotated[str, typer.Option("--reason")] = "",
    tenant: Tenant = None,
) -> None:
    """Business sign-off (Tenant Approver)."""
    state = state_of(ctx)
    body = {"approve": approve, "reason": reason}
    render.show(
        state, state.api().post(f"{_changes(state, tenant)}/{change_id}/decision", json=body), title="Change"
    )


@change_app.command("schedule")
def schedule(
    ctx: typer.Context,
    change_id: ChangeId,
    start: Annotated[
        str, typer.Option("--start", help="ISO 8601 with offset, e.g. 2026-12-08T02:00:00+00:00.")
    ],
    end: Annotated[str, typer.Option("--end", help="ISO 8601 with offset.")],
    tenant: Tenant = None,
) -> None:
    """Book the change window and notify the consumers (Platform Admin)."""
    state = state_of(ctx)
    body = {"window_start": start, "window_end": end}
    render.show(
        state, state.api().post(f"{_changes(state, tenant)}/{change_id}/schedule", json=body), title="Change"
    )


@rollout_app.command("plan")
def plan(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="JSON: schema_id, to_version, stages, rollback_on, change_id.")
    ],
) -> None:
    """Plan a staged rollout (Platform Admin)."""
    state = state_of(ctx)
    render.show(
        state, state.api().post("/api/v1/rollouts", json=read_document(file, "plan")), title="Rollout"
    )


@rollout_app.command("list")
def list_rollouts(ctx: typer.Context) -> None:
    state = state_of(ctx)
    render.show(state, state.api().get_all("/api/v1/rollouts"), title="Rollouts", columns=ROLLOUT_COLUMNS)


@rollout_app.command("show")
def show_rollout(ctx: typer.Context, rollout_id: RolloutId) -> None:
    state = state_of(ctx)
    render.show(state, state.api().get(f"/api/v1/rollouts/{rollout_id}"), title="Rollout")


def _step(name: str, path: str, help_text: str) -> None:
    def command(ctx: typer.Context, rollout_id: RolloutId) -> None:
        state = state_of(ctx)
        row = state.api().post(f"/api/v1/rollouts/{rollout_id}/{path}")
        render.show(state, row, title="Rollout")
        if row["status"] in ("ROLLED_BACK", "FAILED"):
            raise typer.Exit(EXIT_FAILURE)

    command.__doc__ = help_text
    rollout_app.command(name)(command)


_step("ready", "readiness", "Dry run on the canaries and readiness sign-off (Schema Steward).")
_step("start", "start", "Start with the canary stage (Platform Admin); exit 1 if it rolled back.")
_step("expand", "expand", "Widen to the next stage (Platform Admin); exit 1 if it rolled back.")


def build(
    ctx: typer.Context,
    schema_id: Annotated[str, typer.Argument(help="A GDP or KPI contract, e.g. GDP-INVOICE.")],
    tenant: Tenant = None,
) -> None:
    """Build and activate the tenant's tables (and KPIs) for the contract version it runs."""
    state = state_of(ctx)
    result = state.api().post(f"{tenant_path(state, tenant)}/builds", json={"schema_id": schema_id})
    render.show(
        state,
        result["runs"],
        title=f"{schema_id}@{result['version']}",
        columns=["table", "rows", "error_rows", "dq_failures", "duration_seconds"],
    )
