"""Story 03g: the impact graph read from the store, for ``impact.blast_radius`` (which stays pure).

Contract versions with their lineage, the tenants running each (a pin, or the newest published
version), the registered consumers and each side's contacts (a tenant's Tenant Admins, the
provider's Platform Admins), handed over as the plain values of ``impact.Graph``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.contracts import records
from keel.contracts.consumers import _people
from keel.contracts.impact import Consumer, Graph, Node
from keel.contracts.model import Layer, Status
from keel.identity.personas import Persona
from keel.store.tables import (
    contract_consumers,
    contract_lineage,
    contract_versions,
    tenant_contracts,
    tenants,
    user_roles,
    users,
)


def load_graph(conn: Connection) -> Graph:
    """The impact graph as the store holds it now."""
    lineage: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in conn.execute(sa.select(contract_lineage).order_by(contract_lineage.c.id)):
        lineage.setdefault((r.contract_id, r.version), []).append((r.target, r.source))
    nodes = tuple(
        Node(
            contract_id=r.contract_id,
            version=r.version,
            layer=r.layer,
            status=r.status,
            tenant_id=r.tenant_id,
            based_on=tuple(r.based_on),
            tables=_tables(r),
            lineage=tuple(sorted(lineage.get((r.contract_id, r.version), ()))),
        )
        for r in conn.execute(sa.select(contract_versions).order_by(contract_versions.c.contract_id))
    )
    active = set(conn.execute(sa.select(tenants.c.id).where(tenants.c.status == "ACTIVE")).scalars())
    running: dict[str, set[str]] = {}
    for r in conn.execute(sa.select(tenant_contracts.c.tenant_id, tenant_contracts.c.contract_id)):
        if r.tenant_id in active:
            running.setdefault(r.contract_id, set()).add(r.tenant_id)
    # As ``lifecycle.active_version`` decides: a tenant without a pin runs the newest published
    # version of every global contract (and of its own).
    for node in nodes:
        if node.status == Status.PUBLISHED:
            runners = {node.tenant_id} & active if node.tenant_id else active
            running.setdefault(node.contract_id, set()).update(runners)
    consumers = tuple(
        Consumer(
            id=r.id,
            kind=r.kind,
            name=r.name,
            depends_on=tuple(r.depends_on),
            recipients=tuple(_people(r.recipients)),
            tenant_id=r.tenant_id,
        )
        for r in conn.execute(sa.select(contract_consumers).order_by(contract_consumers.c.id))
    )
    admins: dict[str, list[str]] = {}
    platform_admins = []
    contacts = sa.or_(
        sa.and_(users.c.tenant_id.is_not(None), user_roles.c.role == Persona.TA.value),
        sa.and_(users.c.tenant_id.is_(None), user_roles.c.role == Persona.PA.value),
    )
    for user_id, tenant_id in conn.execute(
        sa.select(users.c.id, users.c.tenant_id)
        .join(user_roles, user_roles.c.user_id == users.c.id)
        .where(users.c.status == "ACTIVE", contacts)
        .order_by(users.c.id)
    ):
        if tenant_id:
            admins.setdefault(tenant_id, []).append(user_id)
        else:
            platform_admins.append(user_id)
    return Graph(
        nodes=nodes,
        consumers=consumers,
        running={c: frozenset(t) for c, t in running.items()},
        tenant_contacts={t: tuple(people) for t, people in admins.items()},
        platform_contacts=tuple(platform_admins),
    )


def _tables(row) -> tuple[str, ...]:
    if row.layer == Layer.KPI:
        return (f"kpi.{row.contract_id}",)
    return tuple(f"{row.layer}.{d.name}" for d in records.contract_of(row).datasets)
