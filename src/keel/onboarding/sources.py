"""Stories 02 and 02b: a tenant's source, from the Data Engineer's request to READY.

Lifecycle::

    REQUESTED (DE, TA) --register (PA, binds a connector of the tenant)--> REGISTERED
    REGISTERED --validate (SA: credentials stored, scoped, accepted by the source)--> VALIDATED
    REGISTERED --validate, compliance refused (SA)--> BLOCKED (final; the tenant asks again)
    VALIDATED --preflight with test records (PA)--> ACTIVE   (``source.onboarded``)
    ACTIVE --handshake (PA): connection, credential use, schema vs Raw contract--> READY
    any check failing --> FAILED (the step can be run again once the cause is fixed)

Only a READY source is ingested. Receipts: ``source.onboarding`` (source, status,
onboarded_by, validated_by, timestamp) and ``connector.handshake`` (connector,
handshake, schema_check, validated_by, status).

A source may be linked to a Raw contract (03a): in its request, or later by its Data
Engineer or Tenant Admin (``link_raw_contract``). The handshake then checks each stream
against the contract's dataset for it, and every ingestion run watches for drift
(``drift.py``); ``expected_schemas`` serve the streams the contract does not cover and
sources without a contract.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.contracts.registry import record_usage
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.onboarding import deployment, drift, preflight
from keel.onboarding.paging import keyset
from keel.onboarding.probe import ProbeReport, probe
from keel.onboarding.schema_check import check_expected
from keel.store.tables import sources
from keel.tenants.service import load_tenant

TEST_RECORDS = 5
_KEY = re.compile(r"[^a-z0-9]+")


def resource(tenant_id: str, source_id: str) -> Resource:
    return Resource("source", source_id, tenant=tenant_id)


def request(
    keel,
    actor: Actor,
    tenant_id: str,
    *,
    name: str,
    streams: list[str],
    justification: str,
    connector_id: str | None = None,
    expected_schemas: dict | None = None,
    raw_contract: str | None = None,
) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "source:Request", resource(tenant_id, "new"))
        deployment.require_active_tenant(uow.conn, tenant_id)
        if not isinstance(name, str) or not name.strip() or len(name) > deployment.NAME_MAX:
            raise InvalidInput("name", f"must be 1 to {deployment.NAME_MAX} characters")
        key = _KEY.sub("_", name.lower()).strip("_")[:63]
        if not key or not key[0].isalpha():
            raise InvalidInput("name", "must start with a letter")
        if (
            not streams
            or len(set(streams)) != len(streams)
            or not all(isinstance(s, str) and s for s in streams)
        ):
            raise InvalidInput("streams", "must list one or more distinct stream names")
        expected = check_expected("expected_schemas", expected_schemas or {})
        unknown = sorted(set(expected) - set(streams))
        if unknown:
            raise InvalidInput(f"expected_schemas.{unknown[0]}", "is not one of the requested streams")
        if connector_id is not None:
            deployment.load(uow.conn, tenant_id, connector_id)
        link = None
        if raw_contract is not None:
            link = drift.check_link(uow.conn, tenant_id, raw_contract, key, streams, field="raw_contract")
        taken = uow.conn.execute(
            sa.select(sources.c.id).where(
                sources.c.tenant_id == tenant_id, sa.or_(sources.c.name == name, sources.c.key == key)
            )
        ).first()
        if taken is not None:
            raise Conflict(f"tenant already has a source named '{name}'", name=name)
        source_id = new_id("SRC")
        now = utcnow()
        uow.conn.execute(
            sources.insert().values(
                id=source_id,
                tenant_id=tenant_id,
                name=name,
                key=key,
                connector_id=connector_id or "",
                streams=list(streams),
                expected_schemas=expected,
                raw_contract_id=link.contract_id if link else None,
                justification=justification or "",
                status="REQUESTED",
                requested_by=actor.user_id,
                created_at=now,
                updated_at=now,
            )
        )
        uow.record(
            "source.requested",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            source_id=source_id,
            name=name,
            streams=list(streams),
            raw_contract=link.key if link else None,
        )
        if link is not None:
            record_usage(uow.conn, link.contract_id, "raw", tenant_id, "source")
        uow.commit()
        return view(load(uow.conn, tenant_id, source_id))


def link_raw_contract(keel, actor: Actor, tenant_id: str, source_id: str, raw_contract: str) -> dict:
    """DE or TA: check the source's streams against Raw contract ``raw_contract`` from now on.

    The contract must be a raw one, global or the tenant's, with a published version and a
    dataset for one of the source's streams. Runs check the version the tenant runs then.
    """
    with keel.uow() as uow:
        keel.authorize(uow, actor, "source:Request", resource(tenant_id, source_id))
        row = load(uow.conn, tenant_id, source_id, lock=True)
        deployment.require_active_tenant(uow.conn, tenant_id)
        if row.status == "BLOCKED":
            raise Conflict(f"source '{row.name}' is BLOCKED; the tenant requests it again", state=row.status)
        link = drift.check_link(uow.conn, tenant_id, raw_contract, row.key, row.streams, field="raw_contract")
        _update(uow.conn, row, raw_contract_id=link.contract_id)
        uow.record(
            "source.raw_contract.linked",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            source_id=row.id,
            raw_contract=link.key,
            previous=row.raw_contract_id,
        )
        if link.contract_id != row.raw_contract_id:
            record_usage(uow.conn, link.contract_id, "raw", tenant_id, "source")
        uow.commit()
        return view(load(uow.conn, tenant_id, source_id))


def register(keel, actor: Actor, tenant_id: str, source_id: str, *, connector_id: str | None = None) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "source:Register", resource(tenant_id, source_id))
        row = load(uow.conn, tenant_id, source_id, lock=True)
        _require(row, "REQUESTED")
        chosen = connector_id or row.connector_id
        if not chosen:
            raise InvalidInput("connector_id", "is required: the request names no connector")
        connector = deployment.load(uow.conn, tenant_id, chosen)
        _update(uow.conn, row, status="REGISTERED", connector_id=connector.id, registered_by=actor.user_id)
        uow.record(
            "source.registered",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            source_id=row.id,
            connector_id=connector.id,
        )
        uow.commit()
        return view(load(uow.conn, tenant_id, source_id))


def validate(
    keel, actor: Actor, tenant_id: str, source_id: str, *, compliant: bool = True, reason: str = ""
) -> dict:
    """SA: the connector's credentials are stored, scoped and accepted by the source (02 step 4).

    ``compliant=False`` blocks the source for a compliance reason the SA names.
    """
    with keel.uow() as uow:
        keel.authorize(uow, actor, "source:Validate", resource(tenant_id, source_id))
        row = load(uow.conn, tenant_id, source_id)
        deployment.require_active_tenant(uow.conn, tenant_id)
        _require(row, "REGISTERED", "FAILED")
        if not compliant:
            if not reason.strip():
                raise InvalidInput("reason", "is required when blocking a source")
            _update(
                uow.conn,
                row,
                status="BLOCKED",
                validated_by=actor.user_id,
                last_error={"failure": "compliance", "message": reason, "at": utcnow().isoformat()},
            )
            uow.record("source.blocked", actor_id=actor.user_id, tenant_id=tenant_id, source_id=row.id)
            metrics.outcome(uow.conn, "onboarding_success_rate", False, tenant_id)
            uow.commit()
            return view(load(uow.conn, tenant_id, source_id))
        connector = deployment.load(uow.conn, tenant_id, row.connector_id)
        problems = deployment.secret_problems(keel, uow.conn, connector)
        config = deployment.runtime_config(keel, uow.conn, connector) if not problems else None
    report = probe(deployment.instance(keel, connector), config) if config is not None else None
    with keel.uow() as uow:
        row = load(uow.conn, tenant_id, source_id, lock=True)
        _require(row, "REGISTERED", "FAILED")
        now = utcnow()
        passed = not problems and report is not None and report.passed
        metrics.outcome(uow.conn, "validation_success_rate", passed, tenant_id)
        if passed:
            _update(uow.conn, row, status="VALIDATED", validated_by=actor.user_id, last_error=None)
            uow.record(
                "source.validated",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                source_id=row.id,
                connector_id=connector.id,
            )
        else:
            if report is None:
                report = ProbeReport(failure="secrets", message="; ".join(problems))
            # A failed validation withdraws any earlier one: preflight needs a passing one.
            _update(
                uow.conn,
                row,
                status="FAILED",
                validated_by=None,
                last_error=preflight.failure_record(report, now),
            )
            preflight.record_failure(
                uow, actor, tenant_id, report, subject={"source_id": row.id}, event="source.validation.failed"
            )
        uow.commit()
        return view(load(uow.conn, tenant_id, source_id))


def run_preflight(keel, actor: Actor, tenant_id: str, source_id: str) -> dict:
    """02 step 5: connectivity, credentials, the streams exist, test records read (not kept)."""
    return _probe_step(keel, actor, tenant_id, source_id, step="preflight")


def handshake(keel, actor: Actor, tenant_id: str, source_id: str) -> dict:
    """02b: connection, credential use and the schema against the Raw contract; READY if all pass."""
    return _probe_step(keel, actor, tenant_id, source_id, step="handshake")


def _probe_step(keel, actor: Actor, tenant_id: str, source_id: str, *, step: str) -> dict:
    allowed = ("VALIDATED", "FAILED") if step == "preflight" else ("ACTIVE", "READY", "FAILED")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Preflight", resource(tenant_id, source_id))
        row = load(uow.conn, tenant_id, source_id)
        deployment.require_active_tenant(uow.conn, tenant_id)
        _require(row, *allowed)
        if row.validated_by is None:
            raise Conflict(f"source '{row.name}' has no passing validation by a Security Admin yet")
        if step == "handshake" and row.status == "FAILED" and not (row.preflight or {}).get("onboarded"):
            raise Conflict(f"source '{row.name}' has not passed its preflight yet: run preflight first")
        connector = deployment.load(uow.conn, tenant_id, row.connector_id)
        if connector.status != "ACTIVE":
            raise Conflict(
                f"connector '{connector.name}' is {connector.status}: it must be ACTIVE",
                connector_id=connector.id,
            )
        problems = deployment.secret_problems(keel, uow.conn, connector) if step == "handshake" else []
        config = None if problems else deployment.runtime_config(keel, uow.conn, connector)
        expected = _expected_schemas(uow.conn, row) if step == "handshake" else None
    if problems:
        report = ProbeReport(failure="credential_use", message="; ".join(problems))
    else:
        report = probe(
            deployment.instance(keel, connector),
            config,
            streams=row.streams,
            expected=expected,
            test_records=TEST_RECORDS if step == "preflight" else 0,
        )
    with keel.uow() as uow:
        row = load(uow.conn, tenant_id, source_id, lock=True)
        _require(row, *allowed)
        now = utcnow()
        result = {
            **report.as_dict(),
            "step": step,
            "run_by": actor.user_id,
            "at": now.isoformat(),
            "onboarded": step == "handshake" or report.passed,
        }
        if not problems:  # the source was asked: a latency was measured
            metrics.record(uow.conn, "connection_test_latency", report.latency_ms, tenant_id, source=row.id)
        if step == "preflight":
            _finish_preflight(uow, actor, row, connector, report, result, now)
        else:
            _finish_handshake(uow, actor, row, connector, report, result, now)
        uow.commit()
        return view(load(uow.conn, tenant_id, source_id))


def _expected_schemas(conn: Connection, row) -> dict:
    """What the handshake checks each stream against: its Raw contract dataset, if the source has
    a contract with one, else the stream's ``expected_schemas``."""
    if not row.raw_contract_id:
        return row.expected_schemas
    link = drift.resolve(conn, row.tenant_id, row.raw_contract_id, field="raw_contract")
    return {**row.expected_schemas, **drift.expected_schemas(link, row.key, row.streams)}


