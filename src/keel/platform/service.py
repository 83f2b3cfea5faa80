"""Story 00a: PA requests a deployment from a template, PO approves, PA deploys, SA validates.

Deploying provisions the control plane (store at the newest migration, writable),
the data plane (tenant storage root, DuckDB smoke test) and the shared services
(secrets round trip, the ledger's Ed25519 signing key, the metrics collector).
An IAM validation failure rolls back everything the deployment created.
"""

from __future__ import annotations

import shutil
import time

import duckdb
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from keel.authz.engine import Resource
from keel.evidence.ledger import SIGNING_PURPOSE
from keel.evidence.signing import generate_signing_key, key_id, private_key_to_pem, public_key_pem
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.platform.template import DEFAULT_TEMPLATE, parse_template
from keel.secrets import envelope
from keel.store.engine import alembic_config
from keel.store.tables import deployments, platform_keys, receipts, user_roles, users

PARTS = ("control_plane", "data_plane", "shared_services")


class IamInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _resource(dep_id: str, row=None) -> Resource:
    return Resource(
        "deployment",
        dep_id,
        tenant="",
        drafted_by=row.requested_by if row else "",
        approved_by=frozenset([row.approved_by]) if row is not None and row.approved_by else frozenset(),
    )


def request_deployment(keel, actor: Actor, template: object | None = None) -> dict:
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
                parts={p: "pending" for p in PARTS},
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
    return get_deployment(keel, actor, dep_id)


def approve_deployment(keel, actor: Actor, dep_id: str) -> dict:
    with keel.uow() as uow:
        row = _load(uow.conn, dep_id)
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
    """Provision every part; on an IAM validation failure roll back and record the rollback."""
    created_dirs: list = []
    try:
        with keel.uow() as uow:
            row = _load(uow.conn, dep_id)
            keel.authorize(uow, actor, "platform:Deploy", _resource(dep_id, row))
            _require_status(row, "APPROVED")
            if row.approved_by is None:
                raise Blocked("the deployment has no Platform Owner approval", deployment_id=dep_id)
            uow.on_rollback(lambda: [shutil.rmtree(d, ignore_errors=True) for d in created_dirs])
            parts = {
                "control_plane": _provision_control_plane(keel, uow.conn),
                "data_plane": _provision_data_plane(keel, created_dirs),
                "shared_services": _provision_shared_services(keel, uow),
            }
            _validate_iam(uow.conn, row.template)
            uow.conn.execute(
                deployments.update()
                .where(deployments.c.id == dep_id)
                .values(status="DEPLOYED", parts=parts, deployed_by=actor.user_id, updated_at=utcnow())
            )
            uow.record(
                "infra.deployed", actor_id=actor.user_id, tenant_id=None, deployment_id=dep_id, parts=parts
            )
            keel.ledger.sign_current_head(uow.conn)
            uow.commit()
    except IamInvalid as failure:
        _record_rollback(keel, actor, dep_id, failure.reason)
        raise Blocked(
            f"IAM validation failed, deployment rolled back: {failure.reason}",
            deployment_id=dep_id,
            status="ROLLED_BACK",
        ) from None
    return get_deployment(keel, actor, dep_id)


def validate_deployment(keel, actor: Actor, dep_id: str) -> dict:
    """SA's IAM/network sign-off: the deployment becomes VALIDATED and its receipt is issued."""
    with keel.uow() as uow:
        row = _load(uow.conn, dep_id)
        keel.authorize(uow, actor, "platform:ValidateDeployment", _resource(dep_id, row))
        _require_status(row, "DEPLOYED")
        _validate_iam(uow.conn, row.template)
        checks = {
            "iam": "PASS",
            "network": row.template["iam"]["network"],
            "signing_key": _has_signing_key(uow.conn),
        }
        if not checks["signing_key"]:
            raise Blocked("the evidence signing key is missing", deployment_id=dep_id)
        uow.conn.execute(
            deployments.update()
            .where(deployments.c.id == dep_id)
            .values(status="VALIDATED", validated_by=actor.user_id, updated_at=utcnow())
        )
        receipt = {
            "deployment_id": dep_id,
            **{part: "provisioned" for part in PARTS},
            "validated_by": actor.user_id,
            "approved_by": row.approved_by,
            "deployed_by": row.deployed_by,
            "status": "SUCCESS",
            "timestamp": utcnow().isoformat(),
        }
        uow.conn.execute(
            receipts.insert().values(
                id=new_id("RCP"),
                kind="deployment",
                tenant_id=None,
                subject_id=dep_id,
                body=receipt,
                created_at=utcnow(),
            )
        )
        uow.record(
            "infra.validated", actor_id=actor.user_id, tenant_id=None, deployment_id=dep_id, checks=checks
        )
        metrics.outcome(uow.conn, "deployment_success_rate", True)
        uow.commit()
    return get_deployment(keel, actor, dep_id)


