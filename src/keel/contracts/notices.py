"""Story 03g: impact analysis, notices with stored deliveries, sign-offs, post-change incidents.

Consumers and their sealed webhooks are registered in ``consumers``; the graph is read from the
store by ``impact_store.load_graph``.

* **Analysis** (Schema Steward): the blast radius (``impact.blast_radius``) over the graph
  read from the store; an incomplete graph opens an ``impact_graph`` review ticket.
* **Notices** (Platform Admin): recipients are resolved in one unit of work, the notifier
  sends *outside* any transaction (network never holds the store), and every delivery
  attempt, fallbacks included, is stored in a second unit of work with ``notifications.sent``
  (counts only, never addresses or bodies) and one ``coverage_of_notified_assets`` outcome
  per impacted asset. A notice that cannot be recorded after sending raises; the messages
  are out, and the error says so in the log. E-mail addresses come from the ``users`` table;
  only ACTIVE users are sent to; a recipient's webhook is that of a consumer listing them.
* **Sign-offs** answer a notice: a user may sign off a subject once its notice reached them
  (a tenant user: reached their tenant). A post-change **incident** opens an incident and a
  ``post_change_incident`` review ticket and informs the people the subject's notices went
  to (and the impact's, when the contract is named).

A subject is any change id (a change request, a rollout, ``CONTRACT@VERSION``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.contracts import records
from keel.contracts.consumers import _webhooks
from keel.contracts.impact import Impact, blast_radius
from keel.contracts.impact_store import load_graph
from keel.identity.actor import Actor
from keel.identity.personas import Persona
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.notify import Delivery, Message, Recipient
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.store.tables import notification_deliveries, review_tickets, signoffs, user_roles, users

log = logging.getLogger(__name__)

SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


# -- analysis -------------------------------------------------------------------------------------


def analyse(
    keel, actor: Actor, subject_id: str, contract_id: str, *, fields: Iterable[str] | None = None
) -> dict:
    """SS: the blast radius of a change to ``contract_id`` (to ``fields``), attached to the subject;
    an incomplete graph is flagged for review."""
    subject_id, fields = _subject(subject_id), _fields(fields)
    with keel.uow() as uow:
        row = _contract(uow.conn, contract_id, actor)
        keel.authorize(
            uow, actor, "impact:Analyse", Resource("impact", contract_id, tenant=row.tenant_id or "")
        )
        result = blast_radius(load_graph(uow.conn), contract_id, fields=fields)
        ticket_id = None
        if not result.complete:
            details = {"contract_id": contract_id, "gaps": list(result.gaps)}
            ticket_id = _open_ticket(uow, actor, "impact_graph", subject_id, row.tenant_id, details)
        uow.record(
            "impact.analysis.completed",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            subject_id=subject_id,
            contract_id=contract_id,
            fields=list(fields) if fields is not None else None,
            counts=_counts(result),
            complete=result.complete,
            gaps=len(result.gaps),
            risk=result.risk,
            review_ticket_id=ticket_id,
        )
        uow.commit()
    return {"subject_id": subject_id, **result.as_dict(), "review_ticket_id": ticket_id}


# -- notices --------------------------------------------------------------------------------------


def notify(
    keel, actor: Actor, subject_id: str, impact: Impact | dict, *, subject: str | None, body: str | None
) -> dict:
    """PA: tell everyone ``impact`` names about the change ``subject_id``; every attempt is stored."""
    subject_id = _subject(subject_id)
    impact = impact if isinstance(impact, Impact) else Impact.from_dict(impact)
    with keel.uow() as uow:
        keel.authorize(uow, actor, "notice:Send", _notice(subject_id))
        people = _resolve(keel, uow.conn, impact.recipients)
    message = Message(
        subject=_text(subject, "subject", 200)
        or f"Change {subject_id}: {impact.contract_id} and what depends on it",
        body=_text(body, "body", 20_000) or _summary(subject_id, impact),
        event="impact.notice",
        facts={"subject_id": subject_id, "contract_id": impact.contract_id, "risk": impact.risk},
    )
    notice = _send(keel, actor, subject_id, message, people, assets=impact.assets)
    return {**notice, "contract_id": impact.contract_id, "impact_scope": impact.scope(), "risk": impact.risk}


def notify_change(
    keel,
    actor: Actor,
    subject_id: str,
    contract_id: str,
    *,
    fields: Iterable[str] | None = None,
    subject: str | None = None,
    body: str | None = None,
) -> dict:
    """PA: notify the blast radius of a change to ``contract_id`` as the graph stands now."""
    return notify(
        keel,
        actor,
        subject_id,
        impact_for(keel, actor, contract_id, fields=fields),
        subject=subject,
        body=body,
    )


def impact_for(keel, actor: Actor, contract_id: str, *, fields: Iterable[str] | None = None) -> Impact:
    """The blast radius for whoever sends about it (PA), recording nothing."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "notice:Send", _notice(contract_id))
        _contract(uow.conn, contract_id, actor)
        return blast_radius(load_graph(uow.conn), contract_id, fields=_fields(fields))


