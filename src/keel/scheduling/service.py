"""Running the scheduler's jobs: ``tick`` runs each due job once, with retries, and records it.

Each registered job has a row in ``scheduler_jobs`` (made on the first tick that sees it, due at
once, with the job's ``scheduled_event``). A tick claims a due job by moving its ``next_due_at``
to ``now + every`` only where it is still due (a compare-and-set): of several processes ticking
at once exactly one runs it. The job then runs up to ``attempts`` times; each failure is logged,
and the outcome (SUCCEEDED or FAILED, the last error, attempts) is stored on the row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc

from keel.authz.engine import Resource
from keel.identity.actor import SYSTEM, Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import InvalidInput, NotFound
from keel.scheduling import registry
from keel.store.tables import scheduler_jobs

log = logging.getLogger(__name__)
READ, MANAGE = "scheduler:Read", "scheduler:Manage"


def tick(keel, now: datetime | None = None, *, only: str | None = None) -> list[dict]:
    """Run every due, enabled job (or only the job ``only``, if due); what ran, in name order."""
    now = now or utcnow()
    ran = []
    for job in registry.jobs():
        if only not in (None, job.name):
            continue
        row = _ensure(keel, job, now)
        if not row.enabled or as_utc(row.next_due_at) > now:
            continue
        if not _claim(keel, job.name, now, timedelta(seconds=row.every_seconds)):
            continue  # another process took it
        ran.append(_run(keel, job, now))
    return ran


def _ensure(keel, job: registry.Job, now: datetime):
    try:
        return _ensure_once(keel, job, now)
    except sa.exc.IntegrityError:  # another process put the job on the schedule first
        with keel.engine.connect() as conn:
            return _row(conn, job.name)


def _ensure_once(keel, job: registry.Job, now: datetime):
    with keel.uow() as uow:
        row = _row(uow.conn, job.name)
        if row is None:
            every = int(job.interval(keel.settings).total_seconds())
            uow.conn.execute(
                scheduler_jobs.insert().values(
                    name=job.name, every_seconds=every, enabled=True, next_due_at=now, runs=0,
                    updated_at=now,
                )
            )  # fmt: skip
            uow.record(
                job.scheduled_event,
                actor_id=SYSTEM.user_id,
                tenant_id=None,
                job=job.name,
                every_seconds=every,
                enabled=True,
                next_due_at=now.isoformat(),
            )
            uow.commit()
            row = _row(uow.conn, job.name)
        elif row.updated_by is None:  # nobody set it: the registered interval (a setting) is followed
            every = int(job.interval(keel.settings).total_seconds())
            if every != row.every_seconds:
                base = as_utc(row.last_run_at) if row.last_run_at else now
                uow.conn.execute(
                    scheduler_jobs.update()
                    .where(scheduler_jobs.c.name == job.name)
                    .values(every_seconds=every, next_due_at=base + timedelta(seconds=every), updated_at=now)
                )
                uow.commit()
                row = _row(uow.conn, job.name)
        return row


def _claim(keel, name: str, now: datetime, every: timedelta) -> bool:
    with keel.engine.begin() as conn:
        claimed = conn.execute(
            scheduler_jobs.update()
            .where(scheduler_jobs.c.name == name, scheduler_jobs.c.next_due_at <= now)
            .values(next_due_at=now + every, updated_at=now)
        ).rowcount
    return claimed == 1


def _run(keel, job: registry.Job, now: datetime) -> dict:
    error, result, attempt = None, None, 0
    for attempt in range(1, job.attempts + 1):
        try:
            result = job.fn(keel, now)
            error = None
            break
        except Exception as exc:  # every failure is retried, then reported
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "scheduled job %s, attempt %d of %d, failed: %s", job.name, attempt, job.attempts, error
            )
    status = "FAILED" if error else "SUCCEEDED"
    if error:
        log.error("scheduled job %s failed after %d attempts: %s", job.name, attempt, error)
    else:
        log.info("scheduled job %s ran (attempt %d)", job.name, attempt)
    with keel.engine.begin() as conn:
        conn.execute(
            scheduler_jobs.update()
            .where(scheduler_jobs.c.name == job.name)
            .values(
                last_run_at=now, last_status=status, last_error=error, last_attempts=attempt,
                runs=scheduler_jobs.c.runs + 1, updated_at=utcnow(),
            )
        )  # fmt: skip
        row = _row(conn, job.name)
    return {**_view(row, job), "result": _jsonable(result)}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


# The API's and the CLI's entry points ---------------------------------------------------------
def list_jobs(keel, actor: Actor, *, after: str | None = None, limit: int = 50) -> list[dict]:
    """Every registered job with its schedule and last outcome."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("scheduler", "*", tenant=""))
        rows = {r.name: r for r in uow.conn.execute(sa.select(scheduler_jobs))}
    out = []
    for job in registry.jobs():
        if after and job.name <= after:
            continue
        out.append(_view(rows.get(job.name), job, keel.settings))
    return out[:limit]


