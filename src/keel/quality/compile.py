"""A table's enabled rules as set-based SQLGlot queries (pure).

Each row-level rule becomes one boolean flag per row (true: the row breaks it; a NULL
value passes every check but ``not_null``, as SQL ``CHECK`` constraints do). A
``referential_integrity`` flag is one hash anti-join (``NOT IN`` a sub-query of the
referenced keys, which DuckDB runs as a mark join) per rule, never a lookup per row.
Table-level rules (``freshness``, ``row_count``, ``volume_change``) are aggregates of the
same scan: ``counts_query`` computes every rule's failures in one scan, with 1 (the
table fails) or 0 for table-level rules, plus one GROUP BY over its column per ``unique``
rule that only counts (cheaper than a window joined back to every row). ``quarantined``
and ``kept`` split the table on its ``quarantine`` rules. No row ever comes back to Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlglot import exp

from keel.kernel.clock import utcnow
from keel.quality.model import Rule, parse_predicate

ROWS = "rows"
RULE_COLUMN, REASON_COLUMN, QID_COLUMN = "_keel_rule_id", "_keel_reason", "_keel_qid"
# A quarantined row's fingerprint as it was built: a rebuild that yields the same row again finds
# the release decision a reviewer took on it (``keel.pipeline.materialize.honour_releases``).
HASH_COLUMN = "_keel_row_hash"
FLAGS = "flags"
KEPT = "kept_rows"


def reference(rule: Rule) -> exp.Table:
    """The active GDP view a ``referential_integrity`` rule looks its keys up in."""
    return exp.table_(exp.to_identifier(rule.params["dataset"], quoted=True), db="gdp")


def _literal(value) -> exp.Expr:
    return exp.Literal.string(value) if isinstance(value, str) else exp.Literal.number(value)


def violation(rule: Rule, source: exp.Table | None = None, keys_from: exp.Table | None = None) -> exp.Expr:
    """True where a row breaks ``rule`` (never NULL). ``keys_from`` (with ``source``, the rows
    judged): the table they are being added to, where a ``unique`` value also repeats when it is
    already there."""
    column = exp.column(rule.field, quoted=True)
    params = rule.params
    if rule.check == "not_null":
        return column.is_(exp.null())
    if rule.check == "unique" and keys_from is not None and source is not None:
        return exp.and_(_repeats_in(source, rule, keys_from), exp.not_(column.copy().is_(exp.null())))
    if rule.check == "unique":
        repeated = exp.GT(
            this=exp.Window(this=exp.Count(this=exp.Star()), partition_by=[column.copy()]),
            expression=exp.Literal.number(1),
        )
        return exp.and_(repeated, exp.not_(column.copy().is_(exp.null())))
    if rule.check == "accepted_values":
        broken: exp.Expr = exp.not_(column.isin(*(_literal(v) for v in params["values"])))
    elif rule.check == "range":
        parts = []
        if params.get("min") is not None:
            parts.append(exp.LT(this=column.copy(), expression=_literal(params["min"])))
        if params.get("max") is not None:
            parts.append(exp.GT(this=column.copy(), expression=_literal(params["max"])))
        broken = exp.or_(*parts)
    elif rule.check == "regex":
        text = exp.Cast(this=column, to=exp.DataType.build("VARCHAR"))
        broken = exp.not_(exp.RegexpLike(this=text, expression=exp.Literal.string(params["pattern"])))
    elif rule.check == "referential_integrity":  # NULL IN (...) is NULL: a NULL key passes
        key = exp.column(params["field"], quoted=True)
        keys = exp.select(key).from_(reference(rule)).where(exp.not_(key.copy().is_(exp.null())))
        broken = exp.not_(exp.In(this=column, query=exp.Subquery(this=keys)))
    elif rule.check == "custom_sql":  # the predicate must hold
        broken = exp.not_(exp.Paren(this=parse_predicate(params["predicate"])))
    else:
        raise ValueError(f"{rule.check} is a table-level check: it has no per-row flag")
    return exp.Coalesce(this=exp.Paren(this=broken), expressions=[exp.false()])


def _timestamp(value: dt.datetime) -> exp.Expr:
    return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("TIMESTAMPTZ"))


def _table_failure(rule: Rule, kept_rows: exp.Expr, now: dt.datetime, previous_rows: int | None) -> exp.Expr:
    """1 where the table breaks table-level ``rule``, else 0: an aggregate of the counts scan."""
    params = rule.params
    if rule.check == "freshness":
        newest = exp.Max(this=exp.column(rule.field, quoted=True))
        cutoff = _timestamp(now - dt.timedelta(hours=params["max_age_hours"]))
        stale = exp.or_(
            newest.copy().is_(exp.null()),  # no value at all is not fresh
            exp.LT(this=exp.Cast(this=newest, to=exp.DataType.build("TIMESTAMPTZ")), expression=cutoff),
        )
    elif rule.check == "row_count":
        parts = []
        if params.get("min") is not None:
            parts.append(exp.LT(this=kept_rows.copy(), expression=_literal(params["min"])))
        if params.get("max") is not None:
            parts.append(exp.GT(this=kept_rows.copy(), expression=_literal(params["max"])))
        stale = exp.or_(*parts)
    else:  # volume_change, against the previous successful build's rows (none or empty: passes)
        if not previous_rows:
            return exp.Literal.number(0)
        change = exp.Mul(
            this=exp.Abs(this=exp.Sub(this=kept_rows.copy(), expression=_literal(previous_rows))),
            expression=exp.Literal.number(100),
        )
        limit = exp.Mul(this=_literal(params["max_percent"]), expression=_literal(previous_rows))
        stale = exp.GT(this=change, expression=limit)
    return exp.Case(ifs=[exp.If(this=stale, true=exp.Literal.number(1))], default=exp.Literal.number(0))


def _observed(rule: Rule, kept_rows: exp.Expr) -> exp.Expr:
    """What a table-level rule judged: the newest value, or the rows the build publishes."""
    if rule.check == "freshness":
        value = exp.Max(this=exp.column(rule.field, quoted=True))
        return exp.Cast(this=value, to=exp.DataType.build("VARCHAR"))
    return exp.Cast(this=kept_rows.copy(), to=exp.DataType.build("VARCHAR"))


def _flag(i: int) -> exp.Column:
    return exp.column(f"r{i}", quoted=True)


def _flagged(
    source: exp.Table,
    columns: Sequence[str],
    rules: Sequence[Rule],
    skip: Sequence[int] = (),
    keys_from: exp.Table | None = None,
) -> exp.Subquery:
    """``(SELECT columns, <flag of rule i> AS r<i> FROM source) AS flags``: the row-level rules
    but those in ``skip`` (``keys_from``: see ``violation``)."""
    select = exp.select(
        *(exp.column(c, quoted=True) for c in columns),
        *(
            exp.alias_(violation(r, source, keys_from), f"r{i}", quoted=True)
            for i, r in enumerate(rules)
            if not r.table_level and i not in skip
        ),
    ).from_(source)
    return exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(FLAGS, quoted=True)))


def counts_query(
    source: exp.Table,
    rules: Sequence[Rule],
    *,
    now: dt.datetime | None = None,
    previous_rows: int | None = None,
    keys_from: exp.Table | None = None,
) -> exp.Select:
    """One row from one scan of ``source``: ``rows``; ``r<i>``, the rows breaking row-level rule
    i, or 1/0 for a table-level rule; ``o<i>``, what a table-level rule judged; ``kept_rows``, the
    rows no ``quarantine`` rule takes out (what ``row_count`` and ``volume_change`` judge).

    ``now`` dates ``freshness`` (default: the clock); ``previous_rows`` is what the previous
    successful build of the table published (``volume_change``; None: there was none).
    ``keys_from``: the table ``source``'s rows are being added to (an incremental run), where a
    counted ``unique`` value also repeats when it is already there."""
    now = now or utcnow()
    marks = _quarantining(rules)
    table_level = [i for i, r in enumerate(rules) if r.table_level]
    # Only counted, a unique rule is one GROUP BY over its column: no per-row flag joined back
    # to every row (which a window over the scan costs). A quarantining one needs the flag.
    grouped = [i for i, r in enumerate(rules) if r.check == "unique" and r.on_fail != "quarantine"]
    if marks:
        kept_rows: exp.Expr = exp.Count(
            this=exp.Case(
                ifs=[exp.If(this=exp.not_(exp.or_(*(_flag(i) for i in marks))), true=exp.Literal.number(1))]
            )
        )
    else:
        kept_rows = exp.Count(this=exp.Star())
    counted = []
    for i, rule in enumerate(rules):
        if rule.table_level:
            counted.append(
                exp.alias_(_table_failure(rule, kept_rows, now, previous_rows), f"r{i}", quoted=True)
            )
            counted.append(exp.alias_(_observed(rule, kept_rows), f"o{i}", quoted=True))
        elif i in grouped:
            counted.append(exp.alias_(_repeated_rows(source, rule, keys_from), f"r{i}", quoted=True))
        else:
            when = exp.Case(ifs=[exp.If(this=_flag(i), true=exp.Literal.number(1))])
            counted.append(exp.alias_(exp.Count(this=when), f"r{i}", quoted=True))
    flagged = len(table_level) + len(grouped) < len(rules)
    # Table-level aggregates read the fields themselves: pass them through the flags subquery.
    through = sorted({rules[i].field for i in table_level if rules[i].check == "freshness"})
    return exp.select(
        exp.alias_(exp.Count(this=exp.Star()), ROWS, quoted=True),
        exp.alias_(kept_rows.copy(), KEPT, quoted=True),
        *counted,
    ).from_(_flagged(source, through, rules, grouped, keys_from) if flagged else source.copy())


def _repeated_rows(source: exp.Table, rule: Rule, keys_from: exp.Table | None = None) -> exp.Expr:
    """``(SELECT SUM(n) FROM (SELECT COUNT(*) AS n ... GROUP BY field HAVING COUNT(*) > 1))``: the
    rows whose (non-NULL) ``field`` value another row repeats (of ``source``, or of ``keys_from``)."""
    column = exp.column(rule.field, quoted=True)
    if keys_from is not None:
        return _repeated_added_rows(source, rule, keys_from)
    groups = (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True))
        .from_(source.copy())
        .where(exp.not_(column.is_(exp.null())))
        .group_by(column.copy())
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
        .subquery("repeats")
    )
    total = exp.select(
        exp.Coalesce(this=exp.Sum(this=exp.column("n", quoted=True)), expressions=[exp.Literal.number(0)])
    )
    return exp.Subquery(this=total.from_(groups))


def _repeats_in(source: exp.Table, rule: Rule, keys_from: exp.Table) -> exp.Expr:
    """The row's ``field`` value repeats in ``source`` or is in ``keys_from``: a hash of
    ``source``'s (few) values probed by one scan of ``keys_from``'s column, never the other way."""
    column = exp.column(rule.field, quoted=True)
    present = exp.not_(column.copy().is_(exp.null()))
    own = exp.select(column.copy()).from_(source.copy()).where(present)
    twice = (
        own.copy()
        .group_by(column.copy())
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    there = (
        exp.select(column.copy())
        .from_(keys_from.copy())
        .where(exp.In(this=column.copy(), query=exp.Subquery(this=own.copy())))
    )
    return exp.or_(
        exp.In(this=column.copy(), query=exp.Subquery(this=twice)),
        exp.In(this=column.copy(), query=exp.Subquery(this=there)),
    )


def _repeated_added_rows(source: exp.Table, rule: Rule, keys_from: exp.Table) -> exp.Expr:
    """How many rows of ``source`` have a (non-NULL) ``field`` value that repeats in ``source`` or
    is in ``keys_from``."""
    present = exp.not_(exp.column(rule.field, quoted=True).is_(exp.null()))
    counted = (
        exp.select(exp.Count(this=exp.Star()))
        .from_(source.copy())
        .where(present, _repeats_in(source, rule, keys_from))
    )
    return exp.Subquery(this=counted)


def failures(row: Mapping[str, int], rules: Sequence[Rule]) -> tuple[int, dict[str, int]]:
    """The rows checked and the failures per rule id, from the row of ``counts_query``."""
    return int(row[ROWS]), {r.rule_id: int(row[f"r{i}"]) for i, r in enumerate(rules)}


def observations(row: Mapping[str, object], rules: Sequence[Rule]) -> dict[str, object]:
    """What each table-level rule judged (newest value, rows published), by rule id."""
    return {r.rule_id: row[f"o{i}"] for i, r in enumerate(rules) if r.table_level}


def _quarantining(rules: Sequence[Rule]) -> list[int]:
    return [i for i, r in enumerate(rules) if r.on_fail == "quarantine"]


def reason(rule: Rule) -> str:
    params = ", ".join(f"{k}={v}" for k, v in rule.params.items() if v is not None)
    return f"{rule.field} fails {rule.check}" + (f" ({params})" if params else "") + f" [{rule.key}]"


def row_hash(columns: Sequence[str]) -> exp.Expr:
    """MD5 of the row's JSON over its data columns (not Keel's own ``_keel_*``): the same values
    give the same text, whatever their types."""
    data = [c for c in columns if not c.startswith("_keel_")]
    fields = [
        exp.PropertyEQ(this=exp.to_identifier(c, quoted=True), expression=exp.column(c, quoted=True))
        for c in data
    ]
    return exp.MD5(this=exp.Anonymous(this="to_json", expressions=[exp.Struct(expressions=fields)]))


def quarantined(
    source: exp.Table,
    columns: Sequence[str],
    rules: Sequence[Rule],
    *,
    with_hash: bool = False,
    keys_from: exp.Table | None = None,
) -> exp.Select:
    """The rows breaking a ``quarantine`` rule: their columns, the first such rule and why, an id
    (and, ``with_hash``, the row's fingerprint: ``row_hash``; ``keys_from``: see ``violation``)."""
    marks = _quarantining(rules)
    rule_of = exp.Case(ifs=[exp.If(this=_flag(i), true=exp.Literal.string(rules[i].rule_id)) for i in marks])
    why = exp.Case(ifs=[exp.If(this=_flag(i), true=exp.Literal.string(reason(rules[i]))) for i in marks])
    qid = exp.Cast(
        this=exp.Anonymous(this="gen_random_uuid", expressions=[]), to=exp.DataType.build("VARCHAR")
    )
    return (
        exp.select(
            *(exp.column(c, quoted=True) for c in columns),
            exp.alias_(rule_of, RULE_COLUMN, quoted=True),
            exp.alias_(why, REASON_COLUMN, quoted=True),
            exp.alias_(qid, QID_COLUMN, quoted=True),
            *([exp.alias_(row_hash(columns), HASH_COLUMN, quoted=True)] if with_hash else []),
        )
        .from_(_flagged(source, columns, rules, keys_from=keys_from))
        .where(exp.or_(*(_flag(i) for i in marks)))
    )


def kept(
    source: exp.Table, columns: Sequence[str], rules: Sequence[Rule], *, keys_from: exp.Table | None = None
) -> exp.Select:
    """The rows breaking no ``quarantine`` rule (``keys_from``: see ``violation``)."""
    marks = _quarantining(rules)
    return (
        exp.select(*(exp.column(c, quoted=True) for c in columns))
        .from_(_flagged(source, columns, rules, keys_from=keys_from))
        .where(exp.not_(exp.or_(*(_flag(i) for i in marks))))
    )


def still_failing(source: exp.Table, rules: Sequence[Rule], where: exp.Expr) -> exp.Select:
    """How many rows of ``source`` matching ``where`` break a row-level (not ``unique``) rule that
    blocks or quarantines: released rows must pass them."""
    checked = [
        r for r in rules if r.on_fail in ("block", "quarantine") and r.check != "unique" and not r.table_level
    ]
    if not checked:
        return exp.select(exp.alias_(exp.Literal.number(0), ROWS, quoted=True))
    return (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), ROWS, quoted=True))
        .from_(source)
        .where(where)
        .where(exp.or_(*(violation(r) for r in checked)))
    )
