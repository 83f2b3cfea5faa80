"""The rule registry, its conflict checks, build outcomes and the quarantine review (04).

Schema Stewards define rules (``rule:Define``); each change of a rule is a new version
(``rule.versioned``) and starts disabled. A Platform Admin enables the newest version
(``rule:Enable``), refused with a ``Conflict`` naming both rules when it contradicts an
enabled rule on the same dataset field (``rule.conflict`` is recorded either way).
Builds apply a tenant's enabled rules (global ones and its own) through
``keel.pipeline.materialize_gdp``; ``record_outcomes`` then records ``rule.applied``,
the rates and an incident with ``alert.fired`` for failing quarantine and alert rules.
A tenant's Data Engineer reviews quarantined rows (``data:Read``) and releases them,
fixed or as false positives (``quarantine:Release``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlglot import exp

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.quality.compile import HASH_COLUMN, QID_COLUMN, REASON_COLUMN, ROWS, RULE_COLUMN, still_failing
from keel.quality.model import LAYERS, Rule, of_row, parse_predicate, validate
from keel.store.tables import dq_reviews, dq_rules

log = logging.getLogger(__name__)
READ, DEFINE, ENABLE, RELEASE = "rule:Read", "rule:Define", "rule:Enable", "quarantine:Release"
# Over-blocking: when more than ``settings.dq_over_blocking_rate`` of a rule's reviewed quarantined
# rows (at least ``dq_over_blocking_min_rows`` of them) were false positives, the rule goes to review.
OVER_BLOCKING, COVERAGE_GAP = "dq_over_blocking", "dq_coverage_gap"  # review ticket kinds
_KEEL_COLUMNS = (RULE_COLUMN, REASON_COLUMN, QID_COLUMN)
KEEL_COLUMNS = "_keel_"  # the prefix of Keel's own columns, which a fix may not change
RAW_TABLE = re.compile(r"[a-z0-9]+(?:__?[a-z0-9]+)*")
BATCH_COLUMN = "_keel_batch_id"  # a Raw row's batch (keel.ingestion.staging.META)


# Registry -------------------------------------------------------------------------------------
def define(keel, actor: Actor, spec: Mapping[str, Any]) -> dict:
    """A new rule, or a new version of an existing one (which starts disabled)."""
    rule = validate(
        **{k: spec.get(k) for k in ("rule_id", "layer", "dataset", "field", "check", "on_fail")},
        params=spec.get("params"),
        tenant_id=spec.get("tenant_id"),
    )
    with keel.uow() as uow:
        keel.authorize(uow, actor, DEFINE, Resource("dq_rule", rule.rule_id, tenant=rule.tenant_id or ""))
        current = _current(uow.conn, rule.rule_id, lock=True)
        version = 1
        if current is not None:
            if current.tenant_id != rule.tenant_id:
                raise Conflict(f"rule {rule.rule_id} exists with another scope", rule_id=rule.rule_id)
            version = current.version + 1
            uow.conn.execute(
                dq_rules.update()
                .where(dq_rules.c.rule_id == rule.rule_id, dq_rules.c.current.is_(True))
                .values(current=False, enabled=False)
            )
        uow.conn.execute(
            dq_rules.insert().values(
                rule_id=rule.rule_id,
                version=version,
                tenant_id=rule.tenant_id,
                layer=rule.layer,
                dataset=rule.dataset,
                field=rule.field,
                check=rule.check,
                params=dict(rule.params),
                on_fail=rule.on_fail,
                enabled=False,
                current=True,
                defined_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "rule.versioned",
            actor_id=actor.user_id,
            tenant_id=rule.tenant_id,
            rule_id=rule.rule_id,
            version=version,
            layer=rule.layer,
            dataset=rule.dataset,
            field=rule.field,
            check=rule.check,
            on_fail=rule.on_fail,
        )
        uow.commit()
        return view(_current(uow.conn, rule.rule_id))


def list_rules(
    keel,
    actor: Actor,
    *,
    tenant_id: str | None = None,
    dataset: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """The newest version of each rule by id: global ones and the tenant's (a tenant user's own)."""
    scope = tenant_id or actor.tenant_id  # another tenant's is refused by the tenant guard
    with keel.uow() as uow:
        keel.authorize(uow, actor, READ, Resource("dq_rule", "*", tenant=scope or ""))
        query = sa.select(dq_rules).where(dq_rules.c.current.is_(True))
        if scope:
            query = query.where(sa.or_(dq_rules.c.tenant_id.is_(None), dq_rules.c.tenant_id == scope))
        if dataset:
            query = query.where(dq_rules.c.dataset == dataset)
        if after:
            query = query.where(dq_rules.c.rule_id > after)
        rows = uow.conn.execute(query.order_by(dq_rules.c.rule_id).limit(limit))
        return [view(r) for r in rows]


def enable(keel, actor: Actor, rule_id: str) -> dict:
    """Enforce the newest version of a rule, unless it contradicts an enabled rule."""
    with keel.uow() as uow:
        row = _visible(uow.conn, rule_id, actor, lock=True)
        keel.authorize(uow, actor, ENABLE, Resource("dq_rule", row.rule_id, tenant=row.tenant_id or ""))
        rule = of_row(row)
        if row.enabled:
            return view(row)
        for other in _enabled_on(uow.conn, rule):
            reason = conflict(rule, other)
            if reason:
                clash = Conflict(
                    f"rule {rule.key} conflicts with enabled rule {other.key}: {reason}",
                    rule_id=rule.rule_id,
                    conflicts_with=other.rule_id,
                )
                break
        else:
            clash = None
        if clash is None:
            uow.conn.execute(
                dq_rules.update()
                .where(dq_rules.c.rule_id == rule.rule_id, dq_rules.c.version == rule.version)
                .values(enabled=True, enabled_by=actor.user_id, enabled_at=utcnow())
            )
            uow.record(
                "rule.enabled",
                actor_id=actor.user_id,
                tenant_id=rule.tenant_id,
                rule_id=rule.rule_id,
                version=rule.version,
            )
            uow.commit()
            return view(_current(uow.conn, rule.rule_id))
    log.warning("data-quality rule conflict: %s", clash.detail)
    with keel.uow() as uow:
        uow.record(
            "rule.conflict",
            actor_id=actor.user_id,
            tenant_id=rule.tenant_id,
            rule_id=rule.rule_id,
            version=rule.version,
            conflicts_with=clash.fields["conflicts_with"],
        )
        uow.commit()
    raise clash


def enabled_rules(conn, tenant_id: str, layer: str = "gdp") -> list[Rule]:
    """The rules a tenant's builds apply: enabled, global or its own, by rule id."""
    rows = conn.execute(
        sa.select(dq_rules)
        .where(
            dq_rules.c.enabled.is_(True),
            dq_rules.c.layer == layer,
            sa.or_(dq_rules.c.tenant_id.is_(None), dq_rules.c.tenant_id == tenant_id),
        )
        .order_by(dq_rules.c.rule_id)
    )
    return [of_row(r) for r in rows]


