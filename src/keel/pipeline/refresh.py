"""Incremental refresh of a built GDP version and of the KPI versions computed from it.

A refresh adds to the version's table the rows its mapping yields from the Raw
batches that landed since the table was built (``delta.py``), checks only those
rows (type errors, required fields, data-quality rules; key repeats against the
whole table), and recomputes only the KPI periods those rows fall in (a KPI query
groups by period, so a period's value depends on that period's rows alone). All of
it is one data-plane transaction: readers of the active views see the table and its
KPIs before or after the refresh, never between, and a refresh that fails or is
blocked by a rule leaves nothing behind.

When rows built earlier could change, a refresh cannot be right and raises
``NotIncremental`` naming why; the caller then rebuilds in full. That is the case
when the version was never built (or built before batches were recorded), an input
is not an ingested Raw table, batches were removed from an input, the enabled
data-quality rules changed or a table a referential rule reads was rebuilt since, a
rule's check is one a refresh cannot follow (``_refreshable``), or the mapping is not a
select-project-join (``delta.not_incremental``). Table-level rules judge the whole table
once the new rows are in; a ``unique`` rule judges the new rows against the whole table,
and a quarantining one takes the earlier copies of a repeated key out too (``_judge``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from functools import partial

from sqlglot import exp

from keel.contracts.kpi_sql import KpiPlan
from keel.contracts.mapping import MappingPlan
from keel.contracts.model import Contract, Dataset, Layer
from keel.kernel.clock import utcnow
from keel.kernel.errors import InvalidInput
from keel.pipeline import increments
from keel.pipeline.builds import build_of, record
from keel.pipeline.checks import constraint_checks, counts, quality_query
from keel.pipeline.conform import TYPE_ERROR, conform
from keel.pipeline.delta import BATCH, delta_query, not_incremental
from keel.pipeline.engine import Engine
from keel.pipeline.errors import EngineError, MaterializationFailed
from keel.pipeline.materialize import apply_rules, judge, kpi_lineage
from keel.pipeline.model import RunResult
from keel.pipeline.naming import canonical_version, safe_name, versioned
from keel.pipeline.statements import (
    count_rows,
    create_table_as,
    drop_table,
    render,
    retarget,
    scratch_table,
    table,
)

ROWID = "_keel_rowid"  # a moved row's id in the table it was taken from
# Rules judged on a row alone: a row added later cannot change how earlier rows fared.
ROW_LOCAL = frozenset({"not_null", "accepted_values", "range", "regex", "custom_sql"})


def _refreshable(rule) -> bool:
    """Whether a refresh can apply ``rule`` and agree with a full build: a row-local rule on the
    added rows, a table-level one on the table once they are in, a ``unique`` rule on the added
    rows against the table (a quarantining one takes the earlier copies of a repeated key out too:
    ``_judge``), a ``referential_integrity`` rule on the added rows while the table it reads is the
    build it read before (``increments.rules_fingerprint``). A check added later is not, until
    shown to be."""
    return rule.check in ROW_LOCAL or rule.table_level or rule.check in ("referential_integrity", "unique")


class NotIncremental(Exception):
    """A refresh could not be right; ``reason`` says why (the caller rebuilds in full)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refresh_gdp(
    engine: Engine,
    contract: Contract,
    dataset: Dataset,
    plan: MappingPlan,
    rules: Sequence = (),
    kpis: Sequence[tuple[Contract, KpiPlan]] = (),
    kpi_rules: Mapping[str, Sequence] | None = None,
) -> list[RunResult]:
    """Add the new Raw batches' rows to ``gdp."<table>__v<version>"`` and recompute the affected
    periods of ``kpis`` (KPI versions built from this GDP version); one run per table.

    ``kpi_rules`` (KPI name -> its enabled ``kpi`` rules): a KPI with rules is recomputed whole
    and checked like a full build, since a quarantined period may now pass and a table-level
    rule judges every period; a KPI is small (periods x dimensions), so that costs little."""
    if contract.layer is not Layer.GDP or contract.dataset(dataset.name) is None:
        raise InvalidInput("dataset", f"'{dataset.name}' is not a dataset of GDP contract {contract.key}")
    if plan.expression is None:
        raise InvalidInput("plan", f"the plan of {plan.target} has no query tree")
    name, version = safe_name(dataset.name, "dataset"), canonical_version(contract.version)
    target = table("gdp", versioned(name, contract.version))
    delta = scratch_table(f"{target.name}__delta")
    rules = tuple(rules)
    sql = partial(render, dialect=engine.dialect)
    started, clock = utcnow(), time.perf_counter()
    runs: list[RunResult] = []
    try:
        with engine.transaction():
            new = _new_batches(engine, name, version, plan, rules)
            if not engine.table_exists("gdp", target.name):
                raise NotIncremental(f"gdp.{target.name} was never built")
            staged = _stage(engine, target, new)
            query = delta_query(plan.expression, new, staged)
            found = {column.lower(): kind for column, kind in engine.describe(sql(plan.expression))}
            outcome: dict[str, dict] = {}
            moved = None  # rows built earlier that a quarantining unique rule took out
            if query is None:  # nothing new: record that the table is up to date
                added, per_check, error_rows, failing = 0, {}, 0, 0
            else:
                engine.execute(sql(create_table_as(delta, conform(query, dataset, found, engine.dialect))))
                if rules:
                    outcome, moved = _judge(engine, target, delta, rules)
                checks = constraint_checks(dataset)
                engine.execute(sql(exp.insert(exp.select("*").from_(delta.copy()), target.copy())))
                (row,) = engine.dicts(sql(quality_query(delta, checks, TYPE_ERROR, keys_from=target)))
                added, error_rows, failing, per_check = counts(row, checks)
            outcome |= _judge_table(engine, target, rules)
            earlier = build_of(engine, "gdp", name, version)
            taken = engine.rows(sql(count_rows(moved)))[0][0] if moved is not None else 0
            if earlier is not None:  # the recorded count plus what was added: no scan of the table
                total = int(earlier["rows"]) + added - taken
            else:
                (total,) = engine.rows(sql(count_rows(target)))[0]
            batches = tuple(sorted(b for ids in new.values() for b in ids))
            record(engine, "gdp", name, version, target.name, contract.key, plan.tables, int(total))
            increments.record(
                engine,
                name,
                version,
                increments.rules_fingerprint(rules, engine),
                _merged(engine, name, version, new),
            )
            runs.append(
                RunResult(
                    layer="gdp", name=name, version=version, table=f"gdp.{target.name}",
                    contract=contract.key, inputs=tuple(plan.tables), rows=int(total),
                    error_rows=error_rows, dq_failures=failing, started_at=started, finished_at=utcnow(),
                    duration_seconds=time.perf_counter() - clock, dq_checks=per_check,
                    rule_results=outcome, mode="incremental", delta_rows=added, batches=batches,
                    lineage=dict(plan.lineage),
                )
            )  # fmt: skip
            for kpi, kpi_plan in kpis:
                checked = (kpi_rules or {}).get(safe_name(kpi.id, "contract"), ())
                added_rows = delta if query is not None else None
                runs.append(_refresh_kpi(engine, kpi, kpi_plan, target, added_rows, checked, moved))
            for staged_table in [delta, *staged.values(), *([moved] if moved is not None else [])]:
                engine.execute(sql(drop_table(staged_table)))
    except EngineError as exc:
        failed_run = RunResult(
            layer="gdp", name=name, version=version, table=f"gdp.{target.name}", contract=contract.key,
            inputs=tuple(plan.tables), rows=0, error_rows=0, dq_failures=0, started_at=started,
            finished_at=utcnow(), duration_seconds=time.perf_counter() - clock, error=exc.detail,
            mode="incremental", lineage=dict(plan.lineage),
        )  # fmt: skip
        raise MaterializationFailed(failed_run, cause=exc.fields.get("cause", type(exc).__name__)) from exc
    return runs


