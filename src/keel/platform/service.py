"""Story 00a: PA requests a deployment from a template, PO approves, PA deploys, SA validates.

Deploying provisions the control plane (store at the newest migration, writable),
the data plane (tenant storage root, DuckDB) and the shared services (secrets round
trip, the ledger's Ed25519 signing key, the metrics collector); see ``parts``.

Lifecycle and what each refusal leaves behind::

    REQUESTED --approve (PO, not the requester)--> APPROVED --execute (PA)--> DEPLOYED
    DEPLOYED --validate (SA)--> VALIDATED, receipt status=SUCCESS
    DEPLOYED --reject (SA) or IAM invalid at validation--> ROLLED_BACK
    APPROVED --execute, IAM invalid--> ROLLED_BACK (nothing it created survives)
    APPROVED --execute, template does not fit this installation--> FAILED
    APPROVED --execute, dependency missing--> stays APPROVED, incident + ``alert.fired``

* Template errors. A template that does not parse is refused when the deployment is
  requested: 422 naming the field, and no deployment record is persisted (there is
  no job to fail yet); the refusal is logged and evidenced as
  ``infra.template.rejected``. A template that parses but does not describe this
  installation (it names another control-plane store) fails the job when it runs:
  the deployment becomes FAILED with the reason, ``infra.deployment.failed`` is
  recorded, and 422 names the field; nothing is provisioned.
* IAM invalid (a required role that no active provider user holds). At execution the
  unit of work rolls back, so the signing key and the data-plane root it created are
  gone, then the deployment is marked ROLLED_BACK with ``infra.rolled_back`` and
  ``rollback_count``. At validation, like an SA rejection: a committed deployment is
  rolled back by removing what it made and nothing has used since. The evidence
  signing key is always kept then: tree heads it signed are already in the ledger.
* Dependency missing (store not at the newest migration, data-plane root not a
  writable directory, DuckDB unusable). Nothing is created; an incident is opened
  with ``incident.opened`` and ``alert.fired``, and the deployment stays APPROVED so
  the PA can run it again once the dependency is fixed.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.evidence import receipts
from keel.evidence.canonical import sha256_text
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.platform import parts as deploy_parts
from keel.platform.errors import DependencyMissing, IamInvalid, TemplateMismatch
from keel.platform.template import DEFAULT_TEMPLATE, check_fits, parse_template
from keel.store.tables import deployments, user_roles, users

log = logging.getLogger("keel.platform")

PARTS = deploy_parts.PARTS


def _resource(dep_id: str, row=None, *, executing: bool = False) -> Resource:
    """The deployment as Cedar sees it, for separation of duties.

    The requester counts as the change's author when it is approved or signed off
    (nobody approves their own request), but not when it is executed: the stories
    have the Platform Admin both request and deploy, after someone else approved.
    """
    if row is None:
        return Resource("deployment", dep_id, tenant="")
    return Resource(
        "deployment",
        dep_id,
        tenant="",
        drafted_by="" if executing else row.requested_by,
        approved_by=frozenset([row.approved_by]) if row.approved_by else frozenset(),
        deployed_by=row.deployed_by or "",
    )


def request_deployment(keel, actor: Actor, template: object | None = None) -> dict:
    try:
        with keel.uow() as uow:
            keel.authorize(uow, actor, "platform:Deploy", _resource("new"))
            parsed = parse_template(template if template is not None else DEFAULT_TEMPLATE)
            dep_id = new_id("DEP")
            now = utcnow()
            uow.conn.execute(
                deployments.insert().values(
                    id=dep_id,
                    template=parsed.model_dump(),
                    status="REQUESTED",
                    parts={p: {"status": "pending"} for p in PARTS},
                    requested_by=actor.user_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            uow.record(
                "infra.deployment.requested",
                actor_id=actor.user_id,
                tenant_id=None,
                deployment_id=dep_id,
                template=parsed.name,
                template_version=parsed.version,
            )
            uow.commit()
    except InvalidInput as refused:
        log.warning("deployment template refused: %s", refused.detail)
        with keel.uow() as uow:
            # Only the field: the offending value is the caller's input, kept out of the ledger.
            uow.record(
                "infra.template.rejected",
                actor_id=actor.user_id,
                tenant_id=None,
                field=refused.fields.get("field"),
            )
            uow.commit()
        raise
    return get_deployment(keel, actor, dep_id)


def approve_deployment(keel, actor: Actor, dep_id: str) -> dict:
    with keel.uow() as uow:
        row = _load(uow.conn, dep_id, lock=True)
        keel.authorize(uow, actor, "platform:ApproveDeployment", _resource(dep_id, row))
        _require_status(row, "REQUESTED")
        uow.conn.execute(
            deployments.update()
            .where(deployments.c.id == dep_id)
            .values(status="APPROVED", approved_by=actor.user_id, updated_at=utcnow())
        )
        uow.record("infra.deployment.approved", actor_id=actor.user_id, tenant_id=None, deployment_id=dep_id)
        uow.commit()
    return get_deployment(keel, actor, dep_id)


def execute_deployment(keel, actor: Actor, dep_id: str) -> dict:
    """Check dependencies, provision every part, validate IAM; see the module docstring for failures."""
    try:
        with keel.uow() as uow:
            row = _load(uow.conn, dep_id, lock=True)
            keel.authorize(uow, actor, "platform:Deploy", _resource(dep_id, row, executing=True))
            _require_status(row, "APPROVED")
            if row.approved_by is None:
                raise Blocked("the deployment has no Platform Owner approval", deployment_id=dep_id)
            template = parse_template(row.template)
            check_fits(template, store_dialect=uow.conn.dialect.name)
            deploy_parts.check_dependencies(keel, uow.conn)
            parts = {name: step(keel, uow) for name, step in deploy_parts.PROVISIONING}
            _validate_iam(uow.conn, row.template)
            uow.conn.execute(
                deployments.update()
                .where(deployments.c.id == dep_id)
                .values(
                    status="DEPLOYED",
                    parts=parts,
                    deployed_by=actor.user_id,
                    failure=None,
                    updated_at=utcnow(),
                )
            )
            uow.record(
                "infra.deployed", actor_id=actor.user_id, tenant_id=None, deployment_id=dep_id, parts=parts
            )
            keel.ledger.sign_current_head(uow.conn)
            uow.commit()
    except TemplateMismatch as mismatch:
        _fail(keel, actor, dep_id, mismatch)
        mismatch.fields.update(deployment_id=dep_id, deployment_status="FAILED")
        raise
    except DependencyMissing as missing:
        missing.fields.update(deployment_id=dep_id, incident_id=_alert(keel, actor, dep_id, missing))
        raise
    except IamInvalid as failure:
        with keel.uow() as uow:
            row = _load(uow.conn, dep_id, lock=True)
            _require_status(row, "APPROVED")
            _roll_back(keel, uow, actor, row, failure.reason, tear_down=False)
            uow.commit()
        failure.fields.update(deployment_id=dep_id, deployment_status="ROLLED_BACK")
        raise
    return get_deployment(keel, actor, dep_id)


def validate_deployment(keel, actor: Actor, dep_id: str) -> dict:
    """SA's IAM/network sign-off: the deployment becomes VALIDATED and its receipt is issued."""
    try:
        with keel.uow() as uow:
            row = _load(uow.conn, dep_id, lock=True)
            keel.authorize(uow, actor, "platform:ValidateDeployment", _resource(dep_id, row))
            _require_status(row, "DEPLOYED")
            _validate_iam(uow.conn, row.template)
            if not deploy_parts.has_signing_key(uow.conn):
                raise Blocked("the evidence signing key is missing", deployment_id=dep_id)
            checks = {"iam": "PASS", "network": row.template["iam"]["network"], "signing_key": True}
            now = utcnow()
            uow.conn.execute(
                deployments.update()
                .where(deployments.c.id == dep_id)
                .values(status="VALIDATED", validated_by=actor.user_id, updated_at=now)
            )
            receipt = {
                "deployment_id": dep_id,
                **{part: row.parts[part]["status"] for part in PARTS},
                "validated_by": actor.user_id,
                "approved_by": row.approved_by,
                "deployed_by": row.deployed_by,
                "status": "SUCCESS",
                "timestamp": now.isoformat(),
            }
            receipts.issue(uow.conn, "deployment", subject_id=dep_id, tenant_id=None, body=receipt, at=now)
            uow.record(
                "infra.validated", actor_id=actor.user_id, tenant_id=None, deployment_id=dep_id, checks=checks
            )
            metrics.outcome(uow.conn, "deployment_success_rate", True)
            uow.commit()
    except IamInvalid as failure:
        with keel.uow() as uow:
            row = _load(uow.conn, dep_id, lock=True)
            _require_status(row, "DEPLOYED")
            _roll_back(keel, uow, actor, row, failure.reason, tear_down=True)
            uow.commit()
        failure.fields.update(deployment_id=dep_id, deployment_status="ROLLED_BACK")
        raise
    return get_deployment(keel, actor, dep_id)


