"""Story 00d: RBAC bundles; break-glass elevation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import BreakGlassRequest, BundleDefine, BundleReview
from keel.rbac import breakglass, service

router = APIRouter(prefix="/rbac", tags=["rbac"])


@router.post("/bundles", status_code=201)
async def define(body: BundleDefine, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)):
    return await idempotent(request, actor, lambda: service.define_bundle(keel, actor, body.bundle))


@router.get("/bundles")
def list_bundles(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    items = service.list_bundles(keel, actor, after=page.after, limit=page.limit + 1)
    return page.render(items, "bundle_id")


@router.get("/bundles/{bundle_id}")
def get_bundle(bundle_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_bundle(keel, actor, bundle_id)


@router.post("/bundles/{bundle_id}/apply")
def apply(bundle_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.apply_bundle(keel, actor, bundle_id)


@router.post("/bundles/{bundle_id}/review")
def review(bundle_id: str, body: BundleReview, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.review_bundle(keel, actor, bundle_id, approve=body.approve, findings=body.findings)


@router.get("/policy")
def active_policy(actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.active_policy(keel, actor)


@router.post("/break-glass", status_code=201)
async def request_break_glass(
    body: BreakGlassRequest, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(
        request, actor, lambda: breakglass.request_break_glass(keel, actor, **body.model_dump())
    )


@router.post("/break-glass/{ticket_id}/approve")
def approve_break_glass(ticket_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return breakglass.approve_break_glass(keel, actor, ticket_id)