def conflict(a: Rule, b: Rule) -> str | None:
    """Why ``a`` and ``b`` (same dataset; same field unless both are table-level) cannot both
    hold, or None."""
    if a.dataset != b.dataset:
        return None
    kinds = {a.check, b.check}
    if kinds == {"row_count"}:  # table-level: the field does not matter
        low = max((r.params.get("min") for r in (a, b) if r.params.get("min") is not None), default=None)
        high = min((r.params.get("max") for r in (a, b) if r.params.get("max") is not None), default=None)
        if low is not None and high is not None and low > high:
            return f"no row count is both at least {low} and at most {high}"
        return None
    if a.field != b.field:
        return None
    if kinds == {"accepted_values"}:
        if not set(map(str, a.params["values"])) & set(map(str, b.params["values"])):
            return "their accepted values do not intersect"
    elif kinds == {"range"}:
        low = max((r.params.get("min") for r in (a, b) if r.params.get("min") is not None), default=None)
        high = min((r.params.get("max") for r in (a, b) if r.params.get("max") is not None), default=None)
        if low is not None and high is not None and low > high:
            return "their ranges do not overlap"
    elif kinds == {"range", "accepted_values"}:
        ranged, listed = (a, b) if a.check == "range" else (b, a)
        low, high = ranged.params.get("min"), ranged.params.get("max")
        numbers = [v for v in listed.params["values"] if isinstance(v, int | float)]
        if (
            numbers
            and len(numbers) == len(listed.params["values"])
            and not any((low is None or v >= low) and (high is None or v <= high) for v in numbers)
        ):
            return "no accepted value lies in the range"
    elif kinds == {"not_null", "custom_sql"}:
        custom = a if a.check == "custom_sql" else b
        tree = parse_predicate(custom.params["predicate"])
        if (
            isinstance(tree, exp.Is)
            and isinstance(tree.this, exp.Column)
            and tree.this.name.lower() == a.field
            and isinstance(tree.expression, exp.Null)
        ):
            return f"one requires {a.field} to be set, the other to be NULL"
    return None


