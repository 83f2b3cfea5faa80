"""Story 03d: a tenant's schema change requests."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import (
    ChangeAmendment,
    ChangeClarification,
    ChangeDecision,
    ChangeRequest,
    ChangeValidation,
    ChangeWindow,
)
from keel.contracts import changes
from keel.kernel.errors import InvalidInput

router = APIRouter(tags=["contracts"])
C = "/tenants/{tenant_id}/schema-changes"


@router.post(C, status_code=201)
async def request_change(
    tenant_id: str,
    body: ChangeRequest,
    request: Request,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return await idempotent(
        request, actor, lambda: changes.request(keel, actor, tenant_id, **body.model_dump())
    )


@router.get(C)
def list_changes(
    tenant_id: str, page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)
):
    items = changes.list_for_tenant(keel, actor, tenant_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "change_id")


@router.get(C + "/{change_id}")
def get_change(tenant_id: str, change_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return changes.get(keel, actor, tenant_id, change_id)


@router.post(C + "/{change_id}/clarification")
def ask(
    tenant_id: str,
    change_id: str,
    body: ChangeClarification,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return changes.ask_clarification(keel, actor, tenant_id, change_id, question=body.question)


@router.post(C + "/{change_id}/amendment")
def amend(
    tenant_id: str,
    change_id: str,
    body: ChangeAmendment,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return changes.amend(keel, actor, tenant_id, change_id, **body.model_dump())


@router.post(C + "/{change_id}/validation")
def validate(
    tenant_id: str,
    change_id: str,
    body: ChangeValidation,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return changes.validate_with_impact(keel, actor, tenant_id, change_id, **body.model_dump())


@router.post(C + "/{change_id}/decision")
def decide(
    tenant_id: str, change_id: str, body: ChangeDecision, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return changes.decide(keel, actor, tenant_id, change_id, approve=body.approve, reason=body.reason)


@router.post(C + "/{change_id}/schedule")
def schedule(
    tenant_id: str, change_id: str, body: ChangeWindow, actor=Depends(current_actor), keel=Depends(get_keel)
):
    start, end = _when("window_start", body.window_start), _when("window_end", body.window_end)
    return changes.schedule(keel, actor, tenant_id, change_id, start=start, end=end)


def _when(field: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, f"'{text}' is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise InvalidInput(field, "needs a UTC offset (e.g. 2026-12-08T02:00:00+00:00)")
    return value
