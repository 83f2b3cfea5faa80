"""Story 00a: platform deployment."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import DeploymentRequest, Rejection
from keel.platform import service

router = APIRouter(prefix="/platform", tags=["platform"])


@router.post("/deployments", status_code=201)
async def request_deployment(
    body: DeploymentRequest, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(request, actor, lambda: service.request_deployment(keel, actor, body.template))


@router.get("/deployments")
def list_deployments(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    items = service.list_deployments(keel, actor, after=page.after, limit=page.limit + 1)
    return page.render(items, "deployment_id")


@router.get("/deployments/{dep_id}")
def get_deployment(dep_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_deployment(keel, actor, dep_id)


@router.post("/deployments/{dep_id}/approve")
def approve(dep_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.approve_deployment(keel, actor, dep_id)


@router.post("/deployments/{dep_id}/execute")
def execute(dep_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.execute_deployment(keel, actor, dep_id)


@router.post("/deployments/{dep_id}/validate")
def validate(dep_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.validate_deployment(keel, actor, dep_id)


@router.post("/deployments/{dep_id}/reject")
def reject(dep_id: str, body: Rejection, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.reject_deployment(keel, actor, dep_id, body.reason)
