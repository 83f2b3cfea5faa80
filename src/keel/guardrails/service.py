"""The guardrail registry, its evaluation and a tenant's daily spend (04, 05b).

Security Admins define guardrails (``guardrail:Define``, ``policy.defined``); each redefinition
is a new version and starts disabled (an enabled older version is enforced meanwhile). A Platform
Admin enables the newest version (``guardrail:Enable``, ``policy.enabled``), which retires the
older. Only enabled guardrails are evaluated.

``evaluate(keel, uow, actor, tenant_id, action, essential=...)`` is the seam the workflow engine
calls before it runs an action. It returns a ``Decision``; it never raises on a breach, so the
caller can commit the evidence it recorded in ``uow`` (``policy.enforced`` or, for spend caps,
``cost.guardrail.enforced``; an incident with ``alert.fired`` on a tenant's first breach of a
guardrail in a UTC day) and then raise ``decision.error()``. ``enforce`` does exactly that in a
unit of work of its own: the refusal is evidenced even though the request fails.

Kinds: ``action_quota`` counts each allowed use of its ``actions`` (by default the governed
``workflow:*`` actions) per tenant per UTC day and refuses the use past ``quota_per_day``;
``residency`` refuses a region outside ``allowed_regions`` or other than the tenant's declared
one; ``export_limit`` refuses an export over its per-export or per-day rows or bytes;
``spend_cap`` refuses non-essential actions once today's spend passes the cap. A guardrail with
``enforcement=alert`` (``on_breach=alert_only``) evidences and alerts but allows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.guardrails.errors import GuardrailBreached
from keel.guardrails.model import Guardrail, quota_counts, validate
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import InvalidInput, NotFound
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.store.tables import guardrail_usage, guardrails, ingestion_runs, pipeline_runs, tenants

log = logging.getLogger(__name__)
READ, DEFINE, ENABLE = "guardrail:Read", "guardrail:Define", "guardrail:Enable"
EVALUATE = "guardrail:Evaluate"
GB = 1024**3


# Registry -------------------------------------------------------------------------------------
def define(keel, actor: Actor, spec: Mapping[str, Any]) -> dict:
    """A new guardrail, or a new version of an existing one (which starts disabled)."""
    rail = validate(spec)
    with keel.uow() as uow:
        keel.authorize(
            uow, actor, DEFINE, Resource("guardrail", rail.guardrail_id, tenant=rail.tenant_id or "")
        )
        current = _current(uow.conn, rail.guardrail_id)
        version = 1
        if current is not None:
            version = current.version + 1
            uow.conn.execute(
                guardrails.update()
                .where(guardrails.c.guardrail_id == rail.guardrail_id, guardrails.c.current.is_(True))
                .values(current=False)  # an enabled older version is enforced until this one is enabled
            )
        uow.conn.execute(
            guardrails.insert().values(
                guardrail_id=rail.guardrail_id,
                version=version,
                kind=rail.kind,
                tenant_id=rail.tenant_id,
                description=rail.description,
                spec=dict(rail.spec),
                enabled=False,
                current=True,
                defined_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "policy.defined",
            actor_id=actor.user_id,
            tenant_id=rail.tenant_id,
            guardrail_id=rail.guardrail_id,
            version=version,
            kind=rail.kind,
            **dict(rail.spec),
        )
        uow.commit()
        return view(_current(uow.conn, rail.guardrail_id))


def list_guardrails(
    keel,
    actor: Actor,
    *,
    tenant_id: str | None = None,
    kind: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """The newest version of each guardrail: global ones and the tenant's (a tenant user's own)."""
    scope = actor.tenant_id or tenant_id
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("guardrail", "*", tenant=scope or ""))
        query = sa.select(guardrails).where(guardrails.c.current.is_(True))
        if scope:
            query = query.where(sa.or_(guardrails.c.tenant_id.is_(None), guardrails.c.tenant_id == scope))
        if kind:
            query = query.where(guardrails.c.kind == kind)
        if after:
            query = query.where(guardrails.c.guardrail_id > after)
        return [view(r) for r in uow.conn.execute(query.order_by(guardrails.c.guardrail_id).limit(limit))]


def get_guardrail(keel, actor: Actor, guardrail_id: str) -> dict:
    with keel.uow() as uow:
        row = _visible(uow.conn, guardrail_id, actor)
        keel.authorize(uow, actor, READ, Resource("guardrail", row.guardrail_id, tenant=row.tenant_id or ""))
        return view(row)


def enable(keel, actor: Actor, guardrail_id: str) -> dict:
    """Enforce the newest version of a guardrail (once; enabling it again changes nothing)."""
    with keel.uow() as uow:
        row = _visible(uow.conn, guardrail_id, actor)
        keel.authorize(
            uow, actor, ENABLE, Resource("guardrail", row.guardrail_id, tenant=row.tenant_id or "")
        )
        if row.enabled:
            return view(row)
        uow.conn.execute(
            guardrails.update()
            .where(guardrails.c.guardrail_id == row.guardrail_id, guardrails.c.version != row.version)
            .values(enabled=False)
        )
        uow.conn.execute(
            guardrails.update()
            .where(guardrails.c.guardrail_id == row.guardrail_id, guardrails.c.version == row.version)
            .values(enabled=True, enabled_by=actor.user_id, enabled_at=utcnow())
        )
        uow.record(
            "policy.enabled",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            guardrail_id=row.guardrail_id,
            version=row.version,
            kind=row.kind,
        )
        uow.commit()
        return view(_current(uow.conn, row.guardrail_id))


def view(row) -> dict:
    return {
        "guardrail_id": row.guardrail_id,
        "version": row.version,
        "kind": row.kind,
        "description": row.description,
        "tenant_scope": row.tenant_id or "global",
        **dict(row.spec),
        "status": "enabled" if row.enabled else "disabled",
        "defined_by": row.defined_by,
        "enabled_by": row.enabled_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "enabled_at": as_utc(row.enabled_at).isoformat() if row.enabled_at else None,
    }


def _current(conn, guardrail_id: str):
    return conn.execute(
        sa.select(guardrails).where(guardrails.c.guardrail_id == guardrail_id, guardrails.c.current.is_(True))
    ).first()


def _visible(conn, guardrail_id: str, actor: Actor):
    """The newest version; another tenant's guardrail is NotFound to a tenant user."""
    row = _current(conn, guardrail_id)
    if row is None or (actor.tenant_id and row.tenant_id not in (None, actor.tenant_id)):
        raise NotFound("guardrail", guardrail_id)
    return row


