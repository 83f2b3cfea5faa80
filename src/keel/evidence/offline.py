"""Verify an evidence ledger from its entries, its signed tree heads and a public key.

The one implementation behind both ``keel evidence verify`` (entries read from
the store) and offline verification of an export file.

Export format ``keel-evidence-export/1`` (a JSON object)::

    {"format": "keel-evidence-export/1",
     "public_key": "<PEM of the signing key; informational only>",
     "entries": [{"seq": 0, "leaf_hash": "<b64>", "event": {"seq": 0, ...}}, ...],
     "tree_heads": [{"tree_size": 5, "root_hash": "<b64>", "timestamp_ms": 1700000000000,
                     "signature": "<b64>", "key_id": "<16 hex>"}, ...]}

* ``entries`` are in ledger order. Entry ``i`` has ``seq == i`` and its event
  carries the same ``"seq": i``; its leaf data is ``canonical_json(event)``
  (RFC 8785) and ``leaf_hash`` is the RFC 6962 leaf hash of that data.
* ``tree_heads`` are in order of size, and their sizes and timestamps never
  decrease. Each signature is Ed25519 over ``TreeHead.signing_payload()``
  (see ``keel.evidence.signing``); ``key_id`` is optional.
* Hashes and signatures are standard base64 (callers converting rows from the
  store may pass raw ``bytes`` instead).

What is checked, stopping at the first failure:

1. Each entry in order: ``seq`` equals its position (a gap is reported as an
   entry missing, a repeat or step back as out of order), ``event.seq``
   equals its position, and the leaf hash recomputes from the event.
2. Each tree head: it covers no more entries than exist, sizes and
   timestamps do not decrease, the root recomputed over the first
   ``tree_size`` entries equals ``root_hash``, and the signature verifies
   with the supplied key.
3. Coverage: every entry is under the last signed tree head. Entries after
   it are a failure (nothing vouches for them) unless the caller passes
   ``allow_unsigned_tail=True`` (the online check of a live ledger that signs
   heads periodically does).

``first_bad_seq`` is the lowest sequence number that can no longer be
trusted: the entry itself for entry defects; for a tree head defect the
first entry after the last good tree head (the span that head alone vouches
for, None if it adds no entries); ``len(entries)`` when a head covers
entries that are missing; the first uncovered entry for an unsigned tail.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keel.evidence.canonical import canonical_json
from keel.evidence.merkle import MerkleTree, leaf_hash
from keel.evidence.signing import TreeHead, key_id, load_public_key, verify_tree_head
from keel.kernel.errors import InvalidInput

EXPORT_FORMAT = "keel-evidence-export/1"


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of verifying a ledger. ``first_bad_seq`` is None when nothing is wrong
    or the defect is not tied to an entry (for example a malformed document)."""

    ok: bool
    entries_checked: int
    tree_heads_checked: int
    first_bad_seq: int | None
    reason: str


