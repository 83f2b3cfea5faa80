"""Housekeeping (05b) behind the store: retention policies, legal holds, runs, compaction, footprint.

A Platform Admin defines a retention policy (``housekeeping:DefinePolicy``); each redefinition is a
new version that starts unapproved. A Compliance Officer other than the author approves it
(``housekeeping:ApprovePolicy``, an ``approve`` action: the Cedar guard and the domain both refuse
the author). The newest approved version is the one applied; a policy nobody approved is SKIPPED.
A policy applies to the tenants it is assigned to (``*``: every tenant).

A Security Admin places and releases legal holds on a tenant, a layer or a table
(``housekeeping:PlaceHold``/``ReleaseHold``). A hold blocks every job on what it covers; evidence
(``protection.py``) blocks every job that would *delete* what it references.

Every job is evidenced: ``housekeeping.scheduled`` commits before it runs, ``housekeeping.executed``
with its outcome (SUCCEEDED, FAILED, BLOCKED, SKIPPED) and a ``housekeeping_runs`` row after it ran.
Jobs run from the API (``housekeeping:Run``, ``housekeeping:Compact``) or from the scheduler
(``jobs.py``), which runs them as the system.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.housekeeping.compaction import compact
from keel.housekeeping.execution import RunRecord, execute
from keel.housekeeping.policy import ALL, LegalHold, PolicyError, RetentionPolicy
from keel.housekeeping.protection import evidence_protection
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.pipeline.engine import DuckDBEngine
from keel.store.tables import (
    housekeeping_runs,
    legal_holds,
    retention_assignments,
    retention_policies,
    tenants,
)

log = logging.getLogger(__name__)
READ, DEFINE, APPROVE = "housekeeping:Read", "housekeeping:DefinePolicy", "housekeeping:ApprovePolicy"
RUN, COMPACT = "housekeeping:Run", "housekeeping:Compact"
PLACE, RELEASE = "housekeeping:PlaceHold", "housekeeping:ReleaseHold"
LAYERS = ("raw", "gdp", "kpi")
GLOBAL = "*"
DEFAULT_TIME_COLUMN = {"raw": "_keel_ingested_at"}


# Policies -------------------------------------------------------------------------------------
def define_policy(keel, actor: Actor, spec: Mapping[str, Any]) -> dict:
    """A new retention policy, or a new version of one (unapproved until a CO approves it)."""
    spec = dict(spec)
    scope = spec.get("scope")
    table = spec.get("table") or (ALL if scope == "raw" else None)
    if not table:
        raise InvalidInput("table", "a GDP policy names the table (entity) it applies to, e.g. invoice")
    time_column = spec.get("time_column") or DEFAULT_TIME_COLUMN.get(scope or "")
    if not time_column:
        raise InvalidInput("time_column", "a GDP policy names the timestamp column that ages its rows")
    try:
        policy = RetentionPolicy(
            policy_id=spec.get("policy_id") or "",
            scope=scope or "",
            retention_months=spec.get("retention_months"),
            action_on_expiry=spec.get("action_on_expiry") or "",
            table=table,
            time_column=time_column,
            defined_by=actor.user_id,
        )
    except PolicyError as bad:
        raise InvalidInput(bad.field, str(bad)) from None
    tenant_scope = spec.get("tenant_scope") or "global"
    with keel.uow() as uow:
        keel.authorize(uow, actor, DEFINE, Resource("retention_policy", policy.policy_id, tenant=""))
        target = _tenant_scope(uow.conn, tenant_scope)
        current = _current(uow.conn, policy.policy_id)
        version = 1
        if current is not None:
            version = current.version + 1
            uow.conn.execute(
                retention_policies.update()
                .where(
                    retention_policies.c.policy_id == policy.policy_id, retention_policies.c.current.is_(True)
                )
                .values(current=False)
            )
        uow.conn.execute(
            retention_policies.insert().values(
                policy_id=policy.policy_id,
                version=version,
                scope=policy.scope,
                table_name=policy.table,
                time_column=policy.time_column,
                retention_months=policy.retention_months,
                action_on_expiry=policy.action_on_expiry,
                description=spec.get("description") or "",
                current=True,
                defined_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "housekeeping.policy.defined",
            actor_id=actor.user_id,
            tenant_id=None,
            policy_id=policy.policy_id,
            version=version,
            scope=policy.scope,
            table=policy.table,
            time_column=policy.time_column,
            retention_months=policy.retention_months,
            action_on_expiry=policy.action_on_expiry,
        )
        _assign(uow, actor, policy.policy_id, target)
        uow.commit()
        return _view(uow.conn, _current(uow.conn, policy.policy_id), actor)


def approve_policy(keel, actor: Actor, policy_id: str) -> dict:
    """Put the newest version in effect (a Compliance Officer who is not its author)."""
    with keel.uow() as uow:
        row = _visible(uow.conn, policy_id, actor)
        resource = Resource("retention_policy", row.policy_id, tenant="", drafted_by=row.defined_by)
        keel.authorize(uow, actor, APPROVE, resource)
        if row.approved_by:
            return _view(uow.conn, row, actor)
        try:
            _model(row).approve(actor.user_id)
        except PolicyError as bad:
            raise InvalidInput(bad.field, str(bad)) from None
        uow.conn.execute(
            retention_policies.update()
            .where(
                retention_policies.c.policy_id == row.policy_id, retention_policies.c.version == row.version
            )
            .values(approved_by=actor.user_id, approved_at=utcnow())
        )
        uow.record(
            "housekeeping.policy.approved",
            actor_id=actor.user_id,
            tenant_id=None,
            policy_id=row.policy_id,
            version=row.version,
            defined_by=row.defined_by,
        )
        uow.commit()
        return _view(uow.conn, _current(uow.conn, row.policy_id), actor)


def assign_policy(keel, actor: Actor, policy_id: str, tenant_scope: str) -> dict:
    """Apply a policy to one more tenant (or, with ``global``, to every tenant)."""
    with keel.uow() as uow:
        row = _visible(uow.conn, policy_id, actor)
        keel.authorize(uow, actor, DEFINE, Resource("retention_policy", row.policy_id, tenant=""))
        target = _tenant_scope(uow.conn, tenant_scope)
        _assign(uow, actor, row.policy_id, target)
        uow.commit()
        return _view(uow.conn, row, actor)


def list_policies(
    keel, actor: Actor, *, tenant_id: str | None = None, after: str | None = None, limit: int = 50
) -> list[dict]:
    """The newest version of each policy; with a tenant (a tenant user: its own), those assigned to it."""
    scope = tenant_id or actor.tenant_id
    with keel.uow() as uow:  # another tenant named in the query is refused by the cross-tenant guard
        keel.authorize(uow, actor, READ, Resource("retention_policy", "*", tenant=scope or ""))
        query = sa.select(retention_policies).where(retention_policies.c.current.is_(True))
        if scope:
            assigned = sa.select(retention_assignments.c.policy_id).where(
                retention_assignments.c.tenant_id.in_([scope, GLOBAL])
            )
            query = query.where(retention_policies.c.policy_id.in_(assigned))
        if after:
            query = query.where(retention_policies.c.policy_id > after)
        rows = uow.conn.execute(query.order_by(retention_policies.c.policy_id).limit(limit)).all()
        return [_view(uow.conn, r, actor) for r in rows]


def get_policy(keel, actor: Actor, policy_id: str) -> dict:
    with keel.uow() as uow:
        row = _visible(uow.conn, policy_id, actor)
        keel.authorize(
            uow, actor, READ, Resource("retention_policy", row.policy_id, tenant=actor.tenant_id or "")
        )
        return _view(uow.conn, row, actor)


def _tenant_scope(conn, tenant_scope: str) -> str:
    if tenant_scope in ("global", GLOBAL):
        return GLOBAL
    if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_scope)).first() is None:
        raise InvalidInput("tenant_scope", f"'{tenant_scope}' is neither 'global' nor a tenant id")
    return tenant_scope


def _assign(uow, actor: Actor, policy_id: str, tenant_id: str) -> None:
    exists = uow.conn.execute(
        sa.select(retention_assignments.c.policy_id).where(
            retention_assignments.c.policy_id == policy_id, retention_assignments.c.tenant_id == tenant_id
        )
    ).first()
    if exists:
        return
    uow.conn.execute(
        retention_assignments.insert().values(
            policy_id=policy_id, tenant_id=tenant_id, assigned_by=actor.user_id, assigned_at=utcnow()
        )
    )
    uow.record(
        "housekeeping.policy.assigned",
        actor_id=actor.user_id,
        tenant_id=None if tenant_id == GLOBAL else tenant_id,
        policy_id=policy_id,
        tenant_scope="global" if tenant_id == GLOBAL else tenant_id,
    )


def _assigned_to(conn, policy_id: str, tenant_id: str) -> bool:
    return (
        conn.execute(
            sa.select(retention_assignments.c.policy_id).where(
                retention_assignments.c.policy_id == policy_id,
                retention_assignments.c.tenant_id.in_([tenant_id, GLOBAL]),
            )
        ).first()
        is not None
    )


def _current(conn, policy_id: str):
    return conn.execute(
        sa.select(retention_policies).where(
            retention_policies.c.policy_id == policy_id, retention_policies.c.current.is_(True)
        )
    ).first()


def _existing(conn, policy_id: str):
    row = _current(conn, policy_id)
    if row is None:
        raise NotFound("retention policy", policy_id)
    return row


def _visible(conn, policy_id: str, actor: Actor):
    """The newest version; to a tenant user, a policy not assigned to its tenant does not exist."""
    row = _existing(conn, policy_id)
    if actor.tenant_id and not _assigned_to(conn, row.policy_id, actor.tenant_id):
        raise NotFound("retention policy", policy_id)
    return row


def _in_effect(conn, policy_id: str):
    """The newest approved version, else the newest (which then is skipped as unapproved)."""
    approved = conn.execute(
        sa.select(retention_policies)
        .where(retention_policies.c.policy_id == policy_id, retention_policies.c.approved_by.is_not(None))
        .order_by(retention_policies.c.version.desc())
        .limit(1)
    ).first()
    return approved or _current(conn, policy_id)


def _model(row) -> RetentionPolicy:
    return RetentionPolicy(
        policy_id=row.policy_id,
        scope=row.scope,
        retention_months=row.retention_months,
        action_on_expiry=row.action_on_expiry,
        table=row.table_name,
        time_column=row.time_column,
        defined_by=row.defined_by,
        approved_by=row.approved_by,
    )


def _view(conn, row, actor: Actor) -> dict:
    scopes = conn.execute(
        sa.select(retention_assignments.c.tenant_id)
        .where(retention_assignments.c.policy_id == row.policy_id)
        .order_by(retention_assignments.c.tenant_id)
    ).scalars()
    shown = [
        "global" if s == GLOBAL else s
        for s in scopes
        if not actor.tenant_id or s in (GLOBAL, actor.tenant_id)
    ]
    return {
        "policy_id": row.policy_id,
        "version": row.version,
        "scope": row.scope,
        "table": row.table_name,
        "time_column": row.time_column,
        "retention_months": row.retention_months,
        "action_on_expiry": row.action_on_expiry,
        "description": row.description,
        "status": "approved" if row.approved_by else "pending_approval",
        "tenant_scope": shown,
        "defined_by": row.defined_by,
        "approved_by": row.approved_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "approved_at": as_utc(row.approved_at).isoformat() if row.approved_at else None,
    }


# Legal holds ----------------------------------------------------------------------------------
def place_hold(keel, actor: Actor, tenant_id: str, spec: Mapping[str, Any]) -> dict:
    """Protect a tenant's data (all of it, a layer, or a table) from every housekeeping job."""
    layer, table = spec.get("layer"), spec.get("table")
    reason = (spec.get("reason") or "").strip()
    if layer is not None and layer not in LAYERS:
        raise InvalidInput("layer", f"'{layer}' is not one of {', '.join(LAYERS)}")
    if table is not None and (not isinstance(table, str) or not table.replace("_", "a").isalnum()):
        raise InvalidInput("table", f"'{table}' is not a plain table name")
    if table is not None and layer is None:
        raise InvalidInput("layer", "a hold on a table names the table's layer")
    if not reason:
        raise InvalidInput("reason", "a legal hold says why it is placed (case or matter reference)")
    with keel.uow() as uow:
        keel.authorize(uow, actor, PLACE, Resource("tenant", tenant_id, tenant=tenant_id))
        _tenant(uow.conn, tenant_id)
        hold_id = new_id("LH")
        uow.conn.execute(
            legal_holds.insert().values(
                id=hold_id, tenant_id=tenant_id, layer=layer, table_name=table, reason=reason,
                placed_by=actor.user_id, placed_at=utcnow(),
            )
        )  # fmt: skip
        uow.record(
            "housekeeping.hold.placed",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            hold_id=hold_id,
            layer=layer,
            table=table,
            reason=reason,
        )
        uow.commit()
        return _hold_view(_hold(uow.conn, tenant_id, hold_id))


