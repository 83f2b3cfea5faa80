"""The evidence ledger over the control-plane store: append, sign tree heads, prove, export, verify.

Events are appended inside the caller's transaction (the unit of work), so a
state change and its evidence commit together or not at all. Sequence numbers
are assigned under a lock on the single ``ledger_head`` row (and a process
lock guarding the in-memory Merkle tree), so concurrent writers, in one process
or many, produce one gap-free sequence. Every append signs a new tree head.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.evidence import merkle
from keel.evidence.canonical import canonical_json
from keel.evidence.offline import VerifyReport, verify_entries
from keel.evidence.signing import TreeHead, load_private_key, load_public_key, sign_tree_head
from keel.kernel.clock import utcnow
from keel.kernel.errors import InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.store.tables import ledger_entries, ledger_head, ledger_tree_heads

EXPORT_FORMAT = "keel-evidence-export/1"
SIGNING_PURPOSE = "ledger-signing"


@dataclass(frozen=True)
class PendingEvent:
    """An audit event recorded by a service, waiting for its unit of work to commit."""

    type: str
    actor_id: str | None
    tenant_id: str | None
    payload: dict[str, Any]


# ``(key_id, private_pem, public_pem)`` of the active signing key, or None before deploy.
SigningKeySource = Callable[[Connection], "tuple[str, bytes, str] | None"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Ledger:
    def __init__(self, signing_key: SigningKeySource) -> None:
        self._signing_key = signing_key
        self._lock = threading.RLock()
        self._tree: merkle.MerkleTree | None = None
        self._key_cache: dict[str, Any] = {}

    # Writing ----------------------------------------------------------------------------
    def append(self, conn: Connection, events: Sequence[PendingEvent]) -> list[int]:
        """Append ``events`` in ``conn``'s transaction. Call ``settle`` after commit/rollback."""
        self._lock.acquire()
        try:
            size = self._lock_head(conn)
            tree = self._synced_tree(conn, size)
            now = utcnow()
            rows, seqs = [], []
            for offset, event in enumerate(events):
                seq = size + offset
                body = {
                    "seq": seq,
                    "id": new_id("EVT"),
                    "type": event.type,
                    "occurred_at": now.isoformat(),
                    "tenant_id": event.tenant_id,
                    "actor_id": event.actor_id,
                    "payload": event.payload,
                }
                data = canonical_json(body)
                leaf = merkle.leaf_hash(data)
                tree.append(leaf)
                rows.append(
                    {
                        "seq": seq,
                        "event_id": body["id"],
                        "event_type": event.type,
                        "tenant_id": event.tenant_id,
                        "actor_id": event.actor_id,
                        "event_json": data.decode(),
                        "leaf_hash": leaf,
                        "recorded_at": now,
                    }
                )
                seqs.append(seq)
            conn.execute(ledger_entries.insert(), rows)
            new_size = size + len(rows)
            conn.execute(ledger_head.update().where(ledger_head.c.id == 1).values(size=new_size))
            self._sign_head(conn, tree, new_size, int(now.timestamp() * 1000))
            return seqs
        except BaseException:
            self.settle(committed=False)
            raise

    def settle(self, committed: bool) -> None:
        """Release the append lock; after a rollback the cached tree is rebuilt from the store."""
        if not committed:
            self._tree = None
        with contextlib.suppress(RuntimeError):  # not held: append failed before taking it
            self._lock.release()

    def _lock_head(self, conn: Connection) -> int:
        query = sa.select(ledger_head.c.size).where(ledger_head.c.id == 1)
        if conn.dialect.name != "sqlite":  # SQLite transactions are BEGIN IMMEDIATE already
            query = query.with_for_update()
        return int(conn.execute(query).scalar_one())

    def _synced_tree(self, conn: Connection, size: int) -> merkle.MerkleTree:
        if self._tree is None or len(self._tree) > size:
            self._tree = merkle.MerkleTree()
        if len(self._tree) < size:
            hashes = conn.execute(
                sa.select(ledger_entries.c.leaf_hash)
                .where(ledger_entries.c.seq >= len(self._tree), ledger_entries.c.seq < size)
                .order_by(ledger_entries.c.seq)
            ).scalars()
            self._tree.extend(bytes(h) for h in hashes)
        return self._tree

    def _sign_head(self, conn: Connection, tree: merkle.MerkleTree, size: int, timestamp_ms: int) -> None:
        key = self._signing_key(conn)
        if key is None:  # before the platform is deployed there is no signing key yet
            return
        key_id, private_pem, _ = key
        private = self._key_cache.get(key_id) or self._key_cache.setdefault(
            key_id, load_private_key(private_pem)
        )
        head = TreeHead(tree_size=size, root_hash=tree.root(size), timestamp_ms=timestamp_ms)
        conn.execute(
            ledger_tree_heads.insert().values(
                tree_size=size,
                root_hash=head.root_hash,
                timestamp_ms=timestamp_ms,
                signature=sign_tree_head(private, head),
                key_id=key_id,
            )
        )

    def sign_current_head(self, conn: Connection) -> None:
        """Sign a head over everything appended so far (used right after the key is created)."""
        with self._lock:
            size = self._lock_head(conn)
            if (
                size
                and conn.execute(
                    sa.select(ledger_tree_heads.c.tree_size).where(ledger_tree_heads.c.tree_size == size)
                ).first()
                is None
            ):
                tree = self._synced_tree(conn, size)
                self._sign_head(conn, tree, size, int(utcnow().timestamp() * 1000))

    # Reading ----------------------------------------------------------------------------
    def _committed_tree(self, conn: Connection) -> tuple[merkle.MerkleTree, int]:
        with self._lock:
            size = int(conn.execute(sa.select(ledger_head.c.size).where(ledger_head.c.id == 1)).scalar_one())
            return self._synced_tree(conn, size), size

    def latest_tree_head(self, conn: Connection) -> dict | None:
        row = conn.execute(
            sa.select(ledger_tree_heads).order_by(ledger_tree_heads.c.tree_size.desc()).limit(1)
        ).first()
        return _tree_head_dict(row) if row else None

    def tree_head(self, conn: Connection, tree_size: int) -> dict:
        row = conn.execute(
            sa.select(ledger_tree_heads).where(ledger_tree_heads.c.tree_size == tree_size)
        ).first()
        if row is None:
            raise NotFound("signed tree head", str(tree_size))
        return _tree_head_dict(row)

    def entry(self, conn: Connection, seq: int) -> dict:
        row = conn.execute(sa.select(ledger_entries).where(ledger_entries.c.seq == seq)).first()
        if row is None:
            raise NotFound("ledger entry", str(seq))
        return _entry_dict(row)

    def inclusion_proof(self, conn: Connection, seq: int, tree_size: int | None = None) -> dict:
        from keel.evidence.proofdoc import inclusion_document

        tree, size = self._committed_tree(conn)
        tree_size = size if tree_size is None else tree_size
        if not 0 < tree_size <= size:
            raise InvalidInput("tree_size", f"must be between 1 and {size}")
        if not 0 <= seq < tree_size:
            raise InvalidInput("seq", f"must be between 0 and {tree_size - 1}")
        with self._lock:
            proof = tree.inclusion_proof(seq, tree_size)
            root = tree.root(tree_size)
            leaf = tree.leaf(seq)
        return inclusion_document(seq, tree_size, leaf, proof, root)

    def consistency_proof(self, conn: Connection, size1: int, size2: int | None = None) -> dict:
        from keel.evidence.proofdoc import consistency_document

        tree, size = self._committed_tree(conn)
        size2 = size if size2 is None else size2
        if not 0 < size2 <= size:
            raise InvalidInput("size2", f"must be between 1 and {size}")
        if not 0 < size1 <= size2:
            raise InvalidInput("size1", f"must be between 1 and {size2}")
        with self._lock:
            proof = tree.consistency_proof(size1, size2)
            root1, root2 = tree.root(size1), tree.root(size2)
        return consistency_document(size1, size2, root1, root2, proof)

    def export(self, conn: Connection, tenant_id: str | None = None, public_pem: str | None = None) -> dict:
        """The whole ledger in the offline-verifiable export format.

        Offline verification needs every leaf to recompute roots, so the export always
        holds all entries; ``tenant_id`` only marks which entries the export is about.
        """
        entries = [
            _entry_dict(r) for r in conn.execute(sa.select(ledger_entries).order_by(ledger_entries.c.seq))
        ]
        heads = [
            _tree_head_dict(r)
            for r in conn.execute(sa.select(ledger_tree_heads).order_by(ledger_tree_heads.c.tree_size))
        ]
        doc = {"format": EXPORT_FORMAT, "public_key": public_pem, "entries": entries, "tree_heads": heads}
        if tenant_id is not None:
            doc["subject_tenant_id"] = tenant_id
        return doc

    def verify(self, conn: Connection, public_pem: str) -> VerifyReport:
        """Recompute every leaf, root and signature from the stored rows."""
        doc = self.export(conn)
        return verify_entries(doc["entries"], doc["tree_heads"], load_public_key(public_pem))

    def entries(
        self,
        conn: Connection,
        *,
        tenant_id: str | None = None,
        event_type: str | None = None,
        after_seq: int = -1,
        limit: int = 100,
        tenant_only: bool = False,
    ) -> list[dict]:
        query = sa.select(ledger_entries).where(ledger_entries.c.seq > after_seq)
        if tenant_only or tenant_id is not None:
            query = query.where(ledger_entries.c.tenant_id == tenant_id)
        if event_type:
            query = query.where(ledger_entries.c.event_type == event_type)
        rows = conn.execute(query.order_by(ledger_entries.c.seq).limit(limit))
        return [_entry_dict(r) for r in rows]


def _entry_dict(row: Any) -> dict:
    import json

    return {"seq": row.seq, "leaf_hash": b64(bytes(row.leaf_hash)), "event": json.loads(row.event_json)}


def _tree_head_dict(row: Any) -> dict:
    return {
        "tree_size": row.tree_size,
        "root_hash": b64(bytes(row.root_hash)),
        "timestamp_ms": row.timestamp_ms,
        "signature": b64(bytes(row.signature)),
        "key_id": row.key_id,
    }


def events_of(entries: Iterable[dict]) -> list[dict]:
    return [e["event"] for e in entries]
