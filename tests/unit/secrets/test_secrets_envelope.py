"""Envelope encryption (pure): AES-256-GCM bound to associated data, master-key loading."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from keel.kernel.errors import IntegrityError, InvalidInput
from keel.secrets import envelope


def test_a_ciphertext_decrypts_with_its_key_and_associated_data():
    key = envelope.new_key()

    blob = envelope.encrypt(key, b"postgres://user:pw@db", "secret:TEN-1:db:1")

    assert envelope.decrypt(key, blob, "secret:TEN-1:db:1") == b"postgres://user:pw@db"
    assert len(key) == 32
    assert b"postgres" not in blob


def test_encrypting_twice_gives_different_ciphertexts():
    key = envelope.new_key()

    first, second = (envelope.encrypt(key, b"same", "aad") for _ in range(2))

    assert first != second
    assert first[: envelope.NONCE_BYTES] != second[: envelope.NONCE_BYTES]


@pytest.mark.parametrize(
    "change",
    ["other key", "other associated data", "flipped bit", "truncated", "empty"],
)
def test_a_ciphertext_that_is_not_exactly_what_was_written_does_not_decrypt(change):
    key = envelope.new_key()
    blob = envelope.encrypt(key, b"value", "secret:TEN-1:db:1")
    use_key, aad = key, "secret:TEN-1:db:1"
    if change == "other key":
        use_key = envelope.new_key()
    elif change == "other associated data":
        aad = "secret:TEN-2:db:1"  # a ciphertext copied to another tenant's row
    elif change == "flipped bit":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif change == "truncated":
        blob = blob[: envelope.NONCE_BYTES + 8]
    else:
        blob = b""

    with pytest.raises(IntegrityError) as caught:
        envelope.decrypt(use_key, blob, aad)

    assert "value" not in str(caught.value)


def test_a_master_key_parses_from_base64_of_32_bytes():
    key = os.urandom(32)

    assert envelope.parse_master_key(base64.b64encode(key).decode()) == key


@pytest.mark.parametrize(
    ("encoded", "says"),
    [
        ("not base64 at all!!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "must decode to 32 bytes, got 5"),
        (base64.b64encode(b"k" * 64).decode(), "must decode to 32 bytes, got 64"),
        ("", "must decode to 32 bytes, got 0"),
    ],
    ids=["not-base64", "too-short", "too-long", "empty"],
)
def test_a_bad_master_key_is_refused_naming_the_setting_without_echoing_it(encoded, says):
    with pytest.raises(InvalidInput) as caught:
        envelope.parse_master_key(encoded)

    assert caught.value.fields["field"] == "KEEL_MASTER_KEY"
    assert says in caught.value.detail
    if encoded:
        assert encoded not in caught.value.detail


def test_the_master_key_file_is_created_once_with_mode_0600(tmp_path):
    key_file = tmp_path / "home" / "master.key"

    first = envelope.load_or_create_master_key(None, key_file)
    again = envelope.load_or_create_master_key(None, key_file)

    assert first == again and len(first) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert base64.b64decode(key_file.read_text()) == first


def test_a_configured_master_key_wins_over_the_key_file(tmp_path):
    key_file = tmp_path / "master.key"
    envelope.load_or_create_master_key(None, key_file)
    configured = os.urandom(32)

    loaded = envelope.load_or_create_master_key(base64.b64encode(configured).decode(), key_file)

    assert loaded == configured


def test_a_corrupt_key_file_is_refused_naming_the_file(tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text("garbage")

    with pytest.raises(InvalidInput) as caught:
        envelope.load_or_create_master_key(None, key_file)

    assert str(key_file) in caught.value.detail


def test_a_key_file_readable_by_others_is_used_with_a_warning(tmp_path, caplog):
    key_file = tmp_path / "master.key"
    key = envelope.load_or_create_master_key(None, key_file)
    key_file.chmod(0o644)

    with caplog.at_level("WARNING", logger="keel.secrets"):
        loaded = envelope.load_or_create_master_key(None, key_file)

    assert loaded == key
    assert [r.getMessage() for r in caplog.records] == [
        f"the master key file {key_file} is readable by others; run: chmod 600 {key_file}"
    ]
