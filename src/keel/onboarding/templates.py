"""The versioned catalog of connector templates a Platform Admin deploys from (00b).

A template names a registered connector class and a configuration preset (for
example the SQL connector with the sample ERP's tables and cursor columns). Keel
seeds one template per built-in connector when the platform is deployed; a Platform
Admin publishes further versions. A published version never changes: deploying
``erp-sql@1.0.0`` always means the same preset.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.connectors.protocol import REDACTED, Connector, is_secret, is_semver
from keel.connectors.registry import ConnectorRegistry
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.onboarding.paging import keyset
from keel.samples.crm import CONNECTOR_STREAMS
from keel.store.tables import connector_templates

# name, connector, description, preset. Versions follow the connector class's version.
BUILTIN: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("files", "files", "CSV, JSON lines or Parquet files in a directory, new files picked up", {}),
    ("sql", "sql", "PostgreSQL, MySQL/MariaDB or SQLite tables, full or incremental by a cursor", {}),
    ("http-json", "http", "An HTTP JSON API with page or cursor pagination", {}),
    ("singer", "singer", "Any installed Singer tap", {}),
    (
        "erp-sql",
        "sql",
        "An ERP database (customers, invoices, payments, vendors); invoices and payments incremental",
        {
            "tables": ["customers", "invoices", "payments", "vendors"],
            # customers and vendors carry no change stamp: they are read in full each time.
            "cursor_fields": {"invoices": "updated_at", "payments": "updated_at"},
        },
    ),
    (
        "crm-http",
        "http",
        "The sample CRM's JSON API: accounts, contacts, opportunities",
        {"streams": CONNECTOR_STREAMS},
    ),
)


def seed_builtin(conn: Connection, registry: ConnectorRegistry, actor_id: str) -> list[str]:
    """Add the built-in templates missing from the catalog; return their ids."""
    added = []
    for name, connector, description, defaults in BUILTIN:
        try:
            cls = registry.get(connector)
        except Exception:  # a connector whose plugin is not installed offers no template
            continue
        exists = conn.execute(
            sa.select(connector_templates.c.id).where(
                connector_templates.c.name == name, connector_templates.c.version == cls.version
            )
        ).first()
        if exists is None:
            added.append(_insert(conn, name, cls.version, connector, description, defaults, actor_id))
    return added


def publish_template(
    keel, actor: Actor, *, name: str, version: str, connector: str, description: str, defaults: dict
) -> dict:
    with keel.uow() as uow:
        keel.authorize(
            uow, actor, "connector:PublishTemplate", Resource("connector_template", name, tenant="")
        )
        if not is_semver(version):
            raise InvalidInput("version", f"'{version}' is not a semantic version (1.2.3)")
        cls = keel.connector_registry.get(connector)
        check_preset(cls(), defaults)
        taken = uow.conn.execute(
            sa.select(connector_templates.c.id).where(
                connector_templates.c.name == name, connector_templates.c.version == version
            )
        ).first()
        if taken is not None:
            raise Conflict(
                f"template {name}@{version} is published already; publish a new version", name=name
            )
        template_id = _insert(uow.conn, name, version, connector, description, defaults, actor.user_id)
        uow.record(
            "connector.template.published",
            actor_id=actor.user_id,
            tenant_id=None,
            template_id=template_id,
            name=name,
            version=version,
            connector=connector,
        )
        uow.commit()
        return view(load(uow.conn, template_id))


def check_preset(connector: Connector, defaults: dict) -> None:
    """A preset may only set known, non-secret settings: credentials come from the tenant."""
    if not isinstance(defaults, dict):
        raise InvalidInput("defaults", "must be an object")
    properties = connector.spec().get("properties", {})
    for key in defaults:
        if key not in properties:
            raise InvalidInput(f"defaults.{key}", f"is not a setting of connector '{connector.name}'")
        if is_secret(properties[key]) or defaults[key] == REDACTED:
            raise InvalidInput(f"defaults.{key}", "is a credential: the tenant's Data Engineer supplies it")


def list_templates(keel, actor: Actor, *, after: str | None, limit: int) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", Resource("connector_template", "*", tenant=""))
        return [view(r) for r in uow.conn.execute(keyset(connector_templates, after=after, limit=limit))]


def get_template(keel, actor: Actor, template_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", Resource("connector_template", template_id, tenant=""))
        row = load(uow.conn, template_id)
        spec = keel.connector_registry.get(row.connector)().spec()
        return {**view(row), "spec": spec}


def resolve(conn: Connection, ref: str):
    """A template row from ``id`` or ``name@version`` (``name`` alone: its newest version)."""
    if ref.startswith("CTP"):
        return load(conn, ref)
    name, _, version = ref.partition("@")
    query = sa.select(connector_templates).where(connector_templates.c.name == name)
    if version:
        row = conn.execute(query.where(connector_templates.c.version == version)).first()
    else:
        rows = list(conn.execute(query))
        row = max(rows, key=lambda r: _version_key(r.version)) if rows else None
    if row is None:
        raise NotFound("connector template", ref)
    return row


def load(conn: Connection, template_id: str):
    row = conn.execute(sa.select(connector_templates).where(connector_templates.c.id == template_id)).first()
    if row is None:
        raise NotFound("connector template", template_id)
    return row


def view(row) -> dict:
    return {
        "template_id": row.id,
        "name": row.name,
        "version": row.version,
        "connector": row.connector,
        "description": row.description,
        "defaults": row.defaults,
        "created_by": row.created_by,
        "created_at": as_utc(row.created_at).isoformat(),
    }


def _insert(conn, name, version, connector, description, defaults, actor_id) -> str:
    template_id = new_id("CTP")
    conn.execute(
        connector_templates.insert().values(
            id=template_id,
            name=name,
            version=version,
            connector=connector,
            description=description,
            defaults=defaults,
            created_by=actor_id,
            created_at=utcnow(),
        )
    )
    return template_id


def _version_key(version: str) -> tuple:
    core = version.split("+")[0].split("-")[0]
    return tuple(int(p) for p in core.split("."))
