"""Routes of KPI publishing (06) and consumption (07)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.api.deps import current_actor, get_keel
from keel.kpis import service

router = APIRouter(tags=["kpis"])
KPIS = "/tenants/{tenant_id}/kpis"
KPI = KPIS + "/{kpi_id}"
_RESERVED = {"period", "format", "cursor", "limit"}


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field("csv", max_length=10, description="csv or parquet.")
    filters: dict[str, str] = Field(default_factory=dict, description="Dimension values to keep.")


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
    return service.export(keel, actor, tenant_id, kpi_id, body.format, body.filters)
