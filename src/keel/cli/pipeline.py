"""``keel pipeline``: pipeline runs: full and incremental, recorded."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(
    help="Run a tenant's pipeline: Raw -> GDP -> KPI, full or incremental.", no_args_is_help=True
)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"pipeline": app}

COLUMNS = ["id", "layer", "name", "version", "mode", "rows", "delta_rows", "dq_failures", "note"]
Tenant = Annotated[str, typer.Option("--tenant", help="The tenant, e.g. TEN-...")]


def _runs(tenant: str) -> str:
    return f"/api/v1/tenants/{tenant}/pipeline-runs"


@app.command("run")
def run(
    ctx: typer.Context,
    schema_id: Annotated[str, typer.Argument(help="The GDP (or KPI) contract, e.g. GDP-INVOICE.")],
    tenant: Tenant,
    full: Annotated[
        bool, typer.Option("--full", help="Recompute every table instead of refreshing.")
    ] = False,
) -> None:
    """Build the tenant's tables of one contract and the KPIs on them; incremental unless --full."""
    state = state_of(ctx)
    body = {"schema_id": schema_id, "mode": "full" if full else "incremental"}
    answer = state.api().post(_runs(tenant), json=body)
    render.show(state, answer["runs"] if not state.json else answer, title="Pipeline runs", columns=COLUMNS)


@app.command("runs")
def runs(
    ctx: typer.Context,
    tenant: Tenant,
    layer: Annotated[str | None, typer.Option("--layer", help="gdp or kpi.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The table's view name, e.g. invoice.")] = None,
) -> None:
    """The tenant's recorded runs, oldest first."""
    state = state_of(ctx)
    items = state.api().get_all(_runs(tenant), {"layer": layer, "name": name})
    render.show(state, items, title="Pipeline runs", columns=COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="The run, e.g. PLR-...")], tenant: Tenant
) -> None:
    """One recorded run."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{_runs(tenant)}/{run_id}"), title="Pipeline run")
