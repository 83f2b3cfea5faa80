"""Evidence export templates and the packs generated from them (story 05, step 4).

A template (``EV-STD-01``) names the sections a pack holds and how long the pack is
kept; it is immutable once defined: fixing a template that does not match is
defining its next version ("template mismatch → fix, republish"). Generating a
pack for a tenant gathers each section from the store, adds the tenant's ledger
export (entries and signed tree heads, so the pack verifies offline with the
platform's public key), writes it as one JSON file and records its sha256 in an
``export.generated`` ledger event and a receipt: the ledger vouches for the file.

Sections that have nothing yet are listed in ``empty_sections`` rather than left
out, so a reader sees what the pack could not show.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.evidence import receipts as receipt_store
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.store.tables import export_templates, metadata, receipts, user_roles, users

PACK_RECEIPT = "evidence.pack"
_ID = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$"


def _action_receipts(conn: Connection, tenant_id: str) -> list[dict]:
    query = sa.select(receipts).where(receipts.c.tenant_id == tenant_id, receipts.c.kind != PACK_RECEIPT)
    return [receipt_store.view(row) for row in conn.execute(query.order_by(receipts.c.created_at))]


def _kpi_snapshots(conn: Connection, tenant_id: str) -> list[dict]:
    return [r for r in _action_receipts(conn, tenant_id) if r["kind"].startswith("kpi.")]


def _lineage(conn: Connection, tenant_id: str) -> list[dict]:
    table = metadata.tables.get("lineage_events")
    if table is None or "tenant_id" not in table.c:
        return []
    rows = conn.execute(sa.select(table).where(table.c.tenant_id == tenant_id))
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]


def _identity_map(conn: Connection, tenant_id: str) -> list[dict]:
    people = conn.execute(
        sa.select(users.c.id, users.c.email, users.c.display_name, users.c.status)
        .where(users.c.tenant_id == tenant_id)
        .order_by(users.c.id)
    ).all()
    roles: dict[str, list[str]] = {}
    for user_id, role in conn.execute(
        sa.select(user_roles.c.user_id, user_roles.c.role).where(
            user_roles.c.user_id.in_([p.id for p in people])
        )
    ):
        roles.setdefault(user_id, []).append(role)
    return [
        {"user_id": p.id, "email": p.email, "display_name": p.display_name, "status": p.status,
         "roles": sorted(roles.get(p.id, []))}
        for p in people
    ]  # fmt: skip


# The sections a template may name, and how each is gathered for one tenant.
SECTIONS: dict[str, Callable[[Connection, str], list[dict]]] = {
    "action_receipts": _action_receipts,
    "kpi_snapshots": _kpi_snapshots,
    "lineage_diagrams": _lineage,
    "identity_map": _identity_map,
}


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def define_template(keel, actor: Actor, template_id: str, sections: list[str], retention_years: int) -> dict:
    """Compliance Officer: a new template, or the next version of one."""
    import re

    if not re.match(_ID, template_id or ""):
        raise InvalidInput("template_id", "must look like EV-STD-01 (upper-case words joined by '-')")
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise InvalidInput(
            "sections", f"unknown section(s) {', '.join(unknown)}; known: {', '.join(sorted(SECTIONS))}"
        )
    if not sections or len(set(sections)) != len(sections):
        raise InvalidInput("sections", "name each section once, at least one")
    if not 1 <= retention_years <= 100:
        raise InvalidInput("retention_years", "must be between 1 and 100")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:DefineTemplate", Resource("evidence", template_id, tenant=""))
        latest = _latest(uow.conn, template_id)
        version = 1 if latest is None else latest.version + 1
        if (
            latest is not None
            and list(latest.sections) == sections
            and latest.retention_years == retention_years
        ):
            raise Conflict(
                f"{template_id} v{latest.version} already says exactly this", template_id=template_id
            )
        now = utcnow()
        uow.conn.execute(
            export_templates.insert().values(
                template_id=template_id, version=version, sections=sections, retention_years=retention_years,
                defined_by=actor.user_id, created_at=now,
            )
        )  # fmt: skip
        uow.record(
            "evidence.enabled",
            actor_id=actor.user_id,
            tenant_id=None,
            template_id=template_id,
            version=version,
            sections=sections,
            retention_years=retention_years,
        )
        uow.commit()
    return _view(_load(keel, template_id, version))


def list_templates(keel, actor: Actor, *, after: str | None, limit: int) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(
            uow, actor, "evidence:Read", Resource("evidence", "templates", tenant=actor.tenant_id or "")
        )
        rows = uow.conn.execute(
            sa.select(export_templates).order_by(export_templates.c.template_id, export_templates.c.version)
        ).all()
    return [v for v in map(_view, rows) if after is None or v["key"] > after][:limit]


def generate_pack(keel, actor: Actor, tenant_id: str, template_id: str, version: int | None = None) -> dict:
    """Compliance Officer: a pack for one tenant from a template (its latest version by default)."""
    from keel.tenants.service import load_tenant

    with keel.uow() as uow:
        keel.authorize(uow, actor, "evidence:Export", Resource("evidence", "pack", tenant=tenant_id))
        load_tenant(uow.conn, tenant_id)
        template = (
            _latest(uow.conn, template_id) if version is None else _version(uow.conn, template_id, version)
        )
        if template is None:
            raise NotFound("export template", template_id if version is None else f"{template_id} v{version}")
        now = utcnow()
        pack_id = new_id("EVP")
        sections = {name: SECTIONS[name](uow.conn, tenant_id) for name in template.sections}
        doc = {
            "pack_id": pack_id,
            "tenant_id": tenant_id,
            "template": {"template_id": template.template_id, "version": template.version},
            "generated_at": now.isoformat(),
            "generated_by": actor.user_id,
            "retain_until": (now + timedelta(days=365 * template.retention_years)).date().isoformat(),
            "sections": sections,
            "empty_sections": [name for name, items in sections.items() if not items],
            "ledger": keel.ledger.export(
                uow.conn, tenant_id=tenant_id, public_pem=keel.public_key_pem(uow.conn)
            ),
        }
        data = json.dumps(doc, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(data).hexdigest()
        directory = keel.settings.home / "evidence-packs" / tenant_id
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{pack_id}.json"
        path.write_bytes(data)
        uow.on_rollback(lambda: path.unlink(missing_ok=True))
        counts = {name: len(items) for name, items in sections.items()}
        body = {"pack_id": pack_id, "template_id": template.template_id, "template_version": template.version,
                "sha256": digest, "sections": counts, "retain_until": doc["retain_until"]}  # fmt: skip
        receipt_id = receipt_store.issue(
            uow.conn, PACK_RECEIPT, subject_id=pack_id, tenant_id=tenant_id, body=body, at=now
        )
        uow.record(
            "export.generated", actor_id=actor.user_id, tenant_id=tenant_id, receipt_id=receipt_id, **body
        )
        uow.commit()
    return body | {"tenant_id": tenant_id, "path": str(path), "receipt_id": receipt_id,
                   "empty_sections": doc["empty_sections"]}  # fmt: skip


def _latest(conn: Connection, template_id: str):
    return conn.execute(
        sa.select(export_templates)
        .where(export_templates.c.template_id == template_id)
        .order_by(export_templates.c.version.desc())
        .limit(1)
    ).first()


def _version(conn: Connection, template_id: str, version: int):
    return conn.execute(
        sa.select(export_templates).where(
            export_templates.c.template_id == template_id, export_templates.c.version == version
        )
    ).first()


def _load(keel, template_id: str, version: int):
    with keel.engine.connect() as conn:
        return _version(conn, template_id, version)


def _view(row) -> dict:
    return {
        "key": f"{row.template_id}@{row.version:06d}",
        "template_id": row.template_id,
        "version": row.version,
        "sections": list(row.sections),
        "retention_years": row.retention_years,
        "defined_by": row.defined_by,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }
