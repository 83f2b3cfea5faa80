"""The scheduled pipeline refresh: every ACTIVE tenant's built GDP contracts, incrementally.

Registered with the scheduler (``keel.scheduling``) as ``pipeline.refresh``, hourly by default
(``keel scheduler set pipeline.refresh --every …`` changes it). Each run acts for the platform
(``SYSTEM``) and is **non-essential**: while a spend cap blocks non-essential actions the tenant's
refresh is refused, evidenced (``cost.guardrail.enforced``) and skipped, and the others go on. A
tenant whose refresh fails is logged and skipped too; the job reports what it did for each.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from keel.contracts.builds import build_tenant
from keel.guardrails.errors import GuardrailBreached
from keel.identity.actor import SYSTEM
from keel.kernel.errors import KeelError
from keel.scheduling import registry
from keel.store.tables import pipeline_runs, tenants

log = logging.getLogger(__name__)
JOB = "pipeline.refresh"


def refresh_all(keel, now: datetime) -> dict:
    """Refresh each ACTIVE tenant's GDP contracts it has built before; what happened to each."""
    with keel.engine.connect() as conn:
        active = {r.id for r in conn.execute(sa.select(tenants.c.id).where(tenants.c.status == "ACTIVE"))}
        built = conn.execute(
            sa.select(pipeline_runs.c.tenant_id, pipeline_runs.c.contract)
            .where(pipeline_runs.c.layer == "gdp", pipeline_runs.c.error.is_(None))
            .distinct()
        ).all()
    targets = sorted({(t, c.partition("@")[0]) for t, c in built if t in active})
    outcome: dict[str, list] = {"refreshed": [], "refused": [], "failed": []}
    for tenant_id, schema_id in targets:
        subject = f"{tenant_id}/{schema_id}"
        try:
            done = build_tenant(keel, SYSTEM, tenant_id, schema_id, mode="incremental", essential=False)
        except GuardrailBreached as refused:
            outcome["refused"].append({"target": subject, "guardrail_id": refused.guardrail_id})
        except KeelError as exc:  # one tenant's failure must not stop the others' refresh
            log.warning("scheduled refresh of %s failed: %s", subject, exc)
            outcome["failed"].append({"target": subject, "error": str(exc)})
        else:
            added = sum(r["delta_rows"] for r in done["runs"] if r["layer"] == "gdp")
            outcome["refreshed"].append({"target": subject, "added_rows": added})
    return outcome


registry.register(
    JOB,
    timedelta(hours=1),
    refresh_all,
    description="Refresh every ACTIVE tenant's built GDP tables and KPIs from new Raw batches "
    "(non-essential: skipped while a spend cap blocks).",
    attempts=1,  # a tenant's failure is reported, not retried by rerunning every tenant
    scheduled_event="pipeline.scheduled",
)
