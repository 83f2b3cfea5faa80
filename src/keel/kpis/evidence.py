"""The evidence a KPI publication (06) is checked against, read from the store and the data plane.

For one KPI contract version in one tenant: the newest successful build of it recorded in
``pipeline_runs`` (dry runs of a rollout excepted: they validate a candidate, not what the
tenant reads), that build's table still in the tenant's data plane, the OpenLineage
START/COMPLETE records of that build in ``lineage_events`` (05), and the data-quality outcome of
each GDP build it read: that GDP run and the ``rule.applied`` results recorded for its table
since (04). A ``block`` rule that stopped a later build of that table leaves the KPI computed
from data its rules now refuse, so the outcome is ``blocked``. Whatever is absent is named in
``missing``; publishing needs it empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from keel.kernel.clock import as_utc
from keel.pipeline import DuckDBEngine
from keel.pipeline.naming import canonical_version, safe_name, versioned
from keel.store.tables import ledger_entries, lineage_events, pipeline_runs

# A run's COMPLETE event carries the run's finish time; stores round it differently.
_CLOCK_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Evidence:
    kpi_id: str
    version: str
    run: object | None = None  # the pipeline_runs row of the build
    build_table: str | None = None
    lineage_record_ids: tuple[str, ...] = ()
    dq_outcome: dict = field(default_factory=dict)
    missing: tuple[dict, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing


def _gap(code: str, detail: str) -> dict:
    return {"evidence": code, "detail": detail}


def gather(keel, conn, tenant_id: str, kpi_id: str, version: str) -> Evidence:
    """The evidence of the tenant's newest successful build of ``kpi_id@version``."""
    version = canonical_version(version)
    name = safe_name(kpi_id, "contract")
    run = conn.execute(
        sa.select(pipeline_runs)
        .where(
            pipeline_runs.c.tenant_id == tenant_id,
            pipeline_runs.c.layer == "kpi",
            pipeline_runs.c.name == name,
            pipeline_runs.c.version == version,
            pipeline_runs.c.error.is_(None),
            pipeline_runs.c.purpose != "dry_run",
        )
        .order_by(pipeline_runs.c.finished_at.desc(), pipeline_runs.c.id.desc())
        .limit(1)
    ).first()
    if run is None:
        gap = _gap("build", f"no successful build of {kpi_id}@{version} is recorded for the tenant")
        return Evidence(kpi_id, version, missing=(gap,))
    missing = []
    built = versioned(name, version)
    if not _table_exists(keel, tenant_id, built):
        missing.append(_gap("build_table", f"the build's table kpi.{built} is no longer in the data plane"))
    lineage = _lineage(conn, tenant_id, run)
    if not lineage:
        missing.append(_gap("lineage", f"build {run.id} of {run.table_name} has no COMPLETE lineage record"))
    dq = _dq_outcome(conn, tenant_id, run)
    for item in dq["inputs"]:
        if item["gdp_run_id"] is None:
            missing.append(_gap("dq_outcome", f"no recorded build of {item['table']}, which the KPI read"))
        elif item["blocked"]:
            rules = ", ".join(item["blocked_by"])
            missing.append(
                _gap("dq_blocked", f"data-quality rule {rules} blocked the newest build of {item['table']}")
            )
    return Evidence(kpi_id, version, run, f"kpi.{built}", tuple(lineage), dq, tuple(missing))


def _table_exists(keel, tenant_id: str, built: str) -> bool:
    path = keel.dataplanes.database_path(tenant_id)
    if not path.exists():
        return False
    engine = DuckDBEngine(path)
    with engine.transaction():
        return engine.table_exists("kpi", built)


