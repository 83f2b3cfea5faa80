"""Story 00d: SA defines an RBAC bundle, PA applies it to both planes, CO reviews it.

A bundle that breaks separation of duties or grants more than the matrix allows
is rejected with every rule it breaks (``rule`` names the first, ``violations``
all), evidenced as ``rbac.rejected``, and nothing is stored. A review that finds
excess rights rejects an applied bundle, is evidenced as ``rbac.reviewed``
(compliance_check=FAIL) and ``rbac.rejected``, and restores the previously
reviewed policy set. Break-glass tickets live in ``breakglass.py``.
"""

from __future__ import annotations

import sqlalchemy as sa

from keel.authz.actions import ACTIONS
from keel.authz.bundles import (
    baseline_bundle,
    lockout_violations,
    parse_bundle,
    policies_for_bundle,
    validate_bundle,
)
from keel.authz.engine import PolicyEngine, Resource
from keel.evidence import receipts
from keel.evidence.canonical import sha256_text
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.rbac.authorizer import ACTIVE_STATUSES
from keel.store.tables import rbac_bundles

NAME_MAX = 100  # rbac_bundles.name


class BundleRejected(Blocked):
    code = "bundle_rejected"
    title = "RBAC bundle rejected"
    violations: tuple = ()  # the Violation objects; set by _rejected


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
    with keel.uow() as uow:
        # Authorized before the document is read: a caller without the right learns nothing.
        keel.authorize(uow, actor, "rbac:Define", _bundle_resource())
    bundle = baseline_bundle() if document is None else _parse(document)
    if len(bundle.name) > NAME_MAX:
        raise InvalidInput("bundle.name", f"must be at most {NAME_MAX} characters")
    document = bundle.model_dump(mode="json")
    violations = validate_bundle(document)
    if violations:
        _record_rejection(keel, actor, document, violations, stage="define")
        raise _rejected(violations)
    name = document["name"]
    try:
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
    except sa.exc.IntegrityError:  # a concurrent definition took this version number
        raise Conflict(f"bundle '{name}' was defined concurrently; define it again", name=name) from None
    return get_bundle(keel, actor, bundle_id)


def _parse(document: dict):
    """The bundle document, or ``InvalidInput`` naming the field from the request body down."""
    try:
        return parse_bundle(document)
    except InvalidInput as invalid:
        field = invalid.fields["field"]
        raise InvalidInput(f"bundle.{field}", invalid.detail.removeprefix(f"{field}: ")) from None


