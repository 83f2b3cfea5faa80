"""KPI publishing (story 06): which KPI contract version a tenant's people see, on what evidence.

A build (``contracts.builds``) makes a KPI's values; a publication makes them visible. The
Platform Admin publishes one KPI contract version to a tenant (``kpi:Publish``, dual-signed: the
version's author and its two approvers are three people), and consumption (``service.py``) then
reads the newest successful build of exactly that version, so rebuilding the version refreshes
what people see while a new contract version waits for its own publication.

Publishing needs its evidence (``evidence.py``): a successful build of the version for the
tenant, that build's lineage records, a data-quality outcome that did not block. Without it the
publication is blocked: nothing is published (the KPI stays as it was: invisible if it was not
published), ``kpi.publish.blocked`` is recorded and an incident (with ``alert.fired``) opened, in
a unit of work of its own, and the caller gets 409 naming what is missing. Publishing is
reversible: ``unpublish`` withdraws the KPI, ``rollback`` returns to the publication the current
one replaced (its version's build must still be there). Each step issues a ``kpi.publication``
receipt named by its ledger event; the ``kpi_publish_success_rate`` counts attempts that published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.contracts import records
from keel.contracts.lifecycle import active_version
from keel.contracts.model import Layer, Status, Version
from keel.evidence import receipts
from keel.evidence.canonical import canonical_json
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.kpis import publications as pubs
from keel.kpis.errors import PublicationBlocked
from keel.kpis.evidence import Evidence, gather
from keel.kpis.proofs import proof_of
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.rbac.dual_control import dual_signed
from keel.store.tables import kpi_publications

PUBLISH, UNPUBLISH, ROLLBACK, READ = "kpi:Publish", "kpi:Unpublish", "kpi:RollbackPublication", "kpi:Read"
RECEIPT = "kpi.publication"
INCIDENT_KIND = "kpi_publication_blocked"


def _resource(tenant_id: str, kpi_id: str, row=None) -> Resource:
    if row is None:
        return Resource("kpi", kpi_id, tenant=tenant_id)
    return Resource(
        "kpi",
        f"{kpi_id}@{row.version}",
        tenant=tenant_id,
        drafted_by=row.drafted_by,
        approved_by=frozenset(a for a in (row.validated_by, row.compliance_by) if a),
    )


def _tenant(conn, tenant_id: str, *, active: bool = False) -> None:
    from keel.tenants.service import load_tenant

    tenant = load_tenant(conn, tenant_id)
    if active and tenant.status != "ACTIVE":
        raise Conflict(f"the tenant is {tenant.status}: nothing is published to it", tenant_id=tenant_id)


def _kpi_version(conn, tenant_id: str, kpi_id: str, version: str | None):
    """The KPI contract version to publish: the one named, else the one the tenant runs."""
    if version is not None:
        try:
            version = str(Version.parse(version.removeprefix("v")))
        except ValueError:
            raise InvalidInput("version", f"'{version}' is not a version (MAJOR.MINOR.PATCH)") from None
    else:
        version = active_version(conn, tenant_id, kpi_id)
        if version is None:
            raise NotFound("KPI", kpi_id)
    try:
        row = records.load(conn, kpi_id, version)
    except NotFound:
        raise NotFound("KPI contract version", f"{kpi_id}@{version}") from None
    if row.layer != Layer.KPI.value or row.tenant_id not in (None, tenant_id):
        raise NotFound("KPI contract version", f"{kpi_id}@{version}")
    if row.status not in (Status.PUBLISHED.value, Status.DEPRECATED.value):
        raise Conflict(
            f"{kpi_id}@{version} is {row.status}: only a published KPI contract version is published "
            "to a tenant",
            field="version",
            status=row.status,
        )
    return row


def _issue(
    uow,
    actor: Actor,
    tenant_id: str,
    publication_id: str,
    kpi_id: str,
    version: str,
    status: str,
    extra: dict,
    now,
) -> tuple[str, str]:
    """Issue the step's receipt; returns its id and the SHA-256 of its canonical body (the ledger
    event carries it, so the receipt is checked against the signed ledger)."""
    body = {
        "publication_id": publication_id,
        "kpi_id": kpi_id,
        "tenant_id": tenant_id,
        "version": version,
        "status": status,
        "by": actor.user_id,
        "timestamp": now.isoformat(),
        **extra,
    }
    receipt_id = receipts.issue(uow.conn, RECEIPT, subject_id=kpi_id, tenant_id=tenant_id, body=body, at=now)
    return receipt_id, hashlib.sha256(canonical_json(body)).hexdigest()


def _insert(
    uow,
    actor: Actor,
    tenant_id: str,
    kpi_id: str,
    contract,
    evidence: Evidence,
    *,
    previous,
    rolled_back_from,
):
    """A new PUBLISHED row with its receipt and ``kpi.published``; the row."""
    now = utcnow()
    publication_id = new_id("KPB")
    extra = {
        "pipeline_run_id": evidence.run.id,
        "build_table": evidence.build_table,
        "lineage_record_ids": list(evidence.lineage_record_ids),
        "dq_status": evidence.dq_outcome.get("status"),
        "contract_sha256": contract.document_sha256,
        "previous_id": previous,
        "rolled_back_from": rolled_back_from,
    }
    receipt_id, digest = _issue(
        uow, actor, tenant_id, publication_id, kpi_id, evidence.version, "published", extra, now
    )
    values = {
        "id": publication_id,
        "tenant_id": tenant_id,
        "kpi_id": kpi_id,
        "number": pubs.next_number(uow.conn, tenant_id, kpi_id),
        "version": evidence.version,
        "status": pubs.PUBLISHED,
        "pipeline_run_id": evidence.run.id,
        "build_table": evidence.build_table,
        "lineage_record_ids": list(evidence.lineage_record_ids),
        "dq_outcome": evidence.dq_outcome,
        "previous_id": previous,
        "rolled_back_from": rolled_back_from,
        "receipt_id": receipt_id,
        "published_by": actor.user_id,
        "published_at": now,
    }
    try:
        uow.conn.execute(kpi_publications.insert().values(**values))
    except sa.exc.IntegrityError:  # another publication of this KPI got its number first
        raise Conflict(f"{kpi_id} is being published concurrently; retry", kpi_id=kpi_id) from None
    uow.record(
        "kpi.published",
        actor_id=actor.user_id,
        tenant_id=tenant_id,
        publication_id=publication_id,
        kpi_id=kpi_id,
        version=evidence.version,
        status="published",
        pipeline_run_id=evidence.run.id,
        dq_status=evidence.dq_outcome.get("status"),
        rolled_back_from=rolled_back_from,
        receipt_id=receipt_id,
        receipt_sha256=digest,
    )
    metrics.outcome(uow.conn, "kpi_publish_success_rate", True, tenant_id)
    return pubs.load(uow.conn, publication_id)


def _blocked(
    keel, actor: Actor, tenant_id: str, kpi_id: str, evidence: Evidence, step: str
) -> PublicationBlocked:
    """Log the refused publication, open its incident (alert), count it; the error to raise."""
    with keel.uow() as uow:
        missing = list(evidence.missing)
        incident_id = open_incident(
            uow,
            actor,
            kind=INCIDENT_KIND,
            summary=f"{step} of {kpi_id}@{evidence.version} blocked: evidence missing",
            severity="SEV3",
            details={"kpi_id": kpi_id, "version": evidence.version, "missing": missing},
            tenant_id=tenant_id,
        )
        uow.record(
            "kpi.publish.blocked",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            kpi_id=kpi_id,
            version=evidence.version,
            step=step,
            missing=[m["evidence"] for m in missing],
            incident_id=incident_id,
        )
        metrics.outcome(uow.conn, "kpi_publish_success_rate", False, tenant_id)
        uow.commit()
    return PublicationBlocked(kpi_id, evidence.version, missing, incident_id)


def _answer(keel, tenant_id: str, row, event_type: str, receipt_id: str, **extra) -> dict:
    seq, proof = proof_of(keel, tenant_id, event_type, receipt_id)
    return pubs.view(row) | extra | {"ledger_seq": seq, "proof": proof}


def _run(keel, actor: Actor, tenant_id: str, kpi_id: str, step: str, change: Callable):
    """Run one publication step in one unit of work. ``change`` returns the changed row, or the
    incomplete ``Evidence`` that blocks the step: then nothing of it commits, and the refusal is
    logged and alerted in a unit of work of its own."""
    with keel.uow() as uow:
        outcome = change(uow)
        if not isinstance(outcome, Evidence):
            uow.commit()
    if isinstance(outcome, Evidence):
        raise _blocked(keel, actor, tenant_id, kpi_id, outcome, step)
    return outcome


def publish(keel, actor: Actor, tenant_id: str, kpi_id: str, version: str | None = None) -> dict:
    """Publish a KPI contract version (default: the one the tenant runs) to the tenant's people."""

    def change(uow):
        # Tenancy and role first, so a refusal reads the same whether the KPI exists or not;
        # then the version's own sign-offs (dual control, no deploying one's own change).
        keel.authorize(uow, actor, PUBLISH, _resource(tenant_id, kpi_id), dual_signed=True)
        _tenant(uow.conn, tenant_id, active=True)
        contract = _kpi_version(uow.conn, tenant_id, kpi_id, version)
        signed = dual_signed(contract.drafted_by, (contract.validated_by, contract.compliance_by))
        keel.authorize(uow, actor, PUBLISH, _resource(tenant_id, kpi_id, contract), dual_signed=signed)
        current = pubs.current(uow.conn, tenant_id, kpi_id, lock=True)
        if current is not None and current.version == contract.version:
            raise Conflict(
                f"{kpi_id}@{contract.version} is published to this tenant already ({current.id})",
                reason="already_published",
                publication_id=current.id,
            )
        evidence = gather(keel, uow.conn, tenant_id, kpi_id, contract.version)
        if not evidence.complete:
            return evidence
        row = _insert(
            uow, actor, tenant_id, kpi_id, contract, evidence,
            previous=current.id if current else None, rolled_back_from=None,
        )  # fmt: skip
        if current is not None:
            pubs.end(
                uow.conn,
                current,
                pubs.SUPERSEDED,
                by=actor.user_id,
                at=row.published_at,
                receipt_id=row.receipt_id,
            )
        return row

    row = _run(keel, actor, tenant_id, kpi_id, "publish", change)
    return _answer(keel, tenant_id, row, "kpi.published", row.receipt_id)


