"""Story 00d: SA defines an RBAC bundle, PA applies it to both planes, CO reviews it.

A bundle that breaks separation of duties or grants more than the matrix allows
is rejected with the exact rule it breaks, and the rejection is evidenced. A
review that finds excess rights rejects an applied bundle and restores the
previously reviewed policy set. Break-glass: a time-boxed elevation for one
tenant, only with a ticket approved by someone else, expiring by itself.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from keel.authz.actions import ACTIONS
from keel.authz.bundles import baseline_bundle, parse_bundle, policies_for_bundle, validate_bundle
from keel.authz.engine import PolicyEngine, Resource
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.store.tables import break_glass_grants, rbac_bundles, receipts, requests


class BundleRejected(Blocked):
    code = "bundle_rejected"
    title = "RBAC bundle rejected"


def _violations_payload(violations) -> list[dict]:
    return [{"rule": v.rule, "role": v.role, "detail": v.detail} for v in violations]


def _bundle_resource(row=None, bundle_id: str = "new") -> Resource:
    if row is None:
        return Resource("rbac-bundle", bundle_id, tenant="")
    approvers = frozenset([row.reviewed_by]) if row.reviewed_by else frozenset()
    return Resource(
        "rbac-bundle",
        row.id,
        tenant="",
        drafted_by=row.defined_by,
        approved_by=approvers,
        deployed_by=row.applied_by or "",
    )


def define_bundle(keel, actor: Actor, document: dict | None = None) -> dict:
    """SA defines roles and permissions. ``None`` defines the baseline generated from the matrix."""
    document = (baseline_bundle() if document is None else parse_bundle(document)).model_dump(mode="json")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Define", _bundle_resource())
        violations = validate_bundle(document)
    if violations:
        _record_rejection(keel, actor, document, violations, stage="define")
        first = violations[0]
        raise BundleRejected(
            f"bundle breaks rule {first.rule}: {first.detail}",
            rule=first.rule,
            role=first.role,
            violations=_violations_payload(violations),
        )
    name = document["name"]
    with keel.uow() as uow:
        version = (
            uow.conn.execute(
                sa.select(sa.func.max(rbac_bundles.c.version)).where(rbac_bundles.c.name == name)
            ).scalar()
            or 0
        ) + 1
        bundle_id = new_id("RBAC")
        uow.conn.execute(
            rbac_bundles.insert().values(
                id=bundle_id,
                name=name,
                version=version,
                document=document,
                policies=policies_for_bundle(document),
                status="DEFINED",
                findings=[],
                defined_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "rbac.defined",
            actor_id=actor.user_id,
            tenant_id=None,
            bundle_id=bundle_id,
            name=name,
            version=version,
            roles=sorted(r["role"] for r in document["roles"]),
        )
        uow.commit()
    return get_bundle(keel, actor, bundle_id)


def _record_rejection(
    keel, actor: Actor, document, violations, stage: str, bundle_id: str | None = None
) -> None:
    with keel.uow() as uow:
        uow.record(
            "rbac.rejected",
            actor_id=actor.user_id,
            tenant_id=None,
            stage=stage,
            bundle_id=bundle_id,
            name=document.get("name") if isinstance(document, dict) else None,
            violations=_violations_payload(violations),
        )
        metrics.record(uow.conn, "permission_violation_count", len(violations))
        metrics.outcome(uow.conn, "policy_application_success_rate", False)
        uow.commit()


def apply_bundle(keel, actor: Actor, bundle_id: str) -> dict:
    """PA applies a defined bundle to both planes: it becomes the policy set in force."""
    with keel.uow() as uow:
        row = _load(uow.conn, bundle_id)
        keel.authorize(uow, actor, "rbac:Apply", _bundle_resource(row))
        if row.status != "DEFINED":
            raise Conflict(f"bundle is {row.status}, expected DEFINED", bundle_id=bundle_id)
        violations = validate_bundle(row.document)  # re-checked: the rules may be stricter than at definition
    if violations:
        _record_rejection(keel, actor, row.document, violations, stage="apply", bundle_id=bundle_id)
        raise BundleRejected(
            f"bundle breaks rule {violations[0].rule}: {violations[0].detail}",
            rule=violations[0].rule,
            violations=_violations_payload(violations),
        )
    PolicyEngine(row.policies)  # compiles, or raises before anything changes
    with keel.uow() as uow:
        now = utcnow()
        uow.conn.execute(
            rbac_bundles.update()
            .where(rbac_bundles.c.status.in_(("APPLIED", "REVIEWED")))
            .values(status="SUPERSEDED")
        )
        uow.conn.execute(
            rbac_bundles.update()
            .where(rbac_bundles.c.id == bundle_id)
            .values(status="APPLIED", applied_by=actor.user_id, applied_at=now)
        )
        planes = {"control_plane": "applied", "data_plane": "applied"}
        uow.record("rbac.applied", actor_id=actor.user_id, tenant_id=None, bundle_id=bundle_id, **planes)
        metrics.outcome(uow.conn, "policy_application_success_rate", True)
        uow.commit()
    return get_bundle(keel, actor, bundle_id)


def review_bundle(
    keel, actor: Actor, bundle_id: str, *, approve: bool, findings: list[dict] | None = None
) -> dict:
    """CO reviews an applied bundle. Rejecting names the excess rights and restores the previous set."""
    findings = findings or []
    with keel.uow() as uow:
        row = _load(uow.conn, bundle_id)
        keel.authorize(uow, actor, "rbac:Review", _bundle_resource(row))
        if row.status != "APPLIED":
            raise Conflict(f"bundle is {row.status}, expected APPLIED", bundle_id=bundle_id)
        automatic = _violations_payload(validate_bundle(row.document))
        all_findings = automatic + [_finding(f) for f in findings]
        passed = approve and not all_findings
        now = utcnow()
        status = "REVIEWED" if passed else "REJECTED"
        uow.conn.execute(
            rbac_bundles.update()
            .where(rbac_bundles.c.id == bundle_id)
            .values(status=status, reviewed_by=actor.user_id, reviewed_at=now, findings=all_findings)
        )
        restored = None
        if not passed:
            restored = uow.conn.execute(
                sa.select(rbac_bundles.c.id)
                .where(rbac_bundles.c.status == "SUPERSEDED", rbac_bundles.c.reviewed_by.is_not(None))
                .order_by(rbac_bundles.c.applied_at.desc())
                .limit(1)
            ).scalar()
            if restored:
                uow.conn.execute(
                    rbac_bundles.update().where(rbac_bundles.c.id == restored).values(status="REVIEWED")
                )
            metrics.record(uow.conn, "permission_violation_count", max(1, len(all_findings)))
        receipt = {
            "bundle_id": bundle_id,
            "roles": [
                {"role": r["role"], "permissions": sorted(r["permissions"])} for r in row.document["roles"]
            ],
            "defined_by": row.defined_by,
            "applied_by": row.applied_by,
            "reviewed_by": actor.user_id,
            "compliance_check": "PASS" if passed else "FAIL",
            "findings": all_findings,
            "restored_bundle_id": restored,
            "timestamp": now.isoformat(),
        }
        uow.conn.execute(
            receipts.insert().values(
                id=new_id("RCP"),
                kind="rbac.review",
                tenant_id=None,
                subject_id=bundle_id,
                body=receipt,
                created_at=now,
            )
        )
        uow.record(
            "rbac.reviewed",
            actor_id=actor.user_id,
            tenant_id=None,
            bundle_id=bundle_id,
            compliance_check=receipt["compliance_check"],
            findings=all_findings,
            restored=restored,
        )
        uow.commit()
    return get_bundle(keel, actor, bundle_id)


def _finding(raw: dict) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("detail"), str) or not raw["detail"].strip():
        raise InvalidInput("findings", "each finding needs a non-empty 'detail'")
    rule = raw.get("rule", "excess-permission")
    role = raw.get("role", "")
    permission = raw.get("permission")
    if permission is not None and permission not in ACTIONS:
        raise InvalidInput("findings.permission", f"unknown action '{permission}'")
    return {
        "rule": rule,
        "role": role,
        "detail": raw["detail"],
        **({"permission": permission} if permission else {}),
    }


def _load(conn, bundle_id: str):
    row = conn.execute(sa.select(rbac_bundles).where(rbac_bundles.c.id == bundle_id)).first()
    if row is None:
        raise NotFound("rbac bundle", bundle_id)
    return row


def bundle_view(conn, row) -> dict:
    receipt = conn.execute(
        sa.select(receipts.c.body).where(receipts.c.kind == "rbac.review", receipts.c.subject_id == row.id)
    ).scalar()
    return {
        "bundle_id": row.id,
        "name": row.name,
        "version": row.version,
        "status": row.status,
        "document": row.document,
        "findings": row.findings,
        "defined_by": row.defined_by,
        "applied_by": row.applied_by,
        "reviewed_by": row.reviewed_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "receipt": receipt,
    }


def get_bundle(keel, actor: Actor, bundle_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Read", _bundle_resource(bundle_id=bundle_id))
        return bundle_view(uow.conn, _load(uow.conn, bundle_id))


def list_bundles(keel, actor: Actor) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Read", _bundle_resource(bundle_id="*"))
        rows = uow.conn.execute(sa.select(rbac_bundles).order_by(rbac_bundles.c.created_at))
        return [bundle_view(uow.conn, r) for r in rows]


def active_policy(keel, actor: Actor) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Read", _bundle_resource(bundle_id="*"))
        bundle_id, text = keel.authorizer.active_policies(uow.conn)
        return {"bundle_id": bundle_id, "policies": text}


# Break-glass --------------------------------------------------------------------------------
def request_break_glass(
    keel, actor: Actor, *, tenant_id: str, actions: list[str], minutes: int, justification: str
) -> dict:
    if not justification or not justification.strip():
        raise InvalidInput("justification", "a break-glass ticket needs a justification")
    limit = keel.settings.break_glass_max_minutes
    if not isinstance(minutes, int) or not 1 <= minutes <= limit:
        raise InvalidInput("minutes", f"must be between 1 and {limit}")
    if not actions:
        raise InvalidInput("actions", "name at least one action")
    for action in actions:
        spec = ACTIONS.get(action)
        if spec is None or not spec.break_glass:
            eligible = sorted(a.name for a in ACTIONS.values() if a.break_glass)
            raise InvalidInput("actions", f"'{action}' is not break-glass eligible; eligible: {eligible}")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "breakglass:Request", Resource("breakglass", "new", tenant=""))
        ticket_id = new_id("BG")
        uow.conn.execute(
            requests.insert().values(
                id=ticket_id,
                kind="break_glass",
                tenant_id=tenant_id,
                subject_id=actor.user_id,
                body={"actions": sorted(set(actions)), "minutes": minutes, "justification": justification},
                status="PENDING",
                requested_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "breakglass.requested",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            actions=sorted(set(actions)),
            minutes=minutes,
        )
        uow.commit()
    return {
        "ticket_id": ticket_id,
        "status": "PENDING",
        "tenant_id": tenant_id,
        "actions": sorted(set(actions)),
        "minutes": minutes,
    }


def approve_break_glass(keel, actor: Actor, ticket_id: str) -> dict:
    """Approving the ticket opens the elevation window now; it closes by itself when it expires."""
    with keel.uow() as uow:
        ticket = uow.conn.execute(
            sa.select(requests).where(requests.c.id == ticket_id, requests.c.kind == "break_glass")
        ).first()
        if ticket is None:
            raise NotFound("break-glass ticket", ticket_id)
        keel.authorize(
            uow,
            actor,
            "breakglass:Approve",
            Resource("breakglass", ticket_id, tenant="", drafted_by=ticket.requested_by),
        )
        if ticket.status != "PENDING":
            raise Conflict(f"ticket is {ticket.status}, expected PENDING", ticket_id=ticket_id)
        now = utcnow()
        expires = now + timedelta(minutes=ticket.body["minutes"])
        grant_id = new_id("BGG")
        uow.conn.execute(
            requests.update()
            .where(requests.c.id == ticket_id)
            .values(status="APPROVED", decided_by=actor.user_id, decided_at=now)
        )
        uow.conn.execute(
            break_glass_grants.insert().values(
                id=grant_id,
                request_id=ticket_id,
                user_id=ticket.requested_by,
                tenant_id=ticket.tenant_id,
                actions=ticket.body["actions"],
                approved_by=actor.user_id,
                starts_at=now,
                expires_at=expires,
            )
        )
        uow.record(
            "breakglass.approved",
            actor_id=actor.user_id,
            tenant_id=ticket.tenant_id,
            ticket_id=ticket_id,
            grant_id=grant_id,
            grantee=ticket.requested_by,
            expires_at=expires.isoformat(),
        )
        uow.commit()
    return {
        "ticket_id": ticket_id,
        "grant_id": grant_id,
        "status": "APPROVED",
        "user_id": ticket.requested_by,
        "tenant_id": ticket.tenant_id,
        "actions": ticket.body["actions"],
        "expires_at": expires.isoformat(),
    }
