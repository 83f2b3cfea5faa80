"""Stories 01 and 01b: tenant provisioning and validation; reading tenants and their requests.

Provisioning (PA) creates the tenant identity, its own DuckDB data plane, its own
data key and a Tenant Admin invitation in one unit of work: a failure part-way
rolls the store back and removes the files. The Security Admin then validates
isolation; only then does the tenant become ACTIVE and its admin's invitation
usable. Offboarding and decommissioning (01c) live in ``offboarding.py``.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from keel.accounts.service import EMAIL, OUTSIDE, insert_user, issue_invitation, revoke_tenant_access
from keel.authz.engine import Principal, Resource
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound, QuotaExceeded
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.platform.service import require_deployed
from keel.store.tables import requests, tenant_keys, tenants, users
from keel.tenants.errors import AllocationFailed

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z0-9-]{1,40}$")


# What provisioning allocates for a tenant (story 01b), as shown in events and receipts.
INFRA = {
    "compute": "provisioned",
    "storage": "provisioned",
    "network": "provisioned",
    "monitoring": "enabled",
}


def _platform(tenant_id: str = "*") -> Resource:
    # Lifecycle objects are control-plane records about a tenant, not tenant data.
    return Resource("tenant", tenant_id, tenant="")


def provision_tenant(
    keel,
    actor: Actor,
    *,
    slug: str,
    name: str,
    admin_email: str,
    admin_name: str = "Tenant Admin",
    region: str = "local",
    storage_quota_mb: int | None = None,
) -> dict:
    """PA creates a tenant: identity, its own data plane and data key, an invited admin.

    Everything happens in one unit of work: any failure part-way rolls the store back
    and removes the files made so far. Quota and allocation failures are evidenced.
    """
    quota = storage_quota_mb or keel.settings.tenant_storage_quota_mb
    _check_new_tenant(slug, name, admin_email, region, quota)
    started = utcnow()
    try:
        with keel.uow() as uow:
            keel.authorize(uow, actor, "tenant:Provision", _platform())
            require_deployed(uow.conn)
            if uow.conn.execute(sa.select(tenants.c.id).where(tenants.c.slug == slug)).first():
                raise Conflict(f"tenant slug '{slug}' is taken", field="slug")
            _check_quota(keel, uow.conn)
            tenant_id = new_id("TEN")
            uow.conn.execute(
                tenants.insert().values(
                    id=tenant_id,
                    slug=slug,
                    name=name,
                    status="PROVISIONED",
                    region=region,
                    storage_quota_mb=quota,
                    created_by=actor.user_id,
                    created_at=started,
                )
            )
            keel.keyring.create_tenant_key(uow.conn, tenant_id)
            uow.on_rollback(lambda: keel.dataplanes.destroy(tenant_id))
            path = keel.dataplanes.provision(tenant_id)
            uow.conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(data_path=str(path)))
            try:
                admin_id = insert_user(
                    uow.conn, email=admin_email, display_name=admin_name, tenant_id=tenant_id, roles=["TA"]
                )
            except Conflict as taken:
                raise Conflict(str(taken.detail), field="admin_email") from None
            uow.record(
                "tenant.created",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                slug=slug,
                region=region,
                admin_user_id=admin_id,
            )
            uow.record(
                "infra.tenant.provisioned",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                **INFRA,
                storage_quota_mb=quota,
            )
            metrics.enable_tenant_monitoring(uow.conn, tenant_id)
            uow.commit()
    except QuotaExceeded as blocked:
        _record_blocked(keel, actor, slug, blocked)
        raise
    except AllocationFailed as failed:
        _open_incident(
            keel,
            actor,
            None,
            "tenant.allocation.failed",
            f"provisioning of tenant '{slug}' failed: {failed.detail}; nothing was kept",
            outcome="provisioning_success_rate",
            slug=slug,
            resource=failed.fields.get("resource"),
        )
        raise
    return get_tenant(keel, actor, tenant_id)


def _check_new_tenant(slug: str, name: str, admin_email: str, region: str, quota: int) -> None:
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise InvalidInput("slug", "must be 3-63 lower-case letters, digits or '-', starting with a letter")
    if not name.strip() or len(name) > 200:
        raise InvalidInput("name", "must be 1 to 200 characters")
    if not EMAIL.match(admin_email.strip().lower()):
        raise InvalidInput("admin_email", "is not a valid e-mail address")
    if not REGION.match(region):
        raise InvalidInput("region", "must be 1-40 lower-case letters, digits or '-'")
    if not isinstance(quota, int) or quota < 1:
        raise InvalidInput("storage_quota_mb", "must be a positive whole number")


# Statuses of a tenant that still holds its resources, and so its share of the platform quota.
HOLDS_QUOTA = ("PROVISIONED", "ACTIVE", "BLOCKED")


def _check_quota(keel, conn) -> None:
    active = conn.execute(
        sa.select(sa.func.count()).select_from(tenants).where(tenants.c.status.in_(HOLDS_QUOTA))
    ).scalar_one()
    if active >= keel.settings.max_tenants:
        raise QuotaExceeded(
            f"the platform quota of {keel.settings.max_tenants} tenants is reached",
            quota="max_tenants",
            limit=keel.settings.max_tenants,
            current=active,
        )


def _record_blocked(keel, actor: Actor, slug: str, blocked: QuotaExceeded) -> None:
    with keel.uow() as uow:
        uow.record(
            "tenant.provisioning.blocked",
            actor_id=actor.user_id,
            tenant_id=None,
            slug=slug,
            quota=blocked.fields.get("quota"),
            limit=blocked.fields.get("limit"),
        )
        metrics.outcome(uow.conn, "provisioning_success_rate", False)
        metrics.outcome(uow.conn, "tenant_infra_success_rate", False)
        uow.commit()


def isolation_checks(keel, conn, tenant_id: str) -> dict:
    """What the Security Admin's validation verifies: storage ownership, key, policy isolation."""
    storage = keel.dataplanes.check(tenant_id)
    try:
        keel.keyring.tenant_key(conn, tenant_id)
        key_ok = True
    except Exception:  # any failure to unwrap the key is a failed check, reported as such
        key_ok = False
    engine = keel.authorizer.engine(conn)
    outsider = Principal("probe-user", "TEN-PROBE-OTHER", frozenset({"TA", "DE", "AN"}))
    provider = Principal("probe-provider", "", frozenset({"PA", "PO", "SRE"}))
    cross_tenant_denied = not engine.check(
        outsider, "data:Read", Resource("dataset", "*", tenant=tenant_id)
    ).allowed
    provider_denied = not engine.check(
        provider, "data:Read", Resource("dataset", "*", tenant=tenant_id)
    ).allowed
    checks = {
        "storage_dedicated": storage["exists"] and storage["owner_ok"],
        "storage_layers": storage["layers"],
        "data_key": key_ok,
        "cross_tenant_read_denied": cross_tenant_denied,
        "provider_data_read_denied": provider_denied,
    }
    checks["passed"] = (
        all(v for k, v in checks.items() if k != "storage_layers") and len(storage["layers"]) == 3
    )
    return checks