def _finish_preflight(uow, actor, row, connector, report: ProbeReport, result: dict, now) -> None:
    metrics.outcome(uow.conn, "onboarding_success_rate", report.passed, row.tenant_id)
    if not report.passed:
        _update(
            uow.conn, row, status="FAILED", preflight=result, last_error=preflight.failure_record(report, now)
        )
        preflight.record_failure(
            uow, actor, row.tenant_id, report, subject={"source_id": row.id}, event="source.preflight.failed"
        )
        return
    _update(uow.conn, row, status="ACTIVE", preflight=result, last_error=None)
    body = {
        "source": row.name,
        "source_id": row.id,
        "status": "ACTIVE",
        "connector": connector.name,
        "onboarded_by": actor.user_id,
        "requested_by": row.requested_by,
        "registered_by": row.registered_by,
        "validated_by": row.validated_by,
        "test_records": report.test_records,
        "timestamp": now.isoformat(),
    }
    receipts.issue(
        uow.conn, "source.onboarding", subject_id=row.id, tenant_id=row.tenant_id, body=body, at=now
    )
    uow.record(
        "source.onboarded",
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        source_id=row.id,
        connector_id=connector.id,
        validated_by=row.validated_by,
    )


def _finish_handshake(uow, actor, row, connector, report: ProbeReport, result: dict, now) -> None:
    metrics.outcome(uow.conn, "handshake_success_rate", report.passed, row.tenant_id)
    if report.schema:
        metrics.outcome(
            uow.conn, "schema_validation_pass_rate", report.schema_status == "PASS", row.tenant_id
        )
    status = "READY" if report.passed else "FAILED"
    handshake = (
        "complete" if report.failure not in ("unreachable", "auth", "config", "credential_use") else "failed"
    )
    body = {
        "connector": connector.name,
        "connector_id": connector.id,
        "source": row.name,
        "source_id": row.id,
        "handshake": handshake,
        "schema_check": report.schema_status,
        "validated_by": row.validated_by,
        "run_by": actor.user_id,
        "status": status,
        "timestamp": now.isoformat(),
    }
    receipts.issue(
        uow.conn, "connector.handshake", subject_id=row.id, tenant_id=row.tenant_id, body=body, at=now
    )
    uow.record(
        "connector.handshake",
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        source_id=row.id,
        connector_id=connector.id,
        handshake=handshake,
        schema_check=report.schema_status,
        status=status,
    )
    if report.passed:
        _update(uow.conn, row, status="READY", preflight=result, last_error=None)
        uow.record(
            "connector.validated",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            connector_id=connector.id,
            source_id=row.id,
            check="handshake",
            passed=True,
        )
    else:
        _update(
            uow.conn, row, status="FAILED", preflight=result, last_error=preflight.failure_record(report, now)
        )
        preflight.record_failure(
            uow,
            actor,
            row.tenant_id,
            report,
            subject={"source_id": row.id},
            event="connector.handshake.failed",
        )