def list_deliveries(
    keel, actor: Actor, subject_id: str, *, after: str | None = None, limit: int = 50
) -> list[dict]:
    """Every delivery attempt about a subject (a tenant user: those to its own tenant's people)."""
    subject_id = _subject(subject_id)
    with keel.uow() as uow:
        keel.authorize(uow, actor, "impact:Read", _notice(subject_id, actor.tenant_id))
        t = notification_deliveries
        query = sa.select(t).where(t.c.subject_id == subject_id).order_by(t.c.id).limit(limit)
        if actor.tenant_id:
            query = query.where(t.c.tenant_id == actor.tenant_id)
        if after is not None:
            if not after.isdigit():
                raise InvalidInput("cursor", "is not a cursor this API issued; pass next_cursor unchanged")
            query = query.where(t.c.id > int(after))
        return [_delivery_view(r) for r in uow.conn.execute(query)]


# -- sign-offs ------------------------------------------------------------------------------------


def record_signoff(keel, actor: Actor, subject_id: str, approve: bool, note: str = "") -> dict:
    """The caller's own sign-off on a change they were notified of; recorded once."""
    subject_id = _subject(subject_id)
    note = _text(note, "note", 4000)
    with keel.uow() as uow:
        mine = Resource("signoff", subject_id, tenant=actor.tenant_id or "", owner=actor.user_id)
        keel.authorize(uow, actor, "notice:SignOff", mine)
        if not _notice_reached(uow.conn, subject_id, actor):
            raise NotFound("notice", subject_id)
        key = (signoffs.c.subject_id == subject_id) & (signoffs.c.user_id == actor.user_id)
        if uow.conn.execute(sa.select(signoffs.c.decision).where(key)).first() is not None:
            raise Conflict(f"your sign-off on {subject_id} is recorded already; it is recorded once")
        decision = "approve" if approve else "reject"
        note_sha256 = hashlib.sha256(note.encode()).hexdigest() if note else None
        roles = sorted(actor.roles)
        uow.conn.execute(
            signoffs.insert().values(
                subject_id=subject_id,
                user_id=actor.user_id,
                roles=roles,
                decision=decision,
                note_sha256=note_sha256,
                recorded_at=utcnow(),
            )
        )
        # People's words enter the ledger only as a hash (the signer keeps the text).
        uow.record(
            "signoffs.recorded",
            actor_id=actor.user_id,
            tenant_id=actor.tenant_id,
            subject_id=subject_id,
            decision=decision,
            roles=roles,
            note_sha256=note_sha256,
        )
        uow.commit()
        return _signoff_view(uow.conn.execute(sa.select(signoffs).where(key)).one())


