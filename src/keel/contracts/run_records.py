"""The record of a tenant's pipeline runs (``pipeline_runs``), as its people and operators read it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc
from keel.kernel.errors import InvalidInput, NotFound
from keel.store.tables import pipeline_runs

READ = "pipeline:ReadRuns"
POSITION = "_position"
LAYERS = ("gdp", "kpi")


def view(row) -> dict:
    return {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "layer": row.layer,
        "name": row.name,
        "contract": row.contract,
        "version": row.version,
        "table": row.table_name,
        "mode": row.mode or "full",  # runs before 0007a were all full
        "inputs": list(row.inputs),
        "rows": row.rows,
        "delta_rows": row.rows if row.delta_rows is None else row.delta_rows,
        "batches": list(row.batches or []),
        "error_rows": row.error_rows,
        "dq_failures": row.dq_failures,
        "duration_seconds": float(row.duration_seconds),
        "error": row.error,
        "note": row.note,
        "purpose": row.purpose,
        "run_by": row.run_by,
        "started_at": as_utc(row.started_at).isoformat(),
        "finished_at": as_utc(row.finished_at).isoformat(),
    }


def list_runs(
    keel,
    actor: Actor,
    tenant_id: str,
    *,
    layer: str | None = None,
    name: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """A tenant's runs in the order they started, optionally of one layer or table; each carries its
    list position (``POSITION``) for the next page's ``after``."""
    if layer is not None and layer not in LAYERS:
        raise InvalidInput("layer", f"must be one of {', '.join(LAYERS)}")
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("pipeline", "*", tenant=tenant_id))
        query = sa.select(pipeline_runs).where(pipeline_runs.c.tenant_id == tenant_id)
        if layer:
            query = query.where(pipeline_runs.c.layer == layer)
        if name:
            query = query.where(pipeline_runs.c.name == name)
        if after:
            started, run_id = _position_of(after)
            query = query.where(
                sa.or_(
                    pipeline_runs.c.started_at > started,
                    sa.and_(pipeline_runs.c.started_at == started, pipeline_runs.c.id > run_id),
                )
            )
        order = (pipeline_runs.c.started_at, pipeline_runs.c.id)
        rows = uow.conn.execute(query.order_by(*order).limit(limit))
        return [view(r) | {POSITION: f"{as_utc(r.started_at).isoformat()}|{r.id}"} for r in rows]


def _position_of(after: str) -> tuple[dt.datetime, str]:
    """The (started_at, id) a list position names; ids sort by day only, so runs sort by start."""
    started, _, run_id = after.partition("|")
    try:
        return as_utc(dt.datetime.fromisoformat(started)), run_id
    except ValueError:
        raise InvalidInput("cursor", "is not a cursor this API issued; pass next_cursor unchanged") from None


def get_run(keel, actor: Actor, tenant_id: str, run_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("pipeline", run_id, tenant=tenant_id))
        row = uow.conn.execute(
            sa.select(pipeline_runs).where(
                pipeline_runs.c.id == run_id, pipeline_runs.c.tenant_id == tenant_id
            )
        ).first()
    if row is None:
        raise NotFound("pipeline run", run_id)
    return view(row)
