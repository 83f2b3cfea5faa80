"""Ingestion runs: a READY source's streams into the tenant's Raw layer, exactly once.

A run is recorded RUNNING in the control plane, the data plane does the work
(``keel.ingestion``: each batch commits with its checkpoint in the tenant's DuckDB
file), and the run's outcome is recorded after. The checkpoint in the data plane is
the truth: a run whose worker died stays RUNNING until its lease runs out, then it
is marked INTERRUPTED and the next run resumes from the last committed batch.

Kinds and who may start them: ``sync`` (DE, TA, IO), ``rerun`` of a failed run (IO,
DE, TA), ``replay`` and ``backfill`` of a cursor window (IO, DE, TA; guardrails: the
stream must be incremental, the window at most ``replay_max_days`` wide and not in
the future, one run per stream at a time; rows already in Raw are not added again,
and the regular checkpoint does not move), and ``recovery`` (PA, through ``health``).

A source linked to a Raw contract has each stream's discovered schema checked against
it before anything is written (``drift.py``): the contract's drift policy lets the run
land as usual, lands it in the stream's quarantine table (the run is QUARANTINED) or
stops it (FAILED, failure ``drift``, checkpoint unchanged).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel import guardrails
from keel.authz.engine import Resource
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.ingestion.raw import RawStore, table_name
from keel.ingestion.runner import RetryPolicy, Window, sync_stream
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, KeelError, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.onboarding import breaker, deployment, drift, health, sources
from keel.onboarding.paging import keyset
from keel.store.tables import connectors, ingestion_runs

ACTIONS = {
    "sync": "ingestion:Run",
    "rerun": "ingestion:Rerun",
    "replay": "ingestion:Replay",
    "backfill": "ingestion:Backfill",
}
EVENTS = {"replay": "ingestion.replayed", "backfill": "ingestion.backfilled"}
QUARANTINED = "QUARANTINED"  # the run's records landed in the stream's quarantine table (drift)


@dataclass(frozen=True)
class Plan:
    """What one run does, fixed before any data moves."""

    tenant_id: str
    source_id: str
    source_key: str
    connector_id: str
    streams: tuple[str, ...]
    kind: str
    window: dict[str, Any] | None
    run_ids: tuple[str, ...]


def start(
    keel,
    actor: Actor,
    tenant_id: str,
    source_id: str,
    *,
    kind: str = "sync",
    stream: str | None = None,
    window: dict[str, Any] | None = None,
    rerun_of: str | None = None,
) -> list[dict]:
    """Run ``kind`` on the source (all its streams, or ``stream``); return the runs."""
    if kind not in ACTIONS:
        raise InvalidInput("kind", f"must be one of {', '.join(ACTIONS)}")
    plan, connector, config = _plan(keel, actor, tenant_id, source_id, kind, stream, window, rerun_of)
    return execute(keel, actor, plan, connector, config)


def _plan(keel, actor, tenant_id, source_id, kind, stream, window, rerun_of):
    with keel.uow() as uow:
        keel.authorize(uow, actor, ACTIONS[kind], sources.resource(tenant_id, source_id))
        source = sources.load(uow.conn, tenant_id, source_id)
        deployment.require_active_tenant(uow.conn, tenant_id)
        if source.status != "READY":
            raise Conflict(
                f"source '{source.name}' is {source.status}: only a READY source is ingested",
                state=source.status,
            )
        connector = deployment.load(uow.conn, tenant_id, source.connector_id, lock=True)
        if connector.status != "ACTIVE":
            raise Conflict(
                f"connector '{connector.name}' is {connector.status}: a Platform Admin recovers it first",
                connector_id=connector.id,
            )
        checked = _check_window(keel, kind, window)  # bad input is named before any guardrail
        if kind in EVENTS:  # a replay or backfill re-reads history: non-essential under a spend cap
            decision = guardrails.evaluate(
                keel, uow, actor, tenant_id, ACTIONS[kind], essential=False, region=connector.region
            )
            if not decision.allowed:
                uow.commit()  # the refusal's evidence only: no run is claimed
                decision.raise_if_refused()
        refused = breaker.refusal(connector.breaker, utcnow(), keel.settings)
        if refused:
            raise Blocked(refused, connector_id=connector.id)
        if connector.breaker.get("state") in ("open", "half_open"):  # cooled down: this run is the trial
            uow.conn.execute(
                connectors.update()
                .where(connectors.c.id == connector.id)
                .values(breaker=breaker.trial(connector.breaker, utcnow()))
            )
        if kind == "rerun":
            stream = _failed_run(uow.conn, tenant_id, source_id, rerun_of)
        streams = (stream,) if stream else tuple(source.streams)
        if stream is not None and stream not in source.streams:
            raise InvalidInput("stream", f"'{stream}' is not a stream of source '{source.name}'")
        config = deployment.runtime_config(keel, uow.conn, connector)  # before any run is claimed
        run_ids = tuple(claim_run(keel, uow, actor, source, s, kind, checked) for s in streams)
        uow.commit()
    plan = Plan(tenant_id, source.id, source.key, connector.id, streams, kind, checked, run_ids)
    return plan, connector, config


def execute(
    keel, actor: Actor, plan: Plan, connector_row, config: dict, *, recovery: bool = False
) -> list[dict]:
    """Run the planned streams and record each outcome; hand exhausted retries to the PA."""
    connector = deployment.instance(keel, connector_row)
    raw = RawStore(keel.dataplanes.database_path(plan.tenant_id))
    retry = RetryPolicy(
        max_attempts=keel.settings.ingestion_max_attempts,
        base_delay=keel.settings.ingestion_retry_base_seconds,
        max_delay=keel.settings.ingestion_retry_max_seconds,
    )
    started = utcnow()
    outcomes = []
    stopped: Exception | None = None
    watch = drift.watch_for(keel, actor, plan.tenant_id, plan.source_id, plan.source_key)
    rules = _raw_rules(keel, plan.tenant_id)
    for stream, run_id in zip(plan.streams, plan.run_ids, strict=True):
        gate = watch.gate(stream, run_id) if watch is not None else None
        mine = [r for r in rules if r.dataset == table_name(plan.source_key, stream)]
        try:
            result = _sync(keel, plan, connector, config, stream, run_id, raw, retry, gate, mine)
        except Exception as exc:  # refused arguments (a window the stream cannot take), or a bug
            stopped = exc
            break
        outcomes.append((stream, run_id, result))
        if _connector_broken(result):
            break  # later streams wait for the connector's recovery; bad data fails only its own run
    with keel.uow() as uow:
        row = deployment.load(uow.conn, plan.tenant_id, plan.connector_id, lock=True)
        for stream, run_id, result in outcomes:
            finding = watch.findings.get(stream) if watch is not None else None
            _finish(uow, actor, plan, stream, run_id, result, finding)
        status, error = _not_run(stopped)
        for run_id in plan.run_ids[len(outcomes) :]:  # never left RUNNING
            _close(uow.conn, run_id, status, error=error)
        results = [r for _, _, r in outcomes]
        broken = next((r for r in results if _connector_broken(r)), None)
        retries = sum(r.attempts - 1 for r in results)
        # A connector reconfigured while this ran is judged by its new checks, not by this run.
        unchanged = (row.status, row.config_version) == (connector_row.status, connector_row.config_version)
        if broken is not None and not recovery and unchanged:
            health.retries_exhausted(
                uow,
                actor,
                row,
                failure=broken.failure or "unreachable",
                message=broken.error,
                retries=retries,
            )
        elif broken is None and retries and not recovery and unchanged:
            failure = next((r.first_failure for r in results if r.first_failure), "unreachable")
            health.retried_and_recovered(uow, actor, row, failure=failure, retries=retries, started=started)
        if broken is None and unchanged and row.breaker != breaker.CLOSED_BREAKER:
            uow.conn.execute(
                connectors.update().where(connectors.c.id == row.id).values(breaker=breaker.succeeded())
            )
        uow.commit()
        if stopped is not None:
            raise stopped
        return [run_view(load(uow.conn, plan.tenant_id, run_id)) for run_id in plan.run_ids]


# Failures no retry fixes but that mean the connector itself cannot work (credentials revoked at the
# source, a setting that no longer fits): like exhausted retries, they hand the connector over.
CONNECTOR_FAILURES = frozenset({"auth", "permission", "config"})


def _connector_broken(result) -> bool:
    return result.error is not None and (result.transient or result.failure in CONNECTOR_FAILURES)


def _raw_rules(keel, tenant_id: str) -> list:
    """The tenant's enabled Raw-layer data-quality rules (04), applied to each batch as it lands."""
    from keel.quality.service import enabled_rules

    with keel.uow() as uow:
        return enabled_rules(uow.conn, tenant_id, layer="raw")


