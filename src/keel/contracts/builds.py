"""A tenant's GDP tables and KPIs built from the contract versions it runs (the pipeline seam).

For one GDP contract version: every dataset is built from its checked mapping into
its versioned table (``keel.pipeline``), then every published KPI contract based on
exactly that version is built from it. ``activate`` then points the tenant's views at
those builds; builds of other versions stay untouched, which is what lets a rollout
(``rollout.py``) return a tenant to its last known good state exactly. Issue 5's
pipeline runs (incremental, scheduled, recorded) grow from here.

Data-plane work runs outside any store transaction; callers record its outcome in a
unit of work of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from keel.authz.engine import Resource
from keel.contracts import records, rules
from keel.contracts.kpi_sql import KpiPlan, validate_kpi
from keel.contracts.mapping import MappingPlan, validate_mapping
from keel.contracts.model import Contract, Dataset, Layer, Status, Version
from keel.kernel.errors import Conflict, InvalidInput
from keel.kernel.ids import new_id
from keel.pipeline import (
    DuckDBEngine,
    MaterializationFailed,
    RunResult,
    activate,
    active,
    materialize_gdp,
    materialize_kpi,
)
from keel.pipeline.naming import safe_name
from keel.pipeline.refresh import NotIncremental, refresh_gdp
from keel.store.tables import contract_versions, pipeline_runs


@dataclass(frozen=True)
class Plan:
    """What building one contract version for a tenant means: its datasets' mappings and the KPI
    versions computed from them (for a KPI contract: that KPI alone, over its GDP version)."""

    contract: Contract
    datasets: tuple[tuple[Dataset, MappingPlan], ...] = ()
    kpis: tuple[tuple[Contract, KpiPlan, str], ...] = ()  # (KPI contract, plan, GDP version it reads)


@dataclass
class Build:
    """The runs of one build: ``views`` maps ``(layer, name)`` to the version built for it."""

    runs: list[RunResult] = field(default_factory=list)
    views: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def gdp_runs(self) -> list[RunResult]:
        return [r for r in self.runs if r.layer == "gdp"]

    def add(self, run: RunResult) -> None:
        self.runs.append(run)
        self.views[(run.layer, run.name)] = run.version


def plan_for(conn, contract_id: str, version: str, tenant_id: str | None = None) -> Plan:
    """The checked plans of a contract version (and, for GDP, of the KPIs published on it)."""
    row = records.load(conn, contract_id, version)
    contract = records.with_resolved_refs(records.contract_of(row), row.based_on)
    context = records.context_for(conn, row)
    if contract.layer is Layer.KPI:
        return Plan(contract, kpis=(_kpi(contract, context),))
    if contract.layer is not Layer.GDP:
        return Plan(contract)
    sources = rules.source_tables(contract, context)
    datasets = tuple(
        (d, validate_mapping(d.mapping_sql or "", d, sources, contract=contract.key))
        for d in contract.datasets
    )
    return Plan(contract, datasets=datasets, kpis=tuple(_kpis_on(conn, contract, tenant_id or row.tenant_id)))


def build(keel, tenant_id: str, plan: Plan, actor=None) -> Build:
    """Build every table of ``plan`` in the tenant's data plane, without activating anything; a
    data-quality block is recorded as ``actor``'s (the platform's when None)."""
    from keel.identity.actor import SYSTEM
    from keel.quality.errors import RuleBlocked
    from keel.quality.service import enabled_rules, record_blocked

    engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
    done = Build()
    with keel.uow() as uow:  # the tenant's enabled data-quality rules (04), global and its own
        rules = enabled_rules(uow.conn, tenant_id) if plan.datasets else []
        kpi_rules = _kpi_rules(uow.conn, tenant_id, plan)
    with engine.session():  # one connection for the whole build (opening one costs ~25 ms)
        try:
            for dataset, mapping in plan.datasets:
                mine = [r for r in rules if r.dataset == safe_name(dataset.name, "dataset")]
                done.add(materialize_gdp(engine, plan.contract, dataset, mapping, rules=mine))
            for kpi, kpi_plan, gdp_version in plan.kpis:
                done.add(_full_kpi(engine, kpi, kpi_plan, gdp_version, kpi_rules))
        except RuleBlocked as blocked:
            record_blocked(keel, actor or SYSTEM, tenant_id, blocked)
            raise
    return done


def _kpi_rules(conn, tenant_id: str, plan: Plan) -> dict[str, list]:
    """The tenant's enabled ``kpi`` rules on the plan's KPIs, by KPI name (04 "enforce in KPI calc")."""
    from keel.quality.service import enabled_rules

    if not plan.kpis:
        return {}
    names = {safe_name(k.id, "contract") for k, _, _ in plan.kpis}
    found: dict[str, list] = {}
    for rule in enabled_rules(conn, tenant_id, layer="kpi"):
        if rule.dataset in names:
            found.setdefault(rule.dataset, []).append(rule)
    return found


def _full_kpi(engine, kpi: Contract, kpi_plan: KpiPlan, gdp_version: str, kpi_rules: dict) -> RunResult:
    """Compute a KPI version in full, checked by its enabled rules."""
    rules = kpi_rules.get(safe_name(kpi.id, "contract"), [])
    return materialize_kpi(engine, kpi, kpi_plan, gdp_version, rules=rules)


def refresh(keel, tenant_id: str, plan: Plan, actor=None) -> Build:
    """Like ``build``, but each GDP table built before takes only its new Raw batches, and its KPIs
    only the periods they touch (``keel.pipeline.refresh``); a table a refresh cannot be right for
    is rebuilt in full, the run's ``note`` saying why. Nothing is activated."""
    from keel.identity.actor import SYSTEM
    from keel.quality.errors import RuleBlocked
    from keel.quality.service import enabled_rules, record_blocked

    if not plan.datasets:  # a KPI contract alone: recomputing it in full is the refresh
        return build(keel, tenant_id, plan, actor)
    engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
    done = Build()
    with keel.uow() as uow:
        rules = enabled_rules(uow.conn, tenant_id)
        kpi_rules = _kpi_rules(uow.conn, tenant_id, plan)
    with engine.session():
        try:
            for dataset, mapping in plan.datasets:
                name = safe_name(dataset.name, "dataset")
                mine = [r for r in rules if r.dataset == name]
                kpis = [(k, p, v) for k, p, v in plan.kpis if p.table.lower() == f"gdp.{name}"]
                try:
                    on_it = [(k, p) for k, p, _ in kpis]
                    results = refresh_gdp(
                        engine, plan.contract, dataset, mapping, rules=mine, kpis=on_it, kpi_rules=kpi_rules
                    )
                except NotIncremental as why:
                    gdp = materialize_gdp(engine, plan.contract, dataset, mapping, rules=mine)
                    results = [replace(gdp, note=why.reason)] + [
                        replace(_full_kpi(engine, k, p, v, kpi_rules), note=why.reason) for k, p, v in kpis
                    ]
                for result in results:
                    done.add(result)
            for kpi, kpi_plan, gdp_version in plan.kpis:  # KPIs on no dataset of this plan (none today)
                if ("kpi", safe_name(kpi.id, "contract")) not in done.views:
                    done.add(_full_kpi(engine, kpi, kpi_plan, gdp_version, kpi_rules))
        except RuleBlocked as blocked:
            record_blocked(keel, actor or SYSTEM, tenant_id, blocked)
            raise
    return done


