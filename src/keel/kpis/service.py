"""KPI consumption (story 07): what a tenant's people see of its published KPIs.

Only a KPI published to the tenant (``publishing.py``, story 06) exists for its people: an
unpublished one is left out of lists and is 404. The publication pins a KPI contract version;
its definition and thresholds are that version's, and its values come from the newest
successful build of that version (``kpi."<kpi>__v<version>"``, ``keel.pipeline.kpi_values``),
each row judged against the contract's thresholds (``evaluate_thresholds``) and target.
A published KPI is shown to a caller only when one of the caller's personas is in the
contract's ``visibleTo``; to anyone else it does not exist (404, and it is left out of lists),
and the attempt opens an incident (``kpi_visibility_violation``) in a unit of work of its own,
so it is recorded although the request fails. Every view records ``kpi.viewed`` and
``kpi.consumed`` (metric ``kpi_view_count``), every export ``kpi.exported``
(``export_count``) with a receipt holding the file's SHA-256. Each read of one KPI counts
toward ``kpi_consumption_rate``: served, or not (not published, not built, hidden).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from decimal import Decimal

from sqlglot import exp

from keel import guardrails
from keel.authz.engine import Resource
from keel.contracts import records
from keel.contracts.builds import plan_for
from keel.contracts.kpi_sql import evaluate_thresholds
from keel.contracts.model import Layer
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.kpis import publications
from keel.kpis.proofs import proof_of
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.pipeline import DuckDBEngine, kpi_values
from keel.pipeline.naming import safe_name, versioned
from keel.pipeline.statements import render, retarget, table
from keel.tenants.service import REGION, load_tenant

GET, EXPORT = "kpi:GetResults", "kpi:Export"
FORMATS = ("csv", "parquet")
DRILL_LIMIT = 1000
INCIDENT_KIND = "kpi_visibility_violation"


# --- what is published to a tenant, and who may see it ------------------------------------------


def _contract(conn, tenant_id: str, kpi_id: str, publication=None):
    """The published KPI contract version (row, contract, publication); 404 when the KPI is not
    published."""
    publication = publication or publications.current(conn, tenant_id, kpi_id)
    if publication is None:
        raise NotFound("KPI", kpi_id)
    row = records.load(conn, kpi_id, publication.version)
    if row.layer != Layer.KPI.value:
        raise NotFound("KPI", kpi_id)
    return row, records.with_resolved_refs(records.contract_of(row), row.based_on), publication


def _visible(contract, actor: Actor) -> bool:
    return bool(set(actor.roles) & set(contract.kpi.visible_to))


def _hidden(keel, actor: Actor, tenant_id: str, kpi_id: str) -> NotFound:
    """Open the incident of a refused KPI read in a unit of work of its own; the error to raise."""
    with keel.uow() as uow:
        _served(uow, tenant_id, kpi_id, False)
        open_incident(
            uow,
            actor,
            kind=INCIDENT_KIND,
            summary=f"{actor.user_id} asked for KPI {kpi_id}, which none of its roles may see",
            severity="SEV3",
            details={"kpi_id": kpi_id, "roles": sorted(actor.roles)},
            tenant_id=tenant_id,
        )
        uow.commit()
    return NotFound("KPI", kpi_id)


def _served(uow, tenant_id: str, kpi_id: str, served: bool) -> None:
    metrics.outcome(uow.conn, "kpi_consumption_rate", served, tenant_id)


def _missing(keel, tenant_id: str, kpi_id: str, error: NotFound) -> NotFound:
    """Count a read of a KPI that is not published or not built (a publish/dashboard fault)."""
    with keel.uow() as uow:
        _served(uow, tenant_id, kpi_id, False)
        uow.commit()
    return error


def _open(keel, actor: Actor, tenant_id: str, kpi_id: str, action: str = GET):
    """Authorize, then the published version (row, contract) and whether the caller may see it."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, action, Resource("kpi", kpi_id, tenant=tenant_id))
        try:
            row, contract, publication = _contract(uow.conn, tenant_id, kpi_id)
        except NotFound as missing:
            error = missing
        else:
            return row, contract, _visible(contract, actor), publication
    raise _missing(keel, tenant_id, kpi_id, error)


# --- values -------------------------------------------------------------------------------------


def _engine(keel, tenant_id: str) -> DuckDBEngine:
    return DuckDBEngine(keel.dataplanes.database_path(tenant_id))


def _number(value):
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _plain(value):
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return _number(value)


def _rows(keel, tenant_id: str, kpi_id: str, version: str) -> list[dict] | None:
    """The rows of the newest build of the published version; None when it is not built."""
    if not keel.dataplanes.database_path(tenant_id).exists():
        return None
    try:
        return kpi_values(_engine(keel, tenant_id), kpi_id, version)
    except NotFound:
        return None


