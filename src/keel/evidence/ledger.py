"""The evidence ledger over the control-plane store: append, sign tree heads, prove, export, verify.

Events are appended inside the caller's transaction (the unit of work), so a
state change and its evidence commit together or not at all. Every append that
happens once a signing key exists signs a new tree head in the same
transaction; the events recorded before the platform was deployed are covered
by the head ``sign_current_head`` signs when the key is created.

Locking: an append first takes the store's writer lock (the SQLite write lock
that units of work hold from ``BEGIN IMMEDIATE``, or the PostgreSQL row lock on
the single ``ledger_head`` row), then the process lock guarding the in-memory
Merkle tree, always in that order, and holds both until the transaction ends
(``settle``). So writers in one process or many produce one gap-free sequence,
and readers of the cached tree never see leaves of a transaction that may still
roll back. The cache is only an accelerator for proofs and roots; ``verify``
reads every row from the store and never trusts it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Connection

from keel.evidence import merkle
from keel.evidence.canonical import canonical_json
from keel.evidence.offline import EXPORT_FORMAT, VerifyReport, verify_entries
from keel.evidence.proofdoc import consistency_document, inclusion_document
from keel.evidence.signing import TreeHead, load_private_key, load_public_key, sign_tree_head
from keel.kernel.clock import utcnow
from keel.kernel.errors import IntegrityError, InvalidInput, NotFound
from keel.store.tables import ledger_entries, ledger_head, ledger_tree_heads

__all__ = ["EXPORT_FORMAT", "SIGNING_PURPOSE", "Ledger", "PendingEvent", "events_of"]

SIGNING_PURPOSE = "ledger-signing"

# The statements of the write path, built once (every commit runs them).
_HEAD_SIZE = sa.select(ledger_head.c.size).where(ledger_head.c.id == 1)
_HEAD_SIZE_FOR_UPDATE = _HEAD_SIZE.with_for_update()
_SET_HEAD_SIZE = ledger_head.update().where(ledger_head.c.id == 1)
_INSERT_ENTRIES = ledger_entries.insert()
_INSERT_TREE_HEAD = ledger_tree_heads.insert()
_LAST_HEAD_TIMESTAMP = (
    sa.select(ledger_tree_heads.c.timestamp_ms).order_by(ledger_tree_heads.c.tree_size.desc()).limit(1)
)


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
        self._key_cache: dict[str, Ed25519PrivateKey] = {}

    # Writing ----------------------------------------------------------------------------
    def append(self, conn: Connection, events: Sequence[PendingEvent]) -> list[int]:
        """Append ``events`` in ``conn``'s transaction and sign the new tree head.

        On success the process lock stays held: the caller must call ``settle`` once the
        transaction has committed or rolled back. On failure it is released here.
        """
        size = self._lock_head(conn)  # the store's writer lock first, then ours: one lock order
        self._lock.acquire()
        try:
            tree = self._writable_tree(conn, size)
            now = utcnow()
            occurred_at = now.isoformat()
            # The sequence number is unique by construction, so the event id is too (a random
            # id would collide within days at a few thousand events per second).
            id_prefix = f"EVT-{now:%Y%m%d}-"
            rows = []
            for seq, event in enumerate(events, start=size):
                event_id = f"{id_prefix}{seq:08d}"
                data = canonical_json(
                    {
                        "seq": seq,
                        "id": event_id,
                        "type": event.type,
                        "occurred_at": occurred_at,
                        "tenant_id": event.tenant_id,
                        "actor_id": event.actor_id,
                        "payload": event.payload,
                    }
                )
                rows.append(
                    {
                        "seq": seq,
                        "event_id": event_id,
                        "event_type": event.type,
                        "tenant_id": event.tenant_id,
                        "actor_id": event.actor_id,
                        "event_json": data.decode(),
                        "leaf_hash": merkle.leaf_hash(data),
                        "recorded_at": now,
                    }
                )
            if not rows:
                return []  # nothing to write; ``settle`` still releases the lock
            tree.extend(row["leaf_hash"] for row in rows)
            new_size = size + len(rows)
            conn.execute(_INSERT_ENTRIES, rows)
            conn.execute(_SET_HEAD_SIZE, {"size": new_size})
            self._sign_head(conn, tree, new_size, _millis(now))
            return list(range(size, new_size))
        except BaseException:
            self._tree = None  # it may hold leaves of this failed append
            self._lock.release()
            raise

    def settle(self, committed: bool) -> None:
        """End an append: release the process lock; after a rollback the cached tree is
        dropped and rebuilt from the store when next needed."""
        if not committed:
            self._tree = None
        with contextlib.suppress(RuntimeError):  # not held by this thread: nothing to release
            self._lock.release()

    def sign_current_head(self, conn: Connection) -> None:
        """Sign a head over everything appended so far (right after the signing key is created)."""
        size = self._lock_head(conn)
        with self._lock:
            signed = conn.execute(
                sa.select(ledger_tree_heads.c.tree_size).where(ledger_tree_heads.c.tree_size == size)
            ).first()
            if size and signed is None:
                tree = self._writable_tree(conn, size)
                self._sign_head(conn, tree, size, _millis(utcnow()))

    def _lock_head(self, conn: Connection) -> int:
        # SQLite units of work hold the write lock from BEGIN IMMEDIATE already.
        query = _HEAD_SIZE if conn.dialect.name == "sqlite" else _HEAD_SIZE_FOR_UPDATE
        return int(conn.execute(query).scalar_one())

    def _writable_tree(self, conn: Connection, size: int) -> merkle.MerkleTree:
        """The cached tree at exactly ``size`` leaves (the store's head, read under its lock)."""
        if self._tree is not None and len(self._tree) > size:
            self._tree = None  # the store went back (a rollback we were not told of): rebuild
        return self._synced_tree(conn, size)

    def _synced_tree(self, conn: Connection, size: int) -> merkle.MerkleTree:
        """The cached tree with at least ``size`` leaves, extended from the store as needed."""
        if self._tree is None:
            self._tree = merkle.MerkleTree()
        tree = self._tree
        if len(tree) < size:
            rows = conn.execute(
                sa.select(ledger_entries.c.seq, ledger_entries.c.leaf_hash)
                .where(ledger_entries.c.seq >= len(tree), ledger_entries.c.seq < size)
                .order_by(ledger_entries.c.seq)
            )
            append = tree.append
            for seq, hash_ in rows:
                if seq != len(tree):
                    break
                append(bytes(hash_))
            if len(tree) != size:  # an entry is missing from the store: never sign over a wrong tree
                missing = len(tree)
                self._tree = None
                raise IntegrityError(f"ledger entry {missing} is missing from the store", seq=missing)
        return tree

    def _sign_head(self, conn: Connection, tree: merkle.MerkleTree, size: int, timestamp_ms: int) -> None:
        key = self._signing_key(conn)
        if key is None:  # before the platform is deployed there is no signing key yet
            return
        key_id, private_pem, _ = key
        private = self._key_cache.get(key_id)
        if private is None:
            private = self._key_cache.setdefault(key_id, load_private_key(private_pem))
        # Head timestamps never go back, even when the wall clock does (a verifier refuses that).
        last = conn.execute(_LAST_HEAD_TIMESTAMP).scalar()
        head = TreeHead(tree_size=size, root_hash=tree.root(size), timestamp_ms=max(timestamp_ms, last or 0))
        conn.execute(
            _INSERT_TREE_HEAD,
            {
                "tree_size": size,
                "root_hash": head.root_hash,
                "timestamp_ms": head.timestamp_ms,
                "signature": sign_tree_head(private, head),
                "key_id": key_id,
            },
        )

    # Reading ----------------------------------------------------------------------------
    def size(self, conn: Connection) -> int:
        """The number of committed entries, as the store's head counter says."""
        return int(conn.execute(_HEAD_SIZE).scalar_one())

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

    def entry_tenant(self, conn: Connection, seq: int) -> tuple[bool, str | None]:
        """``(exists, tenant_id)`` of entry ``seq``, from its signed event rather than the index column."""
        row = conn.execute(sa.select(ledger_entries.c.event_json).where(ledger_entries.c.seq == seq)).first()
        if row is None:
            return False, None
        return True, json.loads(row.event_json).get("tenant_id")

    def inclusion_proof(self, conn: Connection, seq: int, tree_size: int | None = None) -> dict:
        with self._lock:
            size = self.size(conn)
            tree_size = size if tree_size is None else tree_size
            if not 0 < tree_size <= size:
                raise InvalidInput("tree_size", f"must be between 1 and {size}")
            if not 0 <= seq < tree_size:
                raise InvalidInput("seq", f"must be between 0 and {tree_size - 1}")
            tree = self._synced_tree(conn, size)
            proof = tree.inclusion_proof(seq, tree_size)
            root = tree.root(tree_size)
            leaf = tree.leaf(seq)
        return inclusion_document(seq, tree_size, leaf, proof, root)

    def consistency_proof(self, conn: Connection, size1: int, size2: int | None = None) -> dict:
        with self._lock:
            size = self.size(conn)
            size2 = size if size2 is None else size2
            if not 0 < size2 <= size:
                raise InvalidInput("size2", f"must be between 1 and {size}")
            if not 0 < size1 <= size2:
                raise InvalidInput("size1", f"must be between 1 and {size2}")
            tree = self._synced_tree(conn, size)
            proof = tree.consistency_proof(size1, size2)
            root1, root2 = tree.root(size1), tree.root(size2)
        return consistency_document(size1, size2, root1, root2, proof)

    def iter_entries(self, conn: Connection, below: int | None = None, batch: int = 1000) -> Iterator[dict]:
        """Entries in ledger order (those with ``seq < below`` if given), ``batch`` rows per query."""
        after = -1
        while True:
            query = (
                sa.select(ledger_entries.c.seq, ledger_entries.c.leaf_hash, ledger_entries.c.event_json)
                .where(ledger_entries.c.seq > after)
                .order_by(ledger_entries.c.seq)
                .limit(batch)
            )
            if below is not None:
                query = query.where(ledger_entries.c.seq < below)
            rows = conn.execute(query).all()
            for row in rows:
                yield _entry_dict(row)
            if len(rows) < batch:
                return
            after = rows[-1].seq

    def tree_heads(self, conn: Connection) -> list[dict]:
        rows = conn.execute(sa.select(ledger_tree_heads).order_by(ledger_tree_heads.c.tree_size))
        return [_tree_head_dict(r) for r in rows]

    def export(self, conn: Connection, tenant_id: str | None = None, public_pem: str | None = None) -> dict:
        """The ledger in the offline-verifiable export format, up to its newest signed head.

        Offline verification needs every leaf to recompute roots, so the export holds
        all entries; ``tenant_id`` only marks which entries the export is about. The
        heads are read first and the entries bounded by the newest one, so the document
        is consistent even when appends commit while it is read.
        """
        heads = self.tree_heads(conn)
        doc = {
            "format": EXPORT_FORMAT,
            "public_key": public_pem,
            "entries": list(self.iter_entries(conn, below=heads[-1]["tree_size"] if heads else None)),
            "tree_heads": heads,
        }
        if tenant_id is not None:
            doc["subject_tenant_id"] = tenant_id
        return doc

    def verify(self, conn: Connection, public_pem: str) -> VerifyReport:
        """Recompute every leaf, root and signature from the stored rows (never from the cache).

        Beyond what an offline verifier can check, the store's head counter must match
        the entries present, and each entry's index columns (used to filter by tenant,
        actor and type) must match its signed event. ``conn`` should read one snapshot
        (any SQLite transaction; REPEATABLE READ on PostgreSQL), or appends committing
        meanwhile look like defects.
        """
        rows = conn.execute(sa.select(ledger_entries).order_by(ledger_entries.c.seq)).all()
        entries = [
            {"seq": r.seq, "leaf_hash": bytes(r.leaf_hash), "event": _parse_event(r.event_json)} for r in rows
        ]
        heads = [
            {
                "tree_size": h.tree_size,
                "root_hash": bytes(h.root_hash),
                "timestamp_ms": h.timestamp_ms,
                "signature": bytes(h.signature),
                "key_id": h.key_id,
            }
            for h in conn.execute(sa.select(ledger_tree_heads).order_by(ledger_tree_heads.c.tree_size))
        ]
        key = load_public_key(public_pem)
        report = verify_entries(entries, heads, key)
        if not report.ok and report.entries_checked < len(entries):
            report = _earlier_forgery(report, entries, heads, key)
        return _first_failure(
            report,
            _index_columns_failure(rows, entries),
            _head_counter_failure(self.size(conn), len(entries)),
        )

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


# Verification helpers ---------------------------------------------------------------------
def _earlier_forgery(report: VerifyReport, entries: list[dict], heads: list[dict], key: Any) -> VerifyReport:
    """An entry defect at ``p`` may follow a forgery only the signed heads reveal (an entry
    inserted before ``p`` with a correct leaf hash shifts the others): check the heads that
    cover no more than the first ``p`` entries and report the earlier failure, if any."""
    bad = report.first_bad_seq
    if bad is None or bad <= 0:
        return report
    covered = [h for h in heads if h["tree_size"] <= bad]
    earlier = verify_entries(entries[:bad], covered, key, allow_unsigned_tail=True)
    if not earlier.ok and earlier.first_bad_seq is not None and earlier.first_bad_seq < bad:
        return replace(earlier, entries_checked=report.entries_checked)
    return report


def _index_columns_failure(rows: Sequence[Any], entries: list[dict]) -> VerifyReport | None:
    for row, entry in zip(rows, entries, strict=True):
        event = entry["event"]
        if not isinstance(event, dict):
            return None  # reported by the entry checks already
        columns = (row.event_id, row.event_type, row.tenant_id, row.actor_id)
        signed = (event.get("id"), event.get("type"), event.get("tenant_id"), event.get("actor_id"))
        if columns != signed:
            return VerifyReport(
                False,
                0,
                0,
                row.seq,
                f"entry {row.seq}: its index columns (id, type, tenant, actor) do not match its event",
            )
    return None


def _head_counter_failure(counter: int, present: int) -> VerifyReport | None:
    if counter == present:
        return None
    return VerifyReport(
        False,
        0,
        0,
        min(counter, present),
        f"the ledger head counts {counter} entries but {present} are stored",
    )


def _first_failure(report: VerifyReport, *others: VerifyReport | None) -> VerifyReport:
    """The failure naming the lowest entry (a failure tied to no entry ranks last)."""
    failures = [r for r in (report, *others) if r is not None and not r.ok]
    if not failures:
        return report
    worst = min(failures, key=lambda r: (r.first_bad_seq is None, r.first_bad_seq or 0))
    return replace(
        worst, entries_checked=report.entries_checked, tree_heads_checked=report.tree_heads_checked
    )


def _parse_event(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # reported as an entry without an event object


def _millis(moment) -> int:
    return int(moment.timestamp() * 1000)


def _entry_dict(row: Any) -> dict:
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