def activate_views(
    keel, tenant_id: str, views: dict[tuple[str, str], str]
) -> dict[tuple[str, str], str | None]:
    """Point the tenant's views at ``views``; returns what each pointed at before (None: nothing)."""
    engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
    before = {}
    with engine.transaction():
        for (layer, name), version in views.items():
            before[(layer, name)] = active(engine, layer, name)
            activate(engine, layer, name, version)
    return before


def views_of(plan: Plan) -> list[tuple[str, str]]:
    """The ``(layer, name)`` views a plan builds (names as the pipeline spells them)."""
    views = [("gdp", safe_name(d.name, "dataset")) for d, _ in plan.datasets]
    return views + [("kpi", safe_name(k.id, "contract")) for k, _, _ in plan.kpis]


def _kpi(contract: Contract, context: rules.Context) -> tuple[Contract, KpiPlan, str]:
    gdp = rules.gdp_tables(contract, context)
    kpi_plan = validate_kpi(contract.kpi, gdp, contract=contract.key)
    base = next(r for r in contract.based_on if context.resolve(r) and context.resolve(r).layer is Layer.GDP)
    return contract, kpi_plan, str(base.version)


def _kpis_on(conn, gdp: Contract, tenant_id: str | None):
    """The newest published version of each KPI contract based on exactly this GDP version that
    the tenant may run (global ones, and its own)."""
    key = gdp.key
    newest: dict[str, object] = {}
    rows = conn.execute(
        sa.select(contract_versions).where(
            contract_versions.c.layer == Layer.KPI.value, contract_versions.c.status == Status.PUBLISHED.value
        )
    )
    for row in rows:
        if key in row.based_on and row.tenant_id in (None, tenant_id):
            best = newest.get(row.contract_id)
            if best is None or Version.parse(best.version) < Version.parse(row.version):
                newest[row.contract_id] = row
    for row in sorted(newest.values(), key=lambda r: r.contract_id):
        kpi = records.with_resolved_refs(records.contract_of(row), row.based_on)
        yield _kpi(kpi, records.context_for(conn, row))


