"""Story 13: connector health checks, failures handed to the Platform Admin, and recovery.

* A health check asks the source (``check``); each outcome feeds ``connector_uptime``.
  A failed check is ``connector.failure.detected`` with an alert, and counts against
  the connector's circuit breaker.
* An ingestion run retries transient failures itself (``keel.ingestion``). Recovered
  by a retry: ``connector.failure.detected`` → ``connector.recovery.started`` →
  ``connector.recovery.completed`` and a recovery receipt. Retries exhausted: the
  connector is FAILED, an incident is opened for the Platform Admin, the tenant's
  admins are notified (nobody to notify: the incident is escalated to SEV1).
* Manual recovery (PA) checks the source again and resumes every READY source of the
  connector from its last committed checkpoint; nothing committed is read twice.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.onboarding import breaker, deployment
from keel.onboarding.notify import notify_tenant_admins
from keel.store.tables import connectors, incidents


def check(keel, actor: Actor, tenant_id: str, connector_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:HealthCheck", deployment.resource(tenant_id, connector_id))
        row = deployment.load(uow.conn, tenant_id, connector_id)
        if row.status == "DEPLOYED":
            raise Conflict(f"connector '{row.name}' has no configuration to check yet")
        config = deployment.runtime_config(keel, uow.conn, row)
    result = deployment.instance(keel, row).check(config)
    with keel.uow() as uow:
        row = deployment.load(uow.conn, tenant_id, connector_id, lock=True)
        now = utcnow()
        metrics.outcome(uow.conn, "connector_uptime", result.ok, tenant_id)
        metrics.record(uow.conn, "connection_test_latency", result.latency_ms, tenant_id, connector=row.id)
        state = breaker.succeeded() if result.ok else breaker.failed(row.breaker, now, keel.settings)
        uow.conn.execute(
            connectors.update().where(connectors.c.id == row.id).values(breaker=state, updated_at=now)
        )
        incident_id = _open_health_incident(uow.conn, row)
        if result.ok and incident_id is not None:  # healthy again: the health incident is over
            uow.conn.execute(
                incidents.update().where(incidents.c.id == incident_id).values(status="RESOLVED")
            )
            uow.record(
                "incident.resolved", actor_id=actor.user_id, tenant_id=tenant_id, incident_id=incident_id
            )
            incident_id = None
        elif not result.ok and incident_id is None:  # one incident (and alert) per outage, not per check
            metrics.record(uow.conn, "connector_failure_count", 1, tenant_id)
            incident_id = open_incident(
                uow,
                actor,
                kind="connector_health",
                summary=f"connector {row.name}: {result.message}",
                details={"connector_id": row.id, "failure": result.failure},
                tenant_id=tenant_id,
            )
            uow.record(
                "connector.failure.detected",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                connector_id=row.id,
                failure=result.failure,
                source="health_check",
                incident_id=incident_id,
            )
        uow.record(
            "connector.health.checked",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            connector_id=row.id,
            healthy=result.ok,
        )
        uow.commit()
        return {
            "connector_id": row.id,
            "healthy": result.ok,
            "failure": result.failure,
            "message": result.message,
            "latency_ms": round(result.latency_ms, 3),
            "breaker": state,
            "incident_id": incident_id,
        }


def _open_health_incident(conn, row) -> str | None:
    """The OPEN health incident of this connector, if its outage is already known."""
    found = conn.execute(
        sa.select(incidents.c.id, incidents.c.details).where(
            incidents.c.tenant_id == row.tenant_id,
            incidents.c.kind == "connector_health",
            incidents.c.status == "OPEN",
        )
    ).all()
    return next((i.id for i in found if (i.details or {}).get("connector_id") == row.id), None)


def retried_and_recovered(uow, actor: Actor, row, *, failure: str, retries: int, started: datetime) -> str:
    """A run that failed and then succeeded on retry: evidence both halves and issue a receipt."""
    now = utcnow()
    subject = {"connector_id": row.id}
    uow.record(
        "connector.failure.detected",
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        failure=failure,
        source="ingestion",
        **subject,
    )
    uow.record(
        "connector.recovery.started", actor_id=actor.user_id, tenant_id=row.tenant_id, mode="retry", **subject
    )
    metrics.record(uow.conn, "connector_failure_count", 1, row.tenant_id)
    return _recovered(uow, actor, row, failure=failure, retries=retries, mode="retry", since=started, at=now)


def retries_exhausted(uow, actor: Actor, row, *, failure: str, message: str, retries: int) -> dict:
    """Hand the connector to the Platform Admin: FAILED, breaker open, incident, tenant told."""
    now = utcnow()
    incident_id = open_incident(
        uow,
        actor,
        kind="connector_failure",
        severity="SEV2",
        summary=f"connector {row.name}: {failure} after {retries} retries; a Platform Admin recovers it",
        details={"connector_id": row.id, "failure": failure, "message": message, "retries": retries},
        tenant_id=row.tenant_id,
    )
    error = {
        "stage": "ingestion",
        "failure": failure,
        "message": message,
        "retries": retries,
        "at": now.isoformat(),
        "incident_id": incident_id,
    }
    state = breaker.opened(now, int(row.breaker.get("failures", 0)) + 1)
    uow.conn.execute(
        connectors.update()
        .where(connectors.c.id == row.id)
        .values(status="FAILED", last_error=error, breaker=state, updated_at=now)
    )
    metrics.record(uow.conn, "connector_failure_count", 1, row.tenant_id)
    uow.record(
        "connector.failure.detected",
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        connector_id=row.id,
        failure=failure,
        source="ingestion",
        retries=retries,
        incident_id=incident_id,
    )
    told = notify_tenant_admins(
        uow,
        actor,
        row.tenant_id,
        f"Connector {row.name} failed",
        {
            "connector_id": row.id,
            "failure": failure,
            "retries": retries,
            "incident_id": incident_id,
            "next": "a Platform Admin recovers it; ingested data is kept",
        },
    )
    if not told:  # "notice fails → escalate"
        uow.conn.execute(incidents.update().where(incidents.c.id == incident_id).values(severity="SEV1"))
        uow.record(
            "incident.escalated",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            incident_id=incident_id,
            reason="no tenant admin could be notified",
        )
    return error


def begin_recovery(keel, actor: Actor, tenant_id: str, connector_id: str):
    """Authorize and start a manual recovery; return the connector row and its runtime config."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Recover", deployment.resource(tenant_id, connector_id))
        row = deployment.load(uow.conn, tenant_id, connector_id, lock=True)
        deployment.require_active_tenant(uow.conn, tenant_id)
        if row.status != "FAILED" or not row.last_error or row.validated_by is None:
            raise Conflict(
                f"connector '{row.name}' is {row.status}: only a FAILED connector that was ACTIVE "
                "is recovered; a new configuration goes through preflight instead"
            )
        uow.record(
            "connector.recovery.started",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            connector_id=row.id,
            mode="manual",
            failure=row.last_error.get("failure"),
        )
        uow.commit()
        return row, deployment.runtime_config(keel, uow.conn, row)


