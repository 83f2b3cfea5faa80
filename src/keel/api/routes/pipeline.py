"""Routes of pipeline runs: full and incremental, recorded."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import Body
from keel.contracts import builds, run_records

router = APIRouter(tags=["pipeline"])
RUNS = "/tenants/{tenant_id}/pipeline-runs"


class PipelineRun(Body):
    schema_id: Annotated[str, Field(min_length=1, max_length=80, description="The GDP or KPI contract.")]
    mode: Literal["full", "incremental"] = Field(
        "incremental",
        description="incremental: add the new Raw batches (a table it cannot be right for is rebuilt "
        "in full, the run's note says why); full: recompute every table.",
    )


@router.post(RUNS, status_code=201)
async def run(
    tenant_id: str, body: PipelineRun, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Run the tenant's pipeline for one contract: its GDP tables and the KPIs on them, activated."""
    return await idempotent(
        request, actor, lambda: builds.build_tenant(keel, actor, tenant_id, body.schema_id, mode=body.mode)
    )


@router.get(RUNS)
def list_runs(
    tenant_id: str,
    page: Page = Depends(),
    layer: str | None = Query(None, max_length=8, description="gdp or kpi."),
    name: str | None = Query(None, max_length=80, description="The table's view name: invoice, kpi_dso."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """The tenant's recorded runs (builds, refreshes, rollouts), in the order they started."""
    items = run_records.list_runs(
        keel, actor, tenant_id, layer=layer, name=name, after=page.after, limit=page.limit + 1
    )
    answer = page.render(items, run_records.POSITION)
    for item in answer["items"]:
        del item[run_records.POSITION]
    return answer


@router.get(RUNS + "/{run_id}")
def get_run(tenant_id: str, run_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return run_records.get_run(keel, actor, tenant_id, run_id)
