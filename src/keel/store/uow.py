"""Unit of work: one transaction per command, collecting the audit events it records.

``commit`` appends the collected events to the evidence ledger inside the same
transaction, then commits: the state change and its evidence land together or
not at all. Leaving the block without ``commit`` rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, Engine

from keel.evidence.ledger import Ledger, PendingEvent
from keel.store.engine import WRITE_FLAG


class UnitOfWork:
    def __init__(self, engine: Engine, ledger: Ledger) -> None:
        self._engine = engine
        self._ledger = ledger
        self._events: list[PendingEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        self._on_rollback: list[Callable[[], None]] = []
        self.conn: Connection
        self.committed = False

    def __enter__(self) -> UnitOfWork:
        self.conn = self._engine.connect()
        self.conn.info[WRITE_FLAG] = True
        self._tx = self.conn.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.committed:
                self._tx.rollback()
                for hook in self._on_rollback:
                    hook()
        finally:
            self.conn.info.pop(WRITE_FLAG, None)
            self.conn.close()

    def record(self, event_type: str, *, actor_id: str | None, tenant_id: str | None, **payload: Any) -> None:
        """Queue an audit event; it is written to the ledger at commit."""
        self._events.append(PendingEvent(event_type, actor_id, tenant_id, payload))

    @property
    def events(self) -> list[PendingEvent]:
        return list(self._events)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the transaction has committed (e.g. metrics, notifications)."""
        self._after_commit.append(hook)

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the transaction rolls back (e.g. remove files made outside the store)."""
        self._on_rollback.append(hook)

    def commit(self) -> None:
        appended = False
        try:
            if self._events:
                self._ledger.append(self.conn, self._events)
                appended = True
            self._tx.commit()
        except BaseException:
            if appended:
                self._ledger.settle(committed=False)
            raise
        if appended:
            self._ledger.settle(committed=True)
        self.committed = True
        self._events.clear()
        for hook in self._after_commit:
            hook()
