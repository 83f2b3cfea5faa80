"""Story 03d: a tenant's schema change request, from the request to its rollout::

    REQUESTED --SS asks--> NEEDS_CLARIFICATION --TA amends--> REQUESTED
    REQUESTED --SS validates (version, impact, risk)--> VALIDATED --TP approves--> APPROVED
    REQUESTED --SS: high risk without a rollback plan--> REJECTED (with a recommendation)
    VALIDATED --TP declines--> REJECTED
    APPROVED --PA books a change window--> SCHEDULED --PA rolls out (03f) inside it--> DEPLOYED
                                                                             \\--> ROLLED_BACK

The change itself is a contract version (drafted and validated through the registry,
``lifecycle.py``); the request carries why, what and how to undo it. People's words
(justifications, questions, plans) stay in the request row: the ledger gets their hashes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.contracts import records
from keel.contracts.lifecycle import active_version
from keel.contracts.model import Status, Version
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.store.tables import change_requests
from keel.tenants.service import load_tenant

RISKS = ("low", "medium", "high")
MAX_WINDOW = timedelta(hours=24)
USABLE_PROPOSALS = (Status.VALIDATED, Status.APPROVED, Status.PUBLISHED)
RECOMMENDATION = (
    "a high-risk change needs a rollback plan: name the version to return to and how data and KPIs "
    "are restored, or split the change into lower-risk steps"
)


def resource(row_or_tenant, change_id: str = "new") -> Resource:
    if isinstance(row_or_tenant, str):
        return Resource("schema-change", change_id, tenant=row_or_tenant)
    row = row_or_tenant
    return Resource(
        "schema-change",
        row.id,
        tenant=row.tenant_id,
        drafted_by=row.requested_by,
        approved_by=frozenset(a for a in (row.validated_by, row.approved_by) if a),
    )


def request(
    keel,
    actor: Actor,
    tenant_id: str,
    *,
    schema_id: str,
    change: str,
    justification: str,
    rollback_plan: str = "",
) -> dict:
    """TA files a justified request against a contract its tenant runs."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:RequestChange", resource(tenant_id))
        load_tenant(uow.conn, tenant_id)
        _require_text("change", change)
        _require_text("justification", justification)
        base = active_version(uow.conn, tenant_id, schema_id)
        if base is None or not records.visible(records.load(uow.conn, schema_id, base), actor):
            raise InvalidInput("schema_id", f"'{schema_id}' has no published version your tenant runs")
        change_id = new_id("SC")
        now = utcnow()
        uow.conn.execute(
            change_requests.insert().values(
                id=change_id,
                tenant_id=tenant_id,
                contract_id=schema_id,
                base_version=base,
                change={"summary": change.strip()},
                justification=justification.strip(),
                rollback_plan=rollback_plan.strip() or None,
                status="REQUESTED",
                requested_by=actor.user_id,
                created_at=now,
                updated_at=now,
            )
        )
        uow.record(
            "schema.change.requested",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            change_id=change_id,
            schema_id=schema_id,
            base_version=base,
            justification_sha256=_sha(justification),
            rollback_plan=bool(rollback_plan.strip()),
        )
        uow.commit()
        return view(load(uow.conn, tenant_id, change_id), actor)


def ask_clarification(keel, actor: Actor, tenant_id: str, change_id: str, *, question: str) -> dict:
    """SS sends an incomplete request back to its author with a question."""
    _require_text("question", question)
    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:ValidateChange", tenant_id, change_id, lock=True)
        _require(row, "REQUESTED")
        _update(uow, row, status="NEEDS_CLARIFICATION", clarification=question.strip())
        uow.record(
            "schema.change.clarification_requested",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            change_id=change_id,
            question_sha256=_sha(question),
        )
        uow.commit()
        return view(load(uow.conn, tenant_id, change_id), actor)


def amend(
    keel, actor: Actor, tenant_id: str, change_id: str, *, justification: str = "", rollback_plan: str = ""
) -> dict:
    """The requester answers a clarification: the request is back for validation."""
    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:RequestChange", tenant_id, change_id, lock=True)
        if row.requested_by != actor.user_id:
            raise Conflict("only the requester amends a change request")
        _require(row, "NEEDS_CLARIFICATION")
        if not justification.strip() and not rollback_plan.strip():
            raise InvalidInput(
                "justification", "an amendment answers the question (justification or rollback plan)"
            )
        values = {"status": "REQUESTED", "clarification": None}
        if justification.strip():
            values["justification"] = justification.strip()
        if rollback_plan.strip():
            values["rollback_plan"] = rollback_plan.strip()
        _update(uow, row, **values)
        uow.record(
            "schema.change.amended",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            change_id=change_id,
            justification_sha256=_sha(values.get("justification", row.justification)),
        )
        uow.commit()
        return view(load(uow.conn, tenant_id, change_id), actor)