def _stage(engine: Engine, target: exp.Table, new: dict[str, list[str]]) -> dict[str, exp.Table]:
    """Copy each input's new rows into a table of their own (``<target>__new_<i>``): the engine
    then knows how few they are and joins the rest of the data to them, not the other way."""
    staged = {}
    for i, (source, ids) in enumerate(sorted(new.items())):
        if not ids:
            continue
        schema, _, name = source.rpartition(".")
        landed = (
            exp.select("*")
            .from_(table(schema, name))
            .where(exp.column(BATCH, quoted=True).isin(*(exp.Literal.string(b) for b in ids)))
        )
        staged[source] = scratch_table(f"{target.name}__new_{i}")
        engine.execute(render(create_table_as(staged[source], landed), engine.dialect))
    return staged


def _judge(
    engine: Engine, target: exp.Table, delta: exp.Table, rules: Sequence
) -> tuple[dict[str, dict], exp.Table | None]:
    """Apply the row-level rules to the added rows (a ``unique`` value must not repeat among them
    or be in the table already): a failing ``block`` rule raises ``RuleBlocked`` (the transaction
    then rolls back), rows failing a ``quarantine`` rule move to the table's quarantine. A
    quarantining ``unique`` rule also takes the rows built earlier that an added row repeats out of
    the table, as a full build would quarantine every copy: they are kept in the returned scratch
    table too (their KPI periods must be recomputed). The counts per rule; table-level rules wait
    for ``_judge_table``."""
    from keel.quality.compile import HASH_COLUMN, kept, quarantined

    on_rows = [r for r in rules if not r.table_level]
    if not on_rows:
        return {}, None
    sql = partial(render, dialect=engine.dialect)
    outcome: dict[str, dict] = {}
    failed = judge(engine, delta, on_rows, outcome, added_to=target)
    if not any(r.on_fail == "quarantine" and failed[r.rule_id] for r in on_rows):
        return outcome, None
    columns = [c for c, _ in engine.columns(delta.db, delta.name)]
    quarantine = table("gdp", f"{target.name}__quarantine")
    hashed = HASH_COLUMN in {c for c, _ in engine.columns("gdp", quarantine.name)}  # built since rows had one
    keys = [r for r in on_rows if r.check == "unique" and r.on_fail == "quarantine" and failed[r.rule_id]]
    moved = None
    if keys:  # the earlier copies of a key an added row repeats, with their row ids
        moved = scratch_table(f"{target.name}__moved")
        repeated = exp.or_(*(_in_added(r.field, delta) for r in keys))
        rowid = exp.alias_(exp.column("rowid"), ROWID, quoted=True)  # DuckDB's row id: the rows exactly
        earlier = exp.select(rowid, *(exp.column(c, quoted=True) for c in columns)).from_(target.copy())
        engine.execute(sql(create_table_as(moved, earlier.where(repeated))))
        for rule in keys:
            counted = exp.select("count(*)").from_(moved.copy()).where(_in_added(rule.field, delta))
            outcome[rule.rule_id]["moved_earlier_rows"] = int(engine.rows(sql(counted))[0][0])
    # Judged while the table still holds the earlier copies, and the added rows are all there.
    added = quarantined(delta, columns, on_rows, with_hash=hashed, keys_from=target)
    engine.execute(sql(exp.insert(added, quarantine.copy())))
    if moved is not None:
        taken = quarantined(moved, columns, keys, with_hash=hashed, keys_from=delta)
        engine.execute(sql(exp.insert(taken, quarantine.copy())))
    engine.execute(sql(create_table_as(delta, kept(delta, columns, on_rows, keys_from=target))))
    if moved is not None:
        ids = exp.select(exp.column(ROWID, quoted=True)).from_(moved.copy())
        engine.execute(
            sql(
                exp.delete(
                    target.copy(), where=exp.In(this=exp.column("rowid"), query=exp.Subquery(this=ids))
                )
            )
        )
    return outcome, moved


