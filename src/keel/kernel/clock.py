"""The one clock. Tests move time by replacing ``now`` through ``set_clock``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def utcnow() -> datetime:
    return _now()


def set_clock(now: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the wall clock)."""
    global _now
    _now = now or (lambda: datetime.now(UTC))


def as_utc(value: datetime) -> datetime:
    """Stores may hand back naive datetimes (SQLite); they are UTC by construction."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