def _sync(
    keel, plan: Plan, connector, config: dict, stream: str, run_id: str, raw: RawStore, retry, gate, rules=()
):
    return sync_stream(
        connector,
        config,
        stream,
        raw,
        source_id=plan.source_id,
        source_key=plan.source_key,
        run_id=run_id,
        batch_size=keel.settings.ingestion_batch_size,
        kind="sync" if plan.kind in ("sync", "rerun", "recovery") else plan.kind,
        window=_window(plan.window),
        retry=retry,
        sleep=keel.sleep,
        gate=gate,
        rules=rules,
    )


def _not_run(stopped: Exception | None) -> tuple[str, dict]:
    """Status and error of a planned run that never read: why, in a word and a sentence."""
    if stopped is None:
        return "SKIPPED", {"failure": "skipped", "message": "an earlier stream failed"}
    if isinstance(stopped, KeelError):
        return "FAILED", {"failure": "invalid_input", "message": stopped.detail}
    return "FAILED", {"failure": "internal_error", "message": type(stopped).__name__}


def _finish(uow, actor: Actor, plan: Plan, stream: str, run_id: str, result, finding=None) -> None:
    status = "SUCCEEDED" if result.error is None else "FAILED"
    error = None if result.error is None else {"failure": result.failure, "message": result.error}
    if result.quarantined and result.error is None:
        status = QUARANTINED
    if finding is not None:  # the drift, its ticket and (quarantine) where the rows are
        if status == QUARANTINED or result.failure == "drift":
            error = finding.error(result.rows)
        elif error is not None and result.quarantined:  # failed later: its batches so far are kept there
            error["quarantine_table"] = finding.table
    uow.conn.execute(
        ingestion_runs.update()
        .where(ingestion_runs.c.id == run_id)
        .values(
            status=status,
            rows=result.rows,
            batches=result.batches,
            skipped=result.skipped,
            attempts=result.attempts,
            error=error,
            finished_at=utcnow(),
        )
    )
    if status != QUARANTINED:  # quarantined records are kept, but not in Raw
        metrics.record(uow.conn, "ingested_records", result.rows, plan.tenant_id)
    event = {
        "SUCCEEDED": EVENTS.get(plan.kind, "ingestion.completed"),
        QUARANTINED: "ingestion.quarantined",
    }.get(status, "ingestion.failed")
    uow.record(
        event,
        actor_id=actor.user_id,
        tenant_id=plan.tenant_id,
        run_id=run_id,
        source_id=plan.source_id,
        stream=stream,
        kind=plan.kind,
        rows=result.rows,
        batches=result.batches,
        skipped=result.skipped,
        attempts=result.attempts,
        window=plan.window,
        failure=result.failure,
        **({"quarantine_table": finding.table} if finding is not None and result.quarantined else {}),
    )
    if result.rule_results or result.rule_blocked:  # Raw-layer data-quality rules (04)
        from keel.quality.service import record_ingested

        record_ingested(uow, actor, plan.tenant_id, f"raw.{table_name(plan.source_key, stream)}", result)
    if plan.window is not None:  # a guarded operator action: its receipt names who, what and the outcome
        now = utcnow()
        body = {
            "run_id": run_id,
            "source_id": plan.source_id,
            "stream": stream,
            "kind": plan.kind,
            "window": plan.window,
            "status": status,
            "rows": result.rows,
            "skipped_duplicates": result.skipped,
            "batch_ids": list(result.batch_ids),
            "run_by": actor.user_id,
            "timestamp": now.isoformat(),
        }
        receipts.issue(
            uow.conn, f"ingestion.{plan.kind}", subject_id=run_id, tenant_id=plan.tenant_id, body=body, at=now
        )


