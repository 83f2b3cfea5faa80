"""Story 03f: staged rollouts with automatic rollback; the tenant builds they move between."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import BuildRequest, RolloutPlan
from keel.contracts import builds, rollout

router = APIRouter(tags=["contracts"])
R = "/rollouts/{rollout_id}"


@router.post("/rollouts", status_code=201)
async def plan(body: RolloutPlan, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)):
    data = body.model_dump()
    stages = [{k: v for k, v in stage.items() if v is not None} for stage in data["stages"]]
    return await idempotent(
        request,
        actor,
        lambda: rollout.plan(
            keel,
            actor,
            schema_id=body.schema_id,
            to_version=body.to_version,
            stages=stages,
            rollback_on=data["rollback_on"],
            change_id=body.change_id,
        ),
    )


@router.get("/rollouts")
def list_rollouts(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    return page.render(
        rollout.list_rollouts(keel, actor, after=page.after, limit=page.limit + 1), "rollout_id"
    )


@router.get(R)
def get_rollout(rollout_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return rollout.get(keel, actor, rollout_id)


@router.post(R + "/readiness")
def ready(rollout_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Schema Steward's sign-off after a dry run on the canary tenants."""
    return rollout.ready(keel, actor, rollout_id)


@router.post(R + "/start")
def start(rollout_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return rollout.start(keel, actor, rollout_id)


@router.post(R + "/expand")
def expand(rollout_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return rollout.expand(keel, actor, rollout_id)


@router.post("/tenants/{tenant_id}/builds")
def build(tenant_id: str, body: BuildRequest, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Build and activate the tenant's GDP tables (and the KPIs on them) for one contract."""
    return builds.build_tenant(keel, actor, tenant_id, body.schema_id)
