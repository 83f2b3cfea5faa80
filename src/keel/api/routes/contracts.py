"""Stories 00c, 03a, 03b, 03c: the contract registry, its templates and each version's lifecycle."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import ContractComplianceReview, ContractDraft, ContractLint, Reason
from keel.contracts import lifecycle, lint, registry

router = APIRouter(tags=["contracts"])
V = "/contracts/{schema_id}/versions/{version}"


@router.get("/contracts")
def list_contracts(
    page: Page = Depends(),
    layer: str | None = Query(None, pattern="^(raw|gdp|kpi)$"),
    status: str | None = Query(None, max_length=20),
    tenant_id: str | None = Query(None, max_length=40),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = registry.list_contracts(
        keel, actor, layer=layer, status=status, tenant_id=tenant_id, after=page.after, limit=page.limit + 1
    )
    for item in items:
        item["key"] = f"{item['schema_id']}@{item['version']}"
    return page.render(items, "key")


@router.post("/contracts", status_code=201)
async def draft(body: ContractDraft, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)):
    return await idempotent(
        request,
        actor,
        lambda: registry.draft(keel, actor, body.document, layer=body.layer, tenant_id=body.tenant_id),
    )


@router.post("/contracts/lint")
def lint_contract(body: ContractLint, actor=Depends(current_actor)):
    """The registry's rules on a document, storing nothing (the same as ``keel contract lint``)."""
    return lint.lint(body.document, based_on=body.based_on, layer=body.layer).as_dict()


@router.post("/contract-templates/load")
def load_templates(actor=Depends(current_actor), keel=Depends(get_keel)):
    return registry.load_templates(keel, actor)


@router.get("/contracts/{schema_id}")
def get_contract(schema_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """The newest published version (or, before any is published, the newest one)."""
    return registry.get(keel, actor, schema_id)


@router.get("/contracts/{schema_id}/versions")
def history(schema_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return {"items": registry.history(keel, actor, schema_id)}


@router.get(V)
def get_version(schema_id: str, version: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return registry.get(keel, actor, schema_id, version)


@router.get(V + "/document")
def export(schema_id: str, version: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return registry.export(keel, actor, schema_id, version)


@router.post(V + "/register")
def register(schema_id: str, version: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return registry.register(keel, actor, schema_id, version)


@router.post(V + "/validate")
def validate(schema_id: str, version: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return lifecycle.validate(keel, actor, schema_id, version)


@router.post(V + "/compliance-review")
def review(
    schema_id: str,
    version: str,
    body: ContractComplianceReview,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return lifecycle.review_compliance(
        keel, actor, schema_id, version, approve=body.approve, findings=body.findings
    )


@router.post(V + "/publish")
def publish(schema_id: str, version: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return lifecycle.publish(keel, actor, schema_id, version)


@router.post(V + "/deprecate")
def deprecate(
    schema_id: str, version: str, body: Reason, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return lifecycle.deprecate(keel, actor, schema_id, version, reason=body.reason)


@router.post(V + "/retire")
def retire(schema_id: str, version: str, body: Reason, actor=Depends(current_actor), keel=Depends(get_keel)):
    return lifecycle.retire(keel, actor, schema_id, version, reason=body.reason)
