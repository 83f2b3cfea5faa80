"""Tenant secrets (connector credentials): written encrypted, listed as metadata, never returned."""

from __future__ import annotations

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc
from keel.kernel.errors import Conflict
from keel.tenants.service import load_tenant


def put_secret(keel, actor: Actor, tenant_id: str, name: str, value: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:SetCredentials", Resource("secret", name, tenant=tenant_id))
        if load_tenant(uow.conn, tenant_id).status != "ACTIVE":
            raise Conflict("secrets can be stored only for an ACTIVE tenant", tenant_id=tenant_id)
        meta = keel.keyring.put_secret(uow.conn, tenant_id, name, value, actor.user_id)
        uow.record(
            "secret.stored", actor_id=actor.user_id, tenant_id=tenant_id, name=name, version=meta["version"]
        )
        uow.commit()
    return meta


def list_secrets(keel, actor: Actor, tenant_id: str) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", Resource("secret", "*", tenant=tenant_id))
        load_tenant(uow.conn, tenant_id)
        rows = keel.keyring.list_secrets(uow.conn, tenant_id)
    return [{**r, "created_at": as_utc(r["created_at"]).isoformat()} for r in rows]
