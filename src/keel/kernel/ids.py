"""Identifiers: a readable prefix, the UTC date and a random part (``TEN-20261127-7KQ2MZ``)."""

from __future__ import annotations

import secrets

from keel.kernel.clock import utcnow

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_id(prefix: str) -> str:
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{prefix}-{utcnow():%Y%m%d}-{random_part}"