def reject_deployment(keel, actor: Actor, dep_id: str, reason: str) -> dict:
    """SA refuses the IAM/network sign-off: the deployment is rolled back."""
    if not reason.strip():
        raise InvalidInput("reason", "a rejection needs a reason")
    with keel.uow() as uow:
        row = _load(uow.conn, dep_id, lock=True)
        keel.authorize(uow, actor, "platform:ValidateDeployment", _resource(dep_id, row))
        _require_status(row, "DEPLOYED")
        _roll_back(keel, uow, actor, row, "rejected by the Security Admin", tear_down=True, note=reason)
        uow.commit()
    return get_deployment(keel, actor, dep_id)


# Failure handling -----------------------------------------------------------------------------
def _roll_back(
    keel, uow, actor: Actor, row, reason: str, *, tear_down: bool, note: str | None = None
) -> None:
    """Mark ``row`` ROLLED_BACK in ``uow``; with ``tear_down`` also remove what it made, after commit."""
    removed = deploy_parts.removable(keel, row.parts) if tear_down else {}
    retained = []
    if tear_down and (row.parts.get("shared_services") or {}).get("evidence_signing_key") == "created":
        retained.append("shared_services.evidence_signing_key")
    parts = {p: {**(row.parts.get(p) or {}), "status": "rolled_back"} for p in PARTS}
    uow.conn.execute(
        deployments.update()
        .where(deployments.c.id == row.id)
        .values(
            status="ROLLED_BACK",
            failure=f"{reason}: {note}" if note else reason,
            updated_at=utcnow(),
            parts=parts,
        )
    )
    uow.record(
        "infra.rolled_back",
        actor_id=actor.user_id,
        tenant_id=None,
        deployment_id=row.id,
        reason=reason,
        # A person's free text enters the append-only ledger only as a hash.
        **({"note_sha256": sha256_text(note)} if note else {}),
        removed=sorted(removed),
        retained=retained,
    )
    metrics.record(uow.conn, "rollback_count", 1)
    metrics.outcome(uow.conn, "deployment_success_rate", False)
    if removed:
        uow.after_commit(lambda: deploy_parts.remove(removed))
    log.warning("deployment %s rolled back: %s", row.id, reason)


