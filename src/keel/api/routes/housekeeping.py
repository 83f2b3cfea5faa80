"""Routes of housekeeping: retention, tiering, compaction, legal holds, scheduler (05b)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import Body
from keel.housekeeping import service
from keel.scheduling import service as scheduler

router = APIRouter(tags=["housekeeping"])
POLICIES = "/housekeeping/policies"
POLICY = POLICIES + "/{policy_id}"
HOLDS = "/tenants/{tenant_id}/legal-holds"
Name = Annotated[str, Field(min_length=1, max_length=80)]
Short = Annotated[str, Field(min_length=1, max_length=40)]
Reason = Annotated[str, Field(min_length=1, max_length=1000)]


class PolicyDefine(Body):
    """A retention policy (the 05b artifact: ``policy_id=RET-12M, scope=gdp, retention_months=12,
    action_on_expiry=tier_to_cold``), with the table it ages and the column that dates its rows."""

    policy_id: Annotated[str, Field(min_length=1, max_length=64)]
    scope: Short  # gdp or raw
    retention_months: int
    action_on_expiry: Short  # tier_to_cold (gdp) or delete
    table: Name | None = None  # the entity (every version of it) or a table; raw: "*" when absent
    time_column: Name | None = None  # raw: _keel_ingested_at when absent
    description: Annotated[str, Field(max_length=500)] | None = None
    tenant_scope: Short | None = None  # "global" (default) or a tenant id


class Assignment(Body):
    tenant_scope: Short


class HoldPlace(Body):
    layer: Short | None = None  # raw, gdp, kpi; absent: every layer
    table: Name | None = None  # a table (or entity) of the layer; absent: the whole layer
    reason: Reason


class HoldRelease(Body):
    reason: Reason


class RetentionRun(Body):
    policy_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class Compaction(Body):
    layer: Short
    table: Name


class JobChange(Body):
    every_seconds: int | None = None
    enabled: bool | None = None


class Tick(Body):
    job: Name | None = None


# Policies -------------------------------------------------------------------------------------
@router.post(POLICIES, status_code=201)
async def define_policy(
    body: PolicyDefine, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Define a retention policy or a new version of one (Platform Admin); unapproved until a CO approves."""
    spec = body.model_dump(exclude_none=True)
    return await idempotent(request, actor, lambda: service.define_policy(keel, actor, spec))


@router.get(POLICIES)
def list_policies(
    page: Page = Depends(),
    tenant_id: str | None = Query(None, max_length=40, description="Only those assigned to this tenant."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_policies(keel, actor, tenant_id=tenant_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "policy_id")


@router.get(POLICY)
def get_policy(policy_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_policy(keel, actor, policy_id)


@router.post(POLICY + "/approve")
def approve_policy(policy_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Put the newest version in effect (a Compliance Officer other than its author)."""
    return service.approve_policy(keel, actor, policy_id)


@router.post(POLICY + "/assignments")
def assign_policy(policy_id: str, body: Assignment, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Apply the policy to a tenant, or to every tenant (``global``); assigning twice changes nothing."""
    return service.assign_policy(keel, actor, policy_id, body.tenant_scope)


# Legal holds ----------------------------------------------------------------------------------
@router.post(HOLDS, status_code=201)
async def place_hold(
    tenant_id: str, body: HoldPlace, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Place a legal hold (Security Admin): no housekeeping job touches what it covers."""
    spec = body.model_dump(exclude_none=True)
    return await idempotent(request, actor, lambda: service.place_hold(keel, actor, tenant_id, spec))


@router.get(HOLDS)
def list_holds(
    tenant_id: str,
    page: Page = Depends(),
    active: bool | None = Query(None, description="true: holds in force; false: released ones."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_holds(keel, actor, tenant_id, active=active, after=page.after, limit=page.limit + 1)
    return page.render(items, "hold_id")


@router.post(HOLDS + "/{hold_id}/release")
def release_hold(
    tenant_id: str, hold_id: str, body: HoldRelease, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Release a legal hold (Security Admin)."""
    return service.release_hold(keel, actor, tenant_id, hold_id, body.reason)


# Runs -----------------------------------------------------------------------------------------
@router.post("/tenants/{tenant_id}/housekeeping-runs", status_code=201)
async def run_retention(
    tenant_id: str, body: RetentionRun, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Apply the tenant's retention policies now (Platform Admin); one run per table, with its outcome."""
    return await idempotent(
        request, actor, lambda: service.run_retention(keel, actor, tenant_id, policy_id=body.policy_id)
    )


@router.get("/tenants/{tenant_id}/housekeeping-runs")
def list_runs(
    tenant_id: str,
    page: Page = Depends(),
    status: str | None = Query(None, max_length=10, description="SUCCEEDED, FAILED, BLOCKED or SKIPPED."),
    kind: str | None = Query(None, max_length=12, description="retention or compaction."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_runs(
        keel, actor, tenant_id, status=status, kind=kind, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "run_id")


@router.post("/tenants/{tenant_id}/compactions", status_code=201)
async def compact(
    tenant_id: str, body: Compaction, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Compact and vacuum one table now and merge its cold files (Platform Admin, SRE)."""
    return await idempotent(
        request, actor, lambda: service.compact_table(keel, actor, tenant_id, body.layer, body.table)
    )


# Scheduler ------------------------------------------------------------------------------------
@router.get("/scheduler/jobs")
def list_jobs(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    return page.render(scheduler.list_jobs(keel, actor, after=page.after, limit=page.limit + 1), "name")


@router.put("/scheduler/jobs/{job}")
def set_job(job: str, body: JobChange, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Change a job's interval or switch it on or off (Platform Admin, SRE)."""
    return scheduler.set_job(keel, actor, job, every_seconds=body.every_seconds, enabled=body.enabled)


@router.post("/scheduler/tick")
def tick(body: Tick, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Run the due jobs now, as the background scheduler would (Platform Admin, SRE)."""
    return scheduler.tick_now(keel, actor, only=body.job)
