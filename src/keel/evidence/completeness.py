"""Evidence completeness (05): every recorded pipeline run must have its evidence in the ledger.

A run's evidence is the ``lineage.captured`` event naming its ``pipeline_runs`` id (written in
the same unit of work as the run's row, by ``contracts.builds.record_with_lineage``). A run
without one is a logging gap: it opens an ``evidence_gap`` incident (once per run), tracked to
closure through incident handling. The share of a tenant's runs in the window that are
evidenced is the gauge ``evidence_completeness_rate``.

The check runs hourly from the scheduler (``evidence.completeness``), over the runs finished
in the last ``WINDOW``, and on demand (``GET /api/v1/evidence/completeness``, ``keel evidence
completeness``) for Compliance Officers and Auditors.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.identity.actor import SYSTEM, Actor
from keel.kernel.clock import utcnow
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.scheduling import registry
from keel.store.tables import incidents, ledger_entries, pipeline_runs

GAP = "evidence_gap"
WINDOW = timedelta(hours=25)  # an hourly check over a day and an hour: no run falls between checks
EVIDENCE = "lineage.captured"


def check(
    keel, now: datetime | None = None, *, tenant_id: str | None = None, window: timedelta = WINDOW
) -> dict:
    """Look for runs finished in ``(now - window, now]`` without their evidence; open an incident
    for each new one, record each tenant's rate. Returns the rate and the gaps per tenant."""
    now = now or utcnow()
    since = now - window
    with keel.uow() as uow:
        query = sa.select(
            pipeline_runs.c.id, pipeline_runs.c.tenant_id, pipeline_runs.c.table_name, pipeline_runs.c.purpose
        ).where(pipeline_runs.c.finished_at > since, pipeline_runs.c.finished_at <= now)
        if tenant_id:
            query = query.where(pipeline_runs.c.tenant_id == tenant_id)
        runs = uow.conn.execute(query).all()
        evidenced = _evidenced(uow.conn, since, tenant_id)
        known = _known_gaps(uow.conn, tenant_id)
        by_tenant: dict[str, list] = defaultdict(list)
        for run in runs:
            by_tenant[run.tenant_id].append(run)
        report = {}
        for tenant, theirs in sorted(by_tenant.items()):
            missing = [r for r in theirs if r.id not in evidenced]
            rate = (len(theirs) - len(missing)) / len(theirs)
            metrics.record(uow.conn, "evidence_completeness_rate", rate, tenant)
            for run in missing:
                if run.id in known:
                    continue
                open_incident(
                    uow,
                    SYSTEM,
                    kind=GAP,
                    severity="SEV2",
                    summary=f"pipeline run {run.id} ({run.purpose}, {run.table_name}) has no evidence "
                    "in the ledger",
                    tenant_id=tenant,
                    details={"pipeline_run_id": run.id, "table": run.table_name, "purpose": run.purpose},
                )
            report[tenant] = {
                "runs": len(theirs),
                "evidence_completeness_rate": rate,
                "gaps": [r.id for r in missing],
            }
        uow.commit()
    return {"since": since.isoformat(), "until": now.isoformat(), "tenants": report}


def check_now(keel, actor: Actor, *, tenant_id: str | None = None) -> dict:
    """The same check on demand (Compliance Officer, Auditor); a tenant's people see their own."""
    scope = tenant_id or actor.tenant_id  # another tenant's id is refused by the tenant guard
    with keel.uow() as uow:
        keel.authorize(
            uow, actor, "evidence:Verify", Resource("evidence", "completeness", tenant=scope or "")
        )
    return check(keel, tenant_id=scope)


def _evidenced(conn, since: datetime, tenant_id: str | None) -> set[str]:
    """The pipeline run ids named by the ledger's evidence events recorded since ``since``."""
    query = sa.select(ledger_entries.c.event_json).where(
        ledger_entries.c.event_type == EVIDENCE, ledger_entries.c.recorded_at > since - timedelta(minutes=5)
    )
    if tenant_id:
        query = query.where(ledger_entries.c.tenant_id == tenant_id)
    named = set()
    for (text,) in conn.execute(query):
        payload = (json.loads(text) or {}).get("payload") or {}
        if payload.get("pipeline_run_id"):
            named.add(payload["pipeline_run_id"])
    return named


def _known_gaps(conn, tenant_id: str | None) -> set[str]:
    query = sa.select(incidents.c.details).where(incidents.c.kind == GAP)
    if tenant_id:
        query = query.where(incidents.c.tenant_id == tenant_id)
    return {(d or {}).get("pipeline_run_id") for (d,) in conn.execute(query)}


registry.register(
    "evidence.completeness",
    timedelta(hours=1),
    lambda keel, now: check(keel, now),
    description="Open an incident for each pipeline run without its evidence in the ledger; "
    "record evidence_completeness_rate per tenant.",
    scheduled_event="evidence.check.scheduled",
)
