"""Tree heads are signed with Ed25519 over a documented canonical payload."""

from __future__ import annotations

import base64

import pytest

from keel.evidence.signing import (
    TreeHead,
    generate_signing_key,
    key_id,
    load_private_key,
    load_public_key,
    private_key_to_pem,
    public_key_pem,
    sign_tree_head,
    verify_tree_head,
)
from keel.kernel.errors import InvalidInput

ROOT = bytes(range(32))


def test_signing_payload_is_canonical_json_of_size_root_and_timestamp():
    head = TreeHead(tree_size=5, root_hash=ROOT, timestamp_ms=1_700_000_000_000)
    b64 = base64.b64encode(ROOT).decode()
    assert head.signing_payload() == (
        f'{{"root_hash":"{b64}","timestamp_ms":1700000000000,"tree_size":5}}'.encode()
    )


def test_a_signed_tree_head_verifies_after_a_pem_round_trip():
    key = generate_signing_key()
    head = TreeHead(3, ROOT, 1)
    signature = sign_tree_head(key, head)
    reloaded = load_private_key(private_key_to_pem(key))
    public = load_public_key(public_key_pem(reloaded))
    assert len(signature) == 64
    assert verify_tree_head(public, head, signature)
    assert verify_tree_head(load_public_key(public_key_pem(key).encode()), head, signature)
    assert key_id(public) == key_id(key) and len(key_id(public)) == 16


def test_a_signature_does_not_verify_with_another_key_or_another_head():
    key, other = generate_signing_key(), generate_signing_key()
    head = TreeHead(3, ROOT, 1)
    signature = sign_tree_head(key, head)
    assert not verify_tree_head(other.public_key(), head, signature)
    assert not verify_tree_head(key.public_key(), TreeHead(4, ROOT, 1), signature)
    assert not verify_tree_head(key.public_key(), TreeHead(3, ROOT, 2), signature)
    assert not verify_tree_head(key.public_key(), TreeHead(3, bytes(32), 1), signature)
    assert not verify_tree_head(key.public_key(), head, signature[:-1])
    assert not verify_tree_head(key.public_key(), head, b"")
    assert not verify_tree_head(key.public_key(), head, "not bytes")  # type: ignore[arg-type]
    assert key_id(key) != key_id(other)


@pytest.mark.parametrize(
    "fields",
    [(-1, ROOT, 0), (True, ROOT, 0), (1, ROOT[:31], 0), (1, ROOT, 2**53), (1, "x" * 32, 0), (1.0, ROOT, 0)],
)
def test_malformed_tree_heads_are_invalid_input(fields):
    with pytest.raises(InvalidInput):
        TreeHead(*fields)


@pytest.mark.parametrize(
    "pem", ["", "not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 42]
)
def test_unreadable_public_keys_are_invalid_input(pem):
    with pytest.raises(InvalidInput):
        load_public_key(pem)


def test_non_ed25519_keys_are_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidInput):
        load_public_key(pem)
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput):
        load_private_key(private_pem)
