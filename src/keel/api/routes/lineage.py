"""Routes of lineage (OpenLineage) and evidence export templates (05)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from keel.api.deps import Page, current_actor, get_keel
from keel.lineage import service

router = APIRouter(tags=["lineage"])

LINEAGE = "/tenants/{tenant_id}/lineage"


@router.get(LINEAGE)
def list_lineage(
    tenant_id: str,
    page: Page = Depends(),
    job: str | None = Query(None, max_length=200, description="Only this job's records: gdp.invoice"),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """The tenant's lineage records: one OpenLineage run event (START, COMPLETE, FAIL) each."""
    items = service.list_records(keel, actor, tenant_id, job=job, after=page.after, limit=page.limit + 1)
    return page.render(items, "record_id")


@router.get(LINEAGE + "/graph")
def lineage_graph(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Raw -> GDP -> KPI nodes with the column edges of each job's latest COMPLETE event."""
    return service.graph(keel, actor, tenant_id)
