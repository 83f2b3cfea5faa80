"""Canonical JSON (RFC 8785, JCS): the byte form of an event that the ledger hashes."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from keel.kernel.errors import InvalidInput


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as RFC 8785 canonical JSON bytes.

    Raises ``InvalidInput("event", ...)`` for values JCS cannot represent:
    NaN or infinite floats, integers outside +/-(2**53 - 1), non-string object
    keys, lone surrogates, unsupported types, or nesting too deep to encode.
    """
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise InvalidInput("event", f"cannot be encoded as canonical JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput("event", "cannot be encoded as canonical JSON: nested too deeply") from exc


def sha256_text(text: str) -> str:
    """A reference to free text for the append-only ledger (the text itself stays in the store)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
