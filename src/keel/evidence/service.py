"""Evidence commands for the API and CLI: tree heads, proofs, entries, export and verification.

Provider roles read the whole platform ledger. A tenant user reads only the entries
of its own tenant: any other entry (another tenant's, the platform's, or one that
does not exist) is refused with the same cross-tenant denial, so a refusal never
tells whether the entry exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.evidence import receipts
from keel.evidence.offline import VerifyReport
from keel.identity.actor import Actor
from keel.kernel.errors import Blocked

# The scope of an entry a tenant user may not see that belongs to no tenant (a platform
# entry, or none at all): no tenant has this id, so the cross-tenant guard refuses it.
OUTSIDE_TENANT = "outside-your-tenant"


def _scope(actor: Actor) -> Resource:
    # Tenant users read their own tenant's evidence; provider roles read the platform ledger.
    return Resource("evidence", "ledger", tenant=actor.tenant_id or "")


def _authorize_entry(keel, uow, actor: Actor, seq: int) -> None:
    """A tenant user may see entry ``seq`` only when it is one of its tenant's."""
    if actor.tenant_id is None:
        return
    exists, tenant = keel.ledger.entry_tenant(uow.conn, seq)
    if not exists or tenant != actor.tenant_id:
        keel.authorize(
            uow, actor, "evidence:Read", Resource("evidence", "entry", tenant=tenant or OUTSIDE_TENANT)
        )


@contextmanager
def _snapshot(keel) -> Iterator[Connection]:
    """A read-only connection seeing one snapshot of the store, outside any write lock."""
    with keel.engine.connect() as conn:
        if conn.dialect.name != "sqlite":  # a SQLite read transaction is a snapshot already
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _public_key_pem(keel, conn) -> str:
    pem = keel.public_key_pem(conn)
    if pem is None:
        raise Blocked("the platform is not deployed yet: no evidence signing key exists")
    return pem


def public_key(keel) -> dict:
    from keel.evidence.signing import key_id, load_public_key

    with keel.engine.connect() as conn:
        pem = _public_key_pem(keel, conn)
    return {"key_id": key_id(load_public_key(pem)), "algorithm": "Ed25519", "public_key_pem": pem}


def tree_head(keel, actor: Actor, tree_size: int | None = None) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Read", _scope(actor))
        if tree_size is None:
            head = keel.ledger.latest_tree_head(uow.conn)
            if head is None:
                raise Blocked("no signed tree head exists yet")
            return head
        return keel.ledger.tree_head(uow.conn, tree_size)


def inclusion_proof(keel, actor: Actor, seq: int, tree_size: int | None = None) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Read", _scope(actor))
        _authorize_entry(keel, uow, actor, seq)
        return keel.ledger.inclusion_proof(uow.conn, seq, tree_size)


def consistency_proof(keel, actor: Actor, size1: int, size2: int | None = None) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Read", _scope(actor))
        return keel.ledger.consistency_proof(uow.conn, size1, size2)


def list_entries(keel, actor: Actor, *, event_type: str | None, after_seq: int, limit: int) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Read", _scope(actor))
        return keel.ledger.entries(
            uow.conn,
            tenant_id=actor.tenant_id,
            tenant_only=actor.tenant_id is not None,
            event_type=event_type,
            after_seq=after_seq,
            limit=limit,
        )


def get_entry(keel, actor: Actor, seq: int) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Read", _scope(actor))
        _authorize_entry(keel, uow, actor, seq)
        return keel.ledger.entry(uow.conn, seq)


def export(keel, actor: Actor) -> dict:
    """The ledger for offline verification (Compliance Officer); the export itself is evidenced."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Export", Resource("evidence", "ledger", tenant=""))
    with _snapshot(keel) as conn:  # read outside the write lock: writers need not wait for it
        doc = keel.ledger.export(conn, public_pem=_public_key_pem(keel, conn))
    with keel.uow() as uow:
        uow.record(
            "evidence.exported",
            actor_id=actor.user_id,
            tenant_id=None,
            entries=len(doc["entries"]),
            tree_size=doc["tree_heads"][-1]["tree_size"] if doc["tree_heads"] else 0,
        )
        uow.commit()
    return doc


def verify(keel, actor: Actor) -> VerifyReport:
    """Recompute every leaf, root and signature of the stored ledger."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Verify", Resource("evidence", "ledger", tenant=""))
    with _snapshot(keel) as conn:
        return keel.ledger.verify(conn, _public_key_pem(keel, conn))


def list_receipts(
    keel, actor: Actor, *, kind: str | None, subject_id: str | None, after: str | None, limit: int
) -> list[dict]:
    """Receipts for review (CO) and audit (AU); tenant users see their own tenant's only."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Read", _scope(actor))
    with _snapshot(keel) as conn:
        return receipts.page(
            conn,
            tenant_id=actor.tenant_id,
            tenant_only=actor.tenant_id is not None,
            kind=kind,
            subject_id=subject_id,
            after=after,
            limit=limit,
        )
