"""The contract registry: drafts, registration, the seeded templates (00c) and reads.

A version enters as a ``draft`` by its author (a Schema Steward; a tenant's Data
Engineer for the tenant's own Raw contracts) and is ``registered`` by a Platform
Admin, who also loads the templates that ship with Keel (``registered`` at once,
their author being Keel). What happens after registration is ``lifecycle.py``.

A document is parsed and checked against its standard before anything is stored;
a version number is taken once (a clash is refused, whatever the earlier version's
state), and a reference must name a usable version: nothing is half-registered.
"""

from __future__ import annotations

import sqlalchemy as sa

from keel.contracts import records
from keel.contracts.documents import parse, read_contract
from keel.contracts.model import Layer, Status
from keel.contracts.odcs import export as odcs_export
from keel.contracts.odcs import is_odcs
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.observability import metrics
from keel.store.tables import contract_versions
from keel.tenants.service import load_tenant

USAGE_METRIC = {Layer.RAW: "schema_usage_count", Layer.GDP: "gdp_usage_count", Layer.KPI: "kpi_usage_count"}


def draft(
    keel, actor: Actor, document: dict | str, *, layer: str | None = None, tenant_id: str | None = None
) -> dict:
    """An author's new contract version, in state ``draft``."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Draft", records.resource(tenant_id, "new"))
        if tenant_id:
            load_tenant(uow.conn, tenant_id)
        row = _insert(uow, actor.user_id, document, layer=layer, tenant_id=tenant_id, status=Status.DRAFT)
        uow.record(
            f"schema.{row.layer}.created",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            schema_id=row.contract_id,
            version=row.version,
            document_sha256=row.document_sha256,
        )
        uow.commit()
        return records.view(row)


def register(keel, actor: Actor, contract_id: str, version: str) -> dict:
    """PA registers a draft: its references are resolved again (they may have been retired since)."""
    with keel.uow() as uow:
        row = records.load(uow.conn, contract_id, version, lock=True, actor=actor)
        keel.authorize(uow, actor, "schema:Register", records.resource(row))
        if row.status != Status.DRAFT:
            raise Conflict(f"{contract_id}@{version} is {row.status}; only a draft is registered")
        contract = records.contract_of(row)
        based_on = records.resolve_refs(uow.conn, contract, "basedOn", row.tenant_id)
        records.update(
            uow.conn, row, status=Status.REGISTERED, registered_by=actor.user_id, based_on=based_on
        )
        uow.record(
            f"schema.{row.layer}.registered",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            schema_id=contract_id,
            version=version,
            drafted_by=row.drafted_by,
        )
        uow.commit()
        return records.view(records.load(uow.conn, contract_id, version))


def load_templates(keel, actor: Actor) -> dict:
    """PA loads every template that ships with Keel (00c step 1); ones loaded before are skipped,
    so loading again after an upgrade adds only the new versions."""
    from keel.contracts.templates import load_templates as shipped

    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:LoadTemplates", records.resource(None, "templates"))
        loaded, skipped = [], []
        for filename, document in shipped(keel.settings.contract_templates_dir):
            contract = read_contract(document)
            existing = _exists(uow.conn, contract.id, contract.version)
            if existing is not None:
                if existing.document_sha256 != records.digest(document):
                    raise Conflict(
                        f"template {filename}: {contract.id}@{contract.version} is registered with "
                        "different content (version clash)",
                        reason="version_clash",
                    )
                skipped.append(f"{contract.id}@{contract.version}")
                continue
            row = _insert(
                uow,
                records.TEMPLATE_AUTHOR,
                document,
                layer=None,
                tenant_id=None,
                status=Status.REGISTERED,
                template=True,
                registered_by=actor.user_id,
            )
            loaded.append(f"{row.contract_id}@{row.version}")
            for event in ("schema.seeded", f"schema.{row.layer}.registered"):
                uow.record(
                    event,
                    actor_id=actor.user_id,
                    tenant_id=None,
                    schema_id=row.contract_id,
                    version=row.version,
                    template=filename,
                    document_sha256=row.document_sha256,
                )
        uow.commit()
        return {"loaded": loaded, "skipped": skipped}


def get(keel, actor: Actor, contract_id: str, version: str | None = None) -> dict:
    with keel.uow() as uow:
        row = _visible(keel, uow, actor, contract_id, version)
        out = records.view(row)
        out["lineage"] = records.lineage_of(uow.conn, row.contract_id, row.version)
        out["usage"] = usage(uow.conn, row.contract_id, actor.tenant_id)
        return out


def history(keel, actor: Actor, contract_id: str) -> list[dict]:
    with keel.uow() as uow:
        rows = [r for r in records.versions_of(uow.conn, contract_id) if records.visible(r, actor)]
        if not rows:
            raise NotFound("contract", contract_id)
        keel.authorize(uow, actor, "schema:Read", records.resource(rows[-1]))
        return [records.view(r) for r in rows]


def list_contracts(
    keel,
    actor: Actor,
    *,
    layer: str | None = None,
    status: str | None = None,
    tenant_id: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """Global contracts, plus the tenant's own when the caller belongs to one (or asks for one)."""
    scope = actor.tenant_id or tenant_id
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Read", records.resource(scope, "*"))
        where = [contract_versions.c.tenant_id.is_(None)]
        if scope:
            where = [sa.or_(contract_versions.c.tenant_id.is_(None), contract_versions.c.tenant_id == scope)]
        if layer:
            where.append(contract_versions.c.layer == _layer(layer))
        if status:
            where.append(contract_versions.c.status == _status(status))
        return [records.view(r) for r in uow.conn.execute(records.keyset(*where, after=after, limit=limit))]


