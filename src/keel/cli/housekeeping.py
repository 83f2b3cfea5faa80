"""``keel housekeeping`` and ``keel scheduler``: retention, tiering, compaction, legal holds (05b)."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(help="Retention, tiering, compaction, vacuum and legal holds (05b).", no_args_is_help=True)
policy_app = typer.Typer(
    help="Retention policies: define (PA), approve (CO), assign, list.", no_args_is_help=True
)
hold_app = typer.Typer(help="Legal holds (SA): data no housekeeping job touches.", no_args_is_help=True)
scheduler_app = typer.Typer(help="The scheduler's periodic jobs: list, set, tick.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(hold_app, name="hold")

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"housekeeping": app, "scheduler": scheduler_app}

POLICIES = "/api/v1/housekeeping/policies"
POLICY_COLUMNS = ["policy_id", "version", "scope", "table", "retention_months", "action_on_expiry", "status"]
HOLD_COLUMNS = ["hold_id", "layer", "table", "status", "reason", "placed_by"]
RUN_COLUMNS = [
    "run_id",
    "kind",
    "policy_id",
    "layer",
    "table",
    "status",
    "rows_tiered",
    "rows_deleted",
    "reason",
]
JOB_COLUMNS = ["name", "every_seconds", "enabled", "next_due_at", "last_status", "runs"]
PolicyId = Annotated[str, typer.Argument(help="Policy id, e.g. RET-12M.")]
Tenant = Annotated[str, typer.Option("--tenant", help="The tenant id.")]


def _holds(tenant: str) -> str:
    return f"/api/v1/tenants/{tenant}/legal-holds"


@policy_app.command("define")
def define(
    ctx: typer.Context,
    policy_id: PolicyId,
    scope: Annotated[str, typer.Option("--scope", help="gdp or raw.")],
    months: Annotated[int, typer.Option("--retention-months", help="Rows older than this expire.")],
    action: Annotated[str, typer.Option("--action", help="tier_to_cold (gdp) or delete.")],
    table: Annotated[str | None, typer.Option("--table", help="Entity or table; raw: every table.")] = None,
    time_column: Annotated[
        str | None, typer.Option("--time-column", help="The column dating a row; raw: _keel_ingested_at.")
    ] = None,
    tenant_scope: Annotated[str, typer.Option("--tenant-scope", help="global or a tenant id.")] = "global",
    description: Annotated[str | None, typer.Option("--description")] = None,
) -> None:
    """Define a retention policy or a new version of one (Platform Admin); a CO must approve it."""
    body = {
        "policy_id": policy_id, "scope": scope, "retention_months": months, "action_on_expiry": action,
        "table": table, "time_column": time_column, "tenant_scope": tenant_scope, "description": description,
    }  # fmt: skip
    state = state_of(ctx)
    body = {k: v for k, v in body.items() if v is not None}
    render.show(state, state.api().post(POLICIES, json=body), title="Retention policy")


@policy_app.command("approve")
def approve(ctx: typer.Context, policy_id: PolicyId) -> None:
    """Put the newest version in effect (a Compliance Officer other than its author)."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{POLICIES}/{policy_id}/approve"), title="Retention policy")


@policy_app.command("assign")
def assign(
    ctx: typer.Context,
    policy_id: PolicyId,
    tenant_scope: Annotated[str, typer.Option("--tenant-scope", help="global or a tenant id.")],
) -> None:
    """Apply a policy to one more tenant, or to every tenant."""
    state = state_of(ctx)
    result = state.api().post(f"{POLICIES}/{policy_id}/assignments", json={"tenant_scope": tenant_scope})
    render.show(state, result, title="Retention policy")


@policy_app.command("list")
def list_policies(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only those assigned to it.")] = None,
) -> None:
    """The newest version of each retention policy."""
    state = state_of(ctx)
    items = state.api().get_all(POLICIES, {"tenant_id": tenant})
    render.show(state, items, title="Retention policies", columns=POLICY_COLUMNS)


@policy_app.command("show")
def show(ctx: typer.Context, policy_id: PolicyId) -> None:
    state = state_of(ctx)
    render.show(state, state.api().get(f"{POLICIES}/{policy_id}"), title="Retention policy")


