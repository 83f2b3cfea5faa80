"""The one wiring place: builds the store, ledger, key ring, data planes, authorizer, notifier."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from keel.connectors.registry import ConnectorRegistry
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.evidence.ledger import SIGNING_PURPOSE, Ledger
from keel.identity.actor import Actor
from keel.kernel.errors import PermissionDenied
from keel.kernel.settings import Settings, load_settings
from keel.notify import Notifier, build_notifier
from keel.observability import metrics
from keel.rbac.authorizer import Authorizer
from keel.secrets.envelope import load_or_create_master_key
from keel.secrets.keyring import KeyRing
from keel.store.engine import create_store_engine, migrate
from keel.store.uow import UnitOfWork

log = logging.getLogger("keel")


@dataclass
class Keel:
    """Everything a service function needs, built once per process (or per test)."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    keyring: KeyRing
    dataplanes: TenantDataPlanes
    authorizer: Authorizer = field(default_factory=Authorizer)
    connector_registry: ConnectorRegistry = field(default_factory=ConnectorRegistry)
    # E-mail and webhook channels from settings (``build``); without channels every recipient is
    # recorded as skipped. Tests put a notifier pointed at their own servers here.
    notifier: Notifier = field(default_factory=lambda: Notifier(()))
    # How ingestion waits between retries; tests pass a recorder instead of waiting.
    sleep: Callable[[float], None] = time.sleep

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        """One command's transaction. A permission denial is evidenced in its own transaction."""
        try:
            with UnitOfWork(self.engine, self.ledger) as uow:
                yield uow
        except PermissionDenied as denied:
            self._record_denial(denied)
            raise

    def authorize(self, uow: UnitOfWork, actor: Actor, action: str, resource, **context) -> None:
        self.authorizer.enforce(uow, actor, action, resource, **context)

    def _record_denial(self, denied: PermissionDenied) -> None:
        actor: Actor | None = getattr(denied, "actor", None)
        with UnitOfWork(self.engine, self.ledger) as uow:
            uow.record(
                "authz.denied",
                actor_id=actor.user_id if actor else None,
                tenant_id=actor.tenant_id if actor else None,
                action=denied.fields.get("action"),
                reason=denied.fields.get("reason"),
                rule=denied.fields.get("rule"),
                resource_type=getattr(denied, "resource_type", None),
            )
            metrics.record(uow.conn, "permission_violation_count", 1, actor.tenant_id if actor else None)
            uow.commit()

    def public_key_pem(self, conn=None) -> str | None:
        if conn is None:
            with self.engine.connect() as own:
                return self.public_key_pem(own)
        key = self.keyring.platform_key(conn, SIGNING_PURPOSE)
        return key[2] if key else None

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None) -> Keel:
    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    notifier = build_notifier(settings)  # a misconfigured channel stops the start, naming the setting
    # The master key first: a bad key must stop the start before the store is touched.
    keyring = KeyRing(load_or_create_master_key(settings.master_key, settings.home / "master.key"))
    engine = create_store_engine(settings.effective_database_url, settings.database_schema)
    try:
        migrate(engine)
        with engine.connect() as conn:
            keyring.check_master_key(conn)
    except BaseException:
        engine.dispose()
        raise
    ledger = Ledger(lambda conn: keyring.platform_key(conn, SIGNING_PURPOSE))
    return Keel(
        settings=settings,
        engine=engine,
        ledger=ledger,
        keyring=keyring,
        dataplanes=TenantDataPlanes(settings.home / "tenants"),
        notifier=notifier,
    )
