"""Delivering a message to each recipient over the first channel that works.

Every attempt is recorded, so a failed first channel and the fallback that
succeeded both show; a recipient no channel can reach gets one ``skipped``
record saying why. A delivery problem is never raised to the caller: the
event that caused the notification has already happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from keel.kernel.clock import utcnow
from keel.kernel.settings import Settings
from keel.notify.channels import Channel, ChannelRegistry
from keel.notify.errors import DeliveryFailed
from keel.notify.model import Delivery, Message, Recipient, Status

log = logging.getLogger(__name__)

BUILT_IN_ORDER = ("email", "webhook")


class Notifier:
    """Sends messages over ``channels``; their order is the default for recipients without a preference."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self._channels = {channel.name: channel for channel in channels}
        self.default_order = tuple(self._channels)

    def deliver(self, message: Message, recipients: Iterable[Recipient]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for recipient in recipients:
            deliveries.extend(self._deliver_one(message, recipient))
        return deliveries

    def _deliver_one(self, message: Message, recipient: Recipient) -> list[Delivery]:
        usable, unusable = self._route(recipient)
        if not usable:
            why = "no channel can reach this recipient: " + ("; ".join(unusable) or "no channels configured")
            return [self._record(message, recipient, None, "skipped", why, attempts=0)]
        deliveries = []
        for channel in usable:
            delivery = self._attempt(message, recipient, channel)
            deliveries.append(delivery)
            if delivery.status == "sent":
                break
        return deliveries

    def _route(self, recipient: Recipient) -> tuple[list[Channel], list[str]]:
        """The channels to try in order, and why each other one in the order was left out."""
        usable, unusable = [], []
        for name in recipient.channels or self.default_order:
            channel = self._channels.get(name)
            if channel is None:
                unusable.append(f"{name} is not configured")
            elif not channel.can_reach(recipient):
                unusable.append(f"{name} has no usable address")
            else:
                usable.append(channel)
        return usable, unusable

    def _attempt(self, message: Message, recipient: Recipient, channel: Channel) -> Delivery:
        started = utcnow()
        try:
            attempts = channel.send(message, recipient) or 1
        except DeliveryFailed as exc:
            return self._record(message, recipient, channel.name, "failed", exc.detail, exc.attempts, started)
        except Exception as exc:  # a faulty plugin must not stop the other recipients or channels
            log.error("notification channel %s raised %s", channel.name, type(exc).__name__, exc_info=True)
            detail = f"channel error: {type(exc).__name__}"
            return self._record(message, recipient, channel.name, "failed", detail, 1, started)
        return self._record(message, recipient, channel.name, "sent", "", attempts, started)

    def _record(
        self,
        message: Message,
        recipient: Recipient,
        channel: str | None,
        status: Status,
        detail: str,
        attempts: int,
        at: datetime | None = None,
    ) -> Delivery:
        level = logging.WARNING if status == "failed" else logging.INFO
        log.log(
            level, "notification %s to %s via %s: %s %s", message.id, recipient.id, channel, status, detail
        )
        return Delivery(
            message_id=message.id,
            recipient_id=recipient.id,
            channel=channel,
            status=status,
            detail=detail,
            attempted_at=at or utcnow(),
            attempts=attempts,
        )


def build_notifier(settings: Settings, registry: ChannelRegistry | None = None) -> Notifier:
    """The notifier the settings describe: e-mail only when ``smtp_host`` is set, webhooks always."""
    channels = (registry or ChannelRegistry()).build(settings)
    rank = {name: i for i, name in enumerate(BUILT_IN_ORDER)}
    channels.sort(key=lambda c: (rank.get(c.name, len(rank)), c.name))
    return Notifier(channels)
