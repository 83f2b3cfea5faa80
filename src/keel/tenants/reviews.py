"""Oversight steps of the tenant lifecycle.

Story 01 step 6: the Compliance Officer reviews the provisioning receipts; a
failed review blocks the tenant ("compliance fails → block") until a later
review passes. Story 01c step 6: the Auditor checks that a decommissioning
adhered to policy — receipt complete, archive retained and verifiable, storage
gone, key shredded, every step evidenced; a missing or altered archive is a
retention breach and opens an incident.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa

from keel.evidence import receipts
from keel.evidence.offline import verify_export
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput
from keel.observability.incidents import open_incident
from keel.store.tables import archives, tenants
from keel.tenants.service import _platform, get_tenant, load_tenant

REVIEWED_RECEIPTS = ("tenant.provisioning", "tenant.infrastructure")
DECOMMISSION_EVENTS = ("tenant.decommissioned", "data.wiped", "evidence.archived", "tenant.wipe.validated")


def review_compliance(keel, actor: Actor, tenant_id: str, *, approve: bool, findings: list[str]) -> dict:
    """CO's verdict on the provisioning receipts: PASS keeps (or makes) the tenant ACTIVE, FAIL blocks it."""
    findings = [f.strip() for f in findings]
    if any(not f for f in findings):
        raise InvalidInput("findings", "a finding must not be empty")
    if approve and findings:
        raise InvalidInput("findings", "an approving review lists no findings")
    if not approve and not findings:
        raise InvalidInput("findings", "a failed review names at least one finding")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:ReviewCompliance", _platform(tenant_id))
        row = load_tenant(uow.conn, tenant_id)
        if row.status not in ("ACTIVE", "BLOCKED"):
            raise Conflict(f"tenant is {row.status}, expected ACTIVE or BLOCKED", tenant_id=tenant_id)
        reviewed = [receipts.latest(uow.conn, kind, tenant_id) for kind in REVIEWED_RECEIPTS]
        if any(r is None for r in reviewed):
            raise Blocked("the tenant has no provisioning receipts to review", tenant_id=tenant_id)
        status = "ACTIVE" if approve else "BLOCKED"
        now = utcnow()
        uow.conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(status=status))
        body = {
            "tenant_id": tenant_id,
            "receipts_reviewed": [r.id for r in reviewed],
            "compliance_check": "PASS" if approve else "FAIL",
            "findings": findings,
            "reviewed_by": actor.user_id,
            "status": status,
            "timestamp": now.isoformat(),
        }
        receipts.issue(
            uow.conn, "tenant.compliance_review", subject_id=tenant_id, tenant_id=tenant_id, body=body, at=now
        )
        uow.record(
            "tenant.compliance.reviewed",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            compliance_check=body["compliance_check"],
            findings=len(findings),
            status=status,
        )
        if status != row.status:
            uow.record(
                "tenant.blocked" if status == "BLOCKED" else "tenant.unblocked",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
            )
        uow.commit()
    return {**get_tenant(keel, actor, tenant_id), "review": body}


def audit_decommissioning(keel, actor: Actor, tenant_id: str) -> dict:
    """AU checks policy adherence of a finished decommissioning; a breach opens an incident."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:AuditDecommissioning", _platform(tenant_id))
        row = load_tenant(uow.conn, tenant_id)
        if row.status != "DECOMMISSIONED":
            raise Conflict(f"tenant is {row.status}, expected DECOMMISSIONED", tenant_id=tenant_id)
        checks, findings = _adherence(keel, uow.conn, tenant_id)
        now = utcnow()
        body = {
            "tenant_id": tenant_id,
            "checks": checks,
            "findings": findings,
            "policy_adherence": "PASS" if not findings else "FAIL",
            "audited_by": actor.user_id,
            "timestamp": now.isoformat(),
        }
        if not checks["archive_retained"]:
            body["incident_id"] = open_incident(
                uow,
                actor,
                kind="retention.breach",
                tenant_id=tenant_id,
                summary="the decommissioned tenant's evidence archive is missing or altered",
            )
        receipts.issue(
            uow.conn,
            "tenant.decommission_audit",
            subject_id=tenant_id,
            tenant_id=tenant_id,
            body=body,
            at=now,
        )
        uow.record(
            "tenant.decommission.audited",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            policy_adherence=body["policy_adherence"],
            findings=len(findings),
        )
        uow.commit()
    return body


def _adherence(keel, conn, tenant_id: str) -> tuple[dict, list[str]]:
    receipt = receipts.latest(conn, "tenant.decommissioning", tenant_id)
    body = receipt.body if receipt else {}
    archive = (
        conn.execute(sa.select(archives).where(archives.c.id == body.get("archive_id"))).first()
        if body.get("archive_id")
        else None
    )
    archive_ok, archive_verifies = _archive_state(keel, conn, archive)
    events = {
        e["event"]["type"]
        for t in DECOMMISSION_EVENTS
        for e in keel.ledger.entries(conn, tenant_id=tenant_id, tenant_only=True, event_type=t, limit=1)
    }
    proof = keel.keyring.prove_shredded(conn, tenant_id)
    checks = {
        "receipt_complete": all(body.get(k) for k in ("deleted_by", "validated_by", "archived_by")),
        "archive_retained": archive_ok,
        "archive_verifies_offline": archive_verifies,
        "storage_deleted": not keel.dataplanes.exists(tenant_id),
        "key_shredded": proof["proven"],
        "steps_evidenced": sorted(events) == sorted(DECOMMISSION_EVENTS),
    }
    reasons = {
        "receipt_complete": "the decommissioning receipt lacks deleted_by, validated_by or archived_by",
        "archive_retained": "the evidence archive is missing or no longer matches its recorded hash",
        "archive_verifies_offline": "the evidence archive does not verify with the platform's public key",
        "storage_deleted": "the tenant's data-plane storage still exists",
        "key_shredded": "a ciphertext of the tenant still decrypts",
        "steps_evidenced": "not every decommissioning step is in the ledger: "
        + ", ".join(sorted(set(DECOMMISSION_EVENTS) - events)),
    }
    return checks, [reasons[name] for name, ok in checks.items() if not ok]


def _archive_state(keel, conn, archive) -> tuple[bool, bool]:
    """(retained with its recorded hash, verifies offline with the platform key)."""
    if archive is None:
        return False, False
    try:
        data = Path(archive.path).read_bytes()
    except OSError:
        return False, False
    if hashlib.sha256(data).hexdigest() != archive.sha256:
        return False, False
    pem = keel.public_key_pem(conn)
    return True, bool(pem) and verify_export(json.loads(data), pem).ok