def claim_run(keel, uow, actor: Actor, source, stream: str, kind: str, window) -> str:
    """Record a RUNNING run, unless one holds the stream; an expired lease counts as interrupted."""
    lease = utcnow() - dt.timedelta(minutes=keel.settings.ingestion_lease_minutes)
    running = uow.conn.execute(
        sa.select(ingestion_runs.c.id, ingestion_runs.c.started_at).where(
            ingestion_runs.c.source_id == source.id,
            ingestion_runs.c.stream == stream,
            ingestion_runs.c.status == "RUNNING",
        )
    ).all()
    for other in running:
        if as_utc(other.started_at) > lease:
            raise Conflict(f"run {other.id} is ingesting stream '{stream}' already", run_id=other.id)
        _close(
            uow.conn,
            other.id,
            "INTERRUPTED",
            error={"failure": "interrupted", "message": "its worker stopped before recording an outcome"},
        )
        uow.record(
            "ingestion.interrupted", actor_id=actor.user_id, tenant_id=source.tenant_id, run_id=other.id
        )
    run_id = new_id("RUN")
    uow.conn.execute(
        ingestion_runs.insert().values(
            id=run_id,
            tenant_id=source.tenant_id,
            source_id=source.id,
            stream=stream,
            kind=kind,
            window=window,
            status="RUNNING",
            rows=0,
            batches=0,
            skipped=0,
            attempts=0,
            started_by=actor.user_id,
            started_at=utcnow(),
        )
    )
    uow.record(
        "ingestion.started",
        actor_id=actor.user_id,
        tenant_id=source.tenant_id,
        run_id=run_id,
        source_id=source.id,
        stream=stream,
        kind=kind,
        window=window,
    )
    return run_id