def set_job(
    keel, actor: Actor, name: str, *, every_seconds: int | None = None, enabled: bool | None = None
) -> dict:
    """Change a job's interval or switch it on or off (PA, SRE); evidenced with its scheduled event."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, MANAGE, Resource("scheduler", name, tenant=""))
    job = registry.get(name)
    if job is None:
        raise NotFound("scheduled job", name)
    if every_seconds is not None and (
        isinstance(every_seconds, bool) or not 60 <= every_seconds <= 366 * 86400
    ):
        raise InvalidInput("every_seconds", "must be a whole number of seconds from 60 to one year")
    now = utcnow()
    _ensure(keel, job, now)
    with keel.uow() as uow:
        row = _row(uow.conn, name)
        values: dict[str, Any] = {"updated_by": actor.user_id, "updated_at": now}
        if every_seconds is not None:
            values["every_seconds"] = every_seconds
            base = as_utc(row.last_run_at) if row.last_run_at else now
            values["next_due_at"] = base + timedelta(seconds=every_seconds)
        if enabled is not None:
            values["enabled"] = enabled
        uow.conn.execute(scheduler_jobs.update().where(scheduler_jobs.c.name == name).values(**values))
        row = _row(uow.conn, name)
        uow.record(
            job.scheduled_event,
            actor_id=actor.user_id,
            tenant_id=None,
            job=name,
            every_seconds=row.every_seconds,
            enabled=row.enabled,
            next_due_at=as_utc(row.next_due_at).isoformat(),
        )
        uow.commit()
        return _view(row, job)


def tick_now(keel, actor: Actor, *, only: str | None = None) -> dict:
    """Run the due jobs now (PA, SRE), as the background scheduler would."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, MANAGE, Resource("scheduler", only or "*", tenant=""))
    if only is not None and registry.get(only) is None:
        raise NotFound("scheduled job", only)
    return {"items": tick(keel, only=only)}


def _row(conn, name: str):
    return conn.execute(sa.select(scheduler_jobs).where(scheduler_jobs.c.name == name)).first()


def _view(row, job: registry.Job, settings=None) -> dict:
    if row is None:  # registered, not yet seen by a tick: due on the next one
        every = int(job.interval(settings).total_seconds())
        return {
            "name": job.name, "description": job.description, "every_seconds": every, "enabled": True,
            "next_due_at": None, "last_run_at": None, "last_status": None, "last_error": None,
            "last_attempts": None, "runs": 0, "attempts": job.attempts,
        }  # fmt: skip
    return {
        "name": row.name,
        "description": job.description,
        "every_seconds": row.every_seconds,
        "enabled": row.enabled,
        "next_due_at": as_utc(row.next_due_at).isoformat(),
        "last_run_at": as_utc(row.last_run_at).isoformat() if row.last_run_at else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "last_attempts": row.last_attempts,
        "runs": row.runs,
        "attempts": job.attempts,
    }