@hold_app.command("place")
def place(
    ctx: typer.Context,
    tenant: Tenant,
    reason: Annotated[str, typer.Option("--reason", help="The case or matter it is placed for.")],
    layer: Annotated[str | None, typer.Option("--layer", help="raw, gdp or kpi; absent: all.")] = None,
    table: Annotated[str | None, typer.Option("--table", help="A table (or entity) of the layer.")] = None,
) -> None:
    """Place a legal hold (Security Admin)."""
    state = state_of(ctx)
    body = {k: v for k, v in {"layer": layer, "table": table, "reason": reason}.items() if v is not None}
    render.show(state, state.api().post(_holds(tenant), json=body), title="Legal hold")


@hold_app.command("release")
def release(
    ctx: typer.Context,
    hold_id: Annotated[str, typer.Argument(help="The hold's id (LH-…).")],
    tenant: Tenant,
    reason: Annotated[str, typer.Option("--reason", help="Why it ends.")],
) -> None:
    """Release a legal hold (Security Admin)."""
    state = state_of(ctx)
    result = state.api().post(f"{_holds(tenant)}/{hold_id}/release", json={"reason": reason})
    render.show(state, result, title="Legal hold")


@hold_app.command("list")
def list_holds(
    ctx: typer.Context,
    tenant: Tenant,
    active: Annotated[
        bool | None, typer.Option("--active/--released", help="Only holds in force / released.")
    ] = None,
) -> None:
    state = state_of(ctx)
    items = state.api().get_all(_holds(tenant), {"active": None if active is None else str(active).lower()})
    render.show(state, items, title="Legal holds", columns=HOLD_COLUMNS)


@app.command("run")
def run(
    ctx: typer.Context,
    tenant: Tenant,
    policy: Annotated[str | None, typer.Option("--policy", help="Only this policy.")] = None,
) -> None:
    """Apply the tenant's retention policies now (Platform Admin)."""
    state = state_of(ctx)
    body = {"policy_id": policy} if policy else {}
    result = state.api().post(f"/api/v1/tenants/{tenant}/housekeeping-runs", json=body)
    render.show(state, result["items"], title="Housekeeping runs", columns=RUN_COLUMNS)


@app.command("runs")
def runs(
    ctx: typer.Context,
    tenant: Tenant,
    status: Annotated[
        str | None, typer.Option("--status", help="SUCCEEDED, FAILED, BLOCKED, SKIPPED.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="retention or compaction.")] = None,
) -> None:
    """The tenant's housekeeping runs, oldest first."""
    state = state_of(ctx)
    items = state.api().get_all(
        f"/api/v1/tenants/{tenant}/housekeeping-runs", {"status": status, "kind": kind}
    )
    render.show(state, items, title="Housekeeping runs", columns=RUN_COLUMNS)


@app.command("compact")
def compact(
    ctx: typer.Context,
    tenant: Tenant,
    layer: Annotated[str, typer.Option("--layer", help="raw, gdp or kpi.")],
    table: Annotated[str, typer.Option("--table", help="The table.")],
) -> None:
    """Compact and vacuum one table now and merge its cold files (Platform Admin, SRE)."""
    state = state_of(ctx)
    result = state.api().post(f"/api/v1/tenants/{tenant}/compactions", json={"layer": layer, "table": table})
    render.show(state, result, title="Compaction")


@scheduler_app.command("list")
def list_jobs(ctx: typer.Context) -> None:
    """Every registered periodic job, its interval and last outcome."""
    state = state_of(ctx)
    render.show(
        state, state.api().get_all("/api/v1/scheduler/jobs", {}), title="Scheduled jobs", columns=JOB_COLUMNS
    )


@scheduler_app.command("set")
def set_job(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The job, e.g. housekeeping.compaction.")],
    every: Annotated[int | None, typer.Option("--every-seconds", help="The new interval.")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Switch it on or off.")] = None,
) -> None:
    """Change a job's interval or switch it on or off (Platform Admin, SRE)."""
    state = state_of(ctx)
    body = {k: v for k, v in {"every_seconds": every, "enabled": enabled}.items() if v is not None}
    render.show(state, state.api().put(f"/api/v1/scheduler/jobs/{name}", json=body), title="Scheduled job")


@scheduler_app.command("tick")
def tick(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option("--job", help="Only this job (if due).")] = None,
) -> None:
    """Run the due jobs now, as the background scheduler would (cron can call this)."""
    state = state_of(ctx)
    result = state.api().post("/api/v1/scheduler/tick", json={"job": job} if job else {})
    render.show(state, result["items"], title="Jobs run", columns=[*JOB_COLUMNS, "last_error"])