def _enabled_on(conn, rule: Rule) -> list[Rule]:
    query = sa.select(dq_rules).where(
        dq_rules.c.enabled.is_(True),
        dq_rules.c.layer == rule.layer,
        dq_rules.c.dataset == rule.dataset,
        dq_rules.c.rule_id != rule.rule_id,
    )
    if not rule.table_level:  # a table-level rule meets the dataset's table-level rules on any field
        query = query.where(dq_rules.c.field == rule.field)
    if rule.tenant_id is not None:  # a tenant's rule meets global ones and its own
        query = query.where(sa.or_(dq_rules.c.tenant_id.is_(None), dq_rules.c.tenant_id == rule.tenant_id))
    return [of_row(r) for r in conn.execute(query.order_by(dq_rules.c.rule_id))]


def _current(conn, rule_id: str, *, lock: bool = False):
    query = sa.select(dq_rules).where(dq_rules.c.rule_id == rule_id, dq_rules.c.current.is_(True))
    return conn.execute(query.with_for_update() if lock else query).first()


def _visible(conn, rule_id: str, actor: Actor, *, lock: bool = False):
    row = _current(conn, rule_id.upper(), lock=lock)
    if row is None or (actor.tenant_id and row.tenant_id not in (None, actor.tenant_id)):
        raise NotFound("quality rule", rule_id)
    return row


def view(row) -> dict:
    return {
        "rule_id": row.rule_id,
        "version": row.version,
        "tenant_id": row.tenant_id,
        "layer": row.layer,
        "dataset": row.dataset,
        "field": row.field,
        "check": row.check,
        "params": dict(row.params or {}),
        "on_fail": row.on_fail,
        "enabled": bool(row.enabled),
        "defined_by": row.defined_by,
        "enabled_by": row.enabled_by,
        "created_at": as_utc(row.created_at).isoformat(),
    }


# Build outcomes -------------------------------------------------------------------------------
def record_outcomes(uow, actor: Actor, tenant_id: str, runs: Iterable, *, blocked: str | None = None) -> None:
    """``rule.applied`` per rule and run, the pass/block rates, and for failing quarantine or alert
    rules one incident (with ``alert.fired``) per table."""
    runs = list(runs)
    for run in runs:
        results = getattr(run, "rule_results", None) or {}
        _record(uow, actor, tenant_id, run.table, results, blocked=blocked)
    coverage_gaps(uow, actor, tenant_id, runs)