def _built(keel, tenant_id: str, kpi_id: str, version: str) -> list[dict]:
    values = _rows(keel, tenant_id, kpi_id, version)
    if values is None:
        raise _missing(keel, tenant_id, kpi_id, NotFound("built KPI", kpi_id))
    return values


def _target(contract, period: str) -> float | None:
    targets = dict(contract.kpi.targets)
    return targets.get(period, targets.get(period[:7], targets.get("default")))


def _judged(contract, row: dict) -> dict:
    dims = {d: _plain(row.get(d)) for d in contract.kpi.dimensions}
    value = _number(row.get("value"))
    period = _plain(row.get("period"))
    thresholds = evaluate_thresholds(value, contract.kpi.thresholds)
    breached = [t["name"] for t in thresholds if t["status"] == "breached"]
    return {
        "period": period,
        "dimensions": dims,
        "value": value,
        "target": _target(contract, str(period)),
        "thresholds": thresholds,
        "breached": breached,
        "status": "no_data" if value is None else ("breached" if breached else "ok"),
    }


def _definition(row, contract, publication=None) -> dict:
    spec = contract.kpi
    published = {"publication_id": publication.id} if publication is not None else {}
    return published | {
        "kpi_id": row.contract_id,
        "name": contract.name,
        "version": row.version,
        "unit": spec.unit,
        "grain": spec.grain,
        "dimensions": list(spec.dimensions),
        "thresholds": [
            {"name": t.name, "op": t.op, "limit": t.limit, "severity": t.severity} for t in spec.thresholds
        ],
        "targets": dict(spec.targets),
        "visible_to": list(spec.visible_to),
    }


def _viewed(uow, actor: Actor, tenant_id: str, kpi_id: str, version: str, view: str) -> None:
    fields = {"kpi_id": kpi_id, "version": version, "view": view, "user": actor.user_id}
    uow.record("kpi.viewed", actor_id=actor.user_id, tenant_id=tenant_id, **fields)
    uow.record("kpi.consumed", actor_id=actor.user_id, tenant_id=tenant_id, **fields)
    metrics.record(uow.conn, "kpi_view_count", 1, tenant_id, kpi_id=kpi_id)
    _served(uow, tenant_id, kpi_id, True)


def check_filters(contract, filters: dict[str, str]) -> dict[str, str]:
    dims = {d.lower(): d for d in contract.kpi.dimensions}
    for name in filters:
        if name.lower() not in dims:
            known = ", ".join(contract.kpi.dimensions) or "none"
            raise InvalidInput(name, f"is not a dimension of KPI {contract.id} (its dimensions: {known})")
    return {dims[k.lower()]: v for k, v in filters.items()}


def _matches(row: dict, filters: dict[str, str]) -> bool:
    return all(str(row["dimensions"].get(k)) == v for k, v in filters.items())