def list_signoffs(
    keel, actor: Actor, subject_id: str, *, after: str | None = None, limit: int = 50
) -> list[dict]:
    """Sign-offs on a subject by user id (a tenant user: its tenant's and the provider's)."""
    subject_id = _subject(subject_id)
    with keel.uow() as uow:
        keel.authorize(uow, actor, "impact:Read", _notice(subject_id, actor.tenant_id))
        query = (
            sa.select(signoffs)
            .join(users, users.c.id == signoffs.c.user_id)
            .where(signoffs.c.subject_id == subject_id)
            .order_by(signoffs.c.user_id)
            .limit(limit)
        )
        if actor.tenant_id:
            query = query.where(sa.or_(users.c.tenant_id == actor.tenant_id, users.c.tenant_id.is_(None)))
        if after:
            query = query.where(signoffs.c.user_id > after)
        return [_signoff_view(r) for r in uow.conn.execute(query)]


# -- post-change incidents ------------------------------------------------------------------------


def post_change_incident(
    keel,
    actor: Actor,
    subject_id: str,
    summary: str,
    *,
    contract_id: str | None = None,
    fields: Iterable[str] | None = None,
    severity: str = "SEV2",
) -> dict:
    """PA or SRE: an incident followed the change: open it, ticket it, inform the people told of
    the change (and the impact's, when ``contract_id`` is named)."""
    subject_id = _subject(subject_id)
    summary = _text(summary, "summary", 2000)
    if not summary:
        raise InvalidInput("summary", "say what went wrong")
    if severity not in ("SEV1", "SEV2", "SEV3", "SEV4"):
        raise InvalidInput("severity", "must be one of SEV1, SEV2, SEV3, SEV4")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "notice:ReportIncident", _notice(subject_id))
        scope = None
        if contract_id is not None:
            _contract(uow.conn, contract_id, actor)
            scope = blast_radius(load_graph(uow.conn), contract_id, fields=_fields(fields))
        told = uow.conn.execute(
            sa.select(notification_deliveries.c.recipient_id)
            .where(notification_deliveries.c.subject_id == subject_id)
            .distinct()
        ).scalars()
        people = _resolve(keel, uow.conn, {*told, *(scope.recipients if scope else ())})
        details = {"subject_id": subject_id, "contract_id": contract_id}
        incident_id = open_incident(
            uow, actor, kind="schema.post_change", summary=summary, severity=severity, details=details
        )
        ticket_id = _open_ticket(
            uow, actor, "post_change_incident", subject_id, None, {**details, "incident_id": incident_id}
        )
        metrics.record(uow.conn, "post_change_incident_rate", _incident_rate(uow.conn))
        uow.commit()
    message = Message(
        subject=f"Incident after change {subject_id} ({severity})",
        body=f"An incident followed change {subject_id}: {summary}\n"
        f"Incident {incident_id}, review ticket {ticket_id}.",
        event="impact.post_change_incident",
        facts={"subject_id": subject_id, "incident_id": incident_id, "severity": severity},
    )
    assets = scope.assets if scope else ()
    notice = _send(keel, actor, subject_id, message, people, assets=assets, incident_id=incident_id)
    return {
        "incident_id": incident_id,
        "ticket_id": ticket_id,
        "subject_id": subject_id,
        "severity": severity,
        "notice": notice,
    }


# -- sending and recording ------------------------------------------------------------------------


class _People:
    """Recipients resolved from user ids: who can be sent to, who not (and why), and their tenants."""

    def __init__(self) -> None:
        self.sendable: list[Recipient] = []
        self.unusable: list[tuple[str, str]] = []  # (user id, why)
        self.tenant_of: dict[str, str | None] = {}
        self.roles: set[str] = set()


def _resolve(keel, conn: Connection, user_ids: Iterable[str]) -> _People:
    ids = sorted(set(user_ids))
    people = _People()
    rows = {r.id: r for r in conn.execute(sa.select(users).where(users.c.id.in_(ids)))} if ids else {}
    roles = conn.execute(sa.select(user_roles).where(user_roles.c.user_id.in_(ids))) if ids else []
    people.roles = {_role_name(r.role) for r in roles}
    webhooks = _webhooks(keel, conn)
    for user_id in ids:
        row = rows.get(user_id)
        people.tenant_of[user_id] = row.tenant_id if row else None
        if row is None or row.status != "ACTIVE":
            people.unusable.append((user_id, "not an active user: nothing was sent"))
            continue
        people.sendable.append(
            Recipient(id=user_id, name=row.display_name, email=row.email, webhook_url=webhooks.get(user_id))
        )
    return people


