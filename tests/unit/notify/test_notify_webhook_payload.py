"""What a webhook receiver can rely on: the signature scheme and the JSON fields."""

from __future__ import annotations

from keel.notify import Message, Recipient
from keel.notify.webhook import WebhookChannel, payload, sign


def test_the_signature_is_hex_hmac_sha256_of_the_body() -> None:
    # The published HMAC-SHA256 example value for this key and text.
    body = b"The quick brown fox jumps over the lazy dog"
    assert sign(body, "key") == "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_the_payload_carries_ids_and_text_but_no_addresses() -> None:
    message = Message("Run failed", "Run RUN-1 failed.", "run.failed", facts={"run": "RUN-1"}, id="MSG-1")
    recipient = Recipient(
        "USR-1", "Ann", email="ann@example.com", webhook_url="https://hooks.example.com/t0k3n"
    )
    assert payload(message, recipient) == {
        "message_id": "MSG-1",
        "event": "run.failed",
        "subject": "Run failed",
        "body": "Run RUN-1 failed.",
        "facts": {"run": "RUN-1"},
        "recipient_id": "USR-1",
    }


def test_only_http_and_https_urls_can_be_reached() -> None:
    channel = WebhookChannel()
    urls = [
        None,
        "",
        "ftp://example.com/x",
        "https:///nohost",
        "http://[::1",
        "http://127.0.0.1:9/x",
        "https://h.example/x",
    ]
    assert [channel.can_reach(Recipient("u", "U", webhook_url=url)) for url in urls] == [
        False,
        False,
        False,
        False,
        False,
        True,
        True,
    ]


def test_the_signing_secret_stays_out_of_the_channels_repr() -> None:
    assert "s3cret" not in repr(WebhookChannel(signing_secret="s3cret"))
