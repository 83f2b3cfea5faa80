"""Story 05 (core): the evidence ledger: tree heads, proofs, entries, export, verification."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Path, Query

from keel.api.deps import Page, current_actor, get_keel
from keel.evidence import completeness, service

# Sequence numbers and sizes fit a signed 64-bit column; larger ones are refused as bad input.
MAX_SEQ = 2**62

router = APIRouter(prefix="/evidence", tags=["evidence"])


@router.get("/public-key")
def public_key(keel=Depends(get_keel)):
    """The platform's Ed25519 public key; published without authentication so anyone can verify."""
    return service.public_key(keel)


@router.get("/tree-head")
def tree_head(
    tree_size: int | None = Query(None, ge=1, le=MAX_SEQ),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return service.tree_head(keel, actor, tree_size)


@router.get("/entries")
def entries(
    event_type: str | None = Query(None, max_length=80),
    after_seq: int = Query(-1, ge=-1, le=MAX_SEQ),
    limit: int = Query(100, ge=1, le=1000),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_entries(keel, actor, event_type=event_type, after_seq=after_seq, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_after_seq": items[-1]["seq"] if more else None}


@router.get("/entries/{seq}")
def entry(seq: int = Path(..., ge=0, le=MAX_SEQ), actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.get_entry(keel, actor, seq)


@router.get("/proofs/inclusion")
def inclusion(
    seq: int = Query(..., ge=0, le=MAX_SEQ),
    tree_size: int | None = Query(None, ge=1, le=MAX_SEQ),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return service.inclusion_proof(keel, actor, seq, tree_size)


@router.get("/proofs/consistency")
def consistency(
    size1: int = Query(..., ge=1, le=MAX_SEQ),
    size2: int | None = Query(None, ge=1, le=MAX_SEQ),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return service.consistency_proof(keel, actor, size1, size2)


@router.get("/export")
def export(actor=Depends(current_actor), keel=Depends(get_keel)):
    return service.export(keel, actor)


@router.get("/verify")
def verify(actor=Depends(current_actor), keel=Depends(get_keel)):
    return asdict(service.verify(keel, actor))


@router.get("/receipts")
def list_receipts(
    kind: str | None = Query(None, max_length=40),
    subject_id: str | None = Query(None, max_length=40),
    page: Page = Depends(),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_receipts(
        keel, actor, kind=kind, subject_id=subject_id, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "receipt_id")


@router.post("/completeness-checks")
def completeness_check(
    tenant_id: str | None = Query(None, max_length=40, description="One tenant (providers); default all."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """Check that every pipeline run of the last day has its evidence in the ledger; each run
    without opens an ``evidence_gap`` incident (once). Answers the rate and the gaps per tenant."""
    return completeness.check_now(keel, actor, tenant_id=tenant_id)
