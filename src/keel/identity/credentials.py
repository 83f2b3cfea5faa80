"""Password hashing (argon2id) and opaque bearer secrets (stored only as SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from keel.kernel.errors import InvalidInput

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "keel_"


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password or not password.strip():
        raise InvalidInput("password", "must not start or end with white space")


def new_secret_token(kind: str = "") -> str:
    """A random bearer secret; ``kind`` makes leaked tokens recognisable (``keel_tok_...``)."""
    return f"{TOKEN_PREFIX}{kind + '_' if kind else ''}{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(value: str, key: bytes) -> str:
    """A keyed, non-reversible reference to personal data for the append-only ledger.

    HMAC rather than a bare hash: without the key, a list of likely e-mail
    addresses cannot be hashed and matched against the ledger.
    """
    digest = hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()
    return "hmac-sha256:" + digest