def _fail(keel, actor: Actor, dep_id: str, error: TemplateMismatch) -> None:
    with keel.uow() as uow:
        row = _load(uow.conn, dep_id, lock=True)
        _require_status(row, "APPROVED")
        uow.conn.execute(
            deployments.update()
            .where(deployments.c.id == dep_id)
            .values(
                status="FAILED",
                failure=error.detail,
                updated_at=utcnow(),
                parts={p: {"status": "not_provisioned"} for p in PARTS},
            )
        )
        uow.record(
            "infra.deployment.failed",
            actor_id=actor.user_id,
            tenant_id=None,
            deployment_id=dep_id,
            field=error.fields.get("field"),
        )
        metrics.outcome(uow.conn, "deployment_success_rate", False)
        uow.commit()
    log.warning("deployment %s failed: %s", dep_id, error.detail)


def _alert(keel, actor: Actor, dep_id: str, missing: DependencyMissing) -> str:
    with keel.uow() as uow:
        uow.conn.execute(
            deployments.update()
            .where(deployments.c.id == dep_id)
            .values(failure=missing.detail, updated_at=utcnow())
        )
        incident_id = open_incident(
            uow,
            actor,
            kind="dependency.missing",
            summary=f"deployment {dep_id} cannot run: {missing.detail}",
            details={"deployment_id": dep_id, "dependency": missing.dependency},
        )
        metrics.outcome(uow.conn, "deployment_success_rate", False)
        uow.commit()
    log.error("deployment %s: %s (incident %s)", dep_id, missing.detail, incident_id)
    return incident_id


def _validate_iam(conn, template: dict) -> None:
    for role in template["iam"]["required_roles"]:
        holder = conn.execute(
            sa.select(users.c.id)
            .join(user_roles, user_roles.c.user_id == users.c.id)
            .where(user_roles.c.role == role, users.c.status == "ACTIVE", users.c.tenant_id.is_(None))
            .limit(1)
        ).first()
        if holder is None:
            raise IamInvalid(f"no active user holds the required role {role}", role=role)


# Reading ----------------------------------------------------------------------------------
def _load(conn, dep_id: str, *, lock: bool = False):
    query = sa.select(deployments).where(deployments.c.id == dep_id)
    if lock and conn.dialect.name != "sqlite":  # SQLite units of work are BEGIN IMMEDIATE already
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("deployment", dep_id)
    return row


def _require_status(row, status: str) -> None:
    if row.status != status:
        raise Conflict(
            f"deployment is {row.status}, expected {status}",
            deployment_id=row.id,
            deployment_status=row.status,
        )


def deployment_view(row) -> dict:
    return {
        "deployment_id": row.id,
        "status": row.status,
        "template": row.template,
        "parts": row.parts,
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "deployed_by": row.deployed_by,
        "validated_by": row.validated_by,
        "failure": row.failure,
        "created_at": as_utc(row.created_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
    }


def get_deployment(keel, actor: Actor, dep_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "platform:Read", _resource(dep_id))
        view = deployment_view(_load(uow.conn, dep_id))
        receipt = receipts.latest(uow.conn, "deployment", dep_id)
        view["receipt"] = receipt.body if receipt else None
        return view


def list_deployments(keel, actor: Actor, *, after: str | None = None, limit: int = 100) -> list[dict]:
    """Deployments by id (ids start with their date); ``after`` is the last id already seen."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "platform:Read", _resource("*"))
        query = sa.select(deployments).order_by(deployments.c.id).limit(limit)
        if after is not None:
            query = query.where(deployments.c.id > after)
        return [deployment_view(r) for r in uow.conn.execute(query)]


def platform_deployed(conn) -> bool:
    return (
        conn.execute(sa.select(deployments.c.id).where(deployments.c.status == "VALIDATED")).first()
        is not None
    )


def require_deployed(conn) -> None:
    if not platform_deployed(conn):
        raise Blocked("the platform is not deployed and validated yet (story 00a)")
