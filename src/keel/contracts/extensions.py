"""Story 03e: a tenant's namespaced fields on a published contract, for that tenant only::

    proposed --check (SS), no problem--> approved --deploy (PA)--> deploying --build--> deployed
    proposed --check: namespace or name conflict, bad type or expression--> rejected
    proposed --check: only constraint violations--> blocked
    approved --deploy: the checks fail now (a namespace taken since)--> rejected (or blocked)
    deploying --the build or its activation fails--> rolled_back

The Tenant Admin proposes with a business case; the Schema Steward's check runs
``extension_rules.RULES``; the Platform Admin deploys. Deploying a GDP extension builds
the tenant's extended table ``gdp."x_<dataset>"`` (base fields plus every extension the
tenant has deployed on that contract version) in the tenant's own DuckDB file, with the
pipeline, and points its view at the new build. The base table ``gdp."<dataset>"``, the
global contract document and every other tenant's data are never touched; a Raw
extension changes nothing in the data plane (ingestion owns the Raw tables): its fields
are part of the tenant's effective contract and lineage only.

The build runs outside any store transaction (as onboarding's network calls do): a first
unit of work re-checks the proposal under lock and marks it ``deploying``; the second
re-reads that state and records the outcome. ``deployed``, its lineage rows, its receipt
and ``schema.extension.deployed`` commit together. A failed build leaves the extended
view on its previous build and marks the extension ``rolled_back`` with
``schema.extension.rolled_back`` and ``extension_rollback_count``. While a deploy runs, a
second one is refused; an extension left ``deploying`` by a worker that died is deployed
again once ``DEPLOY_LEASE`` has passed (the build is repeatable: one version's table is
replaced, never another's), and only the deploy that holds the claim records an outcome.

Builds of the extended table are numbered: the n-th deployed extension of a tenant's
dataset is version ``n.0.0`` of ``gdp."x_<dataset>"``, so each deploy has a build of its
own to activate and a failed one has the previous one to stay on.

Extension lineage rows are stored under ``<base id>+<extension id>`` and the base version
(``contract_lineage``): the base version's own lineage, which global readers and the
cycle check see, never changes.

A namespace belongs to the first tenant whose extension with it was deployed. Deploys
that could race for one (same namespace, or same tenant and contract) lock the rows
involved, in id order, before re-checking.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.contracts import extension_rules as xr
from keel.contracts import lifecycle, records, rules
from keel.contracts.model import Contract, Dataset, Layer, Status
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, KeelError, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.pipeline import DataPlaneBusy, DuckDBEngine, activate, materialize_gdp
from keel.store.tables import contract_extensions
from keel.tenants.service import load_tenant

PROPOSED, APPROVED, REJECTED, BLOCKED = "proposed", "approved", "rejected", "blocked"
DEPLOYING, DEPLOYED, ROLLED_BACK = "deploying", "deployed", "rolled_back"
STATUSES = (PROPOSED, APPROVED, REJECTED, BLOCKED, DEPLOYING, DEPLOYED, ROLLED_BACK)
CHECK_EVENTS = {
    APPROVED: "schema.extension.approved",
    REJECTED: "schema.extension.rejected",
    BLOCKED: "schema.extension.blocked",
}
LINEAGE_KEY_LENGTH = 128  # contract_lineage.contract_id
# A deploy still ``deploying`` after this long is taken as crashed and may be started again.
DEPLOY_LEASE = timedelta(minutes=30)


class ExtensionRolledBack(Conflict):
    """A deploy's build failed; the extension is ``rolled_back`` and nothing of it is visible."""

    code = "extension_rolled_back"
    title = "Extension rolled back"


def resource(tenant_id: str, extension_id: str, row=None) -> Resource:
    """The authorization resource of an extension: its tenant, author and checker (for SoD)."""
    if row is None:
        return Resource("extension", extension_id, tenant=tenant_id)
    return Resource(
        "extension",
        extension_id,
        tenant=tenant_id,
        drafted_by=row.proposed_by,
        approved_by=frozenset({row.checked_by} if row.checked_by else ()),
        deployed_by=row.applied_by,
    )


# -- commands ----------------------------------------------------------------------------------


