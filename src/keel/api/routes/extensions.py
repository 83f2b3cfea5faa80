"""Story 03e: a tenant's extensions of published contracts, and its effective view of a contract."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from keel.api.deps import current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import ExtensionProposal
from keel.contracts import extensions

router = APIRouter(tags=["contracts"])
E = "/tenants/{tenant_id}/extensions"


@router.post(E, status_code=201)
async def propose(
    tenant_id: str,
    body: ExtensionProposal,
    request: Request,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """TA proposes namespaced fields for a published contract, with a business case."""
    fields = [f.model_dump() for f in body.fields]
    return await idempotent(
        request,
        actor,
        lambda: extensions.propose(
            keel,
            actor,
            tenant_id,
            schema_id=body.schema_id,
            version=body.version,
            dataset=body.dataset,
            namespace=body.namespace,
            fields=fields,
            business_case=body.business_case,
        ),
    )


@router.get(E)
def list_extensions(
    tenant_id: str,
    schema_id: str | None = Query(None, max_length=128),
    status: str | None = Query(None, max_length=20),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = extensions.list_extensions(keel, actor, tenant_id, schema_id=schema_id, status=status)
    return {"items": items}


@router.get(E + "/{extension_id}")
def get_extension(tenant_id: str, extension_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return extensions.get(keel, actor, tenant_id, extension_id)


@router.post(E + "/{extension_id}/check")
def check(tenant_id: str, extension_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """SS checks fields, namespace and constraints: approved, rejected or blocked."""
    return extensions.check(keel, actor, tenant_id, extension_id)


@router.post(E + "/{extension_id}/deploy")
def deploy(tenant_id: str, extension_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """PA deploys to the tenant only; a failed build is rolled back (409 extension_rolled_back)."""
    return extensions.deploy(keel, actor, tenant_id, extension_id)


@router.get("/tenants/{tenant_id}/contracts/{schema_id}/effective")
def effective(
    tenant_id: str,
    schema_id: str,
    version: str | None = Query(None, max_length=40, description="Default: the version the tenant runs."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """The contract as the tenant sees it, with its deployed extensions (others see the base only)."""
    return extensions.effective(keel, actor, tenant_id, schema_id, version)
