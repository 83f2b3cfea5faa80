"""Stories 01, 01b, 01c: tenant provisioning, validation, offboarding and decommissioning."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from keel.accounts import service as accounts
from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import (
    ComplianceReview,
    Decision,
    Decommission,
    OffboardingCreate,
    SecretPut,
    TenantCreate,
    UserCreate,
)
from keel.tenants import offboarding, reviews, service
from keel.tenants import secrets as tenant_secrets

router = APIRouter(prefix="/tenants", tags=["tenants"])


@router.post("", status_code=201)
async def provision(
    body: TenantCreate, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(
        request, actor, lambda: service.provision_tenant(keel, actor, **body.model_dump())
    )


@router.get("")
def list_tenants(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    items = service.list_tenants(keel, actor, after=page.after, limit=page.limit + 1)
    return page.render(items, "tenant_id")


@router.get("/offboarding-requests/{request_id}")
def get_offboarding_request(request_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_request(keel, actor, request_id)


@router.get("/{tenant_id}")
def get_tenant(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_tenant(keel, actor, tenant_id)


@router.post("/{tenant_id}/validate")
def validate(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.validate_tenant(keel, actor, tenant_id)


@router.post("/{tenant_id}/offboarding-requests", status_code=201)
async def request_offboarding(
    tenant_id: str,
    body: OffboardingCreate,
    request: Request,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return await idempotent(
        request, actor, lambda: offboarding.request_offboarding(keel, actor, tenant_id, body.reason)
    )


@router.post("/offboarding-requests/{request_id}/decision")
def decide(request_id: str, body: Decision, actor=Depends(current_actor), keel=Depends(get_keel)):
    return offboarding.decide_offboarding(keel, actor, request_id, body.approve, body.reason)


@router.post("/{tenant_id}/evidence-archives", status_code=201)
async def archive(tenant_id: str, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)):
    return await idempotent(request, actor, lambda: offboarding.archive_evidence(keel, actor, tenant_id))


@router.post("/{tenant_id}/decommission")
def decommission(tenant_id: str, body: Decommission, actor=Depends(current_actor), keel=Depends(get_keel)):
    return offboarding.decommission_tenant(keel, actor, tenant_id, body.request_id)


@router.post("/{tenant_id}/wipe-validation")
def confirm_wipe(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return offboarding.confirm_wipe(keel, actor, tenant_id)


@router.post("/{tenant_id}/users", status_code=201)
async def create_member(
    tenant_id: str, body: UserCreate, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(
        request, actor, lambda: accounts.create_user(keel, actor, tenant_id=tenant_id, **body.model_dump())
    )


@router.get("/{tenant_id}/users")
def list_members(
    tenant_id: str, page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)
):
    items = accounts.list_users(keel, actor, tenant_id=tenant_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "id")


@router.put("/{tenant_id}/secrets/{name}")
def put_secret(
    tenant_id: str, name: str, body: SecretPut, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return tenant_secrets.put_secret(keel, actor, tenant_id, name, body.value)


@router.get("/{tenant_id}/secrets")
def list_secrets(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return {"items": tenant_secrets.list_secrets(keel, actor, tenant_id), "next_cursor": None}


@router.post("/{tenant_id}/compliance-review")
def review_compliance(
    tenant_id: str, body: ComplianceReview, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return reviews.review_compliance(keel, actor, tenant_id, approve=body.approve, findings=body.findings)


@router.post("/{tenant_id}/decommission-audit")
def audit_decommissioning(tenant_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return reviews.audit_decommissioning(keel, actor, tenant_id)
