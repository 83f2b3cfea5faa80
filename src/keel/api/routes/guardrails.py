"""Routes of guardrails and cost controls (04, 05b)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import Body
from keel.guardrails import events, service

router = APIRouter(tags=["guardrails"])
GUARDRAIL = "/guardrails/{guardrail_id}"
Ident = Annotated[str, Field(min_length=1, max_length=80)]
Short = Annotated[str, Field(min_length=1, max_length=40)]
Count = Annotated[int, Field(ge=1, le=10**15)]


class GuardrailDefine(Body):
    """A guardrail; the kind's fields are checked by ``keel.guardrails.model.validate``."""

    guardrail_id: Ident | None = None
    policy_id: Ident | None = None  # the 04 artifact's name for the id
    kind: Short | None = None  # action_quota, residency, export_limit, spend_cap; inferred when absent
    description: Annotated[str, Field(max_length=500)] | None = None
    tenant_scope: Short | None = None  # global or a tenant id
    scope: Short | None = None  # "tenant": counted per tenant
    tenant_id: Short | None = None
    quota_per_day: Count | None = None
    actions: Annotated[list[Ident], Field(min_length=1, max_length=50)] | None = None
    allowed_regions: Annotated[list[Short], Field(min_length=1, max_length=50)] | None = None
    max_rows_per_export: Count | None = None
    max_bytes_per_export: Count | None = None
    max_rows_per_day: Count | None = None
    max_bytes_per_day: Count | None = None
    daily_spend_cap_usd: Annotated[float, Field(gt=0, le=1e9)] | None = None
    enforcement: Short | None = None  # block or alert
    on_breach: Short | None = None  # block_non_essential_actions or alert_only


class GuardrailEvaluation(Body):
    action: Annotated[str, Field(min_length=3, max_length=80)]
    essential: bool = False
    rows: Annotated[int, Field(ge=0, le=10**15)] | None = None
    bytes: Annotated[int, Field(ge=0, le=10**18)] | None = None
    region: Short | None = None


@router.post("/guardrails", status_code=201)
async def define(
    body: GuardrailDefine, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Define a guardrail, or a new version of one (Security Admin); it starts disabled."""
    spec = body.model_dump(exclude_none=True)
    return await idempotent(request, actor, lambda: service.define(keel, actor, spec))


@router.get("/guardrails")
def list_guardrails(
    page: Page = Depends(),
    kind: str | None = Query(
        None, max_length=20, description="action_quota, residency, export_limit, spend_cap."
    ),
    tenant_id: str | None = Query(
        None, max_length=40, description="Global ones and this tenant's (providers)."
    ),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_guardrails(
        keel, actor, tenant_id=tenant_id, kind=kind, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "guardrail_id")


@router.get(GUARDRAIL)
def get_guardrail(guardrail_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_guardrail(keel, actor, guardrail_id)


@router.post(GUARDRAIL + "/enable")
def enable(guardrail_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Enforce the newest version (Platform Admin)."""
    return service.enable(keel, actor, guardrail_id)


@router.post("/tenants/{tenant_id}/guardrail-evaluations")
def evaluate(tenant_id: str, body: GuardrailEvaluation, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Check an action against the tenant's enabled guardrails: 200 allowed, 409 naming the guardrail."""
    facts = body.model_dump(exclude={"action", "essential"})
    return service.enforce(keel, actor, tenant_id, body.action, essential=body.essential, **facts)


@router.get("/tenants/{tenant_id}/spend")
def spend(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Today's spend (compute and storage) and its ratio to each enabled spend cap."""
    return service.tenant_spend(keel, actor, tenant_id)


@router.get("/policy-events")
def policy_events(
    tenant_id: str | None = Query(
        None, max_length=40, description="One tenant's (providers; tenant users: theirs)."
    ),
    since: datetime | None = Query(None, description="ISO 8601; default: 24 hours before until."),
    until: datetime | None = Query(None, description="ISO 8601; default: now. At most 31 days after since."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """The policy-events dashboard (04): enforcements by guardrail and outcome, data-quality rules'
    applications, failures and blocks, and the newest enforcements, from the evidence ledger."""
    return events.policy_events(keel, actor, tenant_id=tenant_id, since=since, until=until)
