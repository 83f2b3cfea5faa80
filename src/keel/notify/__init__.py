"""Notifications: one notifier over pluggable channels (e-mail, webhook), recorded per recipient."""

from keel.notify.channels import Channel, ChannelRegistry
from keel.notify.errors import ChannelUnavailable, DeliveryFailed
from keel.notify.model import Delivery, Message, Recipient
from keel.notify.notifier import Notifier, build_notifier

__all__ = [
    "Channel",
    "ChannelRegistry",
    "ChannelUnavailable",
    "Delivery",
    "DeliveryFailed",
    "Message",
    "Notifier",
    "Recipient",
    "build_notifier",
]
