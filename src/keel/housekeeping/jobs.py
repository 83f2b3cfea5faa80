"""Housekeeping's periodic jobs, registered with the scheduler like any other (``keel.scheduling``).

* ``housekeeping.retention`` — every live tenant's assigned policies (tiering, Raw expiry).
* ``housekeeping.compaction`` — compaction and vacuum of every table of every live tenant's data
  plane (Keel's ``_keel_*`` bookkeeping tables aside), with its cold files merged.
* ``housekeeping.footprint`` — each tenant's ``storage_footprint_gb`` and ``compute_hours`` as
  metric samples, measured by the guardrails' spend computation (one measurement, one price table).

They run as the system: who may run them was decided when the schedule was set
(``scheduler:Manage``). The intervals default to settings (``KEEL_HOUSEKEEPING_*_EVERY_HOURS``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from keel.guardrails.service import spend_today
from keel.housekeeping import service
from keel.identity.actor import SYSTEM
from keel.pipeline.engine import DuckDBEngine
from keel.scheduling import registry
from keel.store.tables import tenants

LIVE = ("PROVISIONED", "ACTIVE")


def _tenants(keel) -> list[str]:
    with keel.engine.connect() as conn:
        ids = conn.execute(
            sa.select(tenants.c.id).where(tenants.c.status.in_(LIVE)).order_by(tenants.c.id)
        ).scalars()
        return [t for t in ids if keel.dataplanes.database_path(t).is_file()]


def retention_job(keel, now: datetime) -> dict:
    runs = [
        r
        for t in _tenants(keel)
        for r in service.retention(keel, t, now, actor_id=SYSTEM.user_id, trigger="scheduler")
    ]
    return _summary(runs)


def compaction_job(keel, now: datetime) -> dict:
    runs = []
    for tenant_id in _tenants(keel):
        engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
        tables = engine.rows(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema IN ('raw', 'gdp', 'kpi') AND table_name NOT LIKE '\\_keel\\_%' ESCAPE '\\' "
            "ORDER BY 1, 2"
        )
        for layer, table in tables:
            runs.append(
                service.compaction(
                    keel, tenant_id, layer, table, actor_id=SYSTEM.user_id, trigger="scheduler"
                )
            )
    return _summary(runs)


def footprint_job(keel, now: datetime) -> dict:
    measured = {}
    for tenant_id in _tenants(keel):
        with keel.uow() as uow:
            spend = spend_today(keel, uow.conn, tenant_id, now)
            uow.commit()
        measured[tenant_id] = {k: spend[k] for k in ("storage_footprint_gb", "compute_hours")}
    return {"tenants": measured}


def _summary(runs: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    failed = [r["run_id"] for r in runs if r["status"] == "FAILED"]
    if failed:  # the scheduler logs the job as FAILED; each run was retried already
        raise RuntimeError(f"{len(failed)} housekeeping run(s) failed: {', '.join(failed)}")
    return {"runs": len(runs), "by_status": counts}


def _hours(setting: str):
    return lambda settings: timedelta(hours=getattr(settings, setting))


registry.register(
    "housekeeping.retention",
    _hours("housekeeping_retention_every_hours"),
    retention_job,
    description="Apply every tenant's approved retention policies (tier to cold, expire Raw).",
    scheduled_event="housekeeping.scheduled",
    attempts=1,  # each table's job retries itself; a repeat of the whole round would only redo them
)
registry.register(
    "housekeeping.compaction",
    _hours("housekeeping_compaction_every_hours"),
    compaction_job,
    description="Compact and vacuum every table of every tenant's data plane; merge small cold files.",
    scheduled_event="housekeeping.scheduled",
    attempts=1,
)
registry.register(
    "housekeeping.footprint",
    _hours("housekeeping_footprint_every_hours"),
    footprint_job,
    description="Record each tenant's storage_footprint_gb and compute_hours.",
    scheduled_event="housekeeping.scheduled",
)
