"""Authentication: console sign-in and sessions, API tokens, and resolving a credential to an ``Actor``."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.accounts.service import OUTSIDE
from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.identity.credentials import (
    fingerprint,
    hash_password,
    new_secret_token,
    token_hash,
    verify_password,
)
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import InvalidInput, NotFound, Unauthenticated
from keel.kernel.ids import new_id
from keel.store.tables import api_tokens, sessions, tenants, user_roles, users


def _roles(conn: Connection, user_id: str) -> frozenset[str]:
    return frozenset(
        conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user_id == user_id)).scalars()
    )


@cache
def _dummy_hash() -> str:
    return hash_password(new_secret_token("dummy"))


def sign_in(keel, email: str, password: str) -> tuple[str, dict]:
    """Check a password and open a console session. Returns ``(session secret, session view)``."""
    with keel.uow() as uow:
        row = uow.conn.execute(sa.select(users).where(users.c.email == email.strip().lower())).first()
        # Verify against a dummy hash when there is no usable one, so that the time taken
        # does not tell whether the e-mail belongs to an active account.
        usable = row is not None and bool(row.password_hash)
        password_ok = verify_password(row.password_hash if usable else _dummy_hash(), password) and usable
        tenant_ok = row is not None and _tenant_active(uow.conn, row.tenant_id)
        if row is None or row.status != "ACTIVE" or not password_ok or not tenant_ok:
            uow.record(
                "auth.signin.failed",
                actor_id=row.id if row else None,
                tenant_id=row.tenant_id if row else None,
                login=fingerprint(email, keel.keyring.derived_key("login-fingerprint")),
            )
            uow.commit()
            raise Unauthenticated("e-mail or password is wrong, or the account is not active")
        secret = new_secret_token("ses")
        now = utcnow()
        session_id = new_id("SES")
        expires = now + timedelta(minutes=keel.settings.session_ttl_minutes)
        uow.conn.execute(
            sessions.insert().values(
                id=session_id,
                user_id=row.id,
                token_hash=token_hash(secret),
                created_at=now,
                expires_at=expires,
            )
        )
        uow.record("auth.signin", actor_id=row.id, tenant_id=row.tenant_id, session_id=session_id)
        uow.commit()
    return secret, {"session_id": session_id, "user_id": row.id, "expires_at": expires.isoformat()}


def sign_out(keel, actor: Actor, secret: str) -> None:
    with keel.uow() as uow:
        uow.conn.execute(
            sessions.update()
            .where(sessions.c.token_hash == token_hash(secret), sessions.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        uow.record("auth.signout", actor_id=actor.user_id, tenant_id=actor.tenant_id)
        uow.commit()


def _tenant_active(conn: Connection, tenant_id: str | None) -> bool:
    """Provider users have no tenant; members of a tenant not ACTIVE (blocked, decommissioned) are out."""
    if tenant_id is None:
        return True
    return conn.execute(sa.select(tenants.c.status).where(tenants.c.id == tenant_id)).scalar() == "ACTIVE"


def _require_tenant_active(conn: Connection, tenant_id: str | None) -> None:
    if not _tenant_active(conn, tenant_id):
        raise Unauthenticated("the account's tenant is not active")


def authenticate(keel, *, bearer: str | None = None, session: str | None = None) -> Actor:
    """Resolve a bearer token or session cookie to an ``Actor``; refuses expired or revoked ones."""
    secret, table, kind = (bearer, api_tokens, "token") if bearer else (session, sessions, "session")
    if not secret:
        raise Unauthenticated("a bearer token or a session is required")
    now = utcnow()
    with keel.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.token_hash == token_hash(secret))).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated(f"the {kind} is unknown or revoked")
        if as_utc(row.expires_at) <= now:
            raise Unauthenticated(f"the {kind} has expired")
        user = conn.execute(sa.select(users).where(users.c.id == row.user_id)).first()
        if user is None or user.status != "ACTIVE":
            raise Unauthenticated("the account is not active")
        _require_tenant_active(conn, user.tenant_id)
        roles = _roles(conn, user.id)
        if kind == "token":
            roles = roles & frozenset(row.roles)  # a token never carries more than its user has now
    return Actor(
        user_id=user.id, tenant_id=user.tenant_id, roles=roles, auth=kind, expires_at=as_utc(row.expires_at)
    )


def create_token(
    keel, actor: Actor, *, name: str, roles: list[str] | None = None, ttl_days: int | None = None
) -> dict:
    """Issue an API token for the caller, scoped to the caller's tenant and a subset of its roles."""
    if not name or len(name) > 100:
        raise InvalidInput("name", "must be 1 to 100 characters")
    ttl = ttl_days if ttl_days is not None else keel.settings.token_ttl_days
    if not 1 <= ttl <= 365:
        raise InvalidInput("ttl_days", "must be between 1 and 365")
    if roles is not None and not roles:
        raise InvalidInput("roles", "name at least one role, or leave roles out for all of yours")
    scoped = sorted(set(roles)) if roles else sorted(actor.roles)
    extra = set(scoped) - set(actor.roles)
    if extra:
        raise InvalidInput("roles", f"the caller does not hold {sorted(extra)}")
    secret = new_secret_token("tok")
    now = utcnow()
    expires_at = now + timedelta(days=ttl)
    parent_expiry = actor.expires_at if actor.auth == "token" else None
    if parent_expiry is not None and expires_at > parent_expiry:
        # A token never outlives the token that created it: the default shortens, an explicit ask is refused.
        if ttl_days is not None:
            raise InvalidInput("ttl_days", f"a token cannot outlive the token creating it ({parent_expiry})")
        expires_at = parent_expiry
    token_id = new_id("TOK")
    with keel.uow() as uow:
        uow.conn.execute(
            api_tokens.insert().values(
                id=token_id,
                user_id=actor.user_id,
                tenant_id=actor.tenant_id,
                name=name,
                roles=scoped,
                token_hash=token_hash(secret),
                created_at=now,
                expires_at=expires_at,
            )
        )
        uow.record(
            "identity.token.created",
            actor_id=actor.user_id,
            tenant_id=actor.tenant_id,
            token_id=token_id,
            roles=scoped,
            ttl_days=ttl,
        )
        uow.commit()
    return {
        "id": token_id,
        "name": name,
        "roles": scoped,
        "tenant_id": actor.tenant_id,
        "expires_at": expires_at.isoformat(),
        "token": secret,
    }