def record_runs(conn, tenant_id: str, runs: list[RunResult], *, purpose: str, run_by: str) -> list[str]:
    """Keep each run in the control plane: the baselines rollouts compare against, and the record
    of what was built from which contract version. Returns the runs' ids, in order."""
    ids = []
    for run in runs:
        ids.append(new_id("PLR"))
        conn.execute(
            pipeline_runs.insert().values(
                id=ids[-1],
                mode=run.mode,
                delta_rows=run.rows if run.delta_rows is None else run.delta_rows,
                batches=list(run.batches),
                note=run.note,
                tenant_id=tenant_id,
                layer=run.layer,
                name=run.name,
                contract=run.contract,
                version=run.version,
                table_name=run.table,
                inputs=list(run.inputs),
                rows=run.rows,
                error_rows=run.error_rows,
                dq_failures=run.dq_failures,
                duration_seconds=run.duration_seconds,
                error=run.error,
                purpose=purpose,
                run_by=run_by,
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
        )
    return ids


def record_with_lineage(uow, tenant_id: str, runs: list[RunResult], *, purpose: str, actor) -> tuple:
    """Record each run and capture its OpenLineage events naming it (05), in ``uow``: returns the
    runs' ids and the lineage records to ``keel.lineage.store.send`` after the commit."""
    from keel.lineage import store as lineage_store

    run_ids = record_runs(uow.conn, tenant_id, runs, purpose=purpose, run_by=actor.user_id)
    sent = [
        record_id
        for run, run_id in zip(runs, run_ids, strict=True)
        for record_id in lineage_store.capture(
            uow, tenant_id, run, run.lineage, actor=actor, pipeline_run_id=run_id
        )
    ]
    return run_ids, sent


def last_run(conn, tenant_id: str, layer: str, name: str, version: str) -> RunResult | None:
    """The newest successful recorded run of one version of a tenant's table, as a RunResult."""
    row = conn.execute(
        sa.select(pipeline_runs)
        .where(
            pipeline_runs.c.tenant_id == tenant_id,
            pipeline_runs.c.layer == layer,
            pipeline_runs.c.name == name,
            pipeline_runs.c.version == version,
            pipeline_runs.c.error.is_(None),
        )
        .order_by(pipeline_runs.c.finished_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return RunResult(
        layer=row.layer,
        name=row.name,
        version=row.version,
        table=row.table_name,
        contract=row.contract,
        inputs=tuple(row.inputs),
        rows=row.rows,
        error_rows=row.error_rows,
        dq_failures=row.dq_failures,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=float(row.duration_seconds),
    )


def run_view(run: RunResult, run_id: str | None = None) -> dict:
    return {
        **({"id": run_id} if run_id else {}),
        "mode": run.mode,
        "delta_rows": run.rows if run.delta_rows is None else run.delta_rows,
        "batches": len(run.batches),
        "note": run.note,
        "layer": run.layer,
        "name": run.name,
        "version": run.version,
        "table": run.table,
        "contract": run.contract,
        "rows": run.rows,
        "error_rows": run.error_rows,
        "dq_failures": run.dq_failures,
        "duration_seconds": round(run.duration_seconds, 6),
        "error": run.error,
    }


MODES = ("full", "incremental")


def build_tenant(
    keel, actor, tenant_id: str, schema_id: str, *, mode: str = "full", essential: bool = True
) -> dict:
    """Build and activate the version of ``schema_id`` the tenant runs (with the KPIs on it):
    ``full`` recomputes every table, ``incremental`` adds what new Raw batches bring (``refresh``).
    A run that is not ``essential`` (a scheduled one) is refused while a spend cap blocks
    non-essential actions (05b)."""
    from keel.contracts.lifecycle import active_version
    from keel.guardrails import service as guardrails
    from keel.identity.actor import SYSTEM
    from keel.quality import service as quality
    from keel.tenants.service import load_tenant

    if mode not in MODES:
        raise InvalidInput("mode", f"must be one of {', '.join(MODES)}")
    with keel.uow() as uow:
        if actor is not SYSTEM:  # the scheduler's runs (``scheduled.py``) act for the platform
            keel.authorize(uow, actor, "pipeline:Run", Resource("pipeline", schema_id, tenant=tenant_id))
        if load_tenant(uow.conn, tenant_id).status != "ACTIVE":
            raise Conflict("the tenant is not ACTIVE: its pipelines are on hold", tenant_id=tenant_id)
        version = active_version(uow.conn, tenant_id, schema_id)
        if version is None:
            raise InvalidInput("schema_id", f"'{schema_id}' has no published version the tenant runs")
        plan = plan_for(uow.conn, schema_id, version, tenant_id)
        decision = guardrails.evaluate(keel, uow, actor, tenant_id, "pipeline:Run", essential=essential)
        uow.commit()  # a refusal's evidence (nothing else was written)
    decision.raise_if_refused()
    from keel.lineage import store as lineage_store

    try:
        done = (refresh if mode == "incremental" else build)(keel, tenant_id, plan, actor)
    except MaterializationFailed as failed:
        with keel.uow() as uow:
            (run_id,), sent = record_with_lineage(
                uow, tenant_id, [failed.result], purpose="build", actor=actor
            )  # START and FAIL events (05)
            uow.record(
                "pipeline.run.failed",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                contract=plan.contract.key,
                table=failed.result.table,
                mode=failed.result.mode,
                run_id=run_id,
            )
            uow.commit()
        lineage_store.send(keel, sent)
        raise
    activate_views(keel, tenant_id, done.views)
    with keel.uow() as uow:
        # START and COMPLETE events with column lineage, per table (05)
        run_ids, sent = record_with_lineage(uow, tenant_id, done.runs, purpose="build", actor=actor)
        quality.record_outcomes(uow, actor, tenant_id, done.runs)  # rule.applied, rates, alerts (04)
        uow.record(
            "pipeline.run.completed",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            contract=plan.contract.key,
            tables=[r.table for r in done.runs],
            rows=sum(r.rows for r in done.runs),
            mode=mode,
            run_ids=run_ids,
            modes=[r.mode for r in done.runs],
        )
        uow.commit()
    lineage_store.send(keel, sent)  # after the commit: a failed send never fails the build
    runs = [run_view(r, i) for r, i in zip(done.runs, run_ids, strict=True)]
    return {"schema_id": schema_id, "version": version, "mode": mode, "runs": runs}