def list_kpis(keel, actor: Actor, tenant_id: str) -> list[dict]:
    """The published KPIs the caller may see, each with its newest period's value per dimension."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, GET, Resource("kpi", "*", tenant=tenant_id))
        shown = []
        for publication in publications.published(uow.conn, tenant_id):
            try:
                row, contract, _ = _contract(uow.conn, tenant_id, publication.kpi_id, publication)
            except NotFound:
                continue
            if not _visible(contract, actor):
                continue
            shown.append((publication, row, contract))
        items = []
        for publication, row, contract in shown:
            values = _rows(keel, tenant_id, row.contract_id, row.version)
            judged = [_judged(contract, r) for r in values or []]
            latest = max((j["period"] for j in judged), default=None)
            current = [j for j in judged if j["period"] == latest]
            items.append(
                _definition(row, contract, publication)
                | {
                    "built": values is not None,
                    "period": latest,
                    "current": current,
                    "breached": any(j["breached"] for j in current),
                }
            )
            _viewed(uow, actor, tenant_id, row.contract_id, row.version, "list")
        uow.commit()
    return items


def get_kpi(keel, actor: Actor, tenant_id: str, kpi_id: str, filters: dict[str, str] | None = None) -> dict:
    """One KPI: its definition, the current values and the history at its grain, judged."""
    row, contract, visible, publication = _open(keel, actor, tenant_id, kpi_id)
    if not visible:
        raise _hidden(keel, actor, tenant_id, kpi_id)
    chosen = check_filters(contract, filters or {})
    values = _built(keel, tenant_id, row.contract_id, row.version)
    history = [j for j in (_judged(contract, r) for r in values) if _matches(j, chosen)]
    latest = max((j["period"] for j in history), default=None)
    with keel.uow() as uow:
        _viewed(uow, actor, tenant_id, row.contract_id, row.version, "detail")
        uow.commit()
    return _definition(row, contract, publication) | {
        "tenant_id": tenant_id,
        "filters": chosen,
        "period": latest,
        "current": [j for j in history if j["period"] == latest],
        "history": history,
    }


# --- drill-through ------------------------------------------------------------------------------


def _drill_query(kpi_plan, gdp_version: str, period: str, dims: dict[str, str]) -> exp.Select:
    """The GDP rows one KPI value is computed from: the KPI query without its grouping, kept to
    one period bucket and the given dimension values."""
    query = kpi_plan.expression.copy()
    selects = query.selects
    period_expr = selects[0].this.copy()
    conditions = [exp.EQ(this=period_expr, expression=exp.cast(exp.Literal.string(period), "DATE"))]
    by_name = {s.alias_or_name.lower(): s.this for s in selects[1:-1]}
    for name, value in dims.items():
        column = by_name[name.lower()].copy()
        conditions.append(exp.EQ(this=exp.cast(column, "VARCHAR"), expression=exp.Literal.string(value)))
    drill = query.select(exp.Star(), append=False)
    drill.set("group", None)
    drill.set("order", None)
    drill = drill.where(exp.and_(*conditions)).limit(DRILL_LIMIT)
    entity = kpi_plan.table.rpartition(".")[2]
    return retarget(drill, kpi_plan.table, table("gdp", versioned(entity, gdp_version)))


def _raw_key(conn, contract, gdp_version: str, gdp_table: str):
    """(GDP field, Raw table, Raw column) linking the GDP rows to their Raw records, from the GDP
    mapping's column lineage: a key field copied from one Raw column; None when there is none."""
    base = next((r for r in contract.based_on if str(r.version) == gdp_version), None)
    if base is None:
        return None
    plan = plan_for(conn, base.contract_id, gdp_version)
    for dataset, mapping in plan.datasets:
        if f"gdp.{safe_name(dataset.name, 'dataset')}" != gdp_table.lower():
            continue
        ordered_fields = sorted(dataset.fields, key=lambda f: not f.primary_key)
        for f in ordered_fields:
            sources = mapping.lineage.get(f.name) or mapping.lineage.get(f.name.lower()) or ()
            if len(sources) == 1 and sources[0][0].lower().startswith("raw."):
                return f.name, sources[0][0], sources[0][1]
    return None


def drill(keel, actor: Actor, tenant_id: str, kpi_id: str, period: str, filters: dict[str, str]) -> dict:
    try:
        day = dt.date.fromisoformat(period)
    except ValueError:
        raise InvalidInput("period", "is a date, YYYY-MM-DD (the first day of the KPI's period)") from None
    row, contract, visible, _ = _open(keel, actor, tenant_id, kpi_id)
    if not visible:
        raise _hidden(keel, actor, tenant_id, kpi_id)
    chosen = check_filters(contract, filters)
    with keel.engine.connect() as conn:
        (_, kpi_plan, gdp_version), *_ = plan_for(conn, kpi_id, row.version, tenant_id).kpis
        key = _raw_key(conn, contract, gdp_version, kpi_plan.table)
    values = _built(keel, tenant_id, kpi_id, row.version)
    engine = _engine(keel, tenant_id)
    value_row = next(
        (
            j
            for j in (_judged(contract, r) for r in values)
            if j["period"] == day.isoformat() and _matches(j, chosen)
        ),
        None,
    )
    gdp_rows = engine.dicts(render(_drill_query(kpi_plan, gdp_version, day.isoformat(), chosen), "duckdb"))
    raw_rows: list[dict] = []
    raw_source = None
    if key is not None and gdp_rows:
        field, raw_table, raw_column = key
        schema, _, name = raw_table.rpartition(".")
        keys = sorted({str(r[field]) for r in gdp_rows if r.get(field) is not None})
        column = exp.cast(exp.column(raw_column, quoted=True), "VARCHAR")
        query = (
            exp.select(exp.Star())
            .from_(table(schema, name))
            .where(column.isin(*(exp.Literal.string(k) for k in keys)))
            .limit(DRILL_LIMIT)
        )
        raw_rows = engine.dicts(render(query, "duckdb"))
        raw_source = {"table": raw_table, "column": raw_column, "gdp_field": field}
    with keel.uow() as uow:
        _viewed(uow, actor, tenant_id, kpi_id, row.version, "drill")
        uow.commit()
    return {
        "kpi_id": kpi_id,
        "version": row.version,
        "period": day.isoformat(),
        "filters": chosen,
        "value": value_row,
        "gdp_table": f"gdp.{versioned(kpi_plan.table.rpartition('.')[2], gdp_version)}",
        "gdp_rows": [{k: _plain(v) for k, v in r.items()} for r in gdp_rows],
        "raw_source": raw_source,
        "raw_rows": [{k: _plain(v) for k, v in r.items()} for r in raw_rows],
    }


