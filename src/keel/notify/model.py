"""What is sent, to whom, and what became of each attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from keel.kernel.errors import InvalidInput
from keel.kernel.ids import new_id

Status = Literal["sent", "failed", "skipped"]
Fact = str | int | float | bool | None


@dataclass(frozen=True)
class Message:
    """One notification. ``facts`` carry ids and codes for machines, never secrets or record data."""

    subject: str
    body: str
    event: str
    facts: dict[str, Fact] = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id("MSG"))

    def __post_init__(self) -> None:
        # Scalars only: facts go verbatim into webhook JSON and must stay small and flat.
        for key, value in self.facts.items():
            if not isinstance(key, str) or not isinstance(value, Fact):
                raise InvalidInput("facts", f"'{key}' must map a name to a string, number, bool or null")


@dataclass(frozen=True)
class Recipient:
    """Someone to notify. ``channels`` is their preferred order; empty: the notifier's default."""

    id: str
    name: str
    email: str | None = None
    webhook_url: str | None = None
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """One attempt to reach one recipient over one channel (``channel`` is None when none could)."""

    message_id: str
    recipient_id: str
    channel: str | None
    status: Status
    detail: str
    attempted_at: datetime
    attempts: int
