"""Story 03g: impact analysis, contract consumers, notices with their deliveries, sign-offs, incidents.

A subject (the change a notice is about) travels in the body or the query, not the path: it
may be a change request, a rollout or ``CONTRACT@VERSION``, and is not an object of its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import ConsumerRegister, ImpactAnalysis, NoticeSend, PostChangeIncident, SignOff
from keel.contracts import consumers, notices

router = APIRouter(tags=["impact"])
SUBJECT = Query(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


@router.post("/contracts/{schema_id}/impact")
def analyse(schema_id: str, body: ImpactAnalysis, actor=Depends(current_actor), keel=Depends(get_keel)):
    """The blast radius of a change to the contract (Schema Steward); a gap opens a review ticket."""
    return notices.analyse(keel, actor, body.subject_id or schema_id, schema_id, fields=body.fields)


@router.get("/contract-consumers")
def list_consumers(
    page: Page = Depends(),
    tenant_id: str | None = Query(None, max_length=40),
    schema_id: str | None = Query(None, max_length=128, description="Only consumers of this contract."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = consumers.list_consumers(
        keel, actor, tenant_id=tenant_id, contract_id=schema_id, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "consumer_id")


@router.post("/contract-consumers", status_code=201)
async def register_consumer(
    body: ConsumerRegister, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(
        request, actor, lambda: consumers.register_consumer(keel, actor, **body.model_dump())
    )


@router.post("/notices", status_code=201)
async def notify(body: NoticeSend, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Notify everyone the change reaches (Platform Admin); a retry with the same Idempotency-Key
    answers the first notice instead of sending again."""
    return await idempotent(
        request,
        actor,
        lambda: notices.notify_change(
            keel,
            actor,
            body.subject_id,
            body.schema_id,
            fields=body.fields,
            subject=body.subject,
            body=body.body,
        ),
    )


@router.get("/notices/deliveries")
def list_deliveries(
    page: Page = Depends(), subject_id: str = SUBJECT, actor=Depends(current_actor), keel=Depends(get_keel)
):
    items = notices.list_deliveries(keel, actor, subject_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "delivery_id")


@router.post("/signoffs", status_code=201)
async def sign_off(body: SignOff, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)):
    return await idempotent(
        request, actor, lambda: notices.record_signoff(keel, actor, body.subject_id, body.approve, body.note)
    )


@router.get("/signoffs")
def list_signoffs(
    page: Page = Depends(), subject_id: str = SUBJECT, actor=Depends(current_actor), keel=Depends(get_keel)
):
    items = notices.list_signoffs(keel, actor, subject_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "user_id")


@router.post("/post-change-incidents", status_code=201)
async def post_change_incident(
    body: PostChangeIncident, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """An incident followed a change (SRE, PA): incident, review ticket, recipients informed."""
    return await idempotent(
        request,
        actor,
        lambda: notices.post_change_incident(
            keel,
            actor,
            body.subject_id,
            body.summary,
            contract_id=body.schema_id,
            fields=body.fields,
            severity=body.severity,
        ),
    )