def _in_added(field: str, delta: exp.Table) -> exp.Expr:
    """``field`` is one of the (non-NULL) values the added rows hold."""
    column = exp.column(field, quoted=True)
    values = exp.select(column.copy()).from_(delta.copy()).where(exp.not_(column.copy().is_(exp.null())))
    return exp.In(this=column, query=exp.Subquery(this=values))


def _judge_table(engine: Engine, target: exp.Table, rules: Sequence) -> dict[str, dict]:
    """Judge the table-level rules on the whole table once the added rows are in, exactly as a
    full build judges the table it publishes; a failing ``block`` one raises ``RuleBlocked``."""
    outcome: dict[str, dict] = {}
    on_table = [r for r in rules if r.table_level]
    if on_table:
        judge(engine, target, on_table, outcome)
    return outcome


def _new_batches(
    engine: Engine, name: str, version: str, plan: MappingPlan, rules: Sequence
) -> dict[str, list[str]]:
    """Each input's batches the build does not hold yet, or ``NotIncremental`` saying why not."""
    reason = not_incremental(plan.expression)
    if reason:
        raise NotIncremental(reason)
    wide = sorted({r.key for r in rules if not _refreshable(r)})
    if wide:
        raise NotIncremental(f"rule {', '.join(wide)} looks beyond its own row")
    state = increments.state_of(engine, name, version)
    if state is None:
        raise NotIncremental(f"no record of which batches gdp.{name} {version} holds")
    fingerprint, held = state
    if fingerprint != increments.rules_fingerprint(rules, engine):
        raise NotIncremental(
            "the enabled data-quality rules, or a table a referential rule reads, changed since the "
            "table was built"
        )
    now = increments.raw_batches(engine, plan.tables)
    new: dict[str, list[str]] = {}
    for source, ids in now.items():
        before = held.get(source)
        if ids is None or before is None:
            raise NotIncremental(f"{source} is not an ingested Raw table with batch records")
        gone = set(before) - set(ids)
        if gone:
            raise NotIncremental(f"{len(gone)} batch(es) of {source} were removed since the table was built")
        new[source] = sorted(set(ids) - set(before))
    return new


