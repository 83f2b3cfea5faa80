"""Proof documents: Merkle proofs as transparency-log JSON, built and checked.

An inclusion document::

    {"leafIdx": 3, "treeSize": 8, "root": "<b64>", "leafHash": "<b64>", "proof": ["<b64>", ...]}

A consistency document::

    {"size1": 3, "size2": 8, "root1": "<b64>", "root2": "<b64>", "proof": ["<b64>", ...]}

Hashes are the canonical standard base64 (with padding) of 32 bytes; sizes
and indices are non-negative JSON integers. Proof lists run leaf-side first,
as in RFC 6962. ``check_proof_document`` takes untrusted bytes and never
raises: any defect comes back as ``ok=False`` with a reason naming the key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel.evidence.merkle import verify_consistency, verify_inclusion

INCLUSION_KEYS = ("leafIdx", "treeSize", "root", "leafHash", "proof")
CONSISTENCY_KEYS = ("size1", "size2", "root1", "root2", "proof")
# A proof for any tree below 2**64 leaves has fewer elements than this.
MAX_PROOF_LENGTH = 130
_MAX_SIZE = 2**64 - 1


@dataclass(frozen=True)
class ProofCheck:
    """Outcome of checking a proof document. ``kind`` is "inclusion", "consistency" or None."""

    ok: bool
    kind: str | None
    reason: str


class _Bad(Exception):
    """A defect in the document; the message is the reason reported."""


def encode_hash(digest: bytes) -> str:
    """Standard base64 of a hash, as used in proof documents."""
    return base64.b64encode(digest).decode("ascii")


def decode_hash(value: object, where: str) -> bytes:
    """Strictly decode a canonical base64 32-byte hash; ``ValueError`` naming ``where`` if not."""
    if not isinstance(value, str):
        raise ValueError(f"'{where}' must be a base64 string, got {_json_type(value)}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"'{where}' is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"'{where}' must encode 32 bytes, got {len(raw)}")
    if base64.b64encode(raw).decode("ascii") != value:
        raise ValueError(f"'{where}' is not canonical base64")
    return raw


def inclusion_document(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> dict[str, Any]:
    """The inclusion proof document for one leaf."""
    return {
        "leafIdx": leaf_index,
        "treeSize": tree_size,
        "root": encode_hash(root),
        "leafHash": encode_hash(leaf_hash),
        "proof": [encode_hash(p) for p in proof],
    }


def consistency_document(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> dict[str, Any]:
    """The consistency proof document between two tree sizes."""
    return {
        "size1": size1,
        "size2": size2,
        "root1": encode_hash(root1),
        "root2": encode_hash(root2),
        "proof": [encode_hash(p) for p in proof],
    }


def check_proof_document(raw: bytes | str) -> ProofCheck:
    """Parse and verify an inclusion or consistency proof document; never raises."""
    kind: str | None = None
    try:
        doc = _parse(raw)
        if "leafIdx" in doc:
            kind = "inclusion"
            _check_keys(doc, INCLUSION_KEYS)
            index, size = _size(doc, "leafIdx"), _size(doc, "treeSize")
            root, leaf, proof = _hash(doc, "root"), _hash(doc, "leafHash"), _proof(doc)
            if index >= size:
                raise _Bad(f"'leafIdx' {index} is not below 'treeSize' {size}")
            if not verify_inclusion(index, size, leaf, proof, root):
                raise _Bad(f"inclusion proof does not verify for leaf {index} in tree size {size}")
            return ProofCheck(True, kind, f"leaf {index} is included in the tree of size {size}")
        if "size1" in doc:
            kind = "consistency"
            _check_keys(doc, CONSISTENCY_KEYS)
            size1, size2 = _size(doc, "size1"), _size(doc, "size2")
            root1, root2, proof = _hash(doc, "root1"), _hash(doc, "root2"), _proof(doc)
            if size1 > size2:
                raise _Bad(f"'size1' {size1} is larger than 'size2' {size2}")
            if not verify_consistency(size1, size2, root1, root2, proof):
                raise _Bad(f"consistency proof does not verify from size {size1} to size {size2}")
            return ProofCheck(True, kind, f"the tree of size {size1} is a prefix of the tree of size {size2}")
        raise _Bad("not a proof document: needs 'leafIdx' (inclusion) or 'size1' (consistency)")
    except _Bad as exc:
        return ProofCheck(False, kind, str(exc))
    except Exception as exc:  # untrusted input must never escape as an exception
        return ProofCheck(False, kind, f"unreadable proof document: {type(exc).__name__}")


def _parse(raw: bytes | str) -> dict[str, Any]:
    if not isinstance(raw, (bytes, bytearray, str)):
        raise _Bad(f"document must be bytes or text, got {type(raw).__name__}")
    try:
        doc = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Bad:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Bad(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Bad(f"document must be a JSON object, got {_json_type(doc)}")
    return doc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Bad(f"duplicate key '{key}'")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise _Bad(f"not valid JSON: {name} is not a number")


def _check_keys(doc: dict[str, Any], expected: tuple[str, ...]) -> None:
    for key in expected:
        if key not in doc:
            raise _Bad(f"missing key '{key}'")
    for key in doc:
        if key not in expected:
            raise _Bad(f"unknown key '{key}'")


def _size(doc: dict[str, Any], key: str) -> int:
    value = doc[key]
    if type(value) is not int:
        raise _Bad(f"'{key}' must be a JSON integer, got {_json_type(value)}")
    if not 0 <= value <= _MAX_SIZE:
        raise _Bad(f"'{key}' must be between 0 and 2**64-1, got {value}")
    return value


def _hash(doc: dict[str, Any], key: str) -> bytes:
    try:
        return decode_hash(doc[key], key)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _proof(doc: dict[str, Any]) -> list[bytes]:
    items = doc["proof"]
    if not isinstance(items, list):
        raise _Bad(f"'proof' must be a list, got {_json_type(items)}")
    if len(items) > MAX_PROOF_LENGTH:
        raise _Bad(f"'proof' has {len(items)} elements, more than any valid proof ({MAX_PROOF_LENGTH})")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(decode_hash(item, f"proof[{i}]"))
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