class _Failure(Exception):
    def __init__(self, reason: str, first_bad_seq: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.first_bad_seq = first_bad_seq


def verify_export(
    doc: Any, public_key: Ed25519PublicKey | str | bytes | None = None, *, allow_unsigned_tail: bool = False
) -> VerifyReport:
    """Verify a parsed export document; never raises.

    ``public_key`` should come from the user, not the file: without it the
    key embedded in the export is used, which only shows the file is
    self-consistent (the report's reason says so).
    """
    if not isinstance(doc, Mapping):
        return _malformed("export must be a JSON object")
    if doc.get("format") != EXPORT_FORMAT:
        return _malformed(f"unknown export format {doc.get('format')!r}, expected {EXPORT_FORMAT!r}")
    entries, heads = doc.get("entries"), doc.get("tree_heads")
    if not isinstance(entries, list):
        return _malformed("'entries' must be a list")
    if not isinstance(heads, list):
        return _malformed("'tree_heads' must be a list")
    embedded = public_key is None
    if embedded:
        public_key = doc.get("public_key")
        if not isinstance(public_key, str):
            return _malformed("no public key supplied and none embedded in the export")
    report = verify_entries(entries, heads, public_key, allow_unsigned_tail=allow_unsigned_tail)
    if report.ok and embedded:
        return VerifyReport(
            True,
            report.entries_checked,
            report.tree_heads_checked,
            None,
            report.reason + " (with the key embedded in the export: supply the key to verify independently)",
        )
    return report


def verify_entries(
    entries: Sequence[Mapping[str, Any]],
    tree_heads: Sequence[Mapping[str, Any]],
    public_key: Ed25519PublicKey | str | bytes,
    *,
    allow_unsigned_tail: bool = False,
) -> VerifyReport:
    """Verify ledger entries against signed tree heads; never raises. See the module docstring."""
    checked = heads_checked = 0
    try:
        try:
            key = load_public_key(public_key)
        except InvalidInput as exc:
            raise _Failure(f"unusable public key: {exc.detail}", None) from None
        if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
            raise _Failure("entries must be a list", None)
        if not isinstance(tree_heads, Sequence) or isinstance(tree_heads, (str, bytes)):
            raise _Failure("tree heads must be a list", None)

        tree = MerkleTree()
        seqs_present = _seqs(entries)
        for position, entry in enumerate(entries):
            tree.append(_check_entry(position, entry, seqs_present))
            checked += 1

        count = len(entries)
        kid = key_id(key)
        good_size = 0
        last_timestamp = -1
        for number, raw_head in enumerate(tree_heads):
            head, signature, head_kid = _parse_head(number, raw_head)
            size = head.tree_size
            if size > count:
                raise _Failure(
                    f"tree head covers entries that are missing: signed size {size}, {count} entries present",
                    count,
                )
            # Entries up to the last good head are vouched for already; a bad
            # head puts in doubt only the span it adds (None if it adds none).
            span_start = good_size if size > good_size else None
            if size < good_size or head.timestamp_ms < last_timestamp:
                raise _Failure(
                    f"tree head {number} (size {size}) goes back in size or time from the one before",
                    span_start,
                )
            if tree.root(size) != head.root_hash:
                raise _Failure(f"root mismatch for tree size {size}", span_start)
            if head_kid is not None and head_kid != kid:
                raise _Failure(
                    f"tree head for size {size} names key {head_kid}, verifying with key {kid}", span_start
                )
            if not verify_tree_head(key, head, signature):
                raise _Failure(f"invalid signature on tree head for size {size}", span_start)
            good_size, last_timestamp = size, head.timestamp_ms
            heads_checked += 1

        if good_size < count and not allow_unsigned_tail:
            raise _Failure(
                f"entries {good_size}..{count - 1} are not covered by a signed tree head", good_size
            )
        tail = (
            f"; entries {good_size}..{count - 1} not yet under a signed tree head"
            if good_size < count
            else ""
        )
        return VerifyReport(
            True,
            checked,
            heads_checked,
            None,
            f"{checked} entries and {heads_checked} signed tree heads verify{tail}",
        )
    except _Failure as failure:
        return VerifyReport(False, checked, heads_checked, failure.first_bad_seq, failure.reason)
    except Exception as exc:  # a verifier reports, it does not crash
        return VerifyReport(
            False, checked, heads_checked, None, f"malformed ledger data: {type(exc).__name__}: {exc}"
        )


def _malformed(reason: str) -> VerifyReport:
    return VerifyReport(False, 0, 0, None, reason)


def _seqs(entries: Sequence[Any]) -> set[int]:
    return {e["seq"] for e in entries if isinstance(e, Mapping) and type(e.get("seq")) is int}


def _check_entry(position: int, entry: Any, seqs_present: set[int]) -> bytes:
    """The recomputed leaf hash of a sound entry; ``_Failure`` otherwise."""
    if not isinstance(entry, Mapping):
        raise _Failure(f"entry at position {position} is not an object", position)
    seq = entry.get("seq")
    if type(seq) is not int:
        raise _Failure(f"entry at position {position} has no integer 'seq'", position)
    if seq > position:
        if position in seqs_present:
            raise _Failure(f"entries out of order: position {position} holds seq {seq}", position)
        raise _Failure(f"entry {position} missing (next entry has seq {seq})", position)
    if seq < position:
        raise _Failure(f"entry seq {seq} repeated or out of order at position {position}", max(seq, 0))
    event = entry.get("event")
    if not isinstance(event, Mapping):
        raise _Failure(f"entry {seq} has no event object", seq)
    if type(event.get("seq")) is not int or event.get("seq") != seq:
        raise _Failure(f"entry {seq}: event seq {event.get('seq')!r} does not match its position", seq)
    try:
        recomputed = leaf_hash(canonical_json(dict(event)))
    except InvalidInput as exc:
        raise _Failure(f"entry {seq}: {exc.detail}", seq) from None
    try:
        stored = decode_fixed(entry.get("leaf_hash"), 32)
    except ValueError as exc:
        raise _Failure(f"entry {seq}: leaf_hash {exc}", seq) from None
    if stored != recomputed:
        raise _Failure(f"entry {seq}: leaf hash does not match its event (event altered?)", seq)
    return recomputed


def _parse_head(number: int, raw: Any) -> tuple[TreeHead, bytes, str | None]:
    if not isinstance(raw, Mapping):
        raise _Failure(f"tree head {number} is not an object", None)
    try:
        root = decode_fixed(raw.get("root_hash"), 32)
        signature = decode_fixed(raw.get("signature"), 64)
        head = TreeHead(raw.get("tree_size"), root, raw.get("timestamp_ms"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise _Failure(f"tree head {number} is malformed: {exc}", None) from None
    except InvalidInput as exc:
        raise _Failure(f"tree head {number} is malformed: {exc.detail}", None) from None
    head_kid = raw.get("key_id")
    if head_kid is not None and not isinstance(head_kid, str):
        raise _Failure(f"tree head {number} is malformed: key_id must be a string", None)
    return head, signature, head_kid


def decode_fixed(value: Any, length: int) -> bytes:
    """Raw bytes from canonical standard base64 (or bytes as they are), of a fixed length."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
        if base64.b64encode(raw).decode("ascii") != value:
            raise ValueError("is not canonical base64")
    else:
        raise ValueError(f"must be base64 text, got {type(value).__name__}")
    if len(raw) != length:
        raise ValueError(f"must be {length} bytes, got {len(raw)}")
    return raw
