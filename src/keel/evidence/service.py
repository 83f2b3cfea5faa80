"""Evidence commands for the API and CLI: tree heads, proofs, entries, export and verification."""

from __future__ import annotations

from keel.authz.engine import Resource
from keel.evidence.offline import VerifyReport
from keel.identity.actor import Actor
from keel.kernel.errors import Blocked


def _scope(actor: Actor) -> Resource:
    # Tenant users read their own tenant's evidence; provider roles read the platform ledger.
    return Resource("evidence", "ledger", tenant=actor.tenant_id or "")


def public_key(keel) -> dict:
    pem = keel.public_key_pem()
    if pem is None:
        raise Blocked("the platform is not deployed yet: no evidence signing key exists")
    from keel.evidence.signing import key_id, load_public_key

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
        if actor.tenant_id is not None:
            entry = keel.ledger.entry(uow.conn, seq)
            if entry["event"].get("tenant_id") != actor.tenant_id:
                keel.authorize(
                    uow,
                    actor,
                    "evidence:Read",
                    Resource("evidence", "entry", tenant=entry["event"].get("tenant_id") or ""),
                )
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
        entry = keel.ledger.entry(uow.conn, seq)
        if actor.tenant_id is not None and entry["event"].get("tenant_id") != actor.tenant_id:
            keel.authorize(
                uow,
                actor,
                "evidence:Read",
                Resource("evidence", "entry", tenant=entry["event"].get("tenant_id") or ""),
            )
        return entry


def export(keel, actor: Actor) -> dict:
    """The whole ledger for offline verification (Compliance Officer)."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Export", Resource("evidence", "ledger", tenant=""))
        doc = keel.ledger.export(uow.conn, public_pem=keel.public_key_pem(uow.conn))
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
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Verify", Resource("evidence", "ledger", tenant=""))
        pem = keel.public_key_pem(uow.conn)
        if pem is None:
            raise Blocked("the platform is not deployed yet: no evidence signing key exists")
        return keel.ledger.verify(uow.conn, pem)
