"""Versioned builds of GDP tables and KPIs from checked contract plans.

Each contract version is built into a table of its own (``gdp."order__v1_2_0"``,
``kpi."kpi_dso__v1_0_0"``) in one transaction: a build that fails leaves nothing
behind and changes nothing readers see, and rebuilding a version replaces only
that version's table. A KPI version stays bound to the GDP build it was first
computed from (``builds.py`` records it): values computed from another GDP version
are another KPI version. Readers see a version once it is activated
(``activation.py``); ``signals`` judges a run against a baseline (``signals.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from functools import partial

from sqlglot import exp

from keel.contracts.kpi_sql import KpiPlan
from keel.contracts.mapping import MappingPlan
from keel.contracts.model import Contract, Dataset, Layer
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.pipeline import increments
from keel.pipeline.activation import activate, active, previous, rollback
from keel.pipeline.builds import build_of, builds, record
from keel.pipeline.checks import constraint_checks, counts, quality_query
from keel.pipeline.conform import TYPE_ERROR, conform
from keel.pipeline.engine import Engine
from keel.pipeline.errors import EngineError, MaterializationFailed
from keel.pipeline.model import RunResult
from keel.pipeline.naming import canonical_version, safe_name, versioned
from keel.pipeline.signals import signals
from keel.pipeline.statements import (
    count_rows,
    create_schema,
    create_table_as,
    drop_table,
    ordered,
    render,
    retarget,
    scratch_table,
    table,
)

__all__ = [
    "activate",
    "active",
    "builds",
    "kpi_values",
    "materialize_gdp",
    "materialize_kpi",
    "previous",
    "rollback",
    "signals",
]

Counts = tuple[int, int, int, dict[str, int]]  # rows, error rows, dq failures, per check


def materialize_gdp(
    engine: Engine, contract: Contract, dataset: Dataset, plan: MappingPlan, rules: Sequence = ()
) -> RunResult:
    """Build ``gdp."<table>__v<version>"`` from the mapping, typed as the dataset declares, and
    count its type errors and constraint failures in the same transaction.

    ``rules`` (``keel.quality.model.Rule``, enabled, of this dataset) are checked in the same
    transaction by one query: a failing ``block`` rule raises ``RuleBlocked`` (nothing is built),
    rows failing a ``quarantine`` rule move to ``gdp."<table>__v<version>__quarantine"``, ``alert``
    rules are only counted; the counts per rule come back in ``RunResult.rule_results``."""
    if contract.layer is not Layer.GDP or contract.dataset(dataset.name) is None:
        raise InvalidInput("dataset", f"'{dataset.name}' is not a dataset of GDP contract {contract.key}")
    name = safe_name(dataset.name, "dataset")
    if plan.target.lower() != f"gdp.{name}" or plan.expression is None:
        raise InvalidInput("plan", f"the plan builds {plan.target}, not gdp.{name}")
    target = table("gdp", versioned(name, contract.version))
    checks = constraint_checks(dataset)
    rules = tuple(rules)
    fields = {f.name for f in dataset.fields}
    for rule in rules:
        if rule.field not in fields:
            raise InvalidInput(
                "rules", f"rule {rule.key} checks '{rule.field}', not a field of {dataset.name}"
            )
    outcome: dict[str, dict] = {}

    def build() -> Counts:
        sql = partial(render, dialect=engine.dialect)
        engine.execute(sql(create_schema("gdp")))
        found = {column.lower(): kind for column, kind in engine.describe(sql(plan.expression))}
        engine.execute(sql(create_table_as(target, conform(plan.expression, dataset, found, engine.dialect))))
        apply_rules(engine, target, rules, outcome)
        (row,) = engine.dicts(sql(quality_query(target, checks, TYPE_ERROR)))
        # The Raw batches this build holds, read in its snapshot: what a later refresh adds to.
        increments.record(
            engine, name, canonical_version(contract.version), increments.rules_fingerprint(rules, engine),
            increments.raw_batches(engine, plan.tables),
        )  # fmt: skip
        return counts(row, checks)

    result = _run(engine, contract, "gdp", name, target.name, plan.tables, build, dict(plan.lineage))
    return dataclasses.replace(result, rule_results=outcome) if outcome else result


def apply_rules(engine: Engine, target: exp.Table, rules: Sequence, outcome: dict[str, dict]) -> None:
    """Count every rule's failures on the built ``target`` in one scan, into ``outcome``; a failing
    ``block`` rule raises ``RuleBlocked`` (the caller's transaction then rolls back), rows failing a
    ``quarantine`` rule move aside to ``<target>__quarantine`` (dropped when no rule quarantines).

    Row-level rules count failing rows; table-level ones (freshness, row_count, volume_change)
    fail (1) or pass (0) the table, judged on the rows the build publishes, ``volume_change``
    against what the previous successful build of the table published (the build catalog)."""
    from keel.quality.compile import kept, quarantined
    from keel.quality.errors import missing_reference

    sql = partial(render, dialect=engine.dialect)
    layer = target.db
    quarantine = table(layer, f"{target.name}__quarantine")
    if not rules:
        engine.execute(sql(drop_table(quarantine)))
        return
    columns = [c for c, _ in engine.columns(layer, target.name)]
    for rule in rules:
        if rule.field not in columns:  # a KPI's columns are known once it is built
            raise InvalidInput(
                "rules", f"rule {rule.key} checks '{rule.field}', not a column of {layer}.{target.name}"
            )
        if rule.check == "referential_integrity":  # a missing table or field: say so, not a SQL error
            ref, key = rule.params["dataset"], rule.params["field"]
            if not engine.table_exists("gdp", ref):
                raise missing_reference(rule, f"gdp.{ref} has no active build")
            if key not in {c for c, _ in engine.columns("gdp", ref)}:
                raise missing_reference(rule, f"gdp.{ref} has no field {key}")
    failed = judge(engine, target, rules, outcome)
    if any(r.on_fail == "quarantine" for r in rules):
        engine.execute(sql(create_table_as(quarantine, quarantined(target, columns, rules, with_hash=True))))
        if any(r.on_fail == "quarantine" and failed[r.rule_id] for r in rules):
            engine.execute(sql(create_table_as(target, kept(target, columns, rules))))
            honour_releases(engine, target, quarantine, columns, outcome, rules)
    else:
        engine.execute(sql(drop_table(quarantine)))


def honour_releases(
    engine: Engine,
    target: exp.Table,
    quarantine: exp.Table,
    columns: Sequence[str],
    outcome: dict,
    rules: Sequence = (),
) -> None:
    """Keep the release decisions reviewers took (``keel.quality.service.release``) across builds:
    a row the build quarantines again, unchanged (same ``row_hash``) and by the same rule, goes
    back into the table as it was released: unchanged (a false positive) or as its fixed row, if
    that still passes the blocking and quarantining ``rules`` (which may have changed since). The
    rule still counts it as failed; ``waived`` in its outcome counts the rows let through."""
    from keel.quality.compile import HASH_COLUMN, RULE_COLUMN, violation

    releases = table(target.db, f"{target.name}__releases")
    if not engine.table_exists(target.db, releases.name):
        return
    sql = partial(render, dialect=engine.dialect)
    hashed, rule = exp.column(HASH_COLUMN, quoted=True), exp.column(RULE_COLUMN, quoted=True)
    fixed = exp.column("_keel_fixed", quoted=True)
    pair = exp.Tuple(expressions=[hashed.copy(), rule.copy()])
    checked = [
        r for r in rules if r.on_fail in ("block", "quarantine") and not r.table_level and r.check != "unique"
    ]
    still_sound = exp.not_(exp.or_(*(violation(r) for r in checked))) if checked else exp.true()
    # The decisions to honour: every false positive, and each fix whose row passes today's rules.
    decided = (
        exp.select(hashed.copy(), rule.copy(), fixed.copy())
        .from_(releases)
        .where(exp.or_(exp.not_(fixed.copy()), still_sound))
    )
    honoured = scratch_table(f"{target.name}__honoured")
    held = exp.select(hashed.copy(), rule.copy()).from_(quarantine.copy())
    engine.execute(
        sql(create_table_as(honoured, decided.where(exp.In(this=pair.copy(), query=exp.Subquery(this=held)))))
    )

    def among(where: exp.Expr) -> exp.Expr:
        chosen = exp.select(hashed.copy(), rule.copy()).from_(honoured.copy()).where(where)
        return exp.In(this=pair.copy(), query=exp.Subquery(this=chosen))

    waived = engine.rows(
        sql(
            exp.select(rule.copy(), exp.Count(this=exp.Star()))
            .from_(quarantine)
            .where(among(exp.true()))
            .group_by(rule.copy())
        )
    )
    if waived:
        names = [exp.to_identifier(c, quoted=True) for c in columns]
        data = [exp.column(c, quoted=True) for c in columns]
        as_built = exp.select(*data).from_(quarantine).where(among(exp.not_(fixed.copy())))
        engine.execute(sql(exp.insert(as_built, target.copy(), columns=names)))
        as_fixed = (
            exp.select(*(c.copy() for c in data)).from_(releases).where(fixed.copy(), among(fixed.copy()))
        )
        engine.execute(sql(exp.insert(as_fixed, target.copy(), columns=[n.copy() for n in names])))
        engine.execute(sql(exp.delete(quarantine.copy(), where=among(exp.true()))))
    engine.execute(sql(drop_table(honoured)))
    for rule_id, count in waived:
        if rule_id in outcome:
            outcome[rule_id]["waived"] = int(count)


def judge(
    engine: Engine,
    target: exp.Table,
    rules: Sequence,
    outcome: dict[str, dict],
    *,
    added_to: exp.Table | None = None,
) -> dict[str, int]:
    """Count ``rules``' failures on ``target`` in one scan into ``outcome`` (by rule id) and return
    the failures per rule id; a failing ``block`` rule raises ``RuleBlocked``. Table-level rules
    are judged on the rows no quarantine rule takes out, ``volume_change`` against the previous
    successful build of the table (``<name>__v<version>``: the build catalog's last of ``name``).

    ``added_to``: ``target`` holds rows being added to that table (an incremental run), which a
    counted ``unique`` value must not repeat either, and which a block is reported against."""
    from keel.quality.compile import counts_query, failures, observations
    from keel.quality.errors import RuleBlocked

    layer = target.db
    previous_rows = None
    if any(r.check == "volume_change" for r in rules):
        earlier = builds(engine, layer, target.name.rpartition("__v")[0])
        previous_rows = int(earlier[-1]["rows"]) if earlier else None
    query = counts_query(target, rules, previous_rows=previous_rows, keys_from=added_to)
    (row,) = engine.dicts(render(query, engine.dialect))
    checked, failed = failures(row, rules)
    observed = observations(row, rules)
    for rule in rules:
        failing = failed[rule.rule_id]
        result = {"version": rule.version, "on_fail": rule.on_fail}
        if rule.table_level:  # the table fails (1) or passes (0)
            result |= {"level": "table", "checked": 1, "failed": failing, "passed": 1 - failing}
            result["observed"] = observed[rule.rule_id]
            if rule.check == "volume_change":
                result["previous_rows"] = previous_rows
        else:
            result |= {"checked": checked, "failed": failing, "passed": checked - failing}
        outcome[rule.rule_id] = result
    blocked = [r for r in rules if r.on_fail == "block" and failed[r.rule_id]]
    if blocked:
        subject = added_to if added_to is not None else target
        raise RuleBlocked(f"{subject.db}.{subject.name}", blocked, outcome)
    return failed


def materialize_kpi(
    engine: Engine, contract: Contract, plan: KpiPlan, gdp_table_version: str, rules: Sequence = ()
) -> RunResult:
    """Build ``kpi."<kpi>__v<version>"`` (period, dimensions, value) from the KPI query run
    against the given built version of its GDP table, not whichever one is active.

    ``rules`` (enabled, layer ``kpi``, of this KPI) are checked on the computed rows as
    ``materialize_gdp`` checks a GDP table's (``apply_rules``): a failing ``block`` rule builds
    nothing, rows failing a ``quarantine`` rule are withheld from the KPI in its quarantine."""
    if contract.layer is not Layer.KPI or plan.expression is None:
        raise InvalidInput("plan", f"{contract.key} is not a checked KPI contract")
    schema, _, entity = plan.table.rpartition(".")
    if schema != "gdp":
        raise InvalidInput("plan", f"the KPI reads {plan.table}, not a GDP table")
    name = safe_name(contract.id, "contract")
    source = table("gdp", versioned(entity, gdp_table_version))
    target = table("kpi", versioned(name, contract.version))
    inputs = (f"gdp.{source.name}",)
    rules = tuple(rules)
    outcome: dict[str, dict] = {}

    def build() -> Counts:
        if not engine.table_exists("gdp", source.name):
            raise NotFound("materialization", f"gdp.{source.name}")
        earlier = build_of(engine, "kpi", name, canonical_version(contract.version))
        if earlier is not None and earlier["inputs"] != inputs:
            # Rebuilding would change the values of a KPI version in place (and behind an active
            # view): what it is computed from is part of what the version means.
            raise Conflict(
                f"kpi.{target.name} was built from {', '.join(earlier['inputs'])}; a KPI computed "
                f"from {inputs[0]} needs a new KPI contract version",
                table=f"kpi.{target.name}",
                built_from=list(earlier["inputs"]),
            )
        sql = partial(render, dialect=engine.dialect)
        engine.execute(sql(create_schema("kpi")))
        engine.execute(sql(create_table_as(target, retarget(plan.expression, plan.table, source))))
        apply_rules(engine, target, rules, outcome)
        (row,) = engine.rows(sql(count_rows(target)))
        return int(row[0]), 0, 0, {}

    result = _run(engine, contract, "kpi", name, target.name, inputs, build, kpi_lineage(plan))
    return dataclasses.replace(result, rule_results=outcome) if outcome else result


def kpi_lineage(plan: KpiPlan) -> dict[str, tuple[tuple[str, str], ...]]:
    """A KPI's one output, ``value``, and the GDP columns it is computed from."""
    return {"value": tuple(plan.lineage)} if plan.lineage else {}


def kpi_values(engine: Engine, kpi_id: str, version: str | None = None) -> list[dict]:
    """A KPI's rows (the active version's by default), ordered by period, dimensions, value.

    Read in one transaction, so the pointer and the rows come from the same snapshot."""
    name = safe_name(kpi_id, "kpi_id")
    with engine.transaction():
        if version is None:
            if active(engine, "kpi", name) is None:
                raise NotFound("active KPI", name)
            relation = name
        else:
            relation = versioned(name, version)
            if not engine.table_exists("kpi", relation):
                raise NotFound("materialization", f"kpi.{relation}")
        columns = [column for column, _ in engine.columns("kpi", relation)]
        keys = [c for c in columns if c != "value"] + (["value"] if "value" in columns else [])
        return engine.dicts(render(ordered(table("kpi", relation), columns, keys), engine.dialect))


def _run(
    engine: Engine,
    contract: Contract,
    layer: str,
    name: str,
    built: str,
    inputs: tuple[str, ...],
    build: Callable[[], Counts],
    lineage: dict | None = None,
) -> RunResult:
    """Run ``build`` and record it in one transaction, timed; an engine error becomes
    ``MaterializationFailed`` (other errors, such as ``NotFound``, pass as they are)."""
    started, clock = utcnow(), time.perf_counter()
    report = {
        "layer": layer,
        "name": name,
        "version": canonical_version(contract.version),
        "table": f"{layer}.{built}",
        "contract": contract.key,
        "inputs": tuple(inputs),
        "started_at": started,
        "lineage": lineage or {},
    }
    try:
        with engine.transaction():
            rows, error_rows, failing, per_check = build()
            record(engine, layer, name, report["version"], built, contract.key, inputs, rows)
    except EngineError as exc:
        failed = RunResult(
            **report, rows=0, error_rows=0, dq_failures=0, finished_at=utcnow(),
            duration_seconds=time.perf_counter() - clock, error=exc.detail,
        )  # fmt: skip
        raise MaterializationFailed(failed, cause=exc.fields.get("cause", type(exc).__name__)) from exc
    return RunResult(
        **report, rows=rows, error_rows=error_rows, dq_failures=failing, finished_at=utcnow(),
        duration_seconds=time.perf_counter() - clock, dq_checks=per_check,
    )  # fmt: skip
