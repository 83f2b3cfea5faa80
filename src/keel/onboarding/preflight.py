"""Connector preflight (00b step 2) and the failures every probe can end in.

Preflight checks connectivity and credentials and discovers the streams; it runs
outside the store's write transaction and records its report against the
configuration version it tested. What a failed probe leaves behind:

* bad credentials (``auth``): the connector is FAILED, the failure is logged and
  evidenced (``connector.preflight.failed``); no alert, the fix is the tenant's;
* unreachable network: FAILED as well, plus an incident and ``alert.fired``;
* schema mismatch (handshake only): FAILED and an incident ticket for the steward.
"""

from __future__ import annotations

from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.onboarding import deployment
from keel.onboarding.probe import ProbeReport, probe
from keel.store.tables import connectors

# Failures that page someone, and the incident kind they open.
ALERTING = {"unreachable": "connector_unreachable", "schema": "schema_mismatch"}


def run(keel, actor: Actor, tenant_id: str, connector_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Preflight", deployment.resource(tenant_id, connector_id))
        row = deployment.load(uow.conn, tenant_id, connector_id)
        deployment.require_active_tenant(uow.conn, tenant_id)
        deployment.require_checkable(row)
        if row.status == "DEPLOYED":
            raise Conflict(
                f"connector '{row.name}' has no configuration yet: its Data Engineer configures it first"
            )
        config = deployment.runtime_config(keel, uow.conn, row)
        version = row.config_version
    report = probe(deployment.instance(keel, row), config)
    with keel.uow() as uow:
        row = deployment.load(uow.conn, tenant_id, connector_id, lock=True)
        if row.config_version != version:
            raise Conflict("the configuration changed while preflight ran: run preflight again")
        now = utcnow()
        result = {
            **report.as_dict(),
            "config_version": version,
            "run_by": actor.user_id,
            "at": now.isoformat(),
        }
        metrics.record(uow.conn, "connection_test_latency", report.latency_ms, tenant_id, connector=row.id)
        metrics.outcome(uow.conn, "validation_success_rate", report.passed, tenant_id)
        values: dict = {"preflight": result, "updated_at": now}
        if report.passed:
            uow.conn.execute(connectors.update().where(connectors.c.id == row.id).values(**values))
            uow.record(
                "connector.validated",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                connector_id=row.id,
                check="preflight",
                config_version=version,
                passed=True,
            )
            deployment.activate_if_ready(uow, deployment.load(uow.conn, tenant_id, connector_id))
        else:
            values.update(status="FAILED", last_error=failure_record(report, now))
            uow.conn.execute(connectors.update().where(connectors.c.id == row.id).values(**values))
            record_failure(
                uow,
                actor,
                tenant_id,
                report,
                subject={"connector_id": row.id, "connector": row.name},
                event="connector.preflight.failed",
            )
        uow.commit()
        return {**deployment.view(deployment.load(uow.conn, tenant_id, connector_id)), "report": result}


def failure_record(report: ProbeReport, at) -> dict:
    return {"failure": report.failure, "message": report.message, "at": at.isoformat(), "stage": "checks"}


def record_failure(
    uow, actor: Actor, tenant_id: str, report: ProbeReport, *, subject: dict, event: str
) -> None:
    """Evidence a failed probe; open an incident (and alert) where the failure calls for one."""
    incident_id = None
    kind = ALERTING.get(report.failure or "")
    if kind is not None:
        incident_id = open_incident(
            uow,
            actor,
            kind=kind,
            summary=f"{', '.join(f'{k}={v}' for k, v in subject.items())}: {report.message}",
            details={
                **subject,
                "failure": report.failure,
                "message": report.message,
                "schema": report.schema,
            },
            tenant_id=tenant_id,
        )
    uow.record(
        event,
        actor_id=actor.user_id,
        tenant_id=tenant_id,
        failure=report.failure,
        incident_id=incident_id,
        **subject,
    )
