"""Lineage records (05): capture a run's OpenLineage events, send them, read them back.

``capture`` runs inside the caller's unit of work (the one that records the run): it stores the
run's START and COMPLETE/FAIL events, records ``lineage.captured`` and the ``lineage_link_rate``
outcome. A run without column lineage is still recorded, and opens a ``lineage_gap`` incident;
the next run of the same job captured with lineage closes it (``incident.resolved``).
``send`` POSTs stored events to the OpenLineage endpoint after the commit; a failed send is
logged and marked on the record, it never fails the build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

import httpx
import sqlalchemy as sa

from keel.identity.actor import SYSTEM, Actor
from keel.kernel.clock import utcnow
from keel.kernel.ids import new_id
from keel.lineage import events as ol
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.pipeline.model import RunResult
from keel.store.tables import incidents, lineage_events

log = logging.getLogger(__name__)

GAP = "lineage_gap"


def capture(
    uow,
    tenant_id: str,
    run: RunResult,
    lineage: ol.Lineage | None,
    *,
    actor: Actor = SYSTEM,
    pipeline_run_id: str | None = None,
) -> list[str]:
    """Store the run's events; returns the ids of the stored records (to ``send`` after commit).
    ``pipeline_run_id`` names the run's ``pipeline_runs`` row in ``lineage.captured``: the evidence
    the completeness check (``keel.evidence.completeness``) looks for."""
    lineage = lineage or {}
    columns = ol.lineage_columns(lineage)
    run_id = ol.new_run_id()
    job = ol.job_name(run)
    ids = []
    now = utcnow()
    for event in ol.run_events(tenant_id, run, lineage, run_id):
        record_id = new_id("LIN")
        uow.conn.execute(
            lineage_events.insert().values(
                id=record_id,
                tenant_id=tenant_id,
                run_id=run_id,
                job=job,
                event_type=event["eventType"],
                layer=run.layer,
                contract=run.contract,
                table_name=run.table,
                event=event,
                columns=columns,
                sent=None,
                send_error=None,
                event_time=datetime.fromisoformat(event["eventTime"]),
                created_at=now,
            )
        )
        ids.append(record_id)
    uow.record(
        "lineage.captured",
        actor_id=actor.user_id,
        tenant_id=tenant_id,
        run_id=run_id,
        job=job,
        contract=run.contract,
        state="COMPLETE" if run.ok else "FAIL",
        columns=columns,
        pipeline_run_id=pipeline_run_id,
    )
    metrics.outcome(uow.conn, "lineage_link_rate", columns > 0, tenant_id)
    if columns == 0:
        open_incident(
            uow,
            actor,
            kind=GAP,
            summary=f"run of {job} ({run.contract}) has no column lineage",
            tenant_id=tenant_id,
            details={"job": job, "run_id": run_id, "contract": run.contract, "table": run.table},
        )
    elif run.ok:
        for incident_id in open_gaps(uow.conn, tenant_id, job):
            uow.conn.execute(
                incidents.update().where(incidents.c.id == incident_id).values(status="RESOLVED")
            )
            uow.record(
                "incident.resolved",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                incident_id=incident_id,
                kind=GAP,
                run_id=run_id,
            )
    return ids


def open_gaps(conn, tenant_id: str, job: str | None = None) -> list[str]:
    """The ids of the tenant's OPEN lineage-gap incidents (of one job)."""
    rows = conn.execute(
        sa.select(incidents.c.id, incidents.c.details).where(
            incidents.c.tenant_id == tenant_id, incidents.c.kind == GAP, incidents.c.status == "OPEN"
        )
    )
    return [r.id for r in rows if job is None or (r.details or {}).get("job") == job]


def send(keel, ids: Iterable[str]) -> None:
    """POST each stored event to ``<openlineage_url>/api/v1/lineage``; mark each record sent/failed."""
    url = keel.settings.openlineage_url
    ids = list(ids)
    if not url or not ids:
        return
    endpoint = url.rstrip("/") + "/api/v1/lineage"
    with keel.uow() as uow:
        rows = list(
            uow.conn.execute(
                sa.select(lineage_events.c.id, lineage_events.c.event)
                .where(lineage_events.c.id.in_(ids))
                .order_by(lineage_events.c.event_time, lineage_events.c.id)
            )
        )
    outcome: dict[str, str | None] = {}
    with httpx.Client(timeout=keel.settings.openlineage_timeout_seconds) as client:
        for row in rows:
            try:
                response = client.post(endpoint, json=row.event)
                response.raise_for_status()
                outcome[row.id] = None
            except httpx.HTTPError as error:
                log.warning("lineage event %s not sent to %s: %s", row.id, endpoint, error)
                outcome[row.id] = f"{type(error).__name__}: {error}"[:500]
    with keel.uow() as uow:
        for record_id, error in outcome.items():
            uow.conn.execute(
                lineage_events.update()
                .where(lineage_events.c.id == record_id)
                .values(sent="failed" if error else "sent", send_error=error)
            )
        uow.commit()


def view(row) -> dict:
    return {
        "record_id": row.id,
        "tenant_id": row.tenant_id,
        "run_id": row.run_id,
        "job": row.job,
        "event_type": row.event_type,
        "layer": row.layer,
        "contract": row.contract,
        "table": row.table_name,
        "columns": row.columns,
        "sent": row.sent,
        "send_error": row.send_error,
        "event_time": row.event_time.isoformat() if row.event_time else None,
        "event": row.event,
    }


def list_records(conn, tenant_id: str, *, job: str | None = None, after: str | None = None,
                 limit: int = 50) -> list[dict]:  # fmt: skip
    query = sa.select(lineage_events).where(lineage_events.c.tenant_id == tenant_id)
    if job:
        query = query.where(lineage_events.c.job == job)
    if after:
        query = query.where(lineage_events.c.id > after)
    return [view(r) for r in conn.execute(query.order_by(lineage_events.c.id).limit(limit))]


def graph(conn, tenant_id: str) -> dict:
    """Nodes raw -> gdp -> kpi with the column edges of each job's latest COMPLETE event."""
    rows = conn.execute(
        sa.select(lineage_events)
        .where(lineage_events.c.tenant_id == tenant_id, lineage_events.c.event_type == "COMPLETE")
        .order_by(lineage_events.c.event_time, lineage_events.c.id)
    )
    latest = {r.job: r for r in rows}  # the newest COMPLETE event per job wins
    nodes: dict[str, dict] = {}
    edges: list[dict] = []
    datasets: set[tuple[str, str]] = set()

    def node(name: str, **extra) -> None:
        layer = name.split(".", 1)[0] if "." in name else "raw"
        nodes.setdefault(name, {"id": name, "layer": layer}).update(extra)

    for job, row in sorted(latest.items()):
        event = row.event
        node(job, contract=row.contract, table=row.table_name, run_id=row.run_id)
        for source in event.get("inputs") or []:
            node(source["name"])
            datasets.add((source["name"], job))
        for edge in ol.column_edges(event):
            node(edge["from"].rsplit(".", 1)[0])
            edges.append(edge)
    order = {"raw": 0, "gdp": 1, "kpi": 2}
    return {
        "tenant_id": tenant_id,
        "nodes": sorted(nodes.values(), key=lambda n: (order.get(n["layer"], 0), n["id"])),
        "datasets": [{"from": a, "to": b} for a, b in sorted(datasets)],
        "edges": edges,
    }