def _lineage(conn, tenant_id: str, run) -> list[str]:
    """The ids of the run's START and COMPLETE records; empty when its COMPLETE event is absent."""
    finished = as_utc(run.finished_at)
    completes = conn.execute(
        sa.select(lineage_events.c.run_id, lineage_events.c.event_time).where(
            lineage_events.c.tenant_id == tenant_id,
            lineage_events.c.table_name == run.table_name,
            lineage_events.c.contract == run.contract,
            lineage_events.c.event_type == "COMPLETE",
        )
    ).all()
    near = [c for c in completes if abs(as_utc(c.event_time) - finished) <= _CLOCK_SLACK]
    if not near:
        return []
    best = min(near, key=lambda c: abs(as_utc(c.event_time) - finished))
    rows = conn.execute(
        sa.select(lineage_events.c.id)
        .where(lineage_events.c.tenant_id == tenant_id, lineage_events.c.run_id == best.run_id)
        .order_by(lineage_events.c.event_time, lineage_events.c.id)
    )
    return list(rows.scalars())


def _dq_outcome(conn, tenant_id: str, run) -> dict:
    """Per GDP table the KPI build read: the GDP build it read and the rule results since."""
    inputs = [t for t in (run.inputs or []) if str(t).startswith("gdp.")]
    outcome = []
    for table_name in inputs:
        gdp = conn.execute(
            sa.select(pipeline_runs)
            .where(
                pipeline_runs.c.tenant_id == tenant_id,
                pipeline_runs.c.layer == "gdp",
                pipeline_runs.c.table_name == table_name,
                pipeline_runs.c.error.is_(None),
                pipeline_runs.c.purpose != "dry_run",
                pipeline_runs.c.finished_at <= run.finished_at,
            )
            .order_by(pipeline_runs.c.finished_at.desc(), pipeline_runs.c.id.desc())
            .limit(1)
        ).first()
        if gdp is None:
            outcome.append({"table": table_name, "gdp_run_id": None, "blocked": False, "blocked_by": []})
            continue
        rules, blocked_by = _rules_since(conn, tenant_id, table_name, gdp.finished_at)
        outcome.append(
            {
                "table": table_name,
                "gdp_run_id": gdp.id,
                "rows": gdp.rows,
                "error_rows": gdp.error_rows,
                "dq_failures": gdp.dq_failures,
                "rules": rules,
                "blocked": bool(blocked_by),
                "blocked_by": blocked_by,
            }
        )
    return {"status": _status(outcome), "inputs": outcome}


def _rules_since(conn, tenant_id: str, table_name: str, since) -> tuple[dict, list[str]]:
    """The newest ``rule.applied`` result per rule on ``table_name`` recorded since ``since``, and
    the rules that blocked a build of it in that time."""
    rows = conn.execute(
        sa.select(ledger_entries.c.event_json)
        .where(
            ledger_entries.c.tenant_id == tenant_id,
            ledger_entries.c.event_type == "rule.applied",
            ledger_entries.c.recorded_at >= since,
        )
        .order_by(ledger_entries.c.seq)
    ).scalars()
    results: dict[str, dict] = {}
    blocked: list[str] = []
    for text in rows:
        payload = json.loads(text).get("payload", {})
        if payload.get("table") != table_name:
            continue
        rule_id = payload.get("rule_id")
        results[rule_id] = {k: payload.get(k) for k in ("version", "on_fail", "checked", "failed")}
        if payload.get("blocked") and rule_id not in blocked:
            blocked.append(rule_id)
    return results, blocked


def _status(outcome: list[dict]) -> str:
    """``blocked``, ``unknown`` (a GDP build is not recorded), ``quarantined``, ``alerted`` or
    ``passed``: the worst of the inputs."""
    if any(i["blocked"] for i in outcome):
        return "blocked"
    if any(i["gdp_run_id"] is None for i in outcome):
        return "unknown"
    failing = {r["on_fail"] for i in outcome for r in i["rules"].values() if (r.get("failed") or 0) > 0}
    if "quarantine" in failing:
        return "quarantined"
    if "alert" in failing:
        return "alerted"
    return "passed"