def _merged(engine: Engine, name: str, version: str, new: dict[str, list[str]]) -> dict[str, list[str]]:
    _, held = increments.state_of(engine, name, version)  # checked by _new_batches
    return {source: sorted(set(held[source]) | set(new.get(source, ()))) for source in held}


def _refresh_kpi(
    engine: Engine,
    contract: Contract,
    plan: KpiPlan,
    gdp: exp.Table,
    delta: exp.Table | None,
    rules: Sequence = (),
    removed: exp.Table | None = None,
) -> RunResult:
    """Recompute the periods of ``kpi."<kpi>__v<version>"`` that the added GDP rows fall in, and
    those of the ``removed`` rows a refresh took out (all of them, checked by ``rules``, when the
    KPI has rules)."""
    if contract.layer is not Layer.KPI or plan.expression is None:
        raise InvalidInput("plan", f"{contract.key} is not a checked KPI contract")
    sql = partial(render, dialect=engine.dialect)
    name, version = safe_name(contract.id, "contract"), canonical_version(contract.version)
    target = table("kpi", versioned(name, contract.version))
    inputs = (f"gdp.{gdp.name}",)
    built = build_of(engine, "kpi", name, version)
    if built is None or tuple(built["inputs"]) != inputs or not engine.table_exists("kpi", target.name):
        raise NotIncremental(f"kpi.{target.name} was not built from gdp.{gdp.name}")
    started, clock = utcnow(), time.perf_counter()
    period = plan.expression.selects[0].this  # the compiled query's first column is its period
    recomputed = 0
    affected: list = []
    outcome: dict[str, dict] = {}
    if rules:  # every period, checked: a quarantined one may pass now, a table-level rule sees all
        engine.execute(sql(create_table_as(target, retarget(plan.expression, plan.table, gdp))))
        apply_rules(engine, target, rules, outcome)
    elif delta is not None:
        # The KPI query over the added (and removed) rows, keeping only its distinct periods
        # (filters included).
        for rows in [delta, *([removed] if removed is not None else [])]:
            touched = retarget(plan.expression, plan.table, rows)
            touched.set("expressions", [exp.alias_(period.copy(), "period", quoted=True)])
            touched.set("group", None)
            touched.set("order", None)
            touched.set("distinct", exp.Distinct())
            affected += [row[0] for row in engine.rows(sql(touched)) if row[0] not in affected]
    if affected:
        column = exp.column("period", quoted=True)
        engine.execute(sql(exp.delete(target.copy(), where=_among(column, affected))))
        recompute = retarget(plan.expression, plan.table, gdp).where(_among(period.copy(), affected))
        window = _time_window(period, affected)
        if window is not None:  # the same rows, but the engine can skip the row groups outside it
            recompute = recompute.where(window, copy=False)
        engine.execute(sql(exp.insert(recompute, target.copy())))
        (recomputed,) = engine.rows(
            sql(exp.select("count(*)").from_(target.copy()).where(_among(column, affected)))
        )[0]
    (total,) = engine.rows(sql(count_rows(target)))[0]
    record(engine, "kpi", name, version, target.name, contract.key, inputs, int(total))
    note = f"{len(affected)} period(s) recomputed"
    if rules:
        recomputed, note = total, "all periods recomputed: the KPI has data-quality rules"
    return RunResult(
        layer="kpi", name=name, version=version, table=f"kpi.{target.name}", contract=contract.key,
        inputs=inputs, rows=int(total), error_rows=0, dq_failures=0, started_at=started,
        finished_at=utcnow(), duration_seconds=time.perf_counter() - clock, mode="incremental",
        delta_rows=int(recomputed), note=note, lineage=kpi_lineage(plan), rule_results=outcome,
    )  # fmt: skip


