"""Story 01c: offboarding request (PA), decision (PO), evidence archive (CO), decommissioning (PA),
wipe validation (SA).

Decommissioning needs an approved offboarding request and a verified evidence
archive made after the approval, *before* anything is deleted; it then revokes
every login, deletes the tenant's data plane and crypto-shreds its key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa

from keel.accounts.service import revoke_tenant_access
from keel.authz.engine import Resource
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.store.tables import archives, connectors, requests, sources, tenants
from keel.tenants.service import (
    _alert_if_storage_remains,
    _open_incident,
    _platform,
    get_request,
    get_tenant,
    load_tenant,
)


def request_offboarding(keel, actor: Actor, tenant_id: str, reason: str) -> dict:
    if not reason or not reason.strip():
        raise InvalidInput("reason", "an offboarding request needs a reason")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:RequestOffboarding", _platform(tenant_id))
        row = load_tenant(uow.conn, tenant_id)
        if row.status != "ACTIVE":
            raise Conflict(f"tenant is {row.status}, expected ACTIVE", tenant_id=tenant_id)
        request_id = new_id("OFF")
        uow.conn.execute(
            requests.insert().values(
                id=request_id,
                kind="offboarding",
                tenant_id=tenant_id,
                subject_id=tenant_id,
                body={"reason": reason},
                status="PENDING",
                requested_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "tenant.offboarding.requested", actor_id=actor.user_id, tenant_id=tenant_id, request_id=request_id
        )
        uow.commit()
    return get_request(keel, actor, request_id)


def decide_offboarding(keel, actor: Actor, request_id: str, approve: bool, reason: str = "") -> dict:
    """PO approves or rejects an offboarding request; the requester never decides its own."""
    with keel.uow() as uow:
        row = uow.conn.execute(
            sa.select(requests).where(requests.c.id == request_id, requests.c.kind == "offboarding")
        ).first()
        # Authorize before answering "not found", so the answer does not tell who may not
        # decide whether the request exists.
        keel.authorize(
            uow,
            actor,
            "tenant:ApproveOffboarding",
            Resource("request", request_id, tenant="", drafted_by=row.requested_by if row else None),
        )
        if row is None:
            raise NotFound("offboarding request", request_id)
        if row.status != "PENDING":
            raise Conflict(f"request is {row.status}, expected PENDING", request_id=request_id)
        status = "APPROVED" if approve else "REJECTED"
        uow.conn.execute(
            requests.update()
            .where(requests.c.id == request_id)
            .values(status=status, decided_by=actor.user_id, decided_at=utcnow(), decision_reason=reason)
        )
        uow.record(
            f"tenant.offboarding.{status.lower()}",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            request_id=request_id,
        )
        uow.commit()
    return get_request(keel, actor, request_id)


def archive_evidence(keel, actor: Actor, tenant_id: str) -> dict:
    """CO archives the ledger (offline-verifiable export) for the tenant, with the file's hash."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:ArchiveEvidence", _platform(tenant_id))
        load_tenant(uow.conn, tenant_id)
        archive_id = new_id("ARC")
        doc = keel.ledger.export(uow.conn, tenant_id=tenant_id, public_pem=keel.public_key_pem(uow.conn))
        directory = keel.settings.home / "archives" / tenant_id
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{archive_id}.json"
        data = json.dumps(doc, sort_keys=True).encode()
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        uow.on_rollback(lambda: path.unlink(missing_ok=True))
        tenant_entries = sum(1 for e in doc["entries"] if e["event"].get("tenant_id") == tenant_id)
        uow.conn.execute(
            archives.insert().values(
                id=archive_id,
                tenant_id=tenant_id,
                path=str(path),
                sha256=digest,
                entries=tenant_entries,
                archived_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "evidence.archived",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            archive_id=archive_id,
            sha256=digest,
            entries=tenant_entries,
            ledger_size=len(doc["entries"]),
        )
        uow.commit()
    return {
        "archive_id": archive_id,
        "tenant_id": tenant_id,
        "path": str(path),
        "sha256": digest,
        "entries": tenant_entries,
        "archived_by": actor.user_id,
    }


def _verified_archive(conn, tenant_id: str, since):
    """The newest archive made at or after ``since`` whose file still hashes to what was recorded.

    An archive older than the approval of the offboarding would miss the evidence of the
    offboarding itself, so it does not count.
    """
    for row in conn.execute(
        sa.select(archives).where(archives.c.tenant_id == tenant_id).order_by(archives.c.created_at.desc())
    ):
        if as_utc(row.created_at) < as_utc(since):
            break
        try:
            data = Path(row.path).read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == row.sha256:
            return row
    return None


def decommission_tenant(keel, actor: Actor, tenant_id: str, request_id: str) -> dict:
    """PA decommissions: needs an approved request and a verified evidence archive first.

    Then every login of the tenant is revoked, its data key is crypto-shredded and its
    data-plane storage deleted. Without the archive nothing is deleted and an incident opens.
    """
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:Decommission", _platform(tenant_id))
        row = load_tenant(uow.conn, tenant_id)
        request = uow.conn.execute(
            sa.select(requests).where(requests.c.id == request_id, requests.c.kind == "offboarding")
        ).first()
        ours = request is not None and request.tenant_id == tenant_id
        if not ours or request.status != "APPROVED":
            raise Blocked(
                "decommissioning needs an approved offboarding request for this tenant",
                request_id=request_id,
                request_status=request.status if ours else None,  # nothing about other tenants' requests
            )
        if row.status != "ACTIVE":
            raise Conflict(f"tenant is {row.status}, expected ACTIVE", tenant_id=tenant_id)
        archive = _verified_archive(uow.conn, tenant_id, request.decided_at)
    if archive is None:
        incident = _open_incident(
            keel,
            actor,
            tenant_id,
            "evidence.missing",
            "decommissioning blocked: no verified evidence archive for the tenant",
            outcome="decommissioning_success_rate",
            request_id=request_id,
        )
        raise Blocked(
            "the tenant's evidence archive is missing or does not match its hash; nothing was deleted",
            tenant_id=tenant_id,
            incident_id=incident,
        )
    with keel.uow() as uow:
        now = utcnow()
        # Conditional updates: of two concurrent decommissions only one proceeds.
        claimed = uow.conn.execute(
            requests.update()
            .where(requests.c.id == request_id, requests.c.status == "APPROVED")
            .values(status="USED")
        ).rowcount
        retired = uow.conn.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id, tenants.c.status == "ACTIVE")
            .values(status="DECOMMISSIONED", decommissioned_at=now)
        ).rowcount
        if claimed != 1 or retired != 1:
            raise Conflict("the tenant is being decommissioned already", tenant_id=tenant_id)
        access = revoke_tenant_access(uow.conn, tenant_id)
        shred = keel.keyring.shred_tenant_key(uow.conn, tenant_id)
        # Its connectors and sources can never run again: their credentials died with the key.
        for table in (connectors, sources):
            uow.conn.execute(
                table.update().where(table.c.tenant_id == tenant_id).values(status="RETIRED", updated_at=now)
            )
        receipt = {
            "tenant_id": tenant_id,
            "status": "DECOMMISSIONED",
            "deleted_by": actor.user_id,
            "validated_by": None,
            "archived_by": archive.archived_by,
            "archive_id": archive.id,
            "archive_sha256": archive.sha256,
            "request_id": request_id,
            "approved_by": request.decided_by,
            "access_revoked": access,
            "data_plane": "deleted",
            "crypto_shred": shred,
            "timestamp": now.isoformat(),
        }
        receipts.issue(
            uow.conn,
            "tenant.decommissioning",
            subject_id=tenant_id,
            tenant_id=tenant_id,
            body=receipt,
            at=now,
        )
        uow.record(
            "tenant.decommissioned",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            request_id=request_id,
            archive_id=archive.id,
            access_revoked=access,
        )
        uow.record(
            "data.wiped",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            data_plane="deleted",
            crypto_shred=shred,
        )
        uow.after_commit(lambda: keel.dataplanes.destroy(tenant_id))
        uow.commit()
    _alert_if_storage_remains(keel, actor, tenant_id)
    return get_tenant(keel, actor, tenant_id)


def confirm_wipe(keel, actor: Actor, tenant_id: str) -> dict:
    """SA confirms the wipe: storage gone, key destroyed, no ciphertext decrypts."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "tenant:ValidateWipe", _platform(tenant_id))
        row = load_tenant(uow.conn, tenant_id)
        if row.status != "DECOMMISSIONED":
            raise Conflict(f"tenant is {row.status}, expected DECOMMISSIONED", tenant_id=tenant_id)
        proof = keel.keyring.prove_shredded(uow.conn, tenant_id)
        storage_gone = not keel.dataplanes.exists(tenant_id)
        if not (proof["proven"] and storage_gone):
            raise Blocked("the wipe is incomplete", storage_deleted=storage_gone, crypto_shred=proof)
        receipt_row = receipts.latest(uow.conn, "tenant.decommissioning", tenant_id)
        receipts.amend(uow.conn, receipt_row.id, {**receipt_row.body, "validated_by": actor.user_id})
        uow.record(
            "tenant.wipe.validated",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            storage_deleted=storage_gone,
            crypto_shred=proof,
        )
        metrics.outcome(uow.conn, "decommissioning_success_rate", True, tenant_id)
        uow.commit()
    return get_tenant(keel, actor, tenant_id)
