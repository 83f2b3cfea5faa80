"""Tell a tenant's admins about something that affects them (13 step 4: "notify affected TA").

Notifications are stored per recipient (in-app channel) inside the caller's unit of
work, so they exist exactly when the event that caused them does. E-mail and
webhook delivery join through the notifier of a later issue. A tenant with no
active Tenant Admin cannot be told: the caller escalates.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.ids import new_id
from keel.onboarding.paging import keyset
from keel.store.tables import notifications, user_roles, users


def notify_tenant_admins(uow, actor: Actor, tenant_id: str, subject: str, body: dict) -> list[str]:
    """Queue one notification per active Tenant Admin; return their user ids (empty: nobody to tell)."""
    recipients = _tenant_admins(uow.conn, tenant_id)
    now = utcnow()
    for user_id in recipients:
        uow.conn.execute(
            notifications.insert().values(
                id=new_id("NTF"),
                tenant_id=tenant_id,
                recipient_id=user_id,
                subject=subject,
                body=body,
                channel="in-app",
                status="DELIVERED",
                created_at=now,
            )
        )
    if recipients:
        uow.record(
            "tenant.notified",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            recipients=recipients,
            subject=subject,
        )
    return recipients


def list_for_user(keel, actor: Actor, tenant_id: str, *, after: str | None, limit: int) -> list[dict]:
    """The caller's own notifications in ``tenant_id``."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", Resource("notification", "*", tenant=tenant_id))
        mine = (notifications.c.tenant_id == tenant_id, notifications.c.recipient_id == actor.user_id)
        query = keyset(notifications, *mine, after=after, limit=limit)
        return [
            {
                "notification_id": r.id,
                "subject": r.subject,
                "body": r.body,
                "channel": r.channel,
                "status": r.status,
                "created_at": as_utc(r.created_at).isoformat(),
            }
            for r in uow.conn.execute(query)
        ]


def _tenant_admins(conn: Connection, tenant_id: str) -> list[str]:
    return list(
        conn.execute(
            sa.select(users.c.id)
            .join(user_roles, user_roles.c.user_id == users.c.id)
            .where(users.c.tenant_id == tenant_id, users.c.status == "ACTIVE", user_roles.c.role == "TA")
            .order_by(users.c.id)
        ).scalars()
    )
