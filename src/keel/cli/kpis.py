"""``keel kpi``: KPI publishing (06) and consumption (07)."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(
    help="Publish KPIs and read them: values, thresholds, drill-through, snapshots (06, 07).",
    no_args_is_help=True,
)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"kpi": app}

COLUMNS = ["kpi_id", "name", "version", "unit", "period", "breached"]
Tenant = Annotated[str, typer.Option("--tenant", help="The tenant id (TEN-...).")]
KpiId = Annotated[str, typer.Argument(help="KPI contract id, e.g. KPI-DSO.")]
Filters = Annotated[
    list[str] | None, typer.Option("--filter", help="A dimension value, dimension=value (repeatable).")
]


def _filters(pairs: list[str] | None) -> dict[str, str]:
    chosen = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"'{pair}' is not dimension=value", param_hint="--filter")
        chosen[name.strip()] = value.strip()
    return chosen


def _base(tenant: str) -> str:
    return f"/api/v1/tenants/{tenant}/kpis"


@app.command("list")
def list_kpis(ctx: typer.Context, tenant: Tenant) -> None:
    """The KPIs your roles may see, with the current value and whether a threshold is breached."""
    state = state_of(ctx)
    items = state.api().get(_base(tenant))["items"]
    render.show(state, items, title="KPIs", columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, kpi_id: KpiId, tenant: Tenant, filters: Filters = None) -> None:
    """One KPI: thresholds, targets, current values and history at its grain."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{_base(tenant)}/{kpi_id}", params=_filters(filters)), title="KPI")


@app.command("drill")
def drill(
    ctx: typer.Context,
    kpi_id: KpiId,
    tenant: Tenant,
    period: Annotated[str, typer.Option("--period", help="The period's first day, YYYY-MM-DD.")],
    filters: Filters = None,
) -> None:
    """The GDP rows behind one value and the Raw records (with batch ids) they came from."""
    state = state_of(ctx)
    params = {"period": period, **_filters(filters)}
    render.show(
        state, state.api().get(f"{_base(tenant)}/{kpi_id}/drill", params=params), title="Drill-through"
    )


@app.command("export")
def export(
    ctx: typer.Context,
    kpi_id: KpiId,
    tenant: Tenant,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    filters: Filters = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Where the snapshot is bound; default: the tenant's.")
    ] = None,
) -> None:
    """Export a snapshot file into the tenant's data plane, with a signed receipt of its SHA-256;
    enabled export-limit and residency guardrails can refuse it."""
    state = state_of(ctx)
    body = {"format": fmt, "filters": _filters(filters)} | ({"region": region} if region else {})
    render.show(
        state, state.api().post(f"{_base(tenant)}/{kpi_id}/snapshots", json=body), title="KPI snapshot"
    )


# --- publication (06) ---------------------------------------------------------------------------
PUBLICATION_COLUMNS = ["number", "publication_id", "version", "status", "published_by", "published_at"]


@app.command("publish")
def publish(
    ctx: typer.Context,
    kpi_id: KpiId,
    tenant: Tenant,
    version: Annotated[
        str | None, typer.Option("--version", help="KPI contract version; default: the one the tenant runs.")
    ] = None,
) -> None:
    """Publish a KPI to the tenant's people (PA); blocked, naming what is missing, without evidence."""
    state = state_of(ctx)
    body = {"version": version} if version else {}
    render.show(
        state, state.api().post(f"{_base(tenant)}/{kpi_id}/publication", json=body), title="Published"
    )


@app.command("unpublish")
def unpublish(ctx: typer.Context, kpi_id: KpiId, tenant: Tenant) -> None:
    """Withdraw a KPI's publication: invisible to the tenant's people again."""
    state = state_of(ctx)
    render.show(state, state.api().delete(f"{_base(tenant)}/{kpi_id}/publication"), title="Unpublished")


@app.command("rollback")
def rollback(ctx: typer.Context, kpi_id: KpiId, tenant: Tenant) -> None:
    """Return to the publication the current one replaced (its version and build)."""
    state = state_of(ctx)
    render.show(
        state, state.api().post(f"{_base(tenant)}/{kpi_id}/publication/rollback"), title="Rolled back"
    )


@app.command("publications")
def publications(ctx: typer.Context, kpi_id: KpiId, tenant: Tenant) -> None:
    """A KPI's publications in the tenant, newest first, with their evidence."""
    state = state_of(ctx)
    items = state.api().get_all(f"{_base(tenant)}/{kpi_id}/publications")
    render.show(state, items, title="KPI publications", columns=PUBLICATION_COLUMNS)
