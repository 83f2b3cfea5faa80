"""Open an incident and fire its alert, inside the caller's unit of work."""

from __future__ import annotations

from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.store.tables import incidents


def open_incident(
    uow,
    actor: Actor,
    *,
    kind: str,
    summary: str,
    severity: str = "SEV2",
    details: dict | None = None,
    tenant_id: str | None = None,
) -> str:
    """Insert an OPEN incident, record ``incident.opened`` and ``alert.fired``; return its id.

    ``details`` stay in the incident row (they may name server paths); the ledger
    events carry only the incident id, its kind and severity.
    """
    incident_id = new_id("INC")
    uow.conn.execute(
        incidents.insert().values(
            id=incident_id,
            tenant_id=tenant_id,
            kind=kind,
            severity=severity,
            status="OPEN",
            summary=summary,
            details=details or {},
            created_at=utcnow(),
        )
    )
    event = {"incident_id": incident_id, "kind": kind, "severity": severity}
    uow.record("incident.opened", actor_id=actor.user_id, tenant_id=tenant_id, **event)
    uow.record("alert.fired", actor_id=actor.user_id, tenant_id=tenant_id, **event)
    metrics.record(uow.conn, "incident_count", 1, tenant_id)
    return incident_id