# Evaluation -----------------------------------------------------------------------------------
@dataclass
class Decision:
    """The answer of ``evaluate``: allowed, or refused by ``guardrail_id`` (with ``reason``)."""

    tenant_id: str
    action: str
    essential: bool
    allowed: bool = True
    guardrail_id: str | None = None
    kind: str | None = None
    reason: str | None = None
    alerted: list[str] = field(default_factory=list)  # guardrails breached in alert-only mode
    spend: dict | None = None

    def to_dict(self) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "action": self.action,
            "essential": self.essential,
            "allowed": self.allowed,
            "guardrail_id": self.guardrail_id,
            "kind": self.kind,
            "reason": self.reason,
            "alerted": self.alerted,
            "spend": self.spend,
        }

    def error(self) -> GuardrailBreached:
        return GuardrailBreached(
            f"{self.action} refused by guardrail {self.guardrail_id}: {self.reason}",
            guardrail_id=self.guardrail_id or "",
            kind=self.kind or "",
            tenant_id=self.tenant_id,
            action=self.action,
        )

    def raise_if_refused(self) -> None:
        if not self.allowed:
            raise self.error()


def evaluate(
    keel,
    uow,
    actor: Actor,
    tenant_id: str,
    action: str,
    *,
    essential: bool,
    rows: int | None = None,
    bytes: int | None = None,
    region: str | None = None,
) -> Decision:
    """Check ``action`` for ``tenant_id`` against every enabled guardrail that covers the tenant.

    Records the uses it allows (quotas, export volumes) and the evidence of a breach in ``uow``;
    the caller commits it, then raises ``decision.error()`` when the decision is a refusal.
    """
    for name, value in (("rows", rows), ("bytes", bytes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidInput(name, "must be a whole number of at least 0")
    # The tenant's row is locked until the caller commits: concurrent evaluations for one tenant
    # then read and add to its usage counters one after the other (PostgreSQL; SQLite units of
    # work already serialize writers), so a quota is never overrun by a race.
    tenant = uow.conn.execute(
        sa.select(tenants.c.id, tenants.c.region).where(tenants.c.id == tenant_id).with_for_update()
    ).first()
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    decision = Decision(tenant_id, action, essential)
    day = utcnow().date().isoformat()
    rails = uow.conn.execute(
        sa.select(guardrails)
        .where(
            guardrails.c.enabled.is_(True),
            sa.or_(guardrails.c.tenant_id.is_(None), guardrails.c.tenant_id == tenant_id),
        )
        .order_by(guardrails.c.guardrail_id)
    ).all()
    counted: list[tuple[Any, dict]] = []
    for rail in rails:
        spec = dict(rail.spec)
        reason, count = _check(keel, uow.conn, rail, spec, tenant, decision, day, rows, bytes, region)
        if reason is None:
            if count:
                counted.append((rail, count))
            continue
        blocking = spec.get("enforcement", "block") == "block" and spec.get("on_breach") != "alert_only"
        if rail.kind == "spend_cap" and essential:  # essential actions run past a cap; still alerted
            blocking = False
        _evidence(uow, actor, rail, tenant_id, action, essential, reason, day, blocking=blocking)
        if blocking:
            decision.allowed, decision.guardrail_id, decision.kind, decision.reason = (
                False,
                rail.guardrail_id,
                rail.kind,
                reason,
            )
            return decision  # nothing is counted for a refused action
        decision.alerted.append(rail.guardrail_id)
        if count:
            counted.append((rail, count))
    for rail, count in counted:
        _count(uow.conn, rail.guardrail_id, tenant_id, day, **count)
    return decision


def enforce(keel, actor: Actor, tenant_id: str, action: str, *, essential: bool, **facts) -> dict:
    """``evaluate`` for the API: authorized, committed, and raised when refused."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, EVALUATE, Resource("tenant", tenant_id, tenant=tenant_id))
        decision = evaluate(keel, uow, actor, tenant_id, action, essential=essential, **facts)
        uow.commit()
    decision.raise_if_refused()
    return decision.to_dict()


def _check(
    keel, conn, rail, spec, tenant, decision, day, rows, nbytes, region
) -> tuple[str | None, dict | None]:
    """(why the action breaches ``rail`` or None, what to count when it is allowed)."""
    if rail.kind == "action_quota":
        if not quota_counts(spec, decision.action):
            return None, None
        used = _usage(conn, rail.guardrail_id, tenant.id, day)
        if used.uses >= spec["quota_per_day"]:
            return f"quota of {spec['quota_per_day']} per day used up ({used.uses} today)", None
        return None, {"uses": 1}
    if rail.kind == "residency":
        if region is None:
            return None, None
        if region not in spec["allowed_regions"]:
            return f"region {region} is not allowed (allowed: {', '.join(spec['allowed_regions'])})", None
        if region != tenant.region:
            return f"the tenant's data stays in its declared region {tenant.region}, not {region}", None
        return None, None
    if rail.kind == "export_limit":
        if rows is None and nbytes is None:
            return None, None
        rows, nbytes = rows or 0, nbytes or 0
        used = _usage(conn, rail.guardrail_id, tenant.id, day)
        for name, value in (
            ("max_rows_per_export", rows),
            ("max_bytes_per_export", nbytes),
            ("max_rows_per_day", used.rows + rows),
            ("max_bytes_per_day", used.bytes + nbytes),
        ):
            if name in spec and value > spec[name]:
                return f"{name}={spec[name]} exceeded ({value})", None
        return None, {"uses": 1, "rows": rows, "bytes": nbytes}
    # spend_cap
    spend = decision.spend or spend_today(keel, conn, tenant.id)
    decision.spend = spend
    cap = spec["daily_spend_cap_usd"]
    metrics.record(
        conn, "spend_to_budget_ratio", spend["spend_usd"] / cap, tenant.id, guardrail_id=rail.guardrail_id
    )
    if spend["spend_usd"] <= cap:
        return None, None
    return f"today's spend {spend['spend_usd']:.6f} USD passed the daily cap of {cap} USD", None


def _evidence(uow, actor, rail, tenant_id, action, essential, reason, day, *, blocking: bool) -> None:
    event = "cost.guardrail.enforced" if rail.kind == "spend_cap" else "policy.enforced"
    uow.record(
        event,
        actor_id=actor.user_id,
        tenant_id=tenant_id,
        guardrail_id=rail.guardrail_id,
        version=rail.version,
        kind=rail.kind,
        action=action,
        essential=essential,
        outcome="blocked" if blocking else "alerted",
        reason=reason,
    )
    first = _count(uow.conn, rail.guardrail_id, tenant_id, day, breaches=1) == 1
    if first:
        open_incident(
            uow,
            actor,
            kind="guardrail_breach",
            severity="SEV3",
            tenant_id=tenant_id,
            summary=f"guardrail {rail.guardrail_id} breached by {action}",
            details={"guardrail_id": rail.guardrail_id, "reason": reason, "day": day},
        )
    log.warning("guardrail %s breached for tenant %s by %s: %s", rail.guardrail_id, tenant_id, action, reason)


def _usage(conn, guardrail_id: str, tenant_id: str, day: str):
    row = conn.execute(
        sa.select(guardrail_usage).where(
            guardrail_usage.c.guardrail_id == guardrail_id,
            guardrail_usage.c.tenant_id == tenant_id,
            guardrail_usage.c.day == day,
        )
    ).first()
    if row is None:
        return _Zero()
    return row


@dataclass
class _Zero:
    uses: int = 0
    rows: int = 0
    bytes: int = 0
    breaches: int = 0


def _count(conn, guardrail_id: str, tenant_id: str, day: str, *, uses=0, rows=0, bytes=0, breaches=0) -> int:
    """Add to the day's usage row; return the day's breaches after adding."""
    where = (
        (guardrail_usage.c.guardrail_id == guardrail_id)
        & (guardrail_usage.c.tenant_id == tenant_id)
        & (guardrail_usage.c.day == day)
    )
    c = guardrail_usage.c
    done = conn.execute(
        guardrail_usage.update()
        .where(where)
        .values(
            uses=c.uses + uses,
            rows=c.rows + rows,
            bytes=c.bytes + bytes,
            breaches=c.breaches + breaches,
            updated_at=utcnow(),
        )
    ).rowcount
    if not done:
        conn.execute(
            guardrail_usage.insert().values(
                guardrail_id=guardrail_id,
                tenant_id=tenant_id,
                day=day,
                uses=uses,
                rows=rows,
                bytes=bytes,
                breaches=breaches,
                updated_at=utcnow(),
            )
        )
    return conn.execute(sa.select(c.breaches).where(where)).scalar_one()


# Spend ----------------------------------------------------------------------------------------
def _inside(begin: datetime, end: datetime, start: datetime, now: datetime) -> float:
    """The seconds of ``[begin, end]`` that fall within ``[start, now]``."""
    return max((min(end, now) - max(begin, start)) / timedelta(seconds=1), 0.0)


def spend_today(keel, conn, tenant_id: str, now: datetime | None = None) -> dict:
    """Today's (UTC) spend: the compute spent since midnight (the part of each run inside today,
    so a run across midnight counts on both days) and a day of the data plane's current size."""
    now = now or utcnow()
    start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    seconds = 0.0
    for finished, duration in conn.execute(
        sa.select(pipeline_runs.c.finished_at, pipeline_runs.c.duration_seconds).where(
            pipeline_runs.c.tenant_id == tenant_id, pipeline_runs.c.finished_at >= start
        )
    ):
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            end = as_utc(finished)  # a run's compute is the ``duration`` that ended then
            seconds += _inside(end - timedelta(seconds=max(float(duration), 0.0)), end, start, now)
    for started, finished in conn.execute(
        sa.select(ingestion_runs.c.started_at, ingestion_runs.c.finished_at).where(
            ingestion_runs.c.tenant_id == tenant_id,
            sa.or_(ingestion_runs.c.finished_at.is_(None), ingestion_runs.c.finished_at >= start),
        )
    ):
        seconds += _inside(as_utc(started), as_utc(finished) if finished else now, start, now)
    storage_bytes = keel.dataplanes.size_bytes(tenant_id) if keel.dataplanes.exists(tenant_id) else 0
    compute_hours = seconds / 3600
    storage_gb = storage_bytes / GB
    prices = keel.settings
    compute_usd = compute_hours * prices.guardrail_price_compute_hour_usd
    storage_usd = storage_gb * prices.guardrail_price_storage_gb_day_usd
    metrics.record(conn, "compute_hours", compute_hours, tenant_id)
    metrics.record(conn, "storage_footprint_gb", storage_gb, tenant_id)
    return {
        "tenant_id": tenant_id,
        "day": now.date().isoformat(),
        "compute_hours": compute_hours,
        "storage_footprint_gb": storage_gb,
        "compute_usd": compute_usd,
        "storage_usd": storage_usd,
        "spend_usd": compute_usd + storage_usd,
        "price_compute_hour_usd": prices.guardrail_price_compute_hour_usd,
        "price_storage_gb_day_usd": prices.guardrail_price_storage_gb_day_usd,
    }


def tenant_spend(keel, actor: Actor, tenant_id: str) -> dict:
    """Today's spend of a tenant and its ratio to each enabled spend cap covering it."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("tenant", tenant_id, tenant=tenant_id))
        if uow.conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
            raise NotFound("tenant", tenant_id)
        spend = spend_today(keel, uow.conn, tenant_id)
        caps = uow.conn.execute(
            sa.select(guardrails)
            .where(
                guardrails.c.enabled.is_(True),
                guardrails.c.kind == "spend_cap",
                sa.or_(guardrails.c.tenant_id.is_(None), guardrails.c.tenant_id == tenant_id),
            )
            .order_by(guardrails.c.guardrail_id)
        ).all()
        spend["caps"] = []
        for cap in caps:
            limit = cap.spec["daily_spend_cap_usd"]
            ratio = spend["spend_usd"] / limit
            metrics.record(uow.conn, "spend_to_budget_ratio", ratio, tenant_id, guardrail_id=cap.guardrail_id)
            spend["caps"].append(
                {
                    "guardrail_id": cap.guardrail_id,
                    "daily_spend_cap_usd": limit,
                    "spend_to_budget_ratio": ratio,
                    "breached": spend["spend_usd"] > limit,
                }
            )
        uow.commit()
        return spend


__all__ = [
    "Decision",
    "Guardrail",
    "define",
    "enable",
    "enforce",
    "evaluate",
    "get_guardrail",
    "list_guardrails",
]
