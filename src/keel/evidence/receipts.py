"""Receipts: the artifacts of STORIES.md (``deployment_id=DEP-…, status=SUCCESS, validated_by…``).

A receipt is issued in the unit of work of the step it attests, next to that
step's ledger event, so the two commit together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.kernel.clock import as_utc
from keel.kernel.ids import new_id
from keel.store.tables import receipts


def issue(
    conn: Connection, kind: str, *, subject_id: str, tenant_id: str | None, body: dict, at: datetime
) -> str:
    receipt_id = new_id("RCP")
    conn.execute(
        receipts.insert().values(
            id=receipt_id, kind=kind, tenant_id=tenant_id, subject_id=subject_id, body=body, created_at=at
        )
    )
    return receipt_id


def latest(conn: Connection, kind: str, subject_id: str):
    """The newest receipt of ``kind`` for ``subject_id`` (a row), or None."""
    return conn.execute(
        sa.select(receipts)
        .where(receipts.c.kind == kind, receipts.c.subject_id == subject_id)
        .order_by(receipts.c.created_at.desc(), receipts.c.id.desc())
        .limit(1)
    ).first()


def amend(conn: Connection, receipt_id: str, body: dict) -> None:
    """Complete a receipt with a later step's facts (e.g. the wipe validator)."""
    conn.execute(receipts.update().where(receipts.c.id == receipt_id).values(body=body))


def bodies(conn: Connection, subject_id: str, kind: str | None = None) -> list[dict]:
    query = sa.select(receipts.c.body).where(receipts.c.subject_id == subject_id)
    if kind:
        query = query.where(receipts.c.kind == kind)
    # Receipts of one step share a timestamp; the kind then keeps the order stable.
    return list(conn.execute(query.order_by(receipts.c.created_at, receipts.c.kind)).scalars())


def view(row: Any) -> dict:
    return {
        "receipt_id": row.id,
        "kind": row.kind,
        "subject_id": row.subject_id,
        "tenant_id": row.tenant_id,
        "created_at": as_utc(row.created_at).isoformat(),
        "body": row.body,
    }


def page(
    conn: Connection,
    *,
    tenant_id: str | None,
    tenant_only: bool,
    kind: str | None,
    subject_id: str | None,
    after: str | None,
    limit: int,
) -> list[dict]:
    query = sa.select(receipts).order_by(receipts.c.id).limit(limit)
    if tenant_only:
        query = query.where(receipts.c.tenant_id == tenant_id)
    if kind:
        query = query.where(receipts.c.kind == kind)
    if subject_id:
        query = query.where(receipts.c.subject_id == subject_id)
    if after:
        query = query.where(receipts.c.id > after)
    return [view(r) for r in conn.execute(query)]
