"""Routes of KPI publishing (06) and consumption (07)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import Body
from keel.kernel.errors import InvalidInput
from keel.kpis import publishing, service

router = APIRouter(tags=["kpis"])
KPIS = "/tenants/{tenant_id}/kpis"
KPI = KPIS + "/{kpi_id}"
_RESERVED = {"period", "format", "cursor", "limit"}


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field("csv", max_length=10, description="csv or parquet.")
    filters: dict[str, str] = Field(default_factory=dict, description="Dimension values to keep.")
    region: str | None = Field(
        None, max_length=40, description="Where the snapshot is bound; default: the tenant's region."
    )


class PublicationRequest(Body):
    version: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        None, description="The KPI contract version to publish; default: the version the tenant runs."
    )


def _filters(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k not in _RESERVED}


@router.get(KPIS)
def list_kpis(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """The KPIs the caller's personas may see (``visibleTo``), with the current value per dimension."""
    return {"items": service.list_kpis(keel, actor, tenant_id)}


@router.get(KPI)
def get_kpi(
    tenant_id: str, kpi_id: str, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Current value and history at the KPI's grain; query parameters filter on its dimensions."""
    return service.get_kpi(keel, actor, tenant_id, kpi_id, _filters(request))


@router.get(KPI + "/drill")
def drill(
    tenant_id: str,
    kpi_id: str,
    request: Request,
    period: str = Query(..., max_length=10, description="The period's first day, YYYY-MM-DD."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """The GDP rows behind one value and the Raw records (with batch ids) they came from."""
    return service.drill(keel, actor, tenant_id, kpi_id, period, _filters(request))


@router.post(KPI + "/snapshots", status_code=201)
def snapshot(
    tenant_id: str, kpi_id: str, body: SnapshotRequest, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Export the KPI's rows (CSV or Parquet) into the tenant's data plane, with a signed receipt."""
    return service.export(keel, actor, tenant_id, kpi_id, body.format, body.filters, body.region)


# --- publication (06) ---------------------------------------------------------------------------


@router.post(KPI + "/publication", status_code=201)
async def publish(
    tenant_id: str,
    kpi_id: str,
    request: Request,
    body: PublicationRequest,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """Publish a KPI contract version to the tenant's people (PA, dual-signed); 409 naming the
    missing evidence when its build, lineage or data-quality outcome is not there."""
    return await idempotent(
        request, actor, lambda: publishing.publish(keel, actor, tenant_id, kpi_id, body.version)
    )


@router.delete(KPI + "/publication")
def unpublish(tenant_id: str, kpi_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Withdraw the KPI's publication: invisible to the tenant's people again."""
    return publishing.unpublish(keel, actor, tenant_id, kpi_id)


@router.post(KPI + "/publication/rollback")
def rollback(tenant_id: str, kpi_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Return to the publication the current one replaced (its version, definition and build)."""
    return publishing.rollback(keel, actor, tenant_id, kpi_id)


@router.get(KPI + "/publications")
def publications(
    tenant_id: str, kpi_id: str, page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)
):
    """The KPI's publications in the tenant, newest first, with their evidence references."""
    before = None
    if page.after is not None:
        if not page.after.isdigit():
            raise InvalidInput("cursor", "is not a cursor this API issued; pass next_cursor unchanged")
        before = int(page.after)
    items = publishing.list_publications(keel, actor, tenant_id, kpi_id, before=before, limit=page.limit + 1)
    return page.render(items, "number")