def _among(column: exp.Expr, periods: list) -> exp.Expr:
    """``column`` is one of ``periods`` (dates; a NULL period matched by IS NULL)."""
    dates = [p for p in periods if p is not None]
    literal = [exp.cast(exp.Literal.string(_iso(p)), exp.DataType.build("DATE")) for p in dates]
    conditions: list[exp.Expr] = [exp.In(this=column.copy(), expressions=literal)] if literal else []
    if len(dates) < len(periods):
        conditions.append(column.copy().is_(exp.null()))
    return exp.or_(*conditions) if len(conditions) > 1 else conditions[0]


def _time_window(period: exp.Expr, periods: list) -> exp.Expr | None:
    """``first <= time < last + one grain`` for ``period = CAST(DATE_TRUNC(grain, time) AS DATE)``:
    implied by the periods, but on the time field itself, which the engine's zone maps can prune."""
    trunc = period.this if isinstance(period, exp.Cast) else None
    if not isinstance(trunc, exp.TimestampTrunc) or not periods or None in periods:
        return None
    time_field, unit = trunc.this, trunc.args.get("unit")
    first, last = (
        exp.cast(exp.Literal.string(_iso(p)), exp.DataType.build("DATE"))
        for p in (min(periods), max(periods))
    )
    after = exp.Add(this=last, expression=exp.Interval(this=exp.Literal.string("1"), unit=unit.copy()))
    return exp.and_(
        exp.GTE(this=time_field.copy(), expression=first), exp.LT(this=time_field.copy(), expression=after)
    )


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)