def propose(
    keel,
    actor: Actor,
    tenant_id: str,
    *,
    schema_id: str,
    version: str,
    namespace: str,
    fields: list[dict],
    business_case: str,
    dataset: str | None = None,
) -> dict:
    """TA proposes fields for one dataset of a published Raw or GDP contract version (03e step 1)."""
    if not business_case.strip():
        raise InvalidInput("business_case", "say what the tenant needs the fields for")
    if not fields:
        raise InvalidInput("fields", "an extension adds at least one field")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:ProposeExtension", resource(tenant_id, "new"))
        load_tenant(uow.conn, tenant_id)
        base = _published_base(uow.conn, schema_id, version, tenant_id)
        chosen = _dataset_of(records.contract_of(base), dataset)
        extension_id = new_id("EXT")
        if len(_lineage_key(schema_id, extension_id)) > LINEAGE_KEY_LENGTH:
            raise InvalidInput("schema_id", f"'{schema_id}' is too long to be extended")
        now = utcnow()
        stored = [{**xr.ExtensionField.of(f).as_dict(), "dataset": chosen} for f in fields]
        uow.conn.execute(
            contract_extensions.insert().values(
                id=extension_id, tenant_id=tenant_id, contract_id=schema_id, base_version=version,
                namespace=namespace, fields=stored, business_case=business_case, status=PROPOSED,
                problems=None, proposed_by=actor.user_id, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        uow.record(
            "schema.extension.proposed",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            extension_id=extension_id,
            schema_id=schema_id,
            version=version,
            dataset=chosen,
            namespace=namespace,
            fields=[f["name"] for f in stored],
            # People's words enter the ledger only as a hash (the extension keeps the text).
            business_case_sha256=hashlib.sha256(business_case.encode()).hexdigest(),
        )
        uow.commit()
        return view(_load(uow.conn, tenant_id, extension_id))


def check(keel, actor: Actor, tenant_id: str, extension_id: str) -> dict:
    """SS checks fields, namespace and constraints (03e step 2): approved, rejected or blocked."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Validate", resource(tenant_id, extension_id))
        row = _load(uow.conn, tenant_id, extension_id, lock=True)
        keel.authorize(uow, actor, "schema:Validate", resource(tenant_id, extension_id, row))
        _require(row, (PROPOSED,), "checked")
        _record_verdict(uow, actor, row, _problems(uow.conn, row), checked_by=actor.user_id)
        uow.commit()
        return view(_load(uow.conn, tenant_id, extension_id))


def _record_verdict(uow, actor: Actor, row, problems, *, at: str | None = None, **who) -> str:
    """The checks' verdict on ``row``, stored with its problems and evidenced; the new status."""
    status = xr.verdict(problems)
    found = [p.as_dict() for p in problems]
    _update(uow.conn, row, status=status, problems=found, **who)
    uow.record(
        CHECK_EVENTS[status],
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        extension_id=row.id,
        schema_id=row.contract_id,
        version=row.base_version,
        namespace=row.namespace,
        problems=found,
        **({"at": at} if at else {}),
    )
    return status


def deploy(keel, actor: Actor, tenant_id: str, extension_id: str) -> dict:
    """PA applies an approved extension to its tenant only (03e steps 3-5); see the module doc."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Deploy", resource(tenant_id, extension_id))
        row = _load(uow.conn, tenant_id, extension_id)
        keel.authorize(uow, actor, "schema:Deploy", resource(tenant_id, extension_id, row))
        _lock_rivals(uow.conn, row)  # this row among them: every lock is taken in one order
        row = _load(uow.conn, tenant_id, extension_id)
        _require(row, (APPROVED, DEPLOYING), "deployed")
        if row.status == DEPLOYING and utcnow() - as_utc(row.updated_at) < DEPLOY_LEASE:
            raise Conflict(
                f"extension {extension_id} is being deployed (since {as_utc(row.updated_at).isoformat()}); "
                f"a deploy that has not finished after {DEPLOY_LEASE} may be started again",
                reason="deploying",
                extension_id=extension_id,
            )
        if load_tenant(uow.conn, tenant_id).status != "ACTIVE":
            raise Conflict("the tenant is not ACTIVE: its contracts are on hold", tenant_id=tenant_id)
        problems = _problems(uow.conn, row)
        if problems:
            status = _record_verdict(uow, actor, row, problems, at="deploy", applied_by=actor.user_id)
            found = [p.as_dict() for p in problems]
            uow.commit()
            raise Conflict(
                f"extension {extension_id} no longer passes its checks and is {status}: "
                + "; ".join(p["detail"] for p in found),
                reason="recheck_failed",
                extension_id=extension_id,
                extension_status=status,
                problems=found,
            )
        _update(uow.conn, row, status=DEPLOYING, applied_by=actor.user_id)
        work = _work(uow.conn, _load(uow.conn, tenant_id, extension_id))
        uow.commit()
    if work.base.layer is Layer.GDP:
        try:
            build = _build(keel, tenant_id, work)
        except DataPlaneBusy as busy:
            _settle(keel, tenant_id, extension_id, work, back_to=APPROVED)
            raise busy from None
        except KeelError as failure:
            _roll_back(keel, actor, tenant_id, extension_id, work, failure)
            raise ExtensionRolledBack(
                f"extension {extension_id} was rolled back: {failure.detail}",
                extension_id=extension_id,
                extension_status=ROLLED_BACK,
                cause=failure.code,
            ) from None
    else:
        build = None
    return _deployed(keel, actor, tenant_id, extension_id, work, build)


# -- reads -------------------------------------------------------------------------------------


def get(keel, actor: Actor, tenant_id: str, extension_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Read", resource(tenant_id, extension_id))
        return view(_load(uow.conn, tenant_id, extension_id))


def list_extensions(
    keel, actor: Actor, tenant_id: str, *, schema_id: str | None = None, status: str | None = None
) -> list[dict]:
    """A tenant's extensions, oldest first."""
    if status is not None and status not in STATUSES:
        raise InvalidInput("status", f"'{status}' is not one of {', '.join(STATUSES)}")
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Read", resource(tenant_id, "*"))
        load_tenant(uow.conn, tenant_id)
        query = sa.select(contract_extensions).where(contract_extensions.c.tenant_id == tenant_id)
        if schema_id:
            query = query.where(contract_extensions.c.contract_id == schema_id)
        if status:
            query = query.where(contract_extensions.c.status == status)
        rows = uow.conn.execute(query.order_by(contract_extensions.c.created_at, contract_extensions.c.id))
        return [view(r) for r in rows]


def effective(keel, actor: Actor, tenant_id: str, schema_id: str, version: str | None = None) -> dict:
    """A contract as ``tenant_id`` sees it: the version it runs (or ``version``) with the fields,
    lineage and document of the extensions deployed to it. Without any, it is the global view."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "schema:Read", records.resource(tenant_id, schema_id))
        load_tenant(uow.conn, tenant_id)
        version = version or lifecycle.active_version(uow.conn, tenant_id, schema_id)
        row = _visible_version(uow.conn, schema_id, version, tenant_id)
        contract = records.contract_of(row)
        extensions = _deployed_extensions(uow.conn, tenant_id, schema_id, row.version)
        tables = _tables(contract, extensions)
        out = records.view(row)
        out["for_tenant"] = tenant_id
        out["scope"] = "tenant" if extensions else "global"
        out["extensions"] = [view(r) for r in _deployed_rows(uow.conn, tenant_id, schema_id, row.version)]
        out["datasets"] = [_dataset_view(contract, d.name, extensions, tables) for d in contract.datasets]
        out["lineage"] = records.lineage_of(uow.conn, schema_id, row.version) + [
            edge
            for ext in extensions
            for edge in records.lineage_of(uow.conn, _lineage_key(schema_id, ext.id), row.version)
        ]
        out["document"] = xr.extended_document(row.document, tenant_id, extensions, tables)
        return out


def view(row) -> dict:
    fields = [xr.ExtensionField.of(f) for f in row.fields]
    return {
        "extension_id": row.id,
        "tenant_id": row.tenant_id,
        "base_schema": row.contract_id,
        "base_version": row.base_version,
        "dataset": _dataset_name(row),
        "namespace": row.namespace,
        "extension": {f.name: f.type for f in fields},
        "columns": {f.name: xr.stored_name(row.namespace, f.name) for f in fields},
        "fields": [f.as_dict() for f in fields],
        "scope": "tenant",
        "status": row.status,
        "business_case": row.business_case,
        "problems": row.problems or [],
        "proposed_by": row.proposed_by,
        "checked_by": row.checked_by,
        "applied_by": row.applied_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
    }


# -- the deploy's steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Work:
    """What a deploy builds, fixed in its first unit of work."""

    base: Contract
    ext: xr.Extension
    siblings: tuple[xr.Extension, ...]  # the tenant's extensions of the dataset deployed before
    sources: dict[str, Dataset]
    build_version: str  # of the tenant's extended table
    claim: Any  # the row's updated_at when this deploy marked it deploying: whose outcome counts

    @property
    def dataset(self) -> Dataset:
        return self.base.dataset(self.ext.dataset)

    @property
    def extensions(self) -> list[xr.Extension]:
        """Every extension the build holds: the ones deployed before, then this one."""
        return [*self.siblings, self.ext]


def _work(conn: Connection, row) -> _Work:
    base_row = records.load(conn, row.contract_id, row.base_version)
    base, sources = _base_and_sources(conn, base_row)
    ext = _extension(row)
    siblings = tuple(
        other
        for other in _deployed_extensions(conn, row.tenant_id, row.contract_id, row.base_version)
        if other.dataset == ext.dataset and other.id != ext.id
    )
    deployed = conn.execute(
        sa.select(sa.func.count()).where(
            contract_extensions.c.tenant_id == row.tenant_id,
            contract_extensions.c.contract_id == row.contract_id,
            contract_extensions.c.status == DEPLOYED,
        )
    ).scalar_one()
    return _Work(base, ext, siblings, sources, f"{deployed + 1}.0.0", row.updated_at)


def _build(keel, tenant_id: str, work: _Work):
    """The tenant's extended GDP table, built and activated in its own DuckDB file only."""
    table = xr.extended_table(work.ext.dataset)
    extended, plan = xr.extended_plan(work.base, work.dataset, work.extensions, work.sources, target=table)
    contract = replace(
        work.base, id=f"{work.base.id}+{tenant_id}", version=work.build_version, datasets=(extended,)
    )
    engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
    with engine.session():
        result = materialize_gdp(engine, contract, extended, plan)
        activate(engine, "gdp", table, work.build_version)
    return result


def _deployed(keel, actor: Actor, tenant_id: str, extension_id: str, work: _Work, build) -> dict:
    """The second unit of work: ``deployed`` with its lineage, receipt, event and metric."""
    layer = work.base.layer.value
    table = f"gdp.{xr.extended_table(work.ext.dataset)}" if build else f"raw.{work.ext.dataset}"
    _, plan = xr.extended_plan(work.base, work.dataset, [work.ext], work.sources)
    edges = xr.lineage(plan, [work.ext], table)
    with keel.uow() as uow:
        row = _load(uow.conn, tenant_id, extension_id, lock=True)
        _require_claim(row, work, "marked deployed")
        now = utcnow()
        _update(uow.conn, row, status=DEPLOYED, problems=[], applied_by=actor.user_id)
        records.save_lineage(uow.conn, _lineage_key(row.contract_id, extension_id), row.base_version, edges)
        built = (
            {"table": build.table, "version": build.version, "rows": build.rows, "view": table}
            if build
            else None
        )
        body = {
            "tenant_id": tenant_id,
            "base_schema": row.contract_id,
            "base_version": row.base_version,
            "extension": {f.name: f.type for f in work.ext.fields},
            "namespace": row.namespace,
            "scope": "tenant",
            "status": DEPLOYED,
            "checked_by": row.checked_by,
            "applied_by": actor.user_id,
            "build": built,
        }
        receipt_id = receipts.issue(
            uow.conn, "schema.extension", subject_id=extension_id, tenant_id=tenant_id, body=body, at=now
        )
        uow.record(
            "schema.extension.deployed",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            extension_id=extension_id,
            schema_id=row.contract_id,
            version=row.base_version,
            layer=layer,
            namespace=row.namespace,
            columns=list(work.ext.columns),
            lineage_edges=len(edges),
            build=built,
            receipt_id=receipt_id,
        )
        metrics.record(uow.conn, "extension_count", 1, tenant_id, schema_id=row.contract_id)
        uow.commit()
        out = view(_load(uow.conn, tenant_id, extension_id))
    out["receipt_id"] = receipt_id
    out["build"] = built
    return out


def _roll_back(keel, actor: Actor, tenant_id: str, extension_id: str, work: _Work, failure: KeelError):
    """Undo a deploy whose build failed: nothing of it is visible, the failure is evidenced."""
    problem = {"rule": "materialization", "where": f"gdp.{xr.extended_table(work.ext.dataset)}",
               "detail": failure.detail}  # fmt: skip
    with keel.uow() as uow:
        row = _load(uow.conn, tenant_id, extension_id, lock=True)
        _require_claim(row, work, "rolled back")
        _update(uow.conn, row, status=ROLLED_BACK, problems=[problem])
        uow.record(
            "schema.extension.rolled_back",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            extension_id=extension_id,
            schema_id=row.contract_id,
            version=row.base_version,
            namespace=row.namespace,
            build_version=work.build_version,
            reason=failure.detail,
            cause=failure.fields.get("cause") or failure.code,
        )
        metrics.record(uow.conn, "extension_rollback_count", 1, tenant_id, schema_id=row.contract_id)
        uow.commit()


def _settle(keel, tenant_id: str, extension_id: str, work: _Work, *, back_to: str) -> None:
    """A deploy that could not start its build (the data plane was busy) is approved again."""
    with keel.uow() as uow:
        row = _load(uow.conn, tenant_id, extension_id, lock=True)
        if row.status == DEPLOYING and row.updated_at == work.claim:
            _update(uow.conn, row, status=back_to)
            uow.commit()


# -- helpers -----------------------------------------------------------------------------------


def _load(conn: Connection, tenant_id: str, extension_id: str, *, lock: bool = False):
    query = sa.select(contract_extensions).where(
        contract_extensions.c.id == extension_id, contract_extensions.c.tenant_id == tenant_id
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("extension", extension_id)
    return row


def _update(conn: Connection, row, **values) -> None:
    conn.execute(
        contract_extensions.update()
        .where(contract_extensions.c.id == row.id)
        .values(updated_at=utcnow(), **values)
    )


def _require_claim(row, work: _Work, what: str) -> None:
    """The extension is still ``deploying`` under this deploy's claim (no later deploy took over)."""
    _require(row, (DEPLOYING,), what)
    if row.updated_at != work.claim:
        raise Conflict(
            f"extension {row.id} was taken over by a later deploy; this one's outcome is not recorded",
            reason="superseded",
            extension_id=row.id,
        )


def _require(row, statuses: tuple[str, ...], what: str) -> None:
    if row.status not in statuses:
        raise Conflict(
            f"extension {row.id} is {row.status}; it must be {' or '.join(statuses)} to be {what}",
            extension_id=row.id,
            extension_status=row.status,
        )


def _published_base(conn: Connection, schema_id: str, version: str, tenant_id: str):
    row = _visible_version(conn, schema_id, version, tenant_id)
    if row.layer not in (Layer.RAW, Layer.GDP):
        raise InvalidInput(
            "schema_id", f"{schema_id} is a {row.layer} contract; only Raw and GDP contracts are extended"
        )
    if row.status != Status.PUBLISHED:
        raise Conflict(
            f"{schema_id}@{version} is {row.status}; only a published version is extended",
            base_status=row.status,
        )
    return row


def _visible_version(conn: Connection, schema_id: str, version: str | None, tenant_id: str):
    """A global version, or one of ``tenant_id``'s own; another tenant's is 'not found'."""
    if version is None:
        raise NotFound("contract", schema_id)
    try:
        row = records.load(conn, schema_id, version)
    except NotFound:
        raise NotFound("contract version", f"{schema_id}@{version}") from None
    if row.tenant_id and row.tenant_id != tenant_id:
        raise NotFound("contract version", f"{schema_id}@{version}")
    return row


def _dataset_of(contract: Contract, name: str | None) -> str:
    if name is None:
        if len(contract.datasets) != 1:
            names = ", ".join(d.name for d in contract.datasets)
            raise InvalidInput("dataset", f"{contract.key} has several datasets ({names}); name one")
        return contract.datasets[0].name
    if contract.dataset(name) is None:
        names = ", ".join(d.name for d in contract.datasets)
        raise InvalidInput("dataset", f"'{name}' is not a dataset of {contract.key} ({names})")
    return name


def _dataset_name(row) -> str:
    return next((f.get("dataset") for f in row.fields if f.get("dataset")), "")


def _extension(row) -> xr.Extension:
    fields = tuple(xr.ExtensionField.of(f) for f in row.fields)
    return xr.Extension(row.id, row.tenant_id, row.namespace, _dataset_name(row), fields)


def _base_and_sources(conn: Connection, base_row) -> tuple[Contract, dict]:
    """The base contract (references resolved) and the tables an extension's expressions may read."""
    base = records.with_resolved_refs(records.contract_of(base_row), base_row.based_on)
    if base.layer is Layer.GDP:
        return base, rules.source_tables(base, records.context_for(conn, base_row))
    return base, {f"raw.{d.name}": d for d in base.datasets}


def _problems(conn: Connection, row) -> list[rules.Problem]:
    """The checks of ``row`` against the store's state now."""
    base_row = records.load(conn, row.contract_id, row.base_version)
    base, sources = _base_and_sources(conn, base_row)
    problems = []
    if base_row.status != Status.PUBLISHED:
        problems.append(
            rules.Problem("base", "base_version", f"{base.key} is {base_row.status}, no longer published")
        )
    context = xr.Context(
        base=base,
        sources=sources,
        owners=_owners(conn),
        deployed=tuple(_deployed_extensions(conn, row.tenant_id, row.contract_id)),
    )
    return problems + xr.check(_extension(row), context)


def _owners(conn: Connection) -> dict[str, str]:
    """Namespace → the tenant whose extension with it was deployed first (deploying counts)."""
    rows = conn.execute(
        sa.select(contract_extensions.c.namespace, contract_extensions.c.tenant_id)
        .where(contract_extensions.c.status.in_((DEPLOYED, DEPLOYING)))
        .order_by(contract_extensions.c.updated_at.desc(), contract_extensions.c.id.desc())
    )
    return {namespace: tenant for namespace, tenant in rows}  # the earliest wins: it comes last


def _deployed_rows(conn: Connection, tenant_id: str, schema_id: str, version: str | None = None) -> list:
    query = sa.select(contract_extensions).where(
        contract_extensions.c.tenant_id == tenant_id,
        contract_extensions.c.contract_id == schema_id,
        contract_extensions.c.status == DEPLOYED,
    )
    if version is not None:
        query = query.where(contract_extensions.c.base_version == version)
    return list(conn.execute(query.order_by(contract_extensions.c.updated_at, contract_extensions.c.id)))


def _deployed_extensions(conn: Connection, tenant_id: str, schema_id: str, version: str | None = None):
    return [_extension(r) for r in _deployed_rows(conn, tenant_id, schema_id, version)]


def _lock_rivals(conn: Connection, row) -> None:
    """Lock every extension a concurrent deploy could conflict with (same namespace, or same
    tenant and contract; ``row`` itself is one), in id order, so two deploys never wait on
    each other (PostgreSQL; SQLite's write transactions are serial already)."""
    conn.execute(
        sa.select(contract_extensions.c.id)
        .where(
            sa.or_(
                contract_extensions.c.namespace == row.namespace,
                sa.and_(
                    contract_extensions.c.tenant_id == row.tenant_id,
                    contract_extensions.c.contract_id == row.contract_id,
                ),
            )
        )
        .order_by(contract_extensions.c.id)
        .with_for_update()
    ).all()


def _tables(contract: Contract, extensions: list[xr.Extension]) -> dict[str, str]:
    """Where each extended dataset's rows live in the tenant's data plane."""
    if contract.layer is not Layer.GDP:
        return {}
    return {ext.dataset: f"gdp.{xr.extended_table(ext.dataset)}" for ext in extensions}


def _dataset_view(contract: Contract, name: str, extensions: list[xr.Extension], tables: dict) -> dict:
    dataset = contract.dataset(name)
    fields = [
        {"name": f.name, "type": f.type, "classification": f.classification, "pii": f.pii,
         "required": f.required, "extension": None}
        for f in dataset.fields
    ]  # fmt: skip
    for ext in extensions:
        if ext.dataset == name:
            fields += [
                {"name": ext.column(f), "type": f.type, "classification": f.classification, "pii": f.pii,
                 "required": False, "extension": ext.id}
                for f in ext.fields
            ]  # fmt: skip
    default = f"{contract.layer.value}.{name}"
    return {"name": name, "table": tables.get(name, default), "fields": fields}


def _lineage_key(schema_id: str, extension_id: str) -> str:
    return f"{schema_id}+{extension_id}"