def validate(
    keel, actor: Actor, tenant_id: str, change_id: str, *, proposed_version: str, risk: str, impact: dict
) -> dict:
    """SS attaches the version that carries the change, its impact analysis and a risk rating.
    High risk without a rollback plan is rejected with a recommendation."""
    if risk not in RISKS:
        raise InvalidInput("risk", f"'{risk}' is not one of {', '.join(RISKS)}")
    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:ValidateChange", tenant_id, change_id, lock=True)
        _require(row, "REQUESTED")
        proposal = records.load(uow.conn, row.contract_id, proposed_version, actor=actor)
        if proposal.status not in USABLE_PROPOSALS:
            raise InvalidInput(
                "proposed_version",
                f"{row.contract_id}@{proposed_version} is {proposal.status}; it must pass "
                "the Schema Steward's validation first",
            )
        if Version.parse(proposed_version) < Version.parse(row.base_version) or (
            proposed_version == row.base_version
        ):
            raise InvalidInput("proposed_version", f"must be newer than the running {row.base_version}")
        rejected = risk == "high" and not row.rollback_plan
        _update(
            uow,
            row,
            status="REJECTED" if rejected else "VALIDATED",
            validated_by=actor.user_id,
            proposed_version=proposed_version,
            risk=risk,
            impact=impact,
            recommendation=RECOMMENDATION if rejected else None,
        )
        uow.record(
            "schema.change.rejected" if rejected else "schema.change.validated",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            change_id=change_id,
            schema_id=row.contract_id,
            proposed_version=proposed_version,
            risk=risk,
            reason="high risk without a rollback plan" if rejected else None,
        )
        if rejected:
            metrics.outcome(uow.conn, "change_success_rate", False, tenant_id)
        uow.commit()
        return view(load(uow.conn, tenant_id, change_id), actor)


def validate_with_impact(
    keel, actor: Actor, tenant_id: str, change_id: str, *, proposed_version: str, risk: str
) -> dict:
    """SS: the impact analysis of the change (03g), then ``validate`` with it attached."""
    from keel.contracts import notices

    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:ValidateChange", tenant_id, change_id)
        _require(row, "REQUESTED")
    impact = notices.analyse(keel, actor, change_id, row.contract_id)
    return validate(
        keel, actor, tenant_id, change_id, proposed_version=proposed_version, risk=risk, impact=impact
    )


def decide(keel, actor: Actor, tenant_id: str, change_id: str, *, approve: bool, reason: str = "") -> dict:
    """TP signs the change off (or declines it); nobody approves their own request."""
    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:ApproveChange", tenant_id, change_id, lock=True)
        _require(row, "VALIDATED")
        if not approve and not reason.strip():
            raise InvalidInput("reason", "say why the change is declined")
        _update(uow, row, status="APPROVED" if approve else "REJECTED", approved_by=actor.user_id)
        uow.record(
            "schema.change.approved" if approve else "schema.change.rejected",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            change_id=change_id,
            schema_id=row.contract_id,
            risk=row.risk,
            reason_sha256=_sha(reason) if reason else None,
        )
        if not approve:
            metrics.outcome(uow.conn, "change_success_rate", False, tenant_id)
        uow.commit()
        return view(load(uow.conn, tenant_id, change_id), actor)