def reject_deployment(keel, actor: Actor, dep_id: str, reason: str) -> dict:
    """SA refuses the IAM/network sign-off: everything the deployment created is rolled back."""
    if not reason.strip():
        raise InvalidInput("reason", "a rejection needs a reason")
    with keel.uow() as uow:
        row = _load(uow.conn, dep_id)
        keel.authorize(uow, actor, "platform:ValidateDeployment", _resource(dep_id, row))
        _require_status(row, "DEPLOYED")
    _record_rollback(keel, actor, dep_id, f"rejected by the Security Admin: {reason}", tear_down=True)
    return get_deployment(keel, actor, dep_id)


def _record_rollback(keel, actor: Actor, dep_id: str, reason: str, tear_down: bool = False) -> None:
    with keel.uow() as uow:
        if tear_down:
            _tear_down(keel, uow.conn)
        uow.conn.execute(
            deployments.update()
            .where(deployments.c.id == dep_id)
            .values(
                status="ROLLED_BACK",
                failure=reason,
                updated_at=utcnow(),
                parts={p: "rolled_back" for p in PARTS},
            )
        )
        uow.record(
            "infra.rolled_back", actor_id=actor.user_id, tenant_id=None, deployment_id=dep_id, reason=reason
        )
        metrics.record(uow.conn, "rollback_count", 1)
        metrics.outcome(uow.conn, "deployment_success_rate", False)
        uow.commit()


def _tear_down(keel, conn) -> None:
    conn.execute(platform_keys.delete().where(platform_keys.c.purpose == SIGNING_PURPOSE))
    root = keel.dataplanes.root
    if root.exists() and not any(root.iterdir()):
        root.rmdir()


# Parts ------------------------------------------------------------------------------------
def _provision_control_plane(keel, conn) -> dict:
    current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(keel.engine)).get_current_head()
    if current != head:
        raise Blocked("the control-plane store is not at the newest migration", current=current, head=head)
    started = time.perf_counter()
    conn.execute(sa.select(sa.func.count()).select_from(deployments)).scalar()
    return {
        "status": "provisioned",
        "dialect": conn.dialect.name,
        "schema_revision": head,
        "probe_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _provision_data_plane(keel, created_dirs: list) -> dict:
    root = keel.dataplanes.root
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)
        created_dirs.append(root)
    with duckdb.connect(":memory:") as con:
        version = con.execute("SELECT version()").fetchone()[0]
    return {"status": "provisioned", "engine": "duckdb", "engine_version": version}


def _provision_shared_services(keel, uow) -> dict:
    probe = envelope.new_key()
    if envelope.decrypt(probe, envelope.encrypt(probe, b"p", "p"), "p") != b"p":
        raise Blocked("the secrets service failed its round trip")
    evidence = "existing"
    if not _has_signing_key(uow.conn):
        key = generate_signing_key()
        kid = key_id(key.public_key())
        keel.keyring.store_platform_key(
            uow.conn, kid, SIGNING_PURPOSE, private_key_to_pem(key), public_key_pem(key)
        )
        evidence = "created"
    return {
        "status": "provisioned",
        "secrets": "envelope-aes-256-gcm",
        "evidence_signing_key": evidence,
        "monitoring": "prometheus",
    }


def _has_signing_key(conn) -> bool:
    return (
        conn.execute(
            sa.select(platform_keys.c.key_id).where(
                platform_keys.c.purpose == SIGNING_PURPOSE, platform_keys.c.active
            )
        ).first()
        is not None
    )


def _validate_iam(conn, template: dict) -> None:
    for role in template["iam"]["required_roles"]:
        holder = conn.execute(
            sa.select(users.c.id)
            .join(user_roles, user_roles.c.user_id == users.c.id)
            .where(user_roles.c.role == role, users.c.status == "ACTIVE", users.c.tenant_id.is_(None))
            .limit(1)
        ).first()
        if holder is None:
            raise IamInvalid(f"no active user holds the required role {role}")


# Reading ----------------------------------------------------------------------------------
def _load(conn, dep_id: str):
    row = conn.execute(sa.select(deployments).where(deployments.c.id == dep_id)).first()
    if row is None:
        raise NotFound("deployment", dep_id)
    return row


def _require_status(row, status: str) -> None:
    if row.status != status:
        raise Conflict(
            f"deployment is {row.status}, expected {status}", deployment_id=row.id, status=row.status
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
        receipt = uow.conn.execute(
            sa.select(receipts.c.body).where(receipts.c.kind == "deployment", receipts.c.subject_id == dep_id)
        ).scalar()
        view["receipt"] = receipt
        return view


def list_deployments(keel, actor: Actor) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "platform:Read", _resource("*"))
        rows = uow.conn.execute(sa.select(deployments).order_by(deployments.c.created_at))
        return [deployment_view(r) for r in rows]


def platform_deployed(conn) -> bool:
    return (
        conn.execute(sa.select(deployments.c.id).where(deployments.c.status == "VALIDATED")).first()
        is not None
    )


def require_deployed(conn) -> None:
    if not platform_deployed(conn):
        raise Blocked("the platform is not deployed and validated yet (story 00a)")