def export(keel, actor: Actor, contract_id: str, version: str | None = None) -> dict:
    """The document as registered (ODCS through the standard's model, so it loads elsewhere)."""
    with keel.uow() as uow:
        row = _visible(keel, uow, actor, contract_id, version)
        document = odcs_export(row.document) if row.layer != Layer.KPI else row.document
        return {
            "schema_id": row.contract_id,
            "version": row.version,
            "layer": row.layer,
            "document": document,
        }


def usage(conn, contract_id: str, viewer_tenant: str | None = None) -> dict:
    """Who uses a contract: published versions based on it, and tenants running it; a tenant's
    people see global dependents, their own tenant's, and their own tenant only."""
    from keel.store.tables import tenant_contracts

    dependents = sorted(
        f"{r.contract_id}@{r.version}"
        for r in conn.execute(
            sa.select(
                contract_versions.c.contract_id,
                contract_versions.c.version,
                contract_versions.c.based_on,
                contract_versions.c.tenant_id,
            ).where(contract_versions.c.status.in_((Status.PUBLISHED, Status.DEPRECATED)))
        )
        if any(key.partition("@")[0] == contract_id for key in r.based_on)
        and (viewer_tenant is None or r.tenant_id in (None, viewer_tenant))
    )
    tenants = sorted(
        conn.execute(
            sa.select(tenant_contracts.c.tenant_id).where(tenant_contracts.c.contract_id == contract_id)
        ).scalars()
    )
    if viewer_tenant is not None:
        tenants = [t for t in tenants if t == viewer_tenant]
    return {"dependents": dependents, "tenants": tenants}


def record_usage(conn, contract_id: str, layer: str, tenant_id: str | None, how: str) -> None:
    metrics.record(conn, USAGE_METRIC[Layer(layer)], 1, tenant_id, schema_id=contract_id, usage=how)


# -- helpers -----------------------------------------------------------------------------------


def _visible(keel, uow, actor: Actor, contract_id: str, version: str | None):
    if version is None:
        rows = [r for r in records.versions_of(uow.conn, contract_id) if records.visible(r, actor)]
        published = [r for r in rows if r.status == Status.PUBLISHED]
        row = (published or rows or [None])[-1]
        if row is None:
            raise NotFound("contract", contract_id)
    else:
        row = records.load(uow.conn, contract_id, version, actor=actor)
    keel.authorize(uow, actor, "schema:Read", records.resource(row))
    return row


def _insert(
    uow,
    author: str,
    document: dict | str,
    *,
    layer: str | None,
    tenant_id: str | None,
    status: Status,
    template: bool = False,
    registered_by: str | None = None,
):
    if isinstance(document, str):
        document = parse(document)
    if not isinstance(document, dict):
        raise InvalidInput("document", "must be a contract document (an object)")
    if layer is not None:
        layer = _layer(layer)
    if layer == Layer.KPI and is_odcs(document):
        raise InvalidInput("layer", "a KPI contract is a keel/v1 KpiContract, not an ODCS document")
    contract = read_contract(document, layer)
    if tenant_id and contract.layer is not Layer.RAW:
        raise InvalidInput(
            "tenant_id",
            "a tenant's own contracts are Raw contracts; a tenant changes GDP and KPI contracts "
            "through change requests and extensions",
        )
    if not contract.id or not contract.version:
        raise InvalidInput("id" if not contract.id else "version", "is required to register a contract")
    _check_version(contract.version)
    earlier = records.versions_of(uow.conn, contract.id)
    if earlier and earlier[0].tenant_id and earlier[0].tenant_id != tenant_id:
        raise Conflict(f"the contract id '{contract.id}' is not available; choose another", reason="id_taken")
    if any(r.version == contract.version for r in earlier):
        raise Conflict(
            f"{contract.id}@{contract.version} exists already: a version is registered once (version clash)",
            reason="version_clash",
        )
    if earlier and (earlier[0].layer != contract.layer or earlier[0].tenant_id != tenant_id):
        scope = "a tenant's own" if earlier[0].tenant_id else "a platform-wide"
        raise Conflict(
            f"{contract.id} is {scope} {earlier[0].layer} contract; a new version keeps its layer and scope"
        )
    based_on = records.resolve_refs(uow.conn, contract, "basedOn", tenant_id)
    now = utcnow()
    uow.conn.execute(
        contract_versions.insert().values(
            contract_id=contract.id,
            version=contract.version,
            tenant_id=tenant_id,
            layer=contract.layer.value,
            name=contract.name[:200],
            status=status.value,
            document=document,
            document_sha256=records.digest(document),
            based_on=based_on,
            template=template,
            drafted_by=author,
            registered_by=registered_by,
            created_at=now,
            updated_at=now,
        )
    )
    return records.load(uow.conn, contract.id, contract.version)


def _check_version(version: str) -> None:
    from keel.contracts.model import Version

    try:
        Version.parse(version)
    except ValueError as exc:
        raise InvalidInput("version", str(exc)) from None


def _exists(conn, contract_id: str, version: str):
    return conn.execute(
        sa.select(contract_versions).where(
            contract_versions.c.contract_id == contract_id, contract_versions.c.version == version
        )
    ).first()


def _layer(value: str) -> Layer:
    try:
        return Layer(str(value).lower())
    except ValueError:
        raise InvalidInput("layer", f"'{value}' is not one of raw, gdp, kpi") from None


def _status(value: str) -> Status:
    try:
        return Status(str(value).lower())
    except ValueError:
        raise InvalidInput(
            "status", f"'{value}' is not one of {', '.join(s.value for s in Status)}"
        ) from None
