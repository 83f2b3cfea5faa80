"""Reading lineage records and the lineage graph, authorized (05)."""

from __future__ import annotations

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.lineage import store

READ = "lineage:Read"


def list_records(keel, actor: Actor, tenant_id: str, *, job: str | None = None, after: str | None = None,
                 limit: int = 50) -> list[dict]:  # fmt: skip
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("lineage", "*", tenant=tenant_id))
        return store.list_records(uow.conn, tenant_id, job=job, after=after, limit=limit)


def graph(keel, actor: Actor, tenant_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("lineage", "graph", tenant=tenant_id))
        return store.graph(uow.conn, tenant_id)
