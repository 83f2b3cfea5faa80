"""Which failures of a sync are worth retrying: the one place that decides.

Transient: the source or the network was briefly away. The built-in connectors
say so with ``ConnectorError`` reasons ``unreachable`` (connection refused,
reset or dropped, the server ended the session, a timeout, HTTP 5xx) and
``rate_limited`` (HTTP 429 after the connector's own retries). A third-party
connector may let the raw error through instead: ``ConnectionError``,
``TimeoutError`` (``socket.timeout``), a connection-level ``OSError``, httpx
transport errors, or a SQLAlchemy driver error the SQL connector would call
``unreachable``. A Raw layer held by another process (``RawBusy``) passes too.

Everything else fails at once: bad configuration or credentials, a malformed
source, a value of the wrong type, a bug.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import httpx
import sqlalchemy as sa

from keel.connectors.errors import ConnectorError
from keel.connectors.sql import describe
from keel.ingestion.raw import RawBusy
from keel.kernel.errors import InvalidInput, KeelError, NotFound

TRANSIENT_REASONS = frozenset({"unreachable", "rate_limited", "timeout"})
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EPIPE,
    }
)


@dataclass(frozen=True)
class Failure:
    """``kind``: machine-readable (a ``ConnectorError`` reason, ``config``, ``busy``, ``crash``)."""

    kind: str
    message: str
    transient: bool


def classify(exc: BaseException) -> Failure:
    """What went wrong, in one line, and whether trying again may help."""
    if isinstance(exc, ConnectorError):
        reason = str(exc.fields.get("reason") or "source")
        return Failure(reason, exc.detail, reason in TRANSIENT_REASONS)
    if isinstance(exc, RawBusy):
        return Failure("busy", exc.detail, True)
    if isinstance(exc, InvalidInput | NotFound):
        return Failure("config", exc.detail, False)
    if isinstance(exc, KeelError):
        return Failure(exc.code, exc.detail, False)
    if isinstance(exc, sa.exc.DBAPIError):
        failure, message = describe(exc)
        return Failure(failure or "source", message, failure == "unreachable")
    if isinstance(exc, httpx.TimeoutException):
        return Failure("timeout", _line(exc), True)
    if isinstance(exc, httpx.TransportError):
        return Failure("unreachable", _line(exc), True)
    if isinstance(exc, TimeoutError):
        return Failure("timeout", _line(exc), True)
    if isinstance(exc, ConnectionError) or (isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS):
        return Failure("unreachable", _line(exc), True)
    return Failure("crash", _line(exc), False)


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
