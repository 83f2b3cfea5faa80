"""The connector health monitor `keel serve` runs: every ACTIVE connector checked on an interval.

Story 00b step 4 and 13 step 1 ("monitor (OE)", "alert on failed health check"):
each round calls ``health.check`` as the system for every ACTIVE connector, so a
failing source raises its alert and feeds ``connector_uptime`` even when nobody
is ingesting. A check that cannot run (the tenant went away meanwhile) is logged
and the round goes on.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from keel.identity.actor import SYSTEM
from keel.kernel.errors import KeelError
from keel.kernel.periodic import PeriodicThread
from keel.onboarding import health
from keel.store.tables import connectors

log = logging.getLogger("keel.onboarding")


def check_all(keel) -> list[dict]:
    """One health check of every ACTIVE connector; the results of those that ran."""
    with keel.engine.connect() as conn:
        active = conn.execute(
            sa.select(connectors.c.tenant_id, connectors.c.id)
            .where(connectors.c.status == "ACTIVE")
            .order_by(connectors.c.id)
        ).all()
    results = []
    for tenant_id, connector_id in active:
        try:
            results.append(health.check(keel, SYSTEM, tenant_id, connector_id))
        except KeelError as exc:
            log.warning("health check of connector %s skipped: %s", connector_id, exc.detail)
        except Exception:  # one connector's bug must not stop the round for the others
            log.exception("health check of connector %s failed", connector_id)
    return results


class HealthMonitor(PeriodicThread):
    """Runs ``check_all`` every ``interval`` seconds on a daemon thread until ``stop``."""

    def __init__(self, keel, interval: float) -> None:
        super().__init__(lambda: check_all(keel), interval, "connector-health")
        self.keel = keel
