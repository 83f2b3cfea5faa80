"""The notification channel interface and the registry that finds channels.

Channels are found through the ``keel.notifiers`` entry-point group; the
built-in ``email`` and ``webhook`` register there exactly as a third-party
package would. An entry point names a channel class with a ``name`` and a
``from_settings(settings)`` class method that returns the channel, or
``None`` when the settings leave it off. A plugin that fails to load is
recorded in ``broken`` (and ``get`` raises ``ChannelUnavailable`` for it);
the others still work.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from keel.kernel.errors import InvalidInput
from keel.kernel.plugins import PluginRegistry
from keel.kernel.settings import Settings
from keel.notify.errors import ChannelUnavailable
from keel.notify.model import Message, Recipient

GROUP = "keel.notifiers"


@runtime_checkable
class Channel(Protocol):
    """One way of reaching a recipient."""

    name: str

    def can_reach(self, recipient: Recipient) -> bool:
        """Whether the recipient has an address this channel can use; no I/O."""
        ...

    def send(self, message: Message, recipient: Recipient) -> int | None:
        """Hand the message over, or raise ``DeliveryFailed``.

        May return how many attempts it took (``None``: one).
        """
        ...


class ChannelRegistry(PluginRegistry[type]):
    """Channel classes by name."""

    kind = "notification channel"
    field = "channel"

    def __init__(self, *, group: str | None = GROUP) -> None:
        """Load every channel of the entry-point ``group`` (``None``: start empty)."""
        super().__init__(group, check=_check_class, unavailable=ChannelUnavailable)

    def build(self, settings: Settings) -> list[Channel]:
        """The channels the settings turn on, in registry (name) order.

        A misconfiguration (``InvalidInput``) fails here, at start, naming the
        setting; any other error from a plugin marks only that plugin broken.
        """
        channels: list[Channel] = []
        for name in self.names():
            try:
                channel = self.get(name).from_settings(settings)
            except InvalidInput:
                raise
            except Exception as exc:
                self.mark_broken(name, f"{type(exc).__name__}: {exc}")
                continue
            if channel is not None:
                channels.append(channel)
        return channels


def _check_class(cls: object) -> None:
    if not isinstance(cls, type):
        raise InvalidInput("channel", f"{cls!r} is not a channel class")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidInput("channel.name", f"{cls.__name__} has no name")
    missing = [m for m in ("from_settings", "can_reach", "send") if not callable(getattr(cls, m, None))]
    if missing:
        raise InvalidInput("channel", f"{cls.__name__} lacks {', '.join(missing)}")