def coverage_gaps(uow, actor: Actor, tenant_id: str, runs: Iterable) -> list[str]:
    """Story 04 "gap → ticket": for each GDP table built, the fields its contract marks required
    that no enabled rule of the tenant checks open (or keep) a ``dq_coverage_gap`` review ticket;
    the ids of the tickets opened."""
    from keel.contracts import records
    from keel.contracts.tickets import open_ticket
    from keel.pipeline.naming import safe_name

    gdp = [r for r in runs if r.layer == "gdp" and not r.error]
    if not gdp:
        return []
    rules = enabled_rules(uow.conn, tenant_id)
    opened = []
    for run in gdp:
        contract_id, _, version = run.contract.partition("@")
        try:
            contract = records.contract_of(records.load(uow.conn, contract_id, version))
        except NotFound:  # not a registry contract (a build driven from a file): nothing to compare
            continue
        dataset = next((d for d in contract.datasets if safe_name(d.name, "dataset") == run.name), None)
        if dataset is None:
            continue
        covered = {r.field for r in rules if r.dataset == run.name and not r.table_level}
        missing = sorted(f.name for f in dataset.fields if f.required and f.name not in covered)
        if not missing:
            continue
        ticket_id, new = open_ticket(
            uow,
            actor,
            kind=COVERAGE_GAP,
            subject=f"gdp.{run.name}",
            tenant_id=tenant_id,
            details={"contract": run.contract, "dataset": run.name, "fields_without_rules": missing},
            same_findings=True,
        )
        if new:
            log.warning("required fields of gdp.%s have no data-quality rule: %s", run.name, missing)
            opened.append(ticket_id)
    return opened


def _record(uow, actor, tenant_id, table: str, results: Mapping, *, blocked: str | None = None) -> None:
    alerting = {}
    for rule_id, result in results.items():
        failed = int(result["failed"])
        stopped = blocked is not None and result["on_fail"] == "block" and failed > 0
        uow.record(
            "rule.applied",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            rule_id=rule_id,
            version=result["version"],
            table=table,
            on_fail=result["on_fail"],
            checked=result["checked"],
            passed=result["passed"],
            failed=failed,
            blocked=stopped,
            **{k: result[k] for k in ("level", "observed", "previous_rows", "waived") if k in result},
        )
        metrics.outcome(uow.conn, "rule_pass_rate", failed == 0, tenant_id)
        metrics.outcome(uow.conn, "rule_block_rate", stopped, tenant_id)
        if stopped:
            uow.record(
                "policy.enforced",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                rule_id=rule_id,
                table=table,
                enforcement="block",
            )
        elif failed > int(result.get("waived", 0)) and result["on_fail"] in ("quarantine", "alert"):
            # rows reviewers already released (``waived``) are known, not news: no alert for them
            alerting[rule_id] = {"on_fail": result["on_fail"], "failed": failed}
    if alerting or blocked:
        rules = alerting or {k: v for k, v in results.items() if v["on_fail"] == "block" and v["failed"]}
        open_incident(
            uow,
            actor,
            kind="data_quality",
            severity="SEV2" if blocked else "SEV3",
            tenant_id=tenant_id,
            summary=f"data-quality rules failed on {table}: {', '.join(sorted(rules))}"
            + (" (build blocked)" if blocked else ""),
            details={"table": table, "rules": {k: dict(v) for k, v in rules.items()}},
        )


def record_ingested(uow, actor: Actor, tenant_id: str, table: str, result) -> None:
    """``rule.applied`` and the rest for a Raw ingestion run's rules (``SyncResult``): the batch a
    ``block`` rule stopped is recorded as blocked, the batches before it as applied."""
    if result.rule_results:
        _record(uow, actor, tenant_id, table, result.rule_results)
    if result.rule_blocked:
        _record(uow, actor, tenant_id, table, result.rule_blocked, blocked=table)


def record_blocked(keel, actor: Actor, tenant_id: str, error) -> None:
    """Record a build a ``block`` rule stopped, in a unit of work of its own."""
    with keel.uow() as uow:
        _record(uow, actor, tenant_id, error.table, error.outcome, blocked=error.table)
        uow.commit()


# Quarantine review ----------------------------------------------------------------------------
def _layer(layer: str) -> str:
    if layer not in LAYERS:
        raise InvalidInput("layer", f"must be one of {', '.join(LAYERS)}")
    return layer