def finish_recovery(uow, actor: Actor, row, *, ok: bool, message: str, runs: list[str]) -> dict:
    error = row.last_error or {}
    if not ok:
        now = utcnow()
        body = {
            "connector_id": row.id,
            "failure": error.get("failure"),
            "retries": error.get("retries", 0),
            "status": "failed",
            "message": message,
            "runs": runs,
            "timestamp": now.isoformat(),
        }
        receipt = receipts.issue(
            uow.conn, "connector.recovery", subject_id=row.id, tenant_id=row.tenant_id, body=body, at=now
        )
        uow.record(
            "connector.recovery.failed",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            connector_id=row.id,
            receipt_id=receipt,
        )
        return {"status": "failed", "message": message, "receipt_id": receipt}
    since = datetime.fromisoformat(error["at"]) if error.get("at") else utcnow()
    uow.conn.execute(
        connectors.update()
        .where(connectors.c.id == row.id)
        .values(status="ACTIVE", last_error=None, breaker=breaker.succeeded(), updated_at=utcnow())
    )
    if error.get("incident_id"):
        uow.conn.execute(
            incidents.update().where(incidents.c.id == error["incident_id"]).values(status="RESOLVED")
        )
    receipt = _recovered(
        uow,
        actor,
        row,
        failure=error.get("failure", "unknown"),
        retries=error.get("retries", 0),
        mode="manual",
        since=since,
        at=utcnow(),
        runs=runs,
        incident_id=error.get("incident_id"),
    )
    return {"status": "recovered", "receipt_id": receipt}


def _recovered(uow, actor, row, *, failure, retries, mode, since, at, runs=(), incident_id=None) -> str:
    seconds = max((at - since).total_seconds(), 0.0)
    metrics.record(uow.conn, "mean_time_to_recover", seconds, row.tenant_id)
    body = {
        "connector_id": row.id,
        "connector": row.name,
        "failure": failure,
        "retries": retries,
        "status": "recovered",
        "mode": mode,
        "recovered_by": actor.user_id,
        "runs": list(runs),
        "incident_id": incident_id,
        "time_to_recover_seconds": round(seconds, 3),
        "timestamp": at.isoformat(),
    }
    receipt = receipts.issue(
        uow.conn, "connector.recovery", subject_id=row.id, tenant_id=row.tenant_id, body=body, at=at
    )
    uow.record(
        "connector.recovery.completed",
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        connector_id=row.id,
        mode=mode,
        retries=retries,
        receipt_id=receipt,
    )
    return receipt
