"""Where a KPI receipt's event sits in the signed ledger, and its inclusion proof (06, 07)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from keel.store.tables import ledger_entries


def event_seq(conn, tenant_id: str, event_type: str, receipt_id: str) -> int | None:
    """The sequence number of the newest ``event_type`` event of the tenant naming ``receipt_id``."""
    rows = conn.execute(
        sa.select(ledger_entries.c.seq, ledger_entries.c.event_json)
        .where(ledger_entries.c.event_type == event_type, ledger_entries.c.tenant_id == tenant_id)
        .order_by(ledger_entries.c.seq.desc())
        .limit(50)
    )
    for seq, data in rows:
        if receipt_id in data and json.loads(data).get("payload", {}).get("receipt_id") == receipt_id:
            return seq
    return None


def proof_of(keel, tenant_id: str, event_type: str, receipt_id: str) -> tuple[int | None, dict | None]:
    """``(seq, RFC 9162 inclusion proof)`` of the event naming the receipt; (None, None) if absent."""
    with keel.engine.connect() as conn:
        seq = event_seq(conn, tenant_id, event_type, receipt_id)
        return seq, (keel.ledger.inclusion_proof(conn, seq) if seq is not None else None)