# --- snapshots ----------------------------------------------------------------------------------


def export(
    keel,
    actor: Actor,
    tenant_id: str,
    kpi_id: str,
    fmt: str,
    filters: dict[str, str],
    region: str | None = None,
) -> dict:
    """The KPI's rows as a CSV or Parquet file in the tenant's data plane, with a receipt.

    ``region`` is where the snapshot is bound (default: the tenant's declared region). The
    enabled guardrails judge the written file (rows, bytes) and the region before any receipt
    is issued: a refusal (export limit, residency) deletes the file, evidences the refusal
    (``policy.enforced``) and raises; nothing of the export remains."""
    fmt = (fmt or "csv").lower()
    if fmt not in FORMATS:
        raise InvalidInput("format", f"'{fmt}' is not a snapshot format; use one of {', '.join(FORMATS)}")
    if region is not None and not REGION.match(region):
        raise InvalidInput("region", "must be 1-40 lower-case letters, digits or '-'")
    row, contract, visible, _ = _open(keel, actor, tenant_id, kpi_id, EXPORT)
    if not visible:
        raise _hidden(keel, actor, tenant_id, kpi_id)
    chosen = check_filters(contract, filters)
    _built(keel, tenant_id, kpi_id, row.version)
    snapshot_id = new_id("KSN")
    folder = keel.dataplanes.directory(tenant_id) / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(kpi_id, 'kpi_id')}-{snapshot_id}.{fmt}"
    name = safe_name(kpi_id, "kpi_id")
    where = [
        exp.EQ(this=exp.cast(exp.column(d, quoted=True), "VARCHAR"), expression=exp.Literal.string(v))
        for d, v in chosen.items()
    ]
    query = exp.select(exp.Star()).from_(table("kpi", versioned(name, row.version)))
    if where:
        query = query.where(exp.and_(*where))
    query = query.order_by("period")
    options = "FORMAT CSV, HEADER" if fmt == "csv" else "FORMAT PARQUET"
    target = str(path).replace("'", "''")
    try:
        ((written,),) = _engine(keel, tenant_id).rows(
            f"COPY ({render(query, 'duckdb')}) TO '{target}' ({options})"
        )
    except Exception as failed:  # the export failed: log it, the caller retries
        with keel.uow() as uow:
            uow.record(
                "kpi.export.failed", actor_id=actor.user_id, tenant_id=tenant_id, kpi_id=kpi_id, format=fmt
            )
            uow.commit()
        path.unlink(missing_ok=True)
        raise InvalidInput(
            "format", f"the snapshot could not be written ({type(failed).__name__}); retry"
        ) from None
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    now = utcnow()
    body = {
        "snapshot_id": snapshot_id,
        "kpi_id": kpi_id,
        "version": row.version,
        "format": fmt,
        "filters": chosen,
        "file": path.name,
        "sha256": sha256,
        "bytes": path.stat().st_size,
        "exported_by": actor.user_id,
        "timestamp": now.isoformat(),
    }
    with keel.uow() as uow:
        decision = guardrails.evaluate(
            keel,
            uow,
            actor,
            tenant_id,
            EXPORT,
            essential=True,
            rows=int(written),
            bytes=body["bytes"],
            region=region or load_tenant(uow.conn, tenant_id).region,
        )
        if not decision.allowed:
            path.unlink(missing_ok=True)
            uow.commit()  # the refusal's evidence only
            decision.raise_if_refused()
        receipt_id = receipts.issue(
            uow.conn, "kpi.snapshot", subject_id=kpi_id, tenant_id=tenant_id, body=body, at=now
        )
        fields = {"kpi_id": kpi_id, "receipt_id": receipt_id, "sha256": sha256, "format": fmt}
        uow.record("kpi.exported", actor_id=actor.user_id, tenant_id=tenant_id, **fields)
        metrics.record(uow.conn, "export_count", 1, tenant_id, kpi_id=kpi_id)
        _served(uow, tenant_id, kpi_id, True)
        uow.commit()
    seq, proof = proof_of(keel, tenant_id, "kpi.exported", receipt_id)
    return {
        "snapshot_id": snapshot_id,
        "kpi_id": kpi_id,
        "version": row.version,
        "format": fmt,
        "path": str(path),
        "sha256": sha256,
        "receipt_id": receipt_id,
        "receipt": body,
        "ledger_seq": seq,
        "proof": proof,
    }