def release_hold(keel, actor: Actor, tenant_id: str, hold_id: str, reason: str) -> dict:
    """End a hold; releasing a released hold again changes nothing."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason", "releasing a legal hold says why (the matter is closed, ...)")
    with keel.uow() as uow:
        keel.authorize(uow, actor, RELEASE, Resource("tenant", tenant_id, tenant=tenant_id))
        row = _hold(uow.conn, tenant_id, hold_id)
        if row.released_at is None:
            uow.conn.execute(
                legal_holds.update()
                .where(legal_holds.c.id == row.id)
                .values(released_by=actor.user_id, released_at=utcnow(), release_reason=reason)
            )
            uow.record(
                "housekeeping.hold.released",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                hold_id=row.id,
                reason=reason,
            )
            uow.commit()
        return _hold_view(_hold(uow.conn, tenant_id, hold_id))


def list_holds(
    keel,
    actor: Actor,
    tenant_id: str,
    *,
    active: bool | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("tenant", tenant_id, tenant=tenant_id))
        _tenant(uow.conn, tenant_id)
        query = sa.select(legal_holds).where(legal_holds.c.tenant_id == tenant_id)
        if active is not None:
            released = legal_holds.c.released_at
            query = query.where(released.is_(None) if active else released.is_not(None))
        if after:
            query = query.where(legal_holds.c.id > after)
        return [_hold_view(r) for r in uow.conn.execute(query.order_by(legal_holds.c.id).limit(limit))]


def _hold(conn, tenant_id: str, hold_id: str):
    row = conn.execute(
        sa.select(legal_holds).where(legal_holds.c.id == hold_id, legal_holds.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise NotFound("legal hold", hold_id)
    return row


def _holds(conn, tenant_id: str) -> list[LegalHold]:
    rows = conn.execute(
        sa.select(legal_holds).where(
            legal_holds.c.tenant_id == tenant_id, legal_holds.c.released_at.is_(None)
        )
    )
    return [LegalHold(r.id, r.tenant_id, r.placed_by, r.layer, r.table_name, False, r.reason) for r in rows]


def _hold_view(row) -> dict:
    return {
        "hold_id": row.id,
        "tenant_id": row.tenant_id,
        "layer": row.layer,
        "table": row.table_name,
        "reason": row.reason,
        "status": "released" if row.released_at else "active",
        "placed_by": row.placed_by,
        "placed_at": as_utc(row.placed_at).isoformat(),
        "released_by": row.released_by,
        "released_at": as_utc(row.released_at).isoformat() if row.released_at else None,
        "release_reason": row.release_reason,
    }


def _tenant(conn, tenant_id: str):
    row = conn.execute(sa.select(tenants.c.id, tenants.c.status).where(tenants.c.id == tenant_id)).first()
    if row is None:
        raise NotFound("tenant", tenant_id)
    return row


# Runs -----------------------------------------------------------------------------------------
def run_retention(keel, actor: Actor, tenant_id: str, *, policy_id: str | None = None) -> dict:
    """Apply the tenant's policies now (all assigned ones, or ``policy_id``); the runs it made."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, RUN, Resource("tenant", tenant_id, tenant=tenant_id))
        _tenant(uow.conn, tenant_id)
        if policy_id is not None:
            _existing(uow.conn, policy_id)
            if not _assigned_to(uow.conn, policy_id, tenant_id):
                raise Conflict(f"policy {policy_id} is not assigned to the tenant", policy_id=policy_id)
    runs = retention(keel, tenant_id, utcnow(), actor_id=actor.user_id, trigger="manual", only=policy_id)
    return {"tenant_id": tenant_id, "items": runs}