def _send(
    keel,
    actor: Actor,
    subject_id: str,
    message: Message,
    people: _People,
    *,
    assets: Iterable[tuple[str, tuple[str, ...]]],
    incident_id: str | None = None,
) -> dict:
    # Outside any unit of work: SMTP and HTTP may take their time, the store is not held meanwhile.
    deliveries = keel.notifier.deliver(message, people.sendable) if people.sendable else []
    now = utcnow()
    deliveries += [
        Delivery(message.id, user_id, None, "skipped", why, now, 0) for user_id, why in people.unusable
    ]
    reached = {d.recipient_id for d in deliveries if d.status == "sent"}
    assets = list(assets)
    covered = [bool(set(who) & reached) for _, who in assets]
    try:
        # Not authorized again: the caller was, before sending; what went out is recorded regardless.
        with keel.uow() as uow:
            if deliveries:
                uow.conn.execute(
                    notification_deliveries.insert(),
                    [
                        {
                            "message_id": d.message_id,
                            "subject_id": subject_id,
                            "tenant_id": people.tenant_of.get(d.recipient_id),
                            "recipient_id": d.recipient_id,
                            "channel": d.channel,
                            "status": d.status,
                            "detail": d.detail[:4000],
                            "attempts": d.attempts,
                            "attempted_at": d.attempted_at,
                        }
                        for d in deliveries
                    ],
                )
            counts = _delivery_counts(deliveries, people, reached)
            coverage = sum(covered) / len(covered) if covered else None
            uow.record(
                "notifications.sent",
                actor_id=actor.user_id,
                tenant_id=None,
                subject_id=subject_id,
                message_id=message.id,
                event=message.event,
                incident_id=incident_id,
                coverage_of_notified_assets=coverage,
                **counts,
            )
            for ok in covered:
                metrics.outcome(uow.conn, "coverage_of_notified_assets", ok)
            metrics.record(uow.conn, "post_change_incident_rate", _incident_rate(uow.conn))
            uow.commit()
            stored = uow.conn.execute(
                sa.select(notification_deliveries)
                .where(notification_deliveries.c.message_id == message.id)
                .order_by(notification_deliveries.c.id)
            )
            views = [_delivery_view(r) for r in stored]
    except Exception:
        log.error("notice %s about %s was sent but could not be recorded", message.id, subject_id)
        raise
    recipients = sorted({*(r.id for r in people.sendable), *(u for u, _ in people.unusable)})
    if not recipients:
        status = "skipped"
    else:
        status = "sent" if len(reached) == len(recipients) else "partial" if reached else "failed"
    return {
        "message_id": message.id,
        "subject_id": subject_id,
        "status": status,
        "recipients": recipients,
        "recipient_roles": sorted(people.roles),
        "counts": counts,
        "coverage_of_notified_assets": coverage,
        "deliveries": views,
    }


def _delivery_counts(deliveries: list[Delivery], people: _People, reached: set[str]) -> dict:
    first: dict[str, str | None] = {}
    for d in deliveries:
        first.setdefault(d.recipient_id, d.channel)
    by_channel = {d.recipient_id: d.channel for d in deliveries if d.status == "sent"}
    return {
        "recipients": len(people.sendable) + len(people.unusable),
        "reached": len(reached),
        "fallbacks": sum(1 for r, channel in by_channel.items() if channel != first[r]),
        "sent": sum(d.status == "sent" for d in deliveries),
        "failed": sum(d.status == "failed" for d in deliveries),
        "skipped": sum(d.status == "skipped" for d in deliveries),
    }


def _incident_rate(conn: Connection) -> float:
    """Share of announced changes followed by a post-change incident."""
    notified = set(conn.execute(sa.select(notification_deliveries.c.subject_id).distinct()).scalars())
    incidents = set(
        conn.execute(
            sa.select(review_tickets.c.subject)
            .where(review_tickets.c.kind == "post_change_incident")
            .distinct()
        ).scalars()
    )
    changes = notified | incidents
    return len(incidents) / len(changes) if changes else 0.0


def _open_ticket(uow, actor: Actor, kind: str, subject_id: str, tenant_id: str | None, details: dict) -> str:
    """An OPEN review ticket (an impact graph's: the same open one again for the same findings)."""
    from keel.contracts.tickets import open_ticket

    ticket_id, _ = open_ticket(
        uow,
        actor,
        kind=kind,
        subject=subject_id,
        tenant_id=tenant_id,
        details=details,
        same_findings=kind == "impact_graph",
    )
    return ticket_id


# -- helpers --------------------------------------------------------------------------------------


def _notice(subject_id: str, tenant_id: str | None = None) -> Resource:
    return Resource("notice", subject_id, tenant=tenant_id or "")


def _contract(conn: Connection, contract_id: str, actor: Actor):
    """The newest version of a contract the caller may see; another tenant's is 'not found'."""
    rows = [r for r in records.versions_of(conn, contract_id) if records.visible(r, actor)]
    if not rows:
        raise NotFound("contract", contract_id)
    return rows[-1]


def _notice_reached(conn: Connection, subject_id: str, actor: Actor) -> bool:
    query = sa.select(notification_deliveries.c.id).where(notification_deliveries.c.subject_id == subject_id)
    if actor.tenant_id:
        query = query.where(notification_deliveries.c.tenant_id == actor.tenant_id)
    return conn.execute(query.limit(1)).first() is not None


def _subject(subject_id: str) -> str:
    if not isinstance(subject_id, str) or not SUBJECT.match(subject_id):
        raise InvalidInput("subject_id", "must be 1 to 200 letters, digits or _.:@- (a change id)")
    return subject_id


def _fields(fields: Iterable[str] | None) -> tuple[str, ...] | None:
    if fields is None:
        return None
    fields = tuple(fields)
    if not 1 <= len(fields) <= 200:
        raise InvalidInput("fields", "name 1 to 200 fields (or leave it out for the whole contract)")
    for name in fields:
        if not isinstance(name, str) or not FIELD.match(name):
            raise InvalidInput("fields", f"'{name}' is not a field name (column, table.column)")
    return fields


def _role_name(role: str) -> str:
    """``TA`` → ``tenant_admin`` (the artifact's spelling); a custom role as it is, lower case."""
    try:
        return Persona(role).title.lower().replace("/", "_").replace(" ", "_")
    except ValueError:
        return role.lower()


def _text(value: str | None, field: str, most: int) -> str:
    value = (value or "").strip()
    if len(value) > most:
        raise InvalidInput(field, f"must be at most {most} characters")
    return value


def _summary(subject_id: str, impact: Impact) -> str:
    """The default body. It names only the changed contract and counts: a radius may hold a tenant's
    own contracts and consumers, and the same body goes to every tenant's people."""
    what = ", ".join(impact.fields) if impact.fields else "the whole contract"
    return (
        f"Change {subject_id} to {impact.contract_id} ({what}) reaches {len(impact.datasets)} dataset(s) "
        f"and {len(impact.kpis)} KPI(s). Suggested risk: {impact.risk}."
    )


def _counts(result: Impact) -> dict[str, int]:
    return {
        "contracts": len(result.contracts),
        "datasets": len(result.datasets),
        "kpis": len(result.kpis),
        "consumers": len(result.consumers),
        "tenants": len(result.tenants),
        "recipients": len(result.recipients),
    }


def _delivery_view(row) -> dict:
    return {
        "delivery_id": str(row.id),
        "message_id": row.message_id,
        "subject_id": row.subject_id,
        "recipient_id": row.recipient_id,
        "tenant_id": row.tenant_id,
        "channel": row.channel,
        "status": row.status,
        "detail": row.detail,
        "attempts": row.attempts,
        "attempted_at": as_utc(row.attempted_at).isoformat(),
    }


def _signoff_view(row) -> dict:
    return {
        "subject_id": row.subject_id,
        "user_id": row.user_id,
        "roles": list(row.roles),
        "decision": row.decision,
        "note_sha256": row.note_sha256,
        "recorded_at": as_utc(row.recorded_at).isoformat(),
    }