def get(keel, actor: Actor, tenant_id: str, source_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", resource(tenant_id, source_id))
        row = load(uow.conn, tenant_id, source_id)
        return view(row)


def list_for_tenant(keel, actor: Actor, tenant_id: str, *, after: str | None, limit: int) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", resource(tenant_id, "*"))
        load_tenant(uow.conn, tenant_id)
        query = keyset(sources, sources.c.tenant_id == tenant_id, after=after, limit=limit)
        return [view(r) for r in uow.conn.execute(query)]


def load(conn: Connection, tenant_id: str, source_id: str, *, lock: bool = False):
    query = sa.select(sources).where(sources.c.id == source_id, sources.c.tenant_id == tenant_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("source", source_id)
    return row


def view(row) -> dict:
    return {
        "source_id": row.id,
        "tenant_id": row.tenant_id,
        "name": row.name,
        "key": row.key,
        "connector_id": row.connector_id or None,
        "streams": row.streams,
        "expected_schemas": row.expected_schemas,
        "raw_contract": row.raw_contract_id,
        "justification": row.justification,
        "status": row.status,
        "requested_by": row.requested_by,
        "registered_by": row.registered_by,
        "validated_by": row.validated_by,
        "preflight": row.preflight,
        "last_error": row.last_error,
        "created_at": as_utc(row.created_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
    }


def _require(row, *states: str) -> None:
    if row.status not in states:
        raise Conflict(
            f"source '{row.name}' is {row.status}; this step needs {' or '.join(states)}", state=row.status
        )


def _update(conn: Connection, row, **values) -> None:
    conn.execute(sources.update().where(sources.c.id == row.id).values(**values, updated_at=utcnow()))