def validate_tenant(keel, actor: Actor, tenant_id: str) -> dict:
    """SA validation. Pass: tenant ACTIVE, receipts, TA invitation issued. Fail: everything torn down."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:Validate", _platform(tenant_id))
        row = load_tenant(uow.conn, tenant_id)
        if row.status != "PROVISIONED":
            raise Conflict(f"tenant is {row.status}, expected PROVISIONED", tenant_id=tenant_id)
        checks = isolation_checks(keel, uow.conn, tenant_id)
    if not checks["passed"]:
        _tear_down_failed(keel, actor, tenant_id, checks)
        raise Blocked(
            "isolation validation failed; the tenant was torn down", tenant_id=tenant_id, checks=checks
        )
    with keel.uow() as uow:
        now = utcnow()
        activated = uow.conn.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id, tenants.c.status == "PROVISIONED")
            .values(status="ACTIVE", validated_by=actor.user_id)
        ).rowcount
        if activated != 1:  # another validation (or a teardown) got there first
            raise Conflict("the tenant is no longer PROVISIONED", tenant_id=tenant_id)
        admin_id = uow.conn.execute(
            sa.select(users.c.id)
            .where(users.c.tenant_id == tenant_id, users.c.status == "INVITED")
            .order_by(users.c.created_at)
            .limit(1)
        ).scalar()
        invitation = (
            issue_invitation(uow.conn, admin_id, keel.settings.invitation_ttl_hours) if admin_id else None
        )
        seconds = (now - as_utc(row.created_at)).total_seconds()
        # Monitoring that is not collecting does not block the tenant; it is flagged incomplete (01b).
        monitoring = "enabled" if metrics.tenant_monitored(uow.conn, tenant_id) else "incomplete"
        infra = {**INFRA, "monitoring": monitoring}
        receipt = {  # story 01 artifact
            "tenant_id": tenant_id,
            "status": "ACTIVE",
            "created_by": row.created_by,
            "validated_by": actor.user_id,
            **infra,
            "checks": checks,
            "timestamp": now.isoformat(),
        }
        infra_receipt = {  # story 01b artifact: what the Tenant Admin is told is ready
            "tenant_id": tenant_id,
            **infra,
            "storage_quota_mb": row.storage_quota_mb,
            "validated_by": actor.user_id,
            "status": "SUCCESS" if monitoring == "enabled" else "INCOMPLETE",
            "timestamp": now.isoformat(),
        }
        for kind, body in (("tenant.provisioning", receipt), ("tenant.infrastructure", infra_receipt)):
            receipts.issue(uow.conn, kind, subject_id=tenant_id, tenant_id=tenant_id, body=body, at=now)
        uow.record("tenant.validated", actor_id=actor.user_id, tenant_id=tenant_id, checks=checks)
        uow.record(
            "infra.tenant.validated",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            status=infra_receipt["status"],
        )
        if monitoring != "enabled":
            uow.record(
                "observability.incomplete", actor_id=actor.user_id, tenant_id=tenant_id, part="monitoring"
            )
        if admin_id:
            uow.record(
                "identity.invitation.issued",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                user_id=admin_id,
                delivered_to=actor.user_id,  # until e-mail delivery exists, the caller holds the secret
            )
        metrics.record(uow.conn, "provisioning_time", seconds, tenant_id)
        metrics.outcome(uow.conn, "provisioning_success_rate", True, tenant_id)
        metrics.outcome(uow.conn, "tenant_infra_success_rate", True, tenant_id)
        uow.commit()
    view = get_tenant(keel, actor, tenant_id)
    view["receipt"] = receipt
    view["infra_receipt"] = infra_receipt
    view["invitation"] = {"user_id": admin_id, **invitation} if invitation else None
    return view


def _tear_down_failed(keel, actor: Actor, tenant_id: str, checks: dict) -> None:
    """A failed security check: no access for anyone, key shredded, storage removed."""
    with keel.uow() as uow:
        access = revoke_tenant_access(uow.conn, tenant_id)
        shred = keel.keyring.shred_tenant_key(uow.conn, tenant_id)
        uow.conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(status="ROLLED_BACK"))
        uow.record(
            "infra.tenant.torn_down",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            checks=checks,
            access_revoked=access,
            crypto_shred=shred,
        )
        metrics.record(uow.conn, "validation_failure_count", 1, tenant_id)
        metrics.outcome(uow.conn, "provisioning_success_rate", False, tenant_id)
        metrics.outcome(uow.conn, "tenant_infra_success_rate", False, tenant_id)
        uow.after_commit(lambda: keel.dataplanes.destroy(tenant_id))
        uow.commit()
    _alert_if_storage_remains(keel, actor, tenant_id)


def _alert_if_storage_remains(keel, actor: Actor, tenant_id: str) -> None:
    if keel.dataplanes.exists(tenant_id):
        _open_incident(
            keel, actor, tenant_id, "deletion.incomplete", "tenant data-plane storage still exists"
        )


def _open_incident(
    keel,
    actor: Actor,
    tenant_id: str | None,
    kind: str,
    summary: str,
    *,
    outcome: str | None = None,
    **details,
) -> str:
    """Open an incident (the alert of stories 01 and 01c) in its own unit of work."""
    with keel.uow() as uow:
        incident_id = open_incident(
            uow, actor, kind=kind, summary=summary, details=details, tenant_id=tenant_id
        )
        if outcome:
            metrics.outcome(uow.conn, outcome, False, tenant_id)
        uow.commit()
    return incident_id


# Reading ------------------------------------------------------------------------------------
def load_tenant(conn, tenant_id: str):
    row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).first()
    if row is None:
        raise NotFound("tenant", tenant_id)
    return row


def tenant_view(conn, row) -> dict:
    key = conn.execute(sa.select(tenant_keys.c.destroyed_at).where(tenant_keys.c.tenant_id == row.id)).first()
    return {
        "tenant_id": row.id,
        "slug": row.slug,
        "name": row.name,
        "status": row.status,
        "region": row.region,
        "storage_quota_mb": row.storage_quota_mb,
        "created_by": row.created_by,
        "validated_by": row.validated_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "decommissioned_at": as_utc(row.decommissioned_at).isoformat() if row.decommissioned_at else None,
        "data_key": "destroyed" if key and key.destroyed_at else "active",
    }


def get_tenant(keel, actor: Actor, tenant_id: str) -> dict:
    with keel.uow() as uow:
        if actor.tenant_id is not None and actor.tenant_id != tenant_id:
            # Same answer whether or not the tenant exists: never leak another tenant's existence.
            keel.authorize(uow, actor, "tenant:Read", Resource("tenant", tenant_id, tenant=tenant_id))
        keel.authorize(uow, actor, "tenant:Read", Resource("tenant", tenant_id, tenant=actor.tenant_id or ""))
        view = tenant_view(uow.conn, load_tenant(uow.conn, tenant_id))
        view["receipts"] = receipts.bodies(uow.conn, tenant_id)
        return view


def list_tenants(keel, actor: Actor, *, after: str | None = None, limit: int = 50) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:Read", _platform())
        query = sa.select(tenants).order_by(tenants.c.id).limit(limit)
        if actor.tenant_id is not None:
            query = query.where(tenants.c.id == actor.tenant_id)
        if after:
            query = query.where(tenants.c.id > after)
        return [tenant_view(uow.conn, r) for r in uow.conn.execute(query)]


def get_request(keel, actor: Actor, request_id: str) -> dict:
    """A lifecycle request. Tenant users see only their own tenant's, with one answer for
    another tenant's request and for none at all."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:Read", _platform())
        row = uow.conn.execute(sa.select(requests).where(requests.c.id == request_id)).first()
        if actor.tenant_id is not None and (row is None or row.tenant_id != actor.tenant_id):
            keel.authorize(
                uow,
                actor,
                "tenant:Read",
                Resource("request", request_id, tenant=row.tenant_id if row else OUTSIDE),
            )
        if row is None:
            raise NotFound("request", request_id)
        return {
            "request_id": row.id,
            "kind": row.kind,
            "tenant_id": row.tenant_id,
            "status": row.status,
            "requested_by": row.requested_by,
            "decided_by": row.decided_by,
            "body": row.body,
            "created_at": as_utc(row.created_at).isoformat(),
        }