def retention(
    keel, tenant_id: str, now: datetime, *, actor_id: str, trigger: str, only: str | None = None
) -> list[dict]:
    """Run every policy assigned to the tenant (the scheduler's and the API's path; not authorized)."""
    with keel.engine.connect() as conn:
        assigned = conn.execute(
            sa.select(retention_assignments.c.policy_id)
            .where(retention_assignments.c.tenant_id.in_([tenant_id, GLOBAL]))
            .distinct()
            .order_by(retention_assignments.c.policy_id)
        ).scalars()
        rows = [_in_effect(conn, p) for p in assigned if only in (None, p)]
    results = []
    for row in rows:
        if row is None:
            continue
        policy = _model(row)
        job_id = _scheduled(keel, tenant_id, actor_id, trigger, "retention", policy=row)
        with keel.engine.connect() as conn:
            holds = _holds(conn, tenant_id)
            protection = evidence_protection(conn, tenant_id)
        started = utcnow()
        records: list[RunRecord] = []
        if not policy.in_effect:
            records.append(_skipped(policy, tenant_id))
        elif not keel.dataplanes.database_path(tenant_id).is_file():
            record = RunRecord(policy.policy_id, tenant_id, policy.table, policy.scope, "SKIPPED")
            record.reason = "the tenant has no data plane"
            records.append(record)
        else:
            engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
            for table in _tables(engine, policy):
                one = RetentionPolicy(**{**policy.__dict__, "table": table})
                records.append(
                    execute(engine, tenant_id, one, now, _cold_root(keel, tenant_id), holds, protection)
                )
        results += _executed(keel, tenant_id, actor_id, trigger, "retention", job_id, started, records, row)
    return results