def schedule(keel, actor: Actor, tenant_id: str, change_id: str, *, start: datetime, end: datetime) -> dict:
    """PA books a change window: in the future, at most ``MAX_WINDOW`` long, clear of other changes
    to the same contract."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise InvalidInput("window_end", "must be after window_start")
    if end - start > MAX_WINDOW:
        raise InvalidInput(
            "window_end", f"a change window lasts at most {MAX_WINDOW.total_seconds() / 3600:g} hours"
        )
    if end <= utcnow():
        raise InvalidInput("window_end", "the window is over already")
    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:Deploy", tenant_id, change_id, lock=True)
        _require(row, "APPROVED")
        clash = uow.conn.execute(
            sa.select(change_requests.c.id).where(
                change_requests.c.contract_id == row.contract_id,
                change_requests.c.status == "SCHEDULED",
                change_requests.c.window_start < end,
                change_requests.c.window_end > start,
            )
        ).first()
        if clash:
            raise Conflict(f"change {clash.id} holds an overlapping window on {row.contract_id}")
        _update(uow, row, status="SCHEDULED", scheduled_by=actor.user_id, window_start=start, window_end=end)
        uow.record(
            "schema.change.scheduled",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            change_id=change_id,
            window_start=start.isoformat(),
            window_end=end.isoformat(),
        )
        uow.commit()
        scheduled = view(load(uow.conn, tenant_id, change_id), actor)
    # 03d step 5: the consumers hear of the window (network I/O, outside the unit of work).
    from keel.contracts import notices

    scheduled["notice"] = notices.notify_change(
        keel,
        actor,
        change_id,
        row.contract_id,
        subject=f"Change {change_id} to {row.contract_id}: {start.isoformat()} to {end.isoformat()}",
        body=None,
    )
    return scheduled


def require_in_window(row) -> None:
    """A scheduled change rolls out only inside its window."""
    if row.status != "SCHEDULED":
        raise Conflict(f"change {row.id} is {row.status}; only a scheduled change is rolled out")
    now = utcnow()
    if not as_utc(row.window_start) <= now <= as_utc(row.window_end):
        raise Blocked(
            f"change {row.id} may roll out between {as_utc(row.window_start).isoformat()} and "
            f"{as_utc(row.window_end).isoformat()}",
            window_start=as_utc(row.window_start).isoformat(),
        )


def finish(uow, actor: Actor, row, *, deployed: bool, rollout_id: str) -> None:
    """Close a change after its rollout (inside the rollout's unit of work)."""
    _update(uow, row, status="DEPLOYED" if deployed else "ROLLED_BACK", rollout_id=rollout_id)
    uow.record(
        "schema.change.deployed" if deployed else "schema.change.rolled_back",
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        change_id=row.id,
        schema_id=row.contract_id,
        version=row.proposed_version,
        rollout_id=rollout_id,
    )
    metrics.outcome(uow.conn, "change_success_rate", deployed, row.tenant_id)


def get(keel, actor: Actor, tenant_id: str, change_id: str) -> dict:
    with keel.uow() as uow:
        row = _authorized(keel, uow, actor, "schema:Read", tenant_id, change_id)
        return view(row, actor)


def list_for_tenant(keel, actor: Actor, tenant_id: str, *, after: str | None, limit: int) -> list[dict]:
    from keel.onboarding.paging import keyset

    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Read", resource(tenant_id, "*"))
        load_tenant(uow.conn, tenant_id)
        query = keyset(change_requests, change_requests.c.tenant_id == tenant_id, after=after, limit=limit)
        return [view(r, actor) for r in uow.conn.execute(query)]


def _authorized(keel, uow, actor: Actor, action: str, tenant_id: str, change_id: str, *, lock: bool = False):
    """The change, once ``actor`` may do ``action`` on it. The path's tenant is authorized first, so
    another tenant's change is refused exactly like one that does not exist."""
    keel.authorize(uow, actor, action, resource(tenant_id, change_id))
    row = load(uow.conn, tenant_id, change_id, lock=lock)
    keel.authorize(uow, actor, action, resource(row))
    return row


def load(conn, tenant_id: str, change_id: str, *, lock: bool = False):
    query = sa.select(change_requests).where(
        change_requests.c.id == change_id, change_requests.c.tenant_id == tenant_id
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("change request", change_id)
    return row


def view(row, actor: Actor | None = None) -> dict:
    def stamp(value):
        return as_utc(value).isoformat() if value else None

    return {
        "change_id": row.id,
        "tenant_id": row.tenant_id,
        "schema": row.contract_id,
        "base_version": row.base_version,
        "proposed_version": row.proposed_version,
        "change": row.change["summary"],
        "justification": row.justification,
        "rollback_plan": row.rollback_plan,
        "status": row.status,
        "risk": row.risk,
        "impact": _impact_seen_by(actor, row.impact),
        "recommendation": row.recommendation,
        "clarification": row.clarification,
        "requested_by": row.requested_by,
        "validated_by": row.validated_by,
        "approved_by": row.approved_by,
        "scheduled_by": row.scheduled_by,
        "window_start": stamp(row.window_start),
        "window_end": stamp(row.window_end),
        "rollout_id": row.rollout_id,
        "created_at": stamp(row.created_at),
        "updated_at": stamp(row.updated_at),
    }


def _impact_seen_by(actor: Actor | None, impact: dict | None) -> dict | None:
    """A tenant's people see the blast radius inside their own tenant: other tenants, their
    consumers and the people who were told are the provider's to see."""
    if impact is None or actor is None or not actor.tenant_id:
        return impact
    scope = dict(impact.get("impact_scope", {}))
    scope["tenants"] = [t for t in scope.get("tenants", []) if t == actor.tenant_id]
    consumers = [c for c in impact.get("consumers", []) if c.get("tenant_id") in (None, actor.tenant_id)]
    for kind in {c["kind"] for c in impact.get("consumers", [])}:
        scope[f"{kind}s"] = sorted({c["name"] for c in consumers if c["kind"] == kind})
    return {
        "contract_id": impact.get("contract_id"),
        "impact_scope": scope,
        "consumers": consumers,
        "complete": impact.get("complete"),
        "risk": impact.get("risk"),
    }


def _update(uow, row, **values) -> None:
    uow.conn.execute(
        change_requests.update().where(change_requests.c.id == row.id).values(updated_at=utcnow(), **values)
    )


def _require(row, status: str) -> None:
    if row.status != status:
        raise Conflict(f"change {row.id} is {row.status}; this step needs it {status}")


def _require_text(field: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, "is required")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
