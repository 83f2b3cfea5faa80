"""Story 05 (step 4): evidence export templates and the packs generated from them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import Body
from keel.evidence import packs

router = APIRouter(tags=["evidence"])
TEMPLATES = "/evidence/export-templates"


class ExportTemplate(Body):
    template_id: str = Field(..., min_length=3, max_length=60, description="e.g. EV-STD-01.")
    sections: list[str] = Field(
        ..., min_length=1, max_length=20, description=f"Any of: {', '.join(sorted(packs.SECTIONS))}."
    )
    retention_years: int = Field(..., ge=1, le=100, description="How long a pack from it is kept.")


class PackRequest(Body):
    template_id: str = Field(..., min_length=3, max_length=60)
    version: int | None = Field(None, ge=1, description="A template version (default: its latest).")


@router.post(TEMPLATES, status_code=201)
async def define_template(
    body: ExportTemplate, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Compliance Officer: a template, or its next version (a template is never edited in place)."""
    return await idempotent(request, actor, lambda: packs.define_template(keel, actor, **body.model_dump()))


@router.get(TEMPLATES)
def list_templates(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    """Every version of every template, by id then version."""
    return page.render(packs.list_templates(keel, actor, after=page.after, limit=page.limit + 1), "key")


@router.post("/tenants/{tenant_id}/evidence-packs", status_code=201)
async def generate_pack(
    tenant_id: str, body: PackRequest, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Compliance Officer: one tenant's pack, written as a file the ledger vouches for (sha256)."""
    return await idempotent(
        request, actor, lambda: packs.generate_pack(keel, actor, tenant_id, body.template_id, body.version)
    )
