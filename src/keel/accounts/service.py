"""Users, role assignments and invitations. Every change is authorized and evidenced in its unit of work.

Signing in, sessions and API tokens live in ``auth.py``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.identity.credentials import (
    hash_password,
    new_secret_token,
    token_hash,
)
from keel.identity.personas import Persona
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput, NotFound, Unauthenticated
from keel.kernel.ids import new_id
from keel.store.tables import api_tokens, invitations, sessions, tenants, user_roles, users

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,185}\.[^@\s]{2,63}$")
PROVIDER_ROLES = {p.value for p in Persona if p.is_provider}
TENANT_ROLES = {p.value for p in Persona if not p.is_provider}


def check_roles(roles: list[str], tenant_id: str | None) -> list[str]:
    if not roles:
        raise InvalidInput("roles", "at least one role is required")
    allowed = TENANT_ROLES if tenant_id else PROVIDER_ROLES
    for role in roles:
        if role not in allowed:
            scope = "tenant" if tenant_id else "provider"
            raise InvalidInput("roles", f"'{role}' is not a {scope} role; expected one of {sorted(allowed)}")
    return sorted(set(roles))


def insert_user(
    conn: Connection,
    *,
    email: str,
    display_name: str,
    tenant_id: str | None,
    roles: list[str],
    password: str | None = None,
) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise InvalidInput("email", "is not a valid e-mail address")
    if not display_name.strip() or len(display_name) > 200:
        raise InvalidInput("display_name", "must be 1 to 200 characters")
    roles = check_roles(roles, tenant_id)
    if conn.execute(sa.select(users.c.id).where(users.c.email == email)).first():
        raise Conflict("a user with this e-mail exists already", field="email")
    user_id = new_id("USR")
    conn.execute(
        users.insert().values(
            id=user_id,
            email=email,
            display_name=display_name.strip(),
            tenant_id=tenant_id,
            status="ACTIVE" if password else "INVITED",
            password_hash=hash_password(password) if password else None,
            created_at=utcnow(),
        )
    )
    conn.execute(user_roles.insert(), [{"user_id": user_id, "role": r} for r in roles])
    return user_id


def create_user(
    keel,
    actor: Actor,
    *,
    email: str,
    display_name: str,
    roles: list[str],
    tenant_id: str | None = None,
    password: str | None = None,
) -> dict:
    """Create a user. Provider users are identity work for the Security Admin; tenant users for their TA.

    A user created without a password gets an invitation, returned once in this answer.
    """
    with keel.uow() as uow:
        action = "tenant:ManageMembers" if tenant_id else "user:Manage"
        keel.authorize(uow, actor, action, Resource("user", "new", tenant=tenant_id or ""))
        if tenant_id:
            _require_active_tenant(uow.conn, tenant_id)
        user_id = insert_user(
            uow.conn,
            email=email,
            display_name=display_name,
            tenant_id=tenant_id,
            roles=roles,
            password=password,
        )
        uow.record(
            "identity.user.created",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            user_id=user_id,
            roles=check_roles(roles, tenant_id),
            # Who holds the first credential: the creator set a password, or receives the invitation.
            credential="password_set_by_creator" if password else "invitation_to_creator",
        )
        invitation = None
        if password is None:
            invitation = issue_invitation(uow.conn, user_id, keel.settings.invitation_ttl_hours)
            uow.record(
                "identity.invitation.issued",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                user_id=user_id,
                delivered_to=actor.user_id,  # until e-mail delivery exists, the caller holds the secret
            )
        uow.commit()
    view = get_user(keel, actor, user_id)
    if invitation is not None:
        view["invitation"] = invitation
    return view


def _require_active_tenant(conn: Connection, tenant_id: str) -> None:
    status = conn.execute(sa.select(tenants.c.status).where(tenants.c.id == tenant_id)).scalar()
    if status != "ACTIVE":
        raise NotFound("tenant", tenant_id)


def user_view(conn: Connection, user_id: str) -> dict:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound("user", user_id)
    roles = sorted(
        conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user_id == user_id)).scalars()
    )
    return {
        "id": row.id,
        "email": row.email,
        "display_name": row.display_name,
        "tenant_id": row.tenant_id,
        "status": row.status,
        "roles": roles,
        "created_at": as_utc(row.created_at).isoformat(),
    }


# The tenant a tenant user is told an object outside its tenant belongs to (a provider
# user, or none at all): never its own, so the cross-tenant rule gives one answer for all.
OUTSIDE = "TEN-OUTSIDE"


def _user_scope(actor: Actor, tenant_id: str | None) -> str:
    """The tenant to authorize a read of users of ``tenant_id`` (None: provider users) against.

    Tenant users read the members of their own tenant only: the provider directory and
    other tenants are outside it, and absent users look exactly like those.
    """
    if actor.tenant_id is not None and tenant_id != actor.tenant_id:
        return tenant_id or OUTSIDE
    return tenant_id or ""


def get_user(keel, actor: Actor, user_id: str) -> dict:
    with keel.uow() as uow:
        row = uow.conn.execute(sa.select(users.c.tenant_id).where(users.c.id == user_id)).first()
        if user_id != actor.user_id:
            tenant = _user_scope(actor, row.tenant_id if row else OUTSIDE)
            keel.authorize(uow, actor, "user:Read", Resource("user", user_id, tenant=tenant))
        return user_view(uow.conn, user_id)


def list_users(keel, actor: Actor, *, tenant_id: str | None, after: str | None, limit: int) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "user:Read", Resource("user", "*", tenant=_user_scope(actor, tenant_id)))
        if tenant_id:
            _require_known_tenant(uow.conn, tenant_id)
        query = sa.select(users.c.id).order_by(users.c.id).limit(limit)
        query = (
            query.where(users.c.tenant_id == tenant_id)
            if tenant_id
            else query.where(users.c.tenant_id.is_(None))
        )
        if after:
            query = query.where(users.c.id > after)
        return [user_view(uow.conn, uid) for uid in uow.conn.execute(query).scalars()]


def _require_known_tenant(conn: Connection, tenant_id: str) -> None:
    if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
        raise NotFound("tenant", tenant_id)


def issue_invitation(conn: Connection, user_id: str, ttl_hours: int) -> dict:
    secret = new_secret_token("inv")
    now = utcnow()
    conn.execute(
        invitations.insert().values(
            id=new_id("INV"),
            user_id=user_id,
            token_hash=token_hash(secret),
            created_at=now,
            expires_at=now + timedelta(hours=ttl_hours),
        )
    )
    return {"token": secret, "expires_at": (now + timedelta(hours=ttl_hours)).isoformat()}


def accept_invitation(keel, token: str, password: str) -> dict:
    """Set the password of an invited user; the invitation works once and expires."""
    with keel.uow() as uow:
        row = uow.conn.execute(
            sa.select(invitations).where(invitations.c.token_hash == token_hash(token))
        ).first()
        if row is None or row.accepted_at is not None or row.revoked_at is not None:
            raise Unauthenticated("the invitation is unknown or was used already")
        if as_utc(row.expires_at) <= utcnow():
            raise Unauthenticated("the invitation has expired")
        uow.conn.execute(
            users.update()
            .where(users.c.id == row.user_id)
            .values(password_hash=hash_password(password), status="ACTIVE")
        )
        uow.conn.execute(invitations.update().where(invitations.c.id == row.id).values(accepted_at=utcnow()))
        user = user_view(uow.conn, row.user_id)
        uow.record("identity.invitation.accepted", actor_id=row.user_id, tenant_id=user["tenant_id"])
        uow.commit()
    return user


def revoke_tenant_access(conn: Connection, tenant_id: str) -> dict:
    """Disable every user of a tenant and revoke all their sessions, tokens and invitations."""
    now = utcnow()
    member_ids = sa.select(users.c.id).where(users.c.tenant_id == tenant_id)
    counts = {}
    for name, table in (("sessions", sessions), ("tokens", api_tokens), ("invitations", invitations)):
        counts[name] = conn.execute(
            table.update()
            .where(table.c.user_id.in_(member_ids), table.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
    counts["users"] = conn.execute(
        users.update()
        .where(users.c.tenant_id == tenant_id, users.c.status != "DISABLED")
        .values(status="DISABLED")
    ).rowcount
    return counts


def reissue_invitation(keel, actor: Actor, user_id: str) -> dict:
    """A fresh invitation for a user who has not accepted one yet; earlier ones stop working."""
    with keel.uow() as uow:
        row = uow.conn.execute(sa.select(users).where(users.c.id == user_id)).first()
        if actor.tenant_id is not None and (row is None or row.tenant_id != actor.tenant_id):
            # Outside the caller's tenant, a missing user and a foreign one get the same answer.
            keel.authorize(uow, actor, "tenant:ManageMembers", Resource("user", user_id, tenant=OUTSIDE))
        elif actor.tenant_id is None:
            # Providers (the Security Admin) deliver only a Tenant Admin's invitation: the way into a
            # tenant whose admin has none. Other members are the Tenant Admin's to invite.
            scope = (row.tenant_id or "") if row is not None else ""
            keel.authorize(uow, actor, "user:Manage", Resource("user", user_id, tenant=scope))
        else:
            keel.authorize(
                uow, actor, "tenant:ManageMembers", Resource("user", user_id, tenant=row.tenant_id)
            )
        if row is None:
            raise NotFound("user", user_id)
        if row.tenant_id is not None:
            _require_active_tenant(uow.conn, row.tenant_id)
            if actor.tenant_id is None and "TA" not in user_view(uow.conn, user_id)["roles"]:
                raise Blocked("a provider re-issues only a Tenant Admin's invitation", user_id=user_id)
        if row.status != "INVITED":
            raise Conflict(
                f"user is {row.status}: only an invited user gets a new invitation", user_id=user_id
            )
        uow.conn.execute(
            invitations.update()
            .where(
                invitations.c.user_id == user_id,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        invitation = issue_invitation(uow.conn, user_id, keel.settings.invitation_ttl_hours)
        # Until invitations are delivered by e-mail, whoever receives the answer holds the secret.
        uow.record(
            "identity.invitation.reissued",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            user_id=user_id,
            delivered_to=actor.user_id,
        )
        uow.commit()
    return {"user_id": user_id, **invitation}