def list_tokens(keel, actor: Actor) -> list[dict]:
    with keel.engine.connect() as conn:
        rows = conn.execute(
            sa.select(api_tokens)
            .where(api_tokens.c.user_id == actor.user_id)
            .order_by(api_tokens.c.created_at)
        )
        return [_token_view(r) for r in rows]


def _token_view(row) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "roles": row.roles,
        "tenant_id": row.tenant_id,
        "created_at": as_utc(row.created_at).isoformat(),
        "expires_at": as_utc(row.expires_at).isoformat(),
        "revoked": row.revoked_at is not None,
    }


def revoke_token(keel, actor: Actor, token_id: str) -> dict:
    with keel.uow() as uow:
        row = uow.conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None or row.user_id != actor.user_id:
            # Revoking someone else's token is identity administration (Security Admin).
            # Tenant users never see other people's tokens: a peer's, another tenant's and a
            # missing one are all "outside", so the answer never tells them apart.
            tenant = OUTSIDE if actor.tenant_id is not None else (row.tenant_id if row else "") or ""
            keel.authorize(uow, actor, "user:Manage", Resource("token", token_id, tenant=tenant))
            if row is None:
                raise NotFound("token", token_id)
        uow.conn.execute(api_tokens.update().where(api_tokens.c.id == token_id).values(revoked_at=utcnow()))
        uow.record(
            "identity.token.revoked", actor_id=actor.user_id, tenant_id=row.tenant_id, token_id=token_id
        )
        uow.commit()
        return _token_view(uow.conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).one())