def _rejected(violations) -> BundleRejected:
    first = violations[0]
    rejected = BundleRejected(
        f"bundle breaks rule {first.rule}: {first.detail}",
        rule=first.rule,
        role=first.role,
        violations=_violations_payload(violations),
    )
    rejected.violations = violations
    return rejected


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
    try:
        with keel.uow() as uow:
            row = _load(uow.conn, bundle_id, lock=True)
            keel.authorize(uow, actor, "rbac:Apply", _bundle_resource(row))
            if row.status != "DEFINED":
                raise Conflict(f"bundle is {row.status}, expected DEFINED", bundle_id=bundle_id)
            # Re-checked (the rules may be stricter now), plus: would putting it in force lock RBAC out?
            violations = validate_bundle(row.document) + lockout_violations(row.document)
            if violations:
                raise _rejected(violations)
            PolicyEngine(row.policies)  # compiles, or raises before anything changes
            now = utcnow()
            uow.conn.execute(
                rbac_bundles.update()
                .where(rbac_bundles.c.status.in_(ACTIVE_STATUSES))
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
    except BundleRejected as rejected:
        _record_rejection(keel, actor, row.document, rejected.violations, stage="apply", bundle_id=bundle_id)
        raise
    return get_bundle(keel, actor, bundle_id)


def review_bundle(
    keel, actor: Actor, bundle_id: str, *, approve: bool, findings: list[dict] | None = None
) -> dict:
    """CO reviews an applied bundle. Rejecting names the excess rights and restores the previous set.

    A rejection must say what is wrong (at least one finding); an approval lists none.
    Rules broken by the bundle itself (when the rules became stricter since it was
    applied) are found automatically and reject it whatever the reviewer decided.
    """
    findings = findings or []
    with keel.uow() as uow:
        row = _load(uow.conn, bundle_id, lock=True)
        keel.authorize(uow, actor, "rbac:Review", _bundle_resource(row))
        if row.status != "APPLIED":
            raise Conflict(f"bundle is {row.status}, expected APPLIED", bundle_id=bundle_id)
        if approve and findings:
            raise InvalidInput("findings", "an approving review lists no findings; reject the bundle instead")
        if not approve and not findings:
            raise InvalidInput("findings", "a rejecting review names at least one finding")
        automatic = _violations_payload(validate_bundle(row.document))
        reviewer = [_finding(f, row.document) for f in findings]
        all_findings = automatic + reviewer
        # The ledger cannot forget: a reviewer's free text goes in as a hash (it stays in the store).
        evidenced = automatic + [_hashed_detail(f) for f in reviewer]
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
            uow.record(
                "rbac.rejected",
                actor_id=actor.user_id,
                tenant_id=None,
                stage="review",
                bundle_id=bundle_id,
                name=row.name,
                violations=evidenced,
                restored=restored,
            )
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
        receipts.issue(uow.conn, "rbac.review", subject_id=bundle_id, tenant_id=None, body=receipt, at=now)
        uow.record(
            "rbac.reviewed",
            actor_id=actor.user_id,
            tenant_id=None,
            bundle_id=bundle_id,
            compliance_check=receipt["compliance_check"],
            findings=evidenced,
            restored=restored,
        )
        uow.commit()
    return get_bundle(keel, actor, bundle_id)


def _hashed_detail(finding: dict) -> dict:
    detail = finding["detail"]
    return {**{k: v for k, v in finding.items() if k != "detail"}, "detail_sha256": sha256_text(detail)}


def _finding(raw: dict, document: dict) -> dict:
    """A reviewer's finding: which role holds which right it should not, and why."""
    if not isinstance(raw, dict) or not isinstance(raw.get("detail"), str) or not raw["detail"].strip():
        raise InvalidInput("findings", "each finding needs a non-empty 'detail'")
    unknown = sorted(set(raw) - {"rule", "role", "permission", "detail"})
    if unknown:
        raise InvalidInput("findings", f"unknown finding fields {unknown}")
    rule = raw.get("rule", "excess-permission")
    if not isinstance(rule, str) or not rule.strip() or len(rule) > 80:
        raise InvalidInput("findings.rule", "must be a rule id of 1 to 80 characters")
    held = {r["role"]: set(r["permissions"]) for r in document["roles"]}
    role = raw.get("role", "")
    if role and role not in held:
        raise InvalidInput("findings.role", f"the bundle has no role '{role}'")
    permission = raw.get("permission")
    if permission is not None:
        if permission not in ACTIONS:
            raise InvalidInput("findings.permission", f"unknown action '{permission}'")
        if role and permission not in held[role]:
            raise InvalidInput("findings.permission", f"role '{role}' does not hold '{permission}'")
    return {
        "rule": rule,
        "role": role,
        "detail": raw["detail"],
        **({"permission": permission} if permission else {}),
    }


def _load(conn, bundle_id: str, *, lock: bool = False):
    query = sa.select(rbac_bundles).where(rbac_bundles.c.id == bundle_id)
    if lock and conn.dialect.name != "sqlite":  # SQLite units of work are BEGIN IMMEDIATE already
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("rbac bundle", bundle_id)
    return row


def bundle_view(conn, row) -> dict:
    receipt = receipts.latest(conn, "rbac.review", row.id)
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
        "receipt": receipt.body if receipt else None,
    }


def get_bundle(keel, actor: Actor, bundle_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Read", _bundle_resource(bundle_id=bundle_id))
        return bundle_view(uow.conn, _load(uow.conn, bundle_id))


def list_bundles(keel, actor: Actor, *, after: str | None = None, limit: int = 100) -> list[dict]:
    """Bundles by id (ids start with their date); ``after`` is the last id already seen."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Read", _bundle_resource(bundle_id="*"))
        query = sa.select(rbac_bundles).order_by(rbac_bundles.c.id).limit(limit)
        if after is not None:
            query = query.where(rbac_bundles.c.id > after)
        return [bundle_view(uow.conn, r) for r in uow.conn.execute(query)]


def active_policy(keel, actor: Actor) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "rbac:Read", _bundle_resource(bundle_id="*"))
        bundle_id, text = keel.authorizer.active_policies(uow.conn)
        return {"bundle_id": bundle_id, "policies": text}