def unpublish(keel, actor: Actor, tenant_id: str, kpi_id: str) -> dict:
    """Withdraw the KPI's publication: its people no longer see it (its builds stay)."""

    def change(uow):
        keel.authorize(uow, actor, UNPUBLISH, _resource(tenant_id, kpi_id))
        current = pubs.current(uow.conn, tenant_id, kpi_id, lock=True)
        if current is None:
            raise NotFound("KPI publication", kpi_id)
        now = utcnow()
        receipt_id, digest = _issue(
            uow, actor, tenant_id, current.id, kpi_id, current.version, "unpublished", {}, now
        )
        pubs.end(uow.conn, current, pubs.UNPUBLISHED, by=actor.user_id, at=now, receipt_id=receipt_id)
        uow.record(
            "kpi.unpublished",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            publication_id=current.id,
            kpi_id=kpi_id,
            version=current.version,
            status="unpublished",
            receipt_id=receipt_id,
            receipt_sha256=digest,
        )
        return pubs.load(uow.conn, current.id)

    row = _run(keel, actor, tenant_id, kpi_id, "unpublish", change)
    return _answer(keel, tenant_id, row, "kpi.unpublished", row.ended_receipt_id)


def rollback(keel, actor: Actor, tenant_id: str, kpi_id: str) -> dict:
    """Return to the publication the current one replaced: its KPI contract version (definition,
    thresholds) and that version's newest build, checked for evidence again."""

    def change(uow):
        keel.authorize(uow, actor, ROLLBACK, _resource(tenant_id, kpi_id))
        current = pubs.current(uow.conn, tenant_id, kpi_id, lock=True)
        if current is None:
            raise Conflict(f"{kpi_id} is not published to this tenant: nothing to roll back", kpi_id=kpi_id)
        earlier = pubs.load(uow.conn, current.previous_id)
        if earlier is None:
            raise Conflict(
                f"{kpi_id}'s publication {current.id} replaced none: no previous publication to roll back to",
                publication_id=current.id,
            )
        contract = records.load(uow.conn, kpi_id, earlier.version)
        evidence = gather(keel, uow.conn, tenant_id, kpi_id, earlier.version)
        if not evidence.complete:
            return evidence
        now = utcnow()
        receipt_id, digest = _issue(
            uow,
            actor,
            tenant_id,
            current.id,
            kpi_id,
            current.version,
            "rolled_back",
            {"back_to": earlier.id, "back_to_version": earlier.version},
            now,
        )
        pubs.end(uow.conn, current, pubs.ROLLED_BACK, by=actor.user_id, at=now, receipt_id=receipt_id)
        uow.record(
            "kpi.publication.rolled_back",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            publication_id=current.id,
            kpi_id=kpi_id,
            version=current.version,
            back_to=earlier.id,
            back_to_version=earlier.version,
            receipt_id=receipt_id,
            receipt_sha256=digest,
        )
        # The returned-to publication's own predecessor becomes the next step back.
        return _insert(
            uow, actor, tenant_id, kpi_id, contract, evidence,
            previous=earlier.previous_id, rolled_back_from=current.id,
        )  # fmt: skip

    row = _run(keel, actor, tenant_id, kpi_id, "rollback", change)
    return _answer(keel, tenant_id, row, "kpi.published", row.receipt_id)


def list_publications(
    keel, actor: Actor, tenant_id: str, kpi_id: str, *, before: int | None = None, limit: int = 50
) -> list[dict]:
    """The KPI's publications in the tenant, newest first, each with its evidence references."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, _resource(tenant_id, kpi_id))
        _tenant(uow.conn, tenant_id)
        return pubs.history(uow.conn, tenant_id, kpi_id, before=before, limit=limit)
