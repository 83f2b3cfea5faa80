"""Signed tree heads: Ed25519 signatures over (tree size, root hash, timestamp).

What is signed (and what an offline verifier must rebuild byte for byte) is
the RFC 8785 canonical JSON of::

    {"root_hash": "<standard base64 of the 32-byte root>",
     "timestamp_ms": <milliseconds since the Unix epoch, integer>,
     "tree_size": <integer>}

i.e. ``{"root_hash":"...","timestamp_ms":1700000000000,"tree_size":5}`` with
keys sorted and no whitespace. The signature is raw Ed25519 (64 bytes) over
those bytes. Keys travel as PEM (PKCS#8 private, SubjectPublicKeyInfo public);
a key id is the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keel.evidence.canonical import canonical_json
from keel.kernel.errors import InvalidInput

# Tree sizes and timestamps must survive RFC 8785 (IEEE 754 doubles).
_MAX_INT = 2**53 - 1


@dataclass(frozen=True)
class TreeHead:
    """The state of the log at one size: what a signature commits to."""

    tree_size: int
    root_hash: bytes
    timestamp_ms: int

    def __post_init__(self) -> None:
        for name in ("tree_size", "timestamp_ms"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= _MAX_INT:
                raise InvalidInput(name, f"must be an integer between 0 and 2**53-1, got {value!r}")
        if type(self.root_hash) is not bytes or len(self.root_hash) != 32:
            raise InvalidInput("root_hash", "must be 32 bytes")

    def signing_payload(self) -> bytes:
        """The exact bytes that are signed (see the module docstring)."""
        return canonical_json(
            {
                "tree_size": self.tree_size,
                "root_hash": base64.b64encode(self.root_hash).decode("ascii"),
                "timestamp_ms": self.timestamp_ms,
            }
        )


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM (protect the file, not the bytes)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes | str) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM; ``InvalidInput`` if it is not one."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput("signing_key", f"not a readable PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput("signing_key", "must be an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM of a key's public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM (an already loaded key is returned as is)."""
    if isinstance(pem, Ed25519PublicKey):
        return pem
    if not isinstance(pem, (bytes, str)):
        raise InvalidInput("public_key", f"must be PEM text, got {type(pem).__name__}")
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput("public_key", f"not a readable PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public_key", "must be an Ed25519 key")
    return key


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Short stable id of a key: first 16 hex digits of SHA-256(raw public key)."""
    public = public_key.public_key() if isinstance(public_key, Ed25519PrivateKey) else public_key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_tree_head(key: Ed25519PrivateKey, tree_head: TreeHead) -> bytes:
    """The 64-byte Ed25519 signature over ``tree_head.signing_payload()``."""
    return key.sign(tree_head.signing_payload())


def verify_tree_head(public_key: Ed25519PublicKey, tree_head: TreeHead, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``tree_head``; never raises."""
    try:
        public_key.verify(bytes(signature), tree_head.signing_payload())
    except (InvalidSignature, TypeError, ValueError, AttributeError, InvalidInput):
        return False
    return True
