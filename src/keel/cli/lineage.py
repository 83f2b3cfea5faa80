"""``keel lineage``: lineage (OpenLineage) and evidence export templates (05)."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(help="Lineage records and evidence export templates (05).", no_args_is_help=True)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"lineage": app}

COLUMNS = ["record_id", "job", "event_type", "run_id", "contract", "columns", "sent", "event_time"]
Tenant = Annotated[str, typer.Argument(help="Tenant id (TEN-...).")]


@app.command("list")
def list_lineage(
    ctx: typer.Context,
    tenant_id: Tenant,
    job: Annotated[str | None, typer.Option("--job", help="One job's records: gdp.invoice.")] = None,
) -> None:
    """A tenant's lineage records: the OpenLineage events of its pipeline runs."""
    state = state_of(ctx)
    items = state.api().get_all(f"/api/v1/tenants/{tenant_id}/lineage", {"job": job})
    render.show(state, items, title="Lineage records", columns=COLUMNS)


@app.command("graph")
def graph(ctx: typer.Context, tenant_id: Tenant) -> None:
    """Raw -> GDP -> KPI nodes and column edges from each job's latest completed run."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"/api/v1/tenants/{tenant_id}/lineage/graph"), title="Lineage graph")
