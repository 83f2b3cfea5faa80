"""A GDP dataset's declared constraints as one set-based SQL query over its built table (pure).

``required`` fields (and primary-key fields) must not be NULL; a ``unique`` field
and the primary key (one field or several together) must not repeat among rows
where they are all set. One query flags each row per constraint and counts the flags;
no row ever comes back to Python.

A key check groups the table by its columns and keeps the groups seen more than once;
each row is then flagged by a semi-join against those (usually no) repeated keys. That
is a hash aggregate plus a probe of a tiny hash table, where a ``COUNT(*) OVER
(PARTITION BY key)`` window must partition and materialize every row: measured on
TPC-H lineitem (6M rows) it halves the checks (``bench/bench_tpch_materialization.py``).
So the table is read once for the flags and once per key check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from keel.contracts.model import Dataset

ROWS, ERRORS, FAILING = "rows", "error_rows", "failing_rows"


@dataclass(frozen=True)
class Check:
    name: str  # "not_null:amount", "unique:email", "primary_key:order_id,line"
    kind: str  # "not_null", "unique" or "primary_key"
    columns: tuple[str, ...]


def constraint_checks(dataset: Dataset) -> tuple[Check, ...]:
    """The checks a dataset's fields declare, NOT NULL first, each set of key columns once."""
    key = tuple(f.name for f in dataset.fields if f.primary_key)
    checks = [
        Check(f"not_null:{f.name}", "not_null", (f.name,))
        for f in dataset.fields
        if f.required or f.primary_key
    ]
    checks += [
        Check(f"unique:{f.name}", "unique", (f.name,))
        for f in dataset.fields
        if f.unique and (f.name,) != key
    ]
    if key:
        checks.append(Check(f"primary_key:{','.join(key)}", "primary_key", key))
    return tuple(checks)


def _repeated_keys(
    source: exp.Table, check: Check, index: int, keys_from: exp.Table | None = None
) -> tuple[str, exp.Select]:
    """The key values of ``check`` present more than once among rows where all are set: in
    ``source``, or (``keys_from``) in that table, looking only at the keys ``source`` holds."""
    table = exp.to_identifier("a", quoted=True)
    columns = [exp.column(c, table=table.copy(), quoted=True) for c in check.columns]
    conditions = [exp.not_(c.copy().is_(exp.null())) for c in columns]
    if keys_from is not None:
        probe = exp.to_identifier("s", quoted=True)
        same = exp.and_(*(c.copy().eq(exp.column(c.name, table=probe.copy(), quoted=True)) for c in columns))
        conditions.append(exp.Exists(this=exp.select("1").from_(source.copy().as_(probe)).where(same)))
    repeated = (
        exp.select(*columns)
        .from_((keys_from or source).copy().as_(table.copy()))
        .where(exp.and_(*conditions))
        .group_by(*(c.copy() for c in columns))
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    return f"k{index}", repeated


def _violation(check: Check, index: int) -> exp.Expr:
    if check.kind == "not_null":
        return exp.column(check.columns[0], quoted=True).is_(exp.null())
    # NULL key parts never match in the join, so a row with one is not a duplicate.
    repeats = exp.to_identifier(f"k{index}", quoted=True)
    matches = exp.and_(
        *(
            exp.EQ(
                this=exp.column(c, table=repeats.copy(), quoted=True),
                expression=exp.column(c, table=exp.to_identifier("t", quoted=True), quoted=True),
            )
            for c in check.columns
        )
    )
    return exp.Exists(this=exp.select("1").from_(exp.Table(this=repeats.copy())).where(matches))


def _count(condition: exp.Expr) -> exp.Expr:
    # COUNT(CASE WHEN ... THEN 1 END): 0 on an empty table, and every engine speaks it.
    return exp.Count(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(1))]))


def quality_query(
    source: exp.Table,
    checks: Sequence[Check],
    error_flag: str | None = None,
    keys_from: exp.Table | None = None,
) -> exp.Select:
    """One row: ``rows``, ``error_rows`` (rows whose ``error_flag`` column is true),
    ``failing_rows`` (rows breaking any check) and ``c<i>``, the rows breaking check i.

    ``keys_from``: the table ``source``'s rows were added to (an incremental run), where a key
    of ``source`` counts as repeated if it repeats there."""
    keys = [_repeated_keys(source, c, i, keys_from) for i, c in enumerate(checks) if c.kind != "not_null"]
    flags = [exp.alias_(_violation(c, i), f"c{i}", quoted=True) for i, c in enumerate(checks)]
    error = exp.column(error_flag, quoted=True) if error_flag else exp.false()
    scanned = source.copy().as_("t", quoted=True)
    inner = exp.select(exp.alias_(error, "e", quoted=True), *flags).from_(scanned)
    flagged = [exp.column(f"c{i}", quoted=True) for i in range(len(checks))]
    query = exp.select(
        exp.alias_(exp.Count(this=exp.Star()), ROWS, quoted=True),
        exp.alias_(_count(exp.column("e", quoted=True)), ERRORS, quoted=True),
        exp.alias_(_count(exp.or_(*flagged)) if flagged else exp.Literal.number(0), FAILING, quoted=True),
        *(exp.alias_(_count(f.copy()), f"c{i}", quoted=True) for i, f in enumerate(flagged)),
    ).from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("flags", quoted=True))))
    for name, repeated in keys:
        query = query.with_(exp.to_identifier(name, quoted=True), as_=repeated)
    return query


def counts(row: Mapping[str, int], checks: Sequence[Check]) -> tuple[int, int, int, dict[str, int]]:
    """``rows``, ``error_rows``, ``failing_rows`` and the failures per check, from the query's row."""
    per_check = {c.name: int(row[f"c{i}"]) for i, c in enumerate(checks)}
    return int(row[ROWS]), int(row[ERRORS]), int(row[FAILING]), per_check