def _skipped(policy: RetentionPolicy, tenant_id: str) -> RunRecord:
    record = RunRecord(policy.policy_id, tenant_id, policy.table, policy.scope, "SKIPPED")
    record.reason = f"policy {policy.policy_id} is not approved"
    return record


def _tables(engine: DuckDBEngine, policy: RetentionPolicy) -> list[str]:
    """The base tables a policy reaches: ``invoice`` is every ``invoice__v…`` version (and side
    table); Raw ``*`` is every Raw table but Keel's bookkeeping. A table it names exactly counts too."""
    found = [
        name
        for (name,) in engine.rows(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = '{policy.scope}' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    ]
    if policy.table == ALL:
        return [n for n in found if not n.startswith("_keel_")]
    matched = [n for n in found if n == policy.table or n.startswith(policy.table + "__")]
    return matched or [policy.table]  # a table that is not there is reported SKIPPED by execute


def compact_table(keel, actor: Actor, tenant_id: str, layer: str, table: str) -> dict:
    """Compact and vacuum one table of the tenant's data plane and merge its cold files, now."""
    if layer not in LAYERS:
        raise InvalidInput("layer", f"'{layer}' is not one of {', '.join(LAYERS)}")
    if not isinstance(table, str) or not table or not table.replace("_", "a").isalnum():
        raise InvalidInput("table", f"'{table}' is not a plain table name")
    with keel.uow() as uow:
        keel.authorize(uow, actor, COMPACT, Resource("tenant", tenant_id, tenant=tenant_id))
        _tenant(uow.conn, tenant_id)
    return compaction(keel, tenant_id, layer, table, actor_id=actor.user_id, trigger="manual")


def compaction(keel, tenant_id: str, layer: str, table: str, *, actor_id: str, trigger: str) -> dict:
    """One compaction job, evidenced like any other (not authorized: the caller did that)."""
    job_id = _scheduled(keel, tenant_id, actor_id, trigger, "compaction", layer=layer, table=table)
    started = utcnow()
    with keel.engine.connect() as conn:
        holds = _holds(conn, tenant_id)
    held = next((h for h in holds if h.covers(tenant_id, layer, table)), None)
    if held is not None:  # a held table is left exactly as it is, even by a rewrite that keeps its rows
        record = RunRecord(None, tenant_id, table, layer, "BLOCKED", f"legal hold {held.hold_id} protects it")
    elif not keel.dataplanes.database_path(tenant_id).is_file():
        record = RunRecord(None, tenant_id, table, layer, "SKIPPED", "the tenant has no data plane")
    else:
        engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
        record = compact(engine, tenant_id, layer, table, _cold_root(keel, tenant_id))
    (run,) = _executed(keel, tenant_id, actor_id, trigger, "compaction", job_id, started, [record], None)
    return run


def list_runs(
    keel,
    actor: Actor,
    tenant_id: str,
    *,
    status: str | None = None,
    kind: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("tenant", tenant_id, tenant=tenant_id))
        _tenant(uow.conn, tenant_id)
        query = sa.select(housekeeping_runs).where(housekeeping_runs.c.tenant_id == tenant_id)
        if status:
            query = query.where(housekeeping_runs.c.status == status.upper())
        if kind:
            query = query.where(housekeeping_runs.c.kind == kind)
        if after:
            query = query.where(housekeeping_runs.c.id > after)
        return [_run_view(r) for r in uow.conn.execute(query.order_by(housekeeping_runs.c.id).limit(limit))]


def _cold_root(keel, tenant_id: str) -> Path:
    """Cold files live in the tenant's data-plane directory: counted in its footprint, wiped with it."""
    return keel.dataplanes.directory(tenant_id) / "cold"


def _scheduled(keel, tenant_id, actor_id, trigger, kind, *, policy=None, layer=None, table=None) -> str:
    """Record ``housekeeping.scheduled`` and commit it before the job runs; the job's id."""
    job_id = new_id("HKJ")
    with keel.uow() as uow:
        uow.record(
            "housekeeping.scheduled",
            actor_id=actor_id,
            tenant_id=tenant_id,
            job_id=job_id,
            kind=kind,
            trigger=trigger,
            policy_id=policy.policy_id if policy is not None else None,
            policy_version=policy.version if policy is not None else None,
            layer=policy.scope if policy is not None else layer,
            table=policy.table_name if policy is not None else table,
        )
        uow.commit()
    return job_id


def _executed(keel, tenant_id, actor_id, trigger, kind, job_id, started, records, policy_row) -> list[dict]:
    """Record each run and its ``housekeeping.executed`` event in one unit of work."""
    finished = utcnow()
    out = []
    with keel.uow() as uow:
        for record in records:
            run_id = new_id("HKR")
            uow.conn.execute(
                housekeeping_runs.insert().values(
                    id=run_id,
                    tenant_id=tenant_id,
                    kind=kind,
                    policy_id=record.policy_id,
                    policy_version=policy_row.version if policy_row is not None else None,
                    layer=record.layer,
                    table_name=record.table,
                    status=record.status,
                    reason=record.reason,
                    rows_tiered=record.rows_tiered,
                    rows_deleted=record.rows_deleted,
                    files=[_relative(keel, tenant_id, f) for f in record.files],
                    attempts=record.attempts,
                    trigger=trigger,
                    run_by=actor_id,
                    started_at=started,
                    finished_at=finished,
                )
            )
            uow.record(
                "housekeeping.executed",
                actor_id=actor_id,
                tenant_id=tenant_id,
                job_id=job_id,
                run_id=run_id,
                kind=kind,
                policy_id=record.policy_id,
                layer=record.layer,
                table=record.table,
                status=record.status,
                reason=record.reason,
                rows_tiered=record.rows_tiered,
                rows_deleted=record.rows_deleted,
                files=[_relative(keel, tenant_id, f) for f in record.files],
                attempts=record.attempts,
            )
            if record.status in ("FAILED", "BLOCKED"):
                log.warning(
                    "housekeeping %s %s on %s.%s of tenant %s: %s",
                    kind, record.status, record.layer, record.table, tenant_id, record.reason,
                )  # fmt: skip
            out.append(run_id)
        uow.commit()
        rows = uow.conn.execute(sa.select(housekeeping_runs).where(housekeeping_runs.c.id.in_(out))).all()
    by_id = {r.id: r for r in rows}
    return [_run_view(by_id[i]) for i in out]


def _relative(keel, tenant_id: str, path: str) -> str:
    """A cold file as a path inside the tenant's data-plane directory (no server paths in evidence)."""
    try:
        return str(Path(path).relative_to(keel.dataplanes.directory(tenant_id)))
    except ValueError:
        return Path(path).name


def _run_view(row) -> dict:
    return {
        "run_id": row.id,
        "tenant_id": row.tenant_id,
        "kind": row.kind,
        "policy_id": row.policy_id,
        "policy_version": row.policy_version,
        "layer": row.layer,
        "table": row.table_name,
        "status": row.status,
        "reason": row.reason,
        "rows_tiered": row.rows_tiered,
        "rows_deleted": row.rows_deleted,
        "files": list(row.files or []),
        "attempts": row.attempts,
        "trigger": row.trigger,
        "run_by": row.run_by,
        "started_at": as_utc(row.started_at).isoformat(),
        "finished_at": as_utc(row.finished_at).isoformat(),
    }
