"""Contract versions in the control-plane store: loading, the API view, references, lineage rows."""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.contracts import rules
from keel.contracts.documents import read_contract
from keel.contracts.model import Contract, Ref, Status, Version
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import InvalidInput, NotFound
from keel.store.tables import contract_lineage, contract_versions

# A reference may point at a version in these states (not rejected, not retired).
REFERABLE = (
    Status.DRAFT,
    Status.REGISTERED,
    Status.VALIDATED,
    Status.APPROVED,
    Status.PUBLISHED,
    Status.DEPRECATED,
)
TEMPLATE_AUTHOR = "keel:templates"


def resource(row_or_tenant, key: str = "*") -> Resource:
    """The authorization resource of a contract version (or, given a tenant id, of a new one)."""
    if isinstance(row_or_tenant, str | None):
        return Resource("contract", key, tenant=row_or_tenant or "")
    row = row_or_tenant
    approvers = {a for a in (row.validated_by, row.compliance_by) if a}
    return Resource(
        "contract",
        f"{row.contract_id}@{row.version}",
        tenant=row.tenant_id or "",
        drafted_by=row.drafted_by,
        approved_by=frozenset(approvers),
    )


def load(conn: Connection, contract_id: str, version: str, *, lock: bool = False, actor=None):
    """A contract version. Given the ``actor``, another tenant's contract is 'not found', never
    'forbidden', so a refusal does not tell whether it exists."""
    query = sa.select(contract_versions).where(
        contract_versions.c.contract_id == contract_id, contract_versions.c.version == version
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None or (actor is not None and not visible(row, actor)):
        raise NotFound("contract version", f"{contract_id}@{version}")
    return row


def visible(row, actor) -> bool:
    """Global contracts are visible to all; a tenant's own contracts to that tenant and providers."""
    return not row.tenant_id or not actor.tenant_id or row.tenant_id == actor.tenant_id


def versions_of(conn: Connection, contract_id: str) -> list:
    """Every version of a contract, oldest first by semantic version."""
    rows = conn.execute(sa.select(contract_versions).where(contract_versions.c.contract_id == contract_id))
    return sorted(rows, key=lambda r: _semver_key(r.version))


def newest(conn: Connection, contract_id: str, statuses=(Status.PUBLISHED,)):
    rows = [r for r in versions_of(conn, contract_id) if r.status in statuses]
    return rows[-1] if rows else None


def update(conn: Connection, row, **values) -> None:
    conn.execute(
        contract_versions.update()
        .where(contract_versions.c.contract_id == row.contract_id, contract_versions.c.version == row.version)
        .values(updated_at=utcnow(), **values)
    )


def contract_of(row) -> Contract:
    return read_contract(row.document, row.layer)


def resolve_refs(conn: Connection, contract: Contract, where: str, tenant_id: str | None) -> list[str]:
    """Each reference as ``ID@VERSION`` of an existing, usable version (unversioned: the newest
    published) that a contract of ``tenant_id`` (None: global) may use: a global one, or one of
    the same tenant. ``InvalidInput`` names the first unknown, rejected, retired or self reference."""
    resolved = []
    for ref in contract.based_on:
        if ref.contract_id == contract.id:
            raise InvalidInput(where, f"'{ref}' refers to the contract itself (a circular reference)")
        if ref.version is None:
            row = newest(conn, ref.contract_id)  # None: no published version to refer to
        else:
            row = conn.execute(
                sa.select(contract_versions).where(
                    contract_versions.c.contract_id == ref.contract_id,
                    contract_versions.c.version == ref.version,
                )
            ).first()
        if row is None or (row.tenant_id and row.tenant_id != tenant_id):
            raise InvalidInput(where, f"'{ref}' is not a registered contract version (or none is published)")
        if row.status not in REFERABLE:
            raise InvalidInput(where, f"'{row.contract_id}@{row.version}' is {row.status} and cannot be used")
        resolved.append(f"{row.contract_id}@{row.version}")
    return resolved


def context_for(conn: Connection, row) -> rules.Context:
    """The contracts a stored version is based on, for its rules."""
    referenced = {}
    for key in row.based_on:
        contract_id, _, version = key.partition("@")
        referenced[key] = contract_of(load(conn, contract_id, version))
    return rules.Context(referenced)


def with_resolved_refs(contract: Contract, resolved: list[str]) -> Contract:
    """``contract`` whose references carry the versions they resolved to."""
    from dataclasses import replace

    refs = tuple(Ref(*key.split("@", 1)) for key in resolved)
    return replace(contract, based_on=refs)


def save_lineage(conn: Connection, contract_id: str, version: str, edges: list[tuple[str, str]]) -> None:
    conn.execute(
        contract_lineage.delete().where(
            contract_lineage.c.contract_id == contract_id, contract_lineage.c.version == version
        )
    )
    if edges:
        conn.execute(
            contract_lineage.insert(),
            [{"contract_id": contract_id, "version": version, "target": t, "source": s} for t, s in edges],
        )


def lineage_of(conn: Connection, contract_id: str, version: str) -> list[dict]:
    rows = conn.execute(
        sa.select(contract_lineage.c.target, contract_lineage.c.source)
        .where(contract_lineage.c.contract_id == contract_id, contract_lineage.c.version == version)
        .order_by(contract_lineage.c.target, contract_lineage.c.source)
    )
    return [{"target": r.target, "source": r.source} for r in rows]


def digest(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def view(row) -> dict:
    return {
        "schema_id": row.contract_id,
        "version": row.version,
        "layer": row.layer,
        "name": row.name,
        "tenant_id": row.tenant_id,
        "status": row.status,
        "template": row.template,
        "based_on": list(row.based_on),
        "document_sha256": row.document_sha256,
        "drafted_by": row.drafted_by,
        "registered_by": row.registered_by,
        "validated_by": row.validated_by,
        "compliance_by": row.compliance_by,
        "compliance_check": _compliance_check(row),
        "published_by": row.published_by,
        "validation": row.validation,
        "compliance": row.compliance,
        "created_at": as_utc(row.created_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
        "published_at": as_utc(row.published_at).isoformat() if row.published_at else None,
    }


def _compliance_check(row) -> str | None:
    if row.compliance is None:
        return None
    return "PASS" if row.compliance.get("passed") else "FAIL"


def _semver_key(version: str) -> tuple:
    try:
        parsed = Version.parse(version)
        return (0, parsed.major, parsed.minor, parsed.patch)
    except ValueError:
        return (1, version)


def keyset(*where, after: str | None, limit: int) -> sa.Select:
    """Contract versions by (id, version), after a cursor ``ID@VERSION``."""
    query = (
        sa.select(contract_versions)
        .where(*where)
        .order_by(contract_versions.c.contract_id, contract_versions.c.version)
        .limit(limit)
    )
    if after:
        contract_id, _, version = after.partition("@")
        query = query.where(
            sa.or_(
                contract_versions.c.contract_id > contract_id,
                sa.and_(
                    contract_versions.c.contract_id == contract_id, contract_versions.c.version > version
                ),
            )
        )
    return query
