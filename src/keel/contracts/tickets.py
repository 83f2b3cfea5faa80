"""Review tickets: what drift detection (03a) and impact analysis (03g) leave for a person to judge.

Tickets are opened where the finding is made (``onboarding.drift``: kind ``drift``;
``contracts.notices``: ``impact_graph`` and ``post_change_incident``), OPEN. Here they are
read and resolved: anyone who may read schema services reads them (``ticket:Read``), the
Schema Steward and the Observability Engineer resolve them (``ticket:Resolve``) with a note.

Tenancy: a tenant's people see their own tenant's tickets only; any other ticket (another
tenant's, or a platform-wide one) reads as one that does not exist, 404 and never 403, so a
refusal does not tell whether it exists. Providers see every ticket.

The resolution note stays in the ticket's row (``details["resolution"]``; the table has no
column of its own for it, and the view shows it beside the findings, not among them); the
ledger event ``review_ticket.resolved`` holds its SHA-256 only, since a note may quote what
was found in a tenant's data. A ticket is resolved once: resolving it again is a conflict.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.onboarding.paging import keyset
from keel.store.tables import review_tickets

# The data-quality kinds are opened by ``keel.quality.service`` (04: over-blocking, coverage gap).
KINDS = ("drift", "impact_graph", "post_change_incident", "dq_over_blocking", "dq_coverage_gap")
STATUSES = ("OPEN", "RESOLVED")
READ, RESOLVE = "ticket:Read", "ticket:Resolve"
NOTE_LIMIT = 4000
RESOLUTION = "resolution"  # the key of the note in ``details``


def open_ticket(
    uow,
    actor: Actor,
    *,
    kind: str,
    subject: str,
    tenant_id: str | None,
    details: dict,
    same_findings: bool = False,
) -> tuple[str, bool]:
    """The OPEN ticket of ``kind`` about ``subject`` (with equal ``details`` when
    ``same_findings``), else a new one with its ``review_ticket.opened`` event; (id, whether new).
    Runs inside the caller's unit of work, so a ticket exists exactly when its finding does."""
    held = uow.conn.execute(
        sa.select(review_tickets.c.id, review_tickets.c.details).where(
            review_tickets.c.kind == kind,
            review_tickets.c.subject == subject,
            review_tickets.c.status == "OPEN",
            review_tickets.c.tenant_id.is_(None)
            if tenant_id is None
            else review_tickets.c.tenant_id == tenant_id,
        )
    ).all()
    for ticket_id, found in held:
        if not same_findings or found == details:
            return ticket_id, False
    ticket_id = new_id("RVT")
    uow.conn.execute(
        review_tickets.insert().values(
            id=ticket_id,
            tenant_id=tenant_id,
            kind=kind,
            subject=subject,
            details=details,
            status="OPEN",
            opened_by=actor.user_id,
            opened_at=utcnow(),
        )
    )
    uow.record(
        "review_ticket.opened",
        actor_id=actor.user_id,
        tenant_id=tenant_id,
        ticket_id=ticket_id,
        kind=kind,
        subject_id=subject,
    )
    return ticket_id, True


def _same_tenant(tenant_id: str | None):
    column = review_tickets.c.tenant_id
    return column.is_(None) if tenant_id is None else column == tenant_id


def list_tickets(
    keel,
    actor: Actor,
    *,
    kind: str | None = None,
    status: str | None = None,
    tenant_id: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """Tickets by id after the cursor ``after``: a tenant user's own tenant's; a provider's all of
    them, or one tenant's (``tenant_id``). Asking for another tenant's is refused by the tenant guard."""
    scope = tenant_id or actor.tenant_id
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("review_ticket", "*", tenant=scope or ""))
        where = [review_tickets.c.tenant_id == scope] if scope else []
        if kind is not None:
            where.append(review_tickets.c.kind == _one_of("kind", kind, KINDS))
        if status is not None:
            where.append(review_tickets.c.status == _one_of("status", status.upper(), STATUSES))
        return [view(r) for r in uow.conn.execute(keyset(review_tickets, *where, after=after, limit=limit))]


def get_ticket(keel, actor: Actor, ticket_id: str) -> dict:
    with keel.uow() as uow:
        row = load(uow.conn, ticket_id, actor)
        keel.authorize(uow, actor, READ, resource(row))
        return view(row)


def resolve(keel, actor: Actor, ticket_id: str, note: str) -> dict:
    """Close an OPEN ticket with ``note`` (why it needs nothing more, or what was done about it)."""
    note = (note or "").strip()
    if not note:
        raise InvalidInput("note", "say how the ticket was resolved")
    if len(note) > NOTE_LIMIT:
        raise InvalidInput("note", f"must be at most {NOTE_LIMIT} characters")
    with keel.uow() as uow:
        row = load(uow.conn, ticket_id, actor, lock=True)
        keel.authorize(uow, actor, RESOLVE, resource(row))
        if row.status != "OPEN":
            raise Conflict(
                f"review ticket {ticket_id} is {row.status} already; only an OPEN ticket is resolved",
                ticket_id=ticket_id,
                status=row.status,
            )
        uow.conn.execute(  # the row is locked: no one else resolves it in between
            review_tickets.update()
            .where(review_tickets.c.id == ticket_id)
            .values(
                status="RESOLVED",
                resolved_by=actor.user_id,
                resolved_at=utcnow(),
                details={**row.details, RESOLUTION: note},
            )
        )
        uow.record(
            "review_ticket.resolved",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            ticket_id=ticket_id,
            kind=row.kind,
            note_sha256=hashlib.sha256(note.encode()).hexdigest(),
        )
        uow.commit()
        return view(load(uow.conn, ticket_id))


def load(conn: Connection, ticket_id: str, actor: Actor | None = None, *, lock: bool = False):
    """A ticket. Given the ``actor``, one it may not see is 'not found', never 'forbidden'."""
    query = sa.select(review_tickets).where(review_tickets.c.id == ticket_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None or (actor is not None and not visible(row, actor)):
        raise NotFound("review ticket", ticket_id)
    return row


def visible(row, actor: Actor) -> bool:
    """Providers see every ticket; a tenant's people their own tenant's only."""
    return not actor.tenant_id or row.tenant_id == actor.tenant_id


def resource(row) -> Resource:
    return Resource("review_ticket", row.id, tenant=row.tenant_id or "")


def view(row) -> dict:
    details = dict(row.details)
    resolution = details.pop(RESOLUTION, None)
    return {
        "ticket_id": row.id,
        "tenant_id": row.tenant_id,
        "kind": row.kind,
        "subject": row.subject,
        "status": row.status,
        "details": details,
        "opened_by": row.opened_by,
        "opened_at": as_utc(row.opened_at).isoformat(),
        "resolved_by": row.resolved_by,
        "resolved_at": as_utc(row.resolved_at).isoformat() if row.resolved_at else None,
        "resolution": resolution,
    }


def _one_of(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(field, f"must be one of {', '.join(allowed)}")
    return value
