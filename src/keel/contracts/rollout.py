"""Story 03f: a contract version rolled out stage by stage, rolled back on a measured breach.

A plan names the stages (canary tenants, then shares of the tenants, then all) and the
rollback conditions over measured signals (``error_rate``, ``dq_failure_rate``,
``latency_ratio`` against the tenant's last good build of the version it runs). A
Schema Steward signs readiness off after a dry run on the canaries; the Platform Admin
starts the rollout and widens it stage by stage. Each tenant of a stage gets the new
version built next to the old one (``builds.py``), measured, and switched over only
when every condition holds. A breach, or a signal that cannot be measured (a
monitoring gap), stops the rollout and returns every tenant it moved to the views and
pins it had: the old builds were never touched, so data and KPI values come back
exactly. The rollback is timed (``rollback_time_seconds``), evidenced, an incident is
opened and the tenants' admins are told.

Data-plane work runs outside store transactions; each stage's outcome is written in a
unit of work that re-reads the rollout and refuses a rollout that moved meanwhile.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.contracts import builds, changes, records
from keel.contracts.lifecycle import active_version
from keel.contracts.model import Layer, Status
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.lineage import store as lineage_store
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.pipeline import MaterializationFailed, signals
from keel.store.tables import change_requests, contract_versions, rollouts, tenant_contracts, tenants

SIGNALS = ("error_rate", "dq_failure_rate", "latency_ratio")
OPS = {">": lambda value, limit: value > limit, ">=": lambda value, limit: value >= limit}


def resource(version_row) -> Resource:
    """A rollout deploys a contract version: its author and approvers may not run it (SoD)."""
    approvers = {a for a in (version_row.validated_by, version_row.compliance_by) if a}
    return Resource(
        "rollout",
        f"{version_row.contract_id}@{version_row.version}",
        tenant="",
        drafted_by=version_row.drafted_by,
        approved_by=frozenset(approvers),
    )


def plan(
    keel,
    actor: Actor,
    *,
    schema_id: str,
    to_version: str,
    stages: list[dict],
    rollback_on: list[dict],
    change_id: str | None = None,
) -> dict:
    """PA plans a rollout: every stage resolved to tenant ids now, so what runs is what was planned."""
    with keel.uow() as uow:
        target = records.load(uow.conn, schema_id, to_version)
        keel.authorize(uow, actor, "schema:Deploy", resource(target))
        if target.status != Status.PUBLISHED:
            raise Conflict(
                f"{schema_id}@{to_version} is {target.status}; only a published version is rolled out"
            )
        conditions = _conditions(rollback_on)
        change = _change(uow.conn, change_id, schema_id, to_version) if change_id else None
        resolved = _stages(uow.conn, schema_id, to_version, stages)
        running = {active_version(uow.conn, t, schema_id) for s in resolved for t in s["tenants"]}
        if len(running) != 1:
            raise InvalidInput(
                "stages",
                f"the tenants run different versions of {schema_id} ({sorted(map(str, running))}); "
                "roll them out separately",
            )
        from_version = running.pop()
        if from_version is None or from_version == to_version:
            raise InvalidInput("to_version", f"the tenants run {from_version} already")
        rollout_id = new_id("RO")
        now = utcnow()
        uow.conn.execute(
            rollouts.insert().values(
                id=rollout_id,
                change_id=change.id if change else None,
                contract_id=schema_id,
                from_version=from_version,
                to_version=to_version,
                stages=resolved,
                conditions=conditions,
                status="PLANNED",
                current_stage=-1,
                started_by=actor.user_id,
                measurements={"stages": [], "moved": {}},
                created_at=now,
                updated_at=now,
            )
        )
        uow.record(
            "rollout.planned",
            actor_id=actor.user_id,
            tenant_id=None,
            rollout_id=rollout_id,
            schema_id=schema_id,
            from_version=from_version,
            to_version=to_version,
            stages=[{"name": s["name"], "tenants": len(s["tenants"])} for s in resolved],
            rollback_on=conditions,
            change_id=change_id,
        )
        uow.commit()
        return view(_load(uow.conn, rollout_id), actor)


def ready(keel, actor: Actor, rollout_id: str) -> dict:
    """SS readiness sign-off, after a dry run of the new version on the canary tenants: built and
    measured, never activated. A dry run that breaches refuses the sign-off."""
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id)
        target = records.load(uow.conn, row.contract_id, row.to_version)
        keel.authorize(uow, actor, "schema:ReadyRollout", resource(target))
        _require(row, "PLANNED")
        plan_from, plan_to = _plans(uow.conn, row)
    canaries = row.stages[0]["tenants"]
    outcomes = [
        _measure(keel, actor, row, tenant, plan_from, plan_to, purpose="dry_run") for tenant in canaries
    ]
    failed = [o for o in outcomes if o["breaches"] or o["gaps"]]
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id, lock=True)
        _require(row, "PLANNED")
        sent = []  # each run with its lineage (05): a dry run transforms data too
        for outcome in outcomes:
            sent += builds.record_with_lineage(
                uow, outcome["tenant_id"], outcome.pop("_runs"), purpose="dry_run", actor=actor
            )[1]
        measured = dict(row.measurements) | {"dry_run": outcomes}
        values = {"measurements": measured}
        if not failed:
            values["readiness_by"] = actor.user_id
        _update(uow.conn, row, **values)
        gaps = [o for o in failed if o["gaps"]]
        if gaps:  # a signal nobody can measure is an outage of monitoring, not a verdict on the version
            open_incident(
                uow,
                actor,
                kind="monitoring_gap",
                severity="SEV3",
                tenant_id=None,
                summary=f"rollout {rollout_id}: {_reason(gaps[0])}",
                details={"rollout_id": rollout_id, "tenants": [o["tenant_id"] for o in gaps]},
            )
        uow.record(
            "rollout.dry_run",
            actor_id=actor.user_id,
            tenant_id=None,
            rollout_id=rollout_id,
            passed=not failed,
            tenants=len(outcomes),
        )
        uow.commit()
    lineage_store.send(keel, sent)  # after the commit: a failed send never fails the rollout
    if failed:
        raise Blocked(
            f"the dry run breaches on {len(failed)} canary tenant(s): {_reason(failed[0])}; fix the version "
            "before it is rolled out",
            rollout_id=rollout_id,
        )
    return get(keel, actor, rollout_id)


def start(keel, actor: Actor, rollout_id: str) -> dict:
    """PA starts the rollout with its first (canary) stage."""
    return _advance(keel, actor, rollout_id, "PLANNED")


def expand(keel, actor: Actor, rollout_id: str) -> dict:
    """PA widens a healthy rollout to its next stage."""
    return _advance(keel, actor, rollout_id, "RUNNING")


def _advance(keel, actor: Actor, rollout_id: str, expected: str) -> dict:
    """Run the next stage. The stage is claimed first (status ADVANCING, under the row's lock), so
    two callers never build and switch one stage twice; a claim whose holder died is taken over
    after ``CLAIM_LEASE``."""
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id, lock=True)
        target = records.load(uow.conn, row.contract_id, row.to_version)
        keel.authorize(uow, actor, "schema:Deploy", resource(target))
        if not _claimable(row, expected):
            _require(row, expected)
        if not row.readiness_by:
            raise Blocked("the rollout has no readiness sign-off from a Schema Steward (after a dry run)")
        if row.change_id:
            changes.require_in_window(
                uow.conn.execute(
                    sa.select(change_requests).where(change_requests.c.id == row.change_id)
                ).one()
            )
        index = row.current_stage + 1
        plan_from, plan_to = _plans(uow.conn, row)
        _update(uow.conn, row, status=ADVANCING)
        uow.commit()
    stage = row.stages[index]
    outcomes, moved, breach = [], {}, None
    for tenant in stage["tenants"]:
        outcome = _measure(keel, actor, row, tenant, plan_from, plan_to, purpose="rollout")
        outcomes.append(outcome)
        if outcome["breaches"] or outcome["gaps"]:
            breach = outcome
            break
        moved[tenant] = {
            f"{layer}/{name}": before for (layer, name), before in outcome.pop("_before").items()
        }
    if breach is not None:
        return _roll_back(keel, actor, rollout_id, index, outcomes, moved, breach)
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id, lock=True)
        _require_claim(row, index)
        sent = []
        for outcome in outcomes:
            sent += builds.record_with_lineage(
                uow, outcome["tenant_id"], outcome.pop("_runs"), purpose="rollout", actor=actor
            )[1]
        _pin(uow.conn, row, list(moved))
        last = index == len(row.stages) - 1
        measured = dict(row.measurements)
        measured = measured | {
            "stages": [*measured["stages"], {"name": stage["name"], "tenants": outcomes}],
            "moved": measured["moved"] | moved,
        }
        _update(
            uow.conn,
            row,
            status="COMPLETED" if last else "RUNNING",
            current_stage=index,
            measurements=measured,
            finished_at=utcnow() if last else None,
        )
        event = "rollout.started" if index == 0 else "rollout.expanded"
        uow.record(
            event,
            actor_id=actor.user_id,
            tenant_id=None,
            rollout_id=rollout_id,
            stage=stage["name"],
            tenants=len(moved),
            signals=[o["signals"] for o in outcomes],
        )
        if last:
            _receipt(uow.conn, row, "COMPLETED", None)
            uow.record(
                "rollout.completed",
                actor_id=actor.user_id,
                tenant_id=None,
                rollout_id=rollout_id,
                schema_id=row.contract_id,
                version=row.to_version,
            )
            if row.change_id:
                change = uow.conn.execute(
                    sa.select(change_requests).where(change_requests.c.id == row.change_id)
                ).one()
                changes.finish(uow, actor, change, deployed=True, rollout_id=rollout_id)
        for outcome in outcomes:
            metrics.record(
                uow.conn,
                "error_rate_during_rollout",
                outcome["signals"]["error_rate"] or 0.0,
                outcome["tenant_id"],
                rollout_id=rollout_id,
            )
        uow.commit()
    lineage_store.send(keel, sent)  # after the commit: a failed send never fails the rollout
    return get(keel, actor, rollout_id)


def _roll_back(keel, actor: Actor, rollout_id: str, index: int, outcomes, moved_now, breach) -> dict:
    """Return every tenant this rollout moved to the views and pins it had, timed."""
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id)
    moved = dict(row.measurements["moved"]) | moved_now
    clock = time.perf_counter()
    failures = []
    for tenant, before in moved.items():
        try:
            _restore_views(keel, tenant, before)
        except Exception as exc:  # a rollback that fails is an incident of its own, never a silent pass
            failures.append({"tenant_id": tenant, "error": type(exc).__name__})
    seconds = time.perf_counter() - clock
    reason = _reason(breach)
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id, lock=True)
        _require_claim(row, index)
        sent = []
        for outcome in outcomes:
            sent += builds.record_with_lineage(
                uow, outcome["tenant_id"], outcome.pop("_runs", []), purpose="rollout", actor=actor
            )[1]
            outcome.pop("_before", None)
        _unpin(uow.conn, row, list(moved))
        measured = dict(row.measurements) | {
            "stages": [*row.measurements["stages"], {"name": row.stages[index]["name"], "tenants": outcomes}],
            "moved": {},
        }
        status = "FAILED" if failures else "ROLLED_BACK"
        _update(
            uow.conn,
            row,
            status=status,
            current_stage=index,
            measurements=measured,
            reason=reason,
            rollback_seconds=seconds,
            finished_at=utcnow(),
        )
        _receipt(uow.conn, row, status, reason)
        kind = "monitoring_gap" if breach["gaps"] and not breach["breaches"] else "rollout_breach"
        incident = open_incident(
            uow,
            actor,
            kind=kind,
            severity="SEV2",
            tenant_id=None,
            summary=f"rollout {rollout_id} of {row.contract_id}@{row.to_version} rolled back: {reason}",
            details={
                "rollout_id": rollout_id,
                "tenant_id": breach["tenant_id"],
                "signals": breach["signals"],
            },
        )
        if failures:
            open_incident(
                uow,
                actor,
                kind="rollback_failed",
                severity="SEV1",
                tenant_id=None,
                summary=f"rollout {rollout_id}: the rollback failed for {len(failures)} tenant(s)",
                details={"rollout_id": rollout_id, "failures": failures},
            )
        uow.record(
            "rollout.rolled_back",
            actor_id=actor.user_id,
            tenant_id=None,
            rollout_id=rollout_id,
            stage=row.stages[index]["name"],
            reason=reason,
            tenants=len(moved),
            rollback_time_seconds=round(seconds, 6),
            incident_id=incident,
            failed=len(failures),
        )
        metrics.record(uow.conn, "rollback_time_seconds", seconds, None, rollout_id=rollout_id)
        metrics.record(uow.conn, "rollback_count", 1, None, rollout_id=rollout_id)
        metrics.record(
            uow.conn,
            "error_rate_during_rollout",
            breach["signals"].get("error_rate") or 0.0,
            breach["tenant_id"],
            rollout_id=rollout_id,
        )
        _inform_tenant_admins(uow, actor, row, {breach["tenant_id"], *moved}, reason)
        if row.change_id:
            change = uow.conn.execute(
                sa.select(change_requests).where(change_requests.c.id == row.change_id)
            ).one()
            changes.finish(uow, actor, change, deployed=False, rollout_id=rollout_id)
        uow.commit()
    lineage_store.send(keel, sent)  # after the commit: a failed send never fails the rollout
    return get(keel, actor, rollout_id)


def get(keel, actor: Actor, rollout_id: str) -> dict:
    with keel.uow() as uow:
        row = _load(uow.conn, rollout_id)
        if actor.tenant_id and row.contract_id in _foreign_contracts(uow.conn, actor.tenant_id):
            raise NotFound("rollout", rollout_id)  # another tenant's own contract: as if it did not exist
        keel.authorize(uow, actor, "schema:Read", Resource("rollout", rollout_id, tenant=""))
        return view(row, actor)


def list_rollouts(keel, actor: Actor, *, after: str | None, limit: int) -> list[dict]:
    from keel.onboarding.paging import keyset

    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Read", Resource("rollout", "*", tenant=""))
        where = (
            [rollouts.c.contract_id.not_in(_foreign_contracts(uow.conn, actor.tenant_id))]
            if actor.tenant_id
            else []
        )
        return [view(r, actor) for r in uow.conn.execute(keyset(rollouts, *where, after=after, limit=limit))]


def _foreign_contracts(conn, tenant_id: str) -> set[str]:
    """Ids of contracts that belong to tenants other than ``tenant_id``."""
    return set(
        conn.execute(
            sa.select(contract_versions.c.contract_id).where(
                contract_versions.c.tenant_id.is_not(None), contract_versions.c.tenant_id != tenant_id
            )
        ).scalars()
    )


# -- one tenant ---------------------------------------------------------------------------------


def _measure(keel, actor: Actor, row, tenant: str, plan_from, plan_to, *, purpose: str) -> dict:
    """Build the new version for ``tenant`` beside the old one and judge it; on ``rollout``, switch
    the tenant's views over when every condition holds."""
    if plan_to.contract.layer is Layer.RAW:
        return _measure_raw(keel, row, tenant, plan_to)
    runs: list = []
    try:
        baseline = _baseline(keel, actor, tenant, plan_from, runs)
    except MaterializationFailed as failed:  # no good state to compare with, or to return to
        runs.append(failed.result)
        gap = f"no baseline: {plan_from.contract.key} cannot be built for the tenant ({failed.result.error})"
        return {"tenant_id": tenant, "signals": _worst([]), "breaches": [], "gaps": [gap], "_runs": runs}
    try:
        candidate = builds.build(keel, tenant, plan_to)
        runs += candidate.runs
        worst = _worst(
            [signals(r, baseline.get((r.layer, r.name))) for r in candidate.gdp_runs or candidate.runs]
        )
    except MaterializationFailed as failed:
        runs.append(failed.result)
        candidate, worst = None, signals(failed.result)
    breaches, gaps = _judge(row.conditions, worst)
    outcome = {"tenant_id": tenant, "signals": worst, "breaches": breaches, "gaps": gaps, "_runs": runs}
    if purpose == "rollout" and candidate is not None and not breaches and not gaps:
        outcome["_before"] = builds.activate_views(keel, tenant, candidate.views)
    return outcome


def _measure_raw(keel, row, tenant: str, plan_to) -> dict:
    """A Raw contract version builds nothing: it is judged by how the tenant's Raw tables fit it.
    ``error_rate`` and ``dq_failure_rate`` are the share of its datasets whose table drifts from it
    (03a's drift rules); a dataset with no table yet is not measured; latency has no meaning here."""
    from sqlglot import exp

    from keel.contracts.drift import detect
    from keel.contracts.sqltext import keel_type
    from keel.pipeline import DuckDBEngine

    engine = DuckDBEngine(keel.dataplanes.database_path(tenant))
    drifted, measured = [], 0
    for dataset in plan_to.contract.datasets:
        if not engine.table_exists("raw", dataset.name):
            continue
        columns = engine.columns("raw", dataset.name)
        observed = {
            name: keel_type(exp.DataType.build(kind, dialect="duckdb")) or "object" for name, kind in columns
        }
        measured += 1
        if detect(observed, dataset).drifted:
            drifted.append(dataset.name)
    share = len(drifted) / measured if measured else None
    worst = {"error_rate": share, "dq_failure_rate": share, "latency_ratio": None, "latency_seconds": None}
    breaches, gaps = _judge(row.conditions, worst)
    breaches = [f"{b}: drift in {', '.join(drifted)}" for b in breaches]
    return {
        "tenant_id": tenant,
        "signals": worst,
        "breaches": breaches,
        "gaps": gaps,
        "_runs": [],
        "_before": {},
    }


def _baseline(keel, actor: Actor, tenant: str, plan_from, runs: list) -> dict:
    """The tenant's last good build of each table of the version it runs; built (and activated)
    now when it has none, so there is always a known good state to return to."""
    with keel.engine.connect() as conn:
        found = {
            (layer, name): builds.last_run(conn, tenant, layer, name, _canonical(plan_from.contract.version))
            for layer, name in builds.views_of(plan_from)
        }
    if all(found.values()):
        return found
    done = builds.build(keel, tenant, plan_from)
    builds.activate_views(keel, tenant, done.views)
    runs += done.runs
    return {(r.layer, r.name): r for r in done.runs}


def _restore_views(keel, tenant: str, before: dict[str, str | None]) -> None:
    from keel.pipeline import DuckDBEngine, activate, deactivate

    engine = DuckDBEngine(keel.dataplanes.database_path(tenant))
    with engine.transaction():
        for key, version in before.items():
            layer, _, name = key.partition("/")
            if version is None:
                deactivate(engine, layer, name)
            else:
                activate(engine, layer, name, version)


def _worst(measured: list[dict]) -> dict:
    """The worst value of each signal across a tenant's tables (None when any is unknown)."""
    worst: dict = {}
    for name in (*SIGNALS, "latency_seconds"):
        values = [m.get(name) for m in measured]
        worst[name] = None if not values or any(v is None for v in values) else max(values)
    return worst


def _judge(conditions: list[dict], measured: dict) -> tuple[list[str], list[str]]:
    breaches, gaps = [], []
    for condition in conditions:
        value = measured.get(condition["signal"])
        text = f"{condition['signal']}{condition['op']}{condition['limit']:g}"
        if value is None:
            gaps.append(f"{condition['signal']} could not be measured")
        elif OPS[condition["op"]](value, condition["limit"]):
            breaches.append(f"{text} (measured {value:.4g})")
    return breaches, gaps


def _reason(outcome: dict) -> str:
    return f"tenant {outcome['tenant_id']}: {'; '.join(outcome['breaches'] + outcome['gaps'])}"


# -- plans, stages, pins ------------------------------------------------------------------------


def _plans(conn, row):
    return builds.plan_for(conn, row.contract_id, row.from_version), builds.plan_for(
        conn, row.contract_id, row.to_version
    )


def _conditions(rollback_on: list[dict]) -> list[dict]:
    if not rollback_on:
        raise InvalidInput("rollback_on", "a rollout needs at least one rollback condition")
    out = []
    for i, condition in enumerate(rollback_on):
        if condition.get("signal") not in SIGNALS:
            raise InvalidInput(f"rollback_on[{i}].signal", f"is one of {', '.join(SIGNALS)}")
        if condition.get("op", ">") not in OPS:
            raise InvalidInput(f"rollback_on[{i}].op", "is > or >=")
        out.append(
            {
                "signal": condition["signal"],
                "op": condition.get("op", ">"),
                "limit": float(condition["limit"]),
            }
        )
    return out


def _stages(conn, schema_id: str, to_version: str, stages: list[dict]) -> list[dict]:
    """Each stage as explicit tenant ids: named tenants, or a cumulative share of every ACTIVE
    tenant not yet on ``to_version`` (in id order, after the named ones)."""
    if not stages:
        raise InvalidInput("stages", "a rollout plan has at least one stage (e.g. canary, 25pct, 100pct)")
    active = sorted(conn.execute(sa.select(tenants.c.id).where(tenants.c.status == "ACTIVE")).scalars())
    running = {t: active_version(conn, t, schema_id) for t in active}
    eligible = [t for t in active if running[t] is not None and running[t] != to_version]
    taken: list[str] = []
    resolved = []
    for i, stage in enumerate(stages):
        name = stage.get("name") or f"stage-{i + 1}"
        if bool(stage.get("tenants")) == (stage.get("share") is not None):
            raise InvalidInput(
                f"stages[{i}]", "names its tenants or a share of the tenants, not both or neither"
            )
        if stage.get("tenants"):
            unknown = [t for t in stage["tenants"] if t not in eligible]
            if unknown:
                raise InvalidInput(
                    f"stages[{i}].tenants",
                    f"'{unknown[0]}' is no active tenant waiting for {schema_id}@{to_version}",
                )
            chosen = [t for t in stage["tenants"] if t not in taken]
        else:
            reach = max(1, round(stage["share"] * len(eligible)))
            chosen = [t for t in eligible if t not in taken][: max(0, reach - len(taken))]
        if not chosen:
            raise InvalidInput(f"stages[{i}]", f"stage '{name}' reaches no tenant the earlier stages did not")
        taken += chosen
        resolved.append({"name": name, "tenants": chosen})
    return resolved


def _change(conn, change_id: str, schema_id: str, to_version: str):
    row = conn.execute(sa.select(change_requests).where(change_requests.c.id == change_id)).first()
    if row is None:
        raise NotFound("change request", change_id)
    if (row.contract_id, row.proposed_version) != (schema_id, to_version):
        raise InvalidInput(
            "change_id", f"change {change_id} carries {row.contract_id}@{row.proposed_version}"
        )
    changes.require_in_window(row)
    running = conn.execute(
        sa.select(rollouts.c.id).where(
            rollouts.c.change_id == change_id, rollouts.c.status.in_(("PLANNED", "RUNNING", ADVANCING))
        )
    ).scalar()
    if running:
        raise Conflict(f"change {change_id} is being rolled out already ({running})", rollout_id=running)
    return row


def _pin(conn, row, tenant_ids: list[str]) -> None:
    now = utcnow()
    for tenant in tenant_ids:
        conn.execute(
            tenant_contracts.delete().where(
                tenant_contracts.c.tenant_id == tenant, tenant_contracts.c.contract_id == row.contract_id
            )
        )
        conn.execute(
            tenant_contracts.insert().values(
                tenant_id=tenant,
                contract_id=row.contract_id,
                version=row.to_version,
                previous_version=row.from_version,
                rollout_id=row.id,
                updated_at=now,
            )
        )


def _unpin(conn, row, tenant_ids: list[str]) -> None:
    now = utcnow()
    for tenant in tenant_ids:
        conn.execute(
            tenant_contracts.update()
            .where(tenant_contracts.c.tenant_id == tenant, tenant_contracts.c.contract_id == row.contract_id)
            .values(
                version=row.from_version, previous_version=row.to_version, rollout_id=row.id, updated_at=now
            )
        )


def _inform_tenant_admins(uow, actor: Actor, row, tenant_ids: set[str], reason: str) -> None:
    """In-app notice to each affected tenant's admins (03f step 4: inform TA)."""
    from keel.onboarding.notify import notify_tenant_admins

    for tenant in sorted(t for t in tenant_ids if t):
        notify_tenant_admins(
            uow,
            actor,
            tenant,
            subject=f"{row.contract_id} {row.to_version} was rolled back; you run {row.from_version}",
            body={
                "rollout_id": row.id,
                "schema_id": row.contract_id,
                "reason_sha256": hashlib.sha256(reason.encode()).hexdigest(),
            },
        )


def _receipt(conn, row, status: str, reason: str | None) -> None:
    """``change_id=SC-…, stages=[canary, 25pct, 100pct], rollback_on=[error_rate>2pct, …]``."""
    from keel.evidence import receipts

    body = {
        "rollout_id": row.id,
        "change_id": row.change_id,
        "schema_id": row.contract_id,
        "from_version": row.from_version,
        "to_version": row.to_version,
        "stages": [s["name"] for s in row.stages],
        "rollback_on": [f"{c['signal']}{c['op']}{c['limit']:g}" for c in row.conditions],
        "status": status,
        "reason": reason,
        "readiness_by": row.readiness_by,
    }
    receipts.issue(conn, "schema.rollout", subject_id=row.id, tenant_id=None, body=body, at=utcnow())


def _load(conn, rollout_id: str, *, lock: bool = False):
    query = sa.select(rollouts).where(rollouts.c.id == rollout_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("rollout", rollout_id)
    return row


def _update(conn, row, **values) -> None:
    conn.execute(rollouts.update().where(rollouts.c.id == row.id).values(updated_at=utcnow(), **values))


ADVANCING = "ADVANCING"
CLAIM_LEASE = timedelta(minutes=30)


def _claimable(row, expected: str) -> bool:
    """A stage claim left by a caller that died (ADVANCING for longer than the lease) may be retaken."""
    return (
        row.status == ADVANCING
        and utcnow() - as_utc(row.updated_at) > CLAIM_LEASE
        and expected in ("PLANNED" if row.current_stage < 0 else "RUNNING",)
    )


def _require_claim(row, index: int) -> None:
    if row.status != ADVANCING or row.current_stage != index - 1:
        raise Conflict(
            f"rollout {row.id} moved on meanwhile (now {row.status}); nothing of this stage is kept"
        )


def _require(row, status: str) -> None:
    if row.status != status:
        raise Conflict(f"rollout {row.id} is {row.status}; this step needs it {status}")


def _canonical(version: str) -> str:
    from keel.pipeline.naming import canonical_version

    return canonical_version(version)


def view(row, actor: Actor) -> dict:
    """A tenant's people see their own tenant in a rollout, never the others."""

    def mine(tenant_ids):
        return [t for t in tenant_ids if not actor.tenant_id or t == actor.tenant_id]

    stages = [{"name": s["name"], "tenants": mine(s["tenants"])} for s in row.stages]
    measured = [
        {"name": s["name"], "tenants": [t for t in s["tenants"] if t["tenant_id"] in mine([t["tenant_id"]])]}
        for s in row.measurements.get("stages", [])
    ]
    return {
        "rollout_id": row.id,
        "change_id": row.change_id if not actor.tenant_id else None,  # the change may be another tenant's
        "schema_id": row.contract_id,
        "from_version": row.from_version,
        "to_version": row.to_version,
        "stages": stages,
        "rollback_on": row.conditions,
        "status": row.status,
        "current_stage": row.stages[row.current_stage]["name"] if row.current_stage >= 0 else None,
        "readiness_by": row.readiness_by,
        "measurements": measured,
        "reason": row.reason if not actor.tenant_id else (row.reason and "see your tenant's notifications"),
        "rollback_time_seconds": row.rollback_seconds,
        "started_by": row.started_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "finished_at": as_utc(row.finished_at).isoformat() if row.finished_at else None,
    }
