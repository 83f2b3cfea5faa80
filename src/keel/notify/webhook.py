"""The webhook channel: the message POSTed as JSON to the recipient's URL.

With a signing secret the request carries ``X-Keel-Signature:
sha256=<hex HMAC-SHA256 of the exact body bytes>``. Timeouts, connection
errors, 429 and 5xx are retried a bounded number of times; a retried request
may arrive twice, so receivers de-duplicate on ``message_id``. Errors name
only the URL's origin: webhook paths often embed a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from keel.kernel.errors import InvalidInput
from keel.kernel.settings import Settings
from keel.notify.errors import DeliveryFailed
from keel.notify.model import Message, Recipient

SIGNATURE_HEADER = "X-Keel-Signature"


def sign(body: bytes, secret: str) -> str:
    """The ``X-Keel-Signature`` value for ``body``; receivers compute the same and compare."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(message: Message, recipient: Recipient) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "event": message.event,
        "subject": message.subject,
        "body": message.body,
        "facts": dict(message.facts),
        "recipient_id": recipient.id,
    }


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs each message to the recipient's webhook URL."""

    signing_secret: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    max_attempts: int = 2
    backoff_seconds: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    name = "webhook"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInput("max_attempts", "must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookChannel:
        return cls(signing_secret=settings.webhook_signing_secret, timeout=settings.webhook_timeout_seconds)

    def can_reach(self, recipient: Recipient) -> bool:
        try:
            parts = urlsplit(recipient.webhook_url or "")
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and bool(parts.hostname)

    def send(self, message: Message, recipient: Recipient) -> int:
        url = recipient.webhook_url or ""
        body = json.dumps(payload(message, recipient), sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Keel-Event": message.event}
        if self.signing_secret:
            headers[SIGNATURE_HEADER] = sign(body, self.signing_secret)
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            for attempt in range(1, self.max_attempts + 1):
                if attempt > 1:
                    self.sleep(self.backoff_seconds * 2 ** (attempt - 2))
                failure = _post(client, url, body, headers)
                if failure is None:
                    return attempt
                if not failure.retryable:
                    break
        raise DeliveryFailed(
            self.name, failure.reason, f"webhook {_origin(url)}: {failure.why}", attempts=attempt
        )


@dataclass(frozen=True)
class _Failure:
    reason: str
    why: str
    retryable: bool


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> _Failure | None:
    """One POST: ``None`` on a 2xx."""
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return _Failure("timeout", "no answer in time", retryable=True)
    except httpx.TransportError as exc:
        return _Failure("unreachable", f"{type(exc).__name__}: {_scrub(str(exc), url)}", retryable=True)
    except httpx.InvalidURL:
        return _Failure("config", "invalid URL", retryable=False)
    if response.is_success:
        return None
    status = response.status_code
    # 429 and 5xx may pass; any other answer is the receiver refusing this request.
    return _Failure(
        "http_status", f"{status} {response.reason_phrase}".strip(), status == 429 or status >= 500
    )


def _scrub(text: str, url: str) -> str:
    return text.replace(url, _origin(url)) if url else text


def _origin(url: str) -> str:
    """Scheme, host and port only: no path, query or user-info, which may hold credentials."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{parts.hostname}{port}"
