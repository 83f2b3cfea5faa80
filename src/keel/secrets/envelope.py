"""Envelope encryption (pure): AES-256-GCM data keys wrapped by a master key.

Ciphertext layout is ``nonce (12 bytes) || AES-GCM ciphertext+tag``. Every
encryption binds an *associated data* string (tenant id, secret name) so a
ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keel.kernel.errors import IntegrityError, InvalidInput

log = logging.getLogger("keel.secrets")

NONCE_BYTES = 12
KEY_BYTES = 32


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt(key: bytes, plaintext: bytes, aad: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def decrypt(key: bytes, blob: bytes, aad: str) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise IntegrityError("ciphertext is truncated", aad=aad)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
    except InvalidTag:
        raise IntegrityError("ciphertext does not decrypt with this key", aad=aad) from None


def parse_master_key(encoded: str, source: str = "KEEL_MASTER_KEY") -> bytes:
    """The 32-byte key from its base64 text; ``source`` names where it came from in errors.

    The errors never repeat the value: it may be a real key with a typo in it.
    """
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise InvalidInput(source, "is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise InvalidInput(source, f"must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


def load_or_create_master_key(configured: str | None, key_file: Path) -> bytes:
    """The configured key wins; otherwise the key file, created 0600 on first use."""
    if configured:
        return parse_master_key(configured)
    if key_file.exists():
        if key_file.stat().st_mode & 0o077:
            log.warning("the master key file %s is readable by others; run: chmod 600 %s", key_file, key_file)
        return parse_master_key(key_file.read_text().strip(), source=f"master key file {key_file}")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode())
    return key
