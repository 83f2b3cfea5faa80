"""Errors raised by notification channels and the channel registry."""

from __future__ import annotations

from keel.kernel.errors import KeelError


class DeliveryFailed(KeelError):
    """A channel could not hand a message over.

    ``reason`` is machine-readable (``unreachable``, ``timeout``, ``auth``,
    ``rejected``, ``http_status``, ``config``, ``error``); ``detail`` names the
    server and why, never a password, a signing secret or a webhook path
    (which often embeds a token). ``attempts`` counts tries, retries included.
    """

    code = "delivery_failed"
    title = "Delivery failed"

    def __init__(self, channel: str, reason: str, detail: str, *, attempts: int = 1) -> None:
        super().__init__(detail, channel=channel, reason=reason, attempts=attempts)
        self.channel = channel
        self.reason = reason
        self.attempts = attempts


class ChannelUnavailable(KeelError):
    """A notification channel is registered but its plugin could not be loaded."""

    code = "channel_unavailable"
    title = "Notification channel unavailable"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"notification channel '{name}' could not be loaded: {detail}", channel=name)