def _check_window(keel, kind: str, window: dict[str, Any] | None) -> dict[str, Any] | None:
    if kind not in ("replay", "backfill"):
        if window is not None:
            raise InvalidInput("window", f"applies to replay and backfill, not {kind}")
        return None
    if not isinstance(window, dict):
        raise InvalidInput("window", "is required: {cursor_field, start, end}")
    unknown = sorted(set(window) - {"cursor_field", "start", "end"})
    if unknown:
        raise InvalidInput(f"window.{unknown[0]}", "is not a window setting")
    field = window.get("cursor_field")
    if not isinstance(field, str) or not field:
        raise InvalidInput("window.cursor_field", "is required")
    bounds = {}
    for name in ("start", "end"):
        try:
            bounds[name] = dt.datetime.fromisoformat(str(window.get(name)))
        except ValueError:
            raise InvalidInput(f"window.{name}", "must be an ISO 8601 date or date-time") from None
    start, end = (
        as_utc(b) if b.tzinfo else b.replace(tzinfo=dt.UTC) for b in (bounds["start"], bounds["end"])
    )
    if end <= start:
        raise InvalidInput("window.end", "must be after window.start")
    if (end - start).days > keel.settings.replay_max_days:
        raise Blocked(
            f"guardrail: a {kind} window may span at most {keel.settings.replay_max_days} days",
            guardrail="replay_max_days",
        )
    if start > utcnow():
        raise InvalidInput("window.start", "is in the future")
    return {"cursor_field": field, "start": str(window["start"]), "end": str(window["end"])}