def _quarantine(keel, tenant_id: str, dataset: str, layer: str = "gdp"):
    """(engine, the table, its quarantine): the active GDP build's or KPI version's, or an ingested
    Raw table's."""
    from keel.pipeline import DuckDBEngine, active
    from keel.pipeline.naming import safe_name, versioned
    from keel.pipeline.statements import table
    from keel.quality.ingest import SUFFIX

    engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
    if _layer(layer) == "raw":  # a Raw table is named <source_key>__<stream>
        name = str(dataset)
        if not RAW_TABLE.fullmatch(name):
            raise InvalidInput("dataset", f"'{dataset}' is not a Raw table name (<source_key>__<stream>)")
        if not engine.table_exists("raw", name):
            raise NotFound("Raw table", name)
        return engine, table("raw", name), table("raw", f"{name}__{SUFFIX}")
    name = safe_name(dataset, "dataset")
    version = active(engine, layer, name)
    if version is None:
        raise NotFound("active GDP table" if layer == "gdp" else "active KPI", name)
    built = versioned(name, version)
    return engine, table(layer, built), table(layer, f"{built}__quarantine")


def list_quarantine(
    keel,
    actor: Actor,
    tenant_id: str,
    dataset: str,
    *,
    layer: str = "gdp",
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """Quarantined rows of the tenant's active build of ``dataset`` (``layer`` gdp) or of its Raw
    table ``dataset`` (``layer`` raw, rows a Raw rule held back at ingestion), by quarantine id."""
    from keel.pipeline.statements import render

    with keel.uow() as uow:
        keel.authorize(uow, actor, "data:Read", Resource("dataset", dataset, tenant=tenant_id))
    engine, _, quarantine = _quarantine(keel, tenant_id, dataset, layer)
    with engine.transaction():
        if not engine.table_exists(layer, quarantine.name):
            return []
        qid = exp.column(QID_COLUMN, quoted=True)
        query = exp.select("*").from_(quarantine).order_by(qid).limit(limit)
        if after:
            query = query.where(qid > exp.Literal.string(after))
        rows = engine.dicts(render(query, engine.dialect))
    for row in rows:
        row.pop(HASH_COLUMN, None)  # Keel's fingerprint of the row, not part of it
    return [
        {
            "quarantine_id": r.pop(QID_COLUMN),
            "rule_id": r.pop(RULE_COLUMN),
            "reason": r.pop(REASON_COLUMN),
            "row": {
                k: (v if v is None or isinstance(v, int | float | str | bool) else str(v))
                for k, v in r.items()
            },
        }
        for r in rows
    ]


def release(
    keel,
    actor: Actor,
    tenant_id: str,
    dataset: str,
    *,
    quarantine_ids: list[str],
    fixes: Mapping[str, Mapping[str, Any]] | None = None,
    false_positive: bool = False,
    layer: str = "gdp",
) -> dict:
    """Move quarantined rows back into the table: fixed (``fixes``: id -> field -> value; the rows
    must then pass the blocking and quarantining rules) or as false positives (unchanged).

    Rows released into a Raw table land as a batch of their own (kind ``release`` in
    ``raw._keel_batches``), so the next incremental GDP refresh folds them in like any new batch;
    the stream's checkpoint does not move."""
    from keel.pipeline.statements import render

    ids = sorted(set(quarantine_ids or ()))
    if not ids or len(ids) > 1000:
        raise InvalidInput("quarantine_ids", "name 1-1000 quarantined rows")
    fixes = dict(fixes or {})
    if false_positive and fixes:
        raise InvalidInput("fixes", "a false positive is released unchanged")
    if _layer(layer) == "kpi" and not false_positive:
        # A KPI value is computed: it is corrected by fixing its GDP rows and rebuilding, never edited.
        raise InvalidInput(
            "false_positive", "quarantined KPI rows are released only as false positives (unchanged)"
        )
    if set(fixes) - set(ids):
        raise InvalidInput("fixes", "fixes name rows not being released")
    with keel.uow() as uow:
        keel.authorize(uow, actor, RELEASE, Resource("dataset", dataset, tenant=tenant_id))
        rules = [r for r in enabled_rules(uow.conn, tenant_id, _layer(layer)) if r.dataset == dataset]
    engine, target, quarantine = _quarantine(keel, tenant_id, dataset, layer)
    sql = lambda tree: render(tree, engine.dialect)  # noqa: E731
    qid = exp.column(QID_COLUMN, quoted=True)
    chosen = qid.isin(*(exp.Literal.string(i) for i in ids))
    with engine.transaction():
        if not engine.table_exists(layer, quarantine.name):
            raise NotFound("quarantined rows of", dataset)
        columns = [c for c, _ in engine.columns(layer, target.name)]
        (found,) = engine.rows(sql(exp.select(exp.Count(this=exp.Star())).from_(quarantine).where(chosen)))
        if found[0] != len(ids):
            raise NotFound("quarantined rows", ", ".join(ids))
        for row_id, values in fixes.items():
            unknown = set(values) - set(columns)
            if unknown or not values:
                raise InvalidInput(
                    "fixes", f"fields not in {dataset}: {', '.join(sorted(unknown)) or '(none)'}"
                )
            own = sorted(f for f in values if f.startswith(KEEL_COLUMNS))
            if own:
                raise InvalidInput("fixes", f"Keel's own columns cannot be fixed: {', '.join(own)}")
            engine.execute(
                sql(
                    exp.update(
                        quarantine,
                        {
                            f: exp.null()
                            if v is None
                            else (exp.Literal.string(v) if isinstance(v, str) else exp.Literal.number(v))
                            for f, v in values.items()
                        },
                        where=qid.eq(exp.Literal.string(row_id)),
                    )
                )
            )
        rule_col = exp.column(RULE_COLUMN, quoted=True)
        by_rule = engine.rows(
            sql(
                exp.select(rule_col, exp.Count(this=exp.Star()))
                .from_(quarantine)
                .where(chosen.copy())
                .group_by(rule_col.copy())
            )
        )
        if not false_positive:
            (left,) = engine.dicts(sql(still_failing(quarantine, rules, chosen.copy())))
            if left[ROWS]:
                raise InvalidInput(
                    "fixes", f"{left[ROWS]} of the rows still fail a blocking or quarantining rule"
                )
        batch_id = _release_batch(engine, target.name, len(ids)) if layer == "raw" else None
        values = [
            exp.alias_(exp.Literal.string(batch_id), c, quoted=True)
            if batch_id and c == BATCH_COLUMN
            else exp.column(c, quoted=True)
            for c in columns
        ]
        insert = exp.insert(
            exp.select(*values).from_(quarantine).where(chosen.copy()),
            target,
            columns=[exp.to_identifier(c, quoted=True) for c in columns],
        )
        engine.execute(sql(insert))
        if layer != "raw":  # a rebuild yields the row again: remember what was decided (``honour_releases``)
            _remember(engine, target, quarantine, columns, chosen, fixed=not false_positive)
        engine.execute(sql(exp.delete(quarantine, where=chosen.copy())))
    with keel.uow() as uow:
        for _ in ids:
            metrics.outcome(uow.conn, "false_positive_rate", false_positive, tenant_id)
        reviews = _review(uow, actor, tenant_id, dataset, dict(by_rule), false_positive, keel.settings)
        uow.record(
            "quarantine.released",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            dataset=dataset,
            layer=layer,
            table=f"{layer}.{target.name}",
            rows=len(ids),
            fixed=len(fixes),
            false_positive=false_positive,
            **({"batch_id": batch_id} if batch_id else {}),
        )
        uow.commit()
    return {
        "dataset": dataset,
        "layer": layer,
        "table": f"{layer}.{target.name}",
        **({"batch_id": batch_id} if batch_id else {}),
        "released": len(ids),
        "fixed": len(fixes),
        "false_positive": false_positive,
        "review_tickets": reviews,
    }


def _remember(engine, target, quarantine, columns: list[str], chosen, *, fixed: bool) -> None:
    """Keep the released rows (as released: fixed or unchanged) with their fingerprint as built in
    ``<table>__releases``, for the next builds of the same version to honour."""
    from keel.pipeline.statements import create_table_as, render, table

    if HASH_COLUMN not in {c for c, _ in engine.columns(target.db, quarantine.name)}:
        return  # quarantined before rows had fingerprints: nothing to match a rebuild's rows by
    releases = table(target.db, f"{target.name}__releases")
    picked = exp.select(
        *(exp.column(c, quoted=True) for c in columns),
        exp.column(RULE_COLUMN, quoted=True),
        exp.column(HASH_COLUMN, quoted=True),
        exp.alias_(exp.true() if fixed else exp.false(), "_keel_fixed", quoted=True),
    ).from_(quarantine)
    if not engine.table_exists(target.db, releases.name):
        engine.execute(render(create_table_as(releases, picked.where(exp.false())), engine.dialect))
    engine.execute(render(exp.insert(picked.where(chosen.copy()), releases), engine.dialect))


def _release_batch(engine, table_name: str, rows: int) -> str:
    """Record a ``release`` batch of ``rows`` for the Raw table (inside the caller's transaction)."""
    found = engine.rows(
        "SELECT source_id, stream FROM raw._keel_tables WHERE table_name = "
        + exp.Literal.string(table_name).sql("duckdb")
    )
    if not found:
        raise NotFound("ingested Raw table", table_name)
    (source_id, stream), batch_id = found[0], new_id("BAT")
    literal = lambda v: exp.Literal.string(v).sql("duckdb")  # noqa: E731
    engine.execute(
        "INSERT INTO raw._keel_batches VALUES "
        f"({literal(batch_id)}, {literal(source_id)}, {literal(stream)}, NULL, 'release', {int(rows)}, 0, "
        "NULL, now())"
    )
    return batch_id


def _review(
    uow,
    actor: Actor,
    tenant_id: str,
    dataset: str,
    by_rule: Mapping[str, int],
    false_positive: bool,
    settings,
):
    """Record the release per quarantining rule; a rule whose reviewed rows are too often false
    positives (story 04 "over-blocking → review") gets a ``dq_over_blocking`` review ticket."""
    from keel.contracts.tickets import open_ticket

    opened = []
    for rule_id, rows in sorted(by_rule.items()):
        uow.conn.execute(
            dq_reviews.insert().values(
                id=new_id("DQR"),
                tenant_id=tenant_id,
                rule_id=rule_id,
                dataset=dataset,
                rows=int(rows),
                false_positive=false_positive,
                released_by=actor.user_id,
                released_at=utcnow(),
            )
        )
        reviewed, wrong = uow.conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(dq_reviews.c.rows), 0),
                sa.func.coalesce(
                    sa.func.sum(sa.case((dq_reviews.c.false_positive.is_(True), dq_reviews.c.rows), else_=0)),
                    0,
                ),
            ).where(dq_reviews.c.tenant_id == tenant_id, dq_reviews.c.rule_id == rule_id)
        ).one()
        rate = int(wrong) / int(reviewed) if reviewed else 0.0
        if int(reviewed) >= settings.dq_over_blocking_min_rows and rate > settings.dq_over_blocking_rate:
            ticket_id, new = open_ticket(
                uow,
                actor,
                kind=OVER_BLOCKING,
                subject=f"dq_rule:{rule_id}",
                tenant_id=tenant_id,
                details={
                    "rule_id": rule_id,
                    "dataset": dataset,
                    "reviewed_rows": int(reviewed),
                    "false_positive_rows": int(wrong),
                    "false_positive_rate": round(rate, 4),
                    "threshold": settings.dq_over_blocking_rate,
                },
            )
            if new:
                log.warning("data-quality rule %s over-blocks: %.0f%% false positives", rule_id, rate * 100)
            opened.append(ticket_id)
    return opened
