"""Break-glass: a time-boxed elevation for one tenant and named actions.

Only with a ticket approved by someone else (the Platform Owner), at most
``KEEL_BREAK_GLASS_MAX_MINUTES``, expiring by itself; the authorizer records
``breakglass.used`` each time the elevation is what permitted an action.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from keel.accounts.service import OUTSIDE
from keel.authz.actions import ACTIONS
from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.store.tables import break_glass_grants, requests, tenants


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
        # Scoped to the ticket's tenant: a tenant user can ask only for its own tenant.
        keel.authorize(uow, actor, "breakglass:Request", Resource("breakglass", "new", tenant=tenant_id))
        status = uow.conn.execute(sa.select(tenants.c.status).where(tenants.c.id == tenant_id)).scalar()
        if status is None:
            raise NotFound("tenant", tenant_id)
        if status != "ACTIVE":
            raise Conflict(f"tenant is {status}: break-glass needs an ACTIVE tenant", tenant_status=status)
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
        query = sa.select(requests).where(requests.c.id == ticket_id, requests.c.kind == "break_glass")
        if uow.conn.dialect.name != "sqlite":  # SQLite units of work are BEGIN IMMEDIATE already
            query = query.with_for_update()
        ticket = uow.conn.execute(query).first()
        if ticket is None:
            # Authorized like a foreign ticket first, so a missing one reads the same to outsiders.
            scope = OUTSIDE if actor.tenant_id is not None else ""
            keel.authorize(uow, actor, "breakglass:Approve", Resource("breakglass", ticket_id, tenant=scope))
            raise NotFound("break-glass ticket", ticket_id)
        keel.authorize(
            uow,
            actor,
            "breakglass:Approve",
            Resource("breakglass", ticket_id, tenant=ticket.tenant_id, drafted_by=ticket.requested_by),
        )
        if ticket.status != "PENDING":
            raise Conflict(f"ticket is {ticket.status}, expected PENDING", ticket_id=ticket_id)
        tenant_status = uow.conn.execute(
            sa.select(tenants.c.status).where(tenants.c.id == ticket.tenant_id)
        ).scalar()
        if tenant_status != "ACTIVE":
            raise Conflict(
                f"tenant is {tenant_status}: break-glass needs an ACTIVE tenant", tenant_status=tenant_status
            )
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