def _window(window: dict[str, Any] | None) -> Window | None:
    return None if window is None else Window(window["cursor_field"], window["start"], window["end"])


def _failed_run(conn: Connection, tenant_id: str, source_id: str, run_id: str | None) -> str:
    if not run_id:
        raise InvalidInput("rerun_of", "names the failed run to run again")
    run = load(conn, tenant_id, run_id)
    if run.source_id != source_id:
        raise NotFound("ingestion run", run_id)
    if run.status not in ("FAILED", "INTERRUPTED", "SKIPPED"):
        raise Conflict(f"run {run_id} is {run.status}; only a failed run is rerun")
    return run.stream


def _close(conn: Connection, run_id: str, status: str, *, error: dict) -> None:
    conn.execute(
        ingestion_runs.update()
        .where(ingestion_runs.c.id == run_id)
        .values(status=status, error=error, finished_at=utcnow())
    )


def list_runs(keel, actor: Actor, tenant_id: str, *, source_id: str | None, after: str | None, limit: int):
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", Resource("ingestion_run", "*", tenant=tenant_id))
        where = [ingestion_runs.c.tenant_id == tenant_id]
        if source_id:
            where.append(ingestion_runs.c.source_id == source_id)
        query = keyset(ingestion_runs, *where, after=after, limit=limit)
        return [run_view(r) for r in uow.conn.execute(query)]


def get_run(keel, actor: Actor, tenant_id: str, run_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", Resource("ingestion_run", run_id, tenant=tenant_id))
        row = load(uow.conn, tenant_id, run_id)
        return run_view(row)


def load(conn: Connection, tenant_id: str, run_id: str):
    row = conn.execute(
        sa.select(ingestion_runs).where(
            ingestion_runs.c.id == run_id, ingestion_runs.c.tenant_id == tenant_id
        )
    ).first()
    if row is None:
        raise NotFound("ingestion run", run_id)
    return row


def run_view(row) -> dict:
    return {
        "run_id": row.id,
        "tenant_id": row.tenant_id,
        "source_id": row.source_id,
        "stream": row.stream,
        "kind": row.kind,
        "window": row.window,
        "status": row.status,
        "rows": row.rows,
        "batches": row.batches,
        "skipped_duplicates": row.skipped,
        "quarantined": row.rows if row.status == QUARANTINED else 0,
        "attempts": row.attempts,
        "error": row.error,
        "started_by": row.started_by,
        "started_at": as_utc(row.started_at).isoformat(),
        "finished_at": as_utc(row.finished_at).isoformat() if row.finished_at else None,
    }


def raw_status(keel, actor: Actor, tenant_id: str, source_id: str) -> dict:
    """Where the source stands in Raw: its tables with row counts, each stream's checkpoint and the
    latest committed batches. Metadata only: no record leaves the data plane."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", sources.resource(tenant_id, source_id))
        source = sources.load(uow.conn, tenant_id, source_id)
    raw = RawStore(keel.dataplanes.database_path(tenant_id))
    batches = raw.batches(source_id, limit=20)
    states = {stream: raw.last_state(source_id, stream) for stream in source.streams}
    if actor.is_provider:  # a checkpoint holds values of tenant records (a cursor, a key): not for providers
        states = {stream: None if state is None else {"committed": True} for stream, state in states.items()}
    return {
        "source_id": source.id,
        "tables": [{**t, "created_at": _iso(t["created_at"])} for t in raw.tables(source_id)],
        "checkpoints": states,
        "recent_batches": [
            {**{k: v for k, v in b.items() if k != "state"}, "committed_at": _iso(b["committed_at"])}
            for b in batches
        ],
    }


def _iso(value) -> str | None:
    return as_utc(value).isoformat() if value is not None else None
