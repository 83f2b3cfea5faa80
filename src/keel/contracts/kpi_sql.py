"""KPI formulas checked against the GDP dataset they read and compiled to one query (pure).

A KPI contract writes its value as a SQL aggregate expression (``KpiSpec.formula``) over the
fields of one GDP dataset, bucketed by ``grain`` of ``time_field`` and grouped by
``dimensions``, over the rows ``filters`` keep. ``validate_kpi`` checks each of those texts
(positions in errors are inside the text that is wrong, as for mappings) and builds the query
as a SQLGlot tree, so the same plan renders for DuckDB now and Spark later (``sql_for``).
``evaluate_thresholds`` judges a computed value against the KPI's thresholds.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from keel.contracts.model import Dataset, Field, KpiSpec, Threshold
from keel.contracts.sqltext import SqlText, keel_type, parse_sql, sql_schema, statement_kind, suggest
from keel.kernel.errors import InvalidInput

GRAINS = ("day", "week", "month", "quarter", "year")
NUMERIC = frozenset({"integer", "number", "decimal"})
TEMPORAL = frozenset({"date", "timestamp"})
RESERVED = ("period", "value")  # the compiled query's own output columns
OPS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class KpiPlan:
    """A checked KPI: its compiled query and what it reads.

    The query returns ``period`` (a DATE, the first day of the bucket), one column per dimension
    and ``value``, ordered by period then dimensions."""

    sql: str  # in ``dialect``
    table: str  # the GDP table read, "gdp.invoice"
    lineage: tuple[tuple[str, str], ...]  # the (table, column) pairs the value is computed from
    columns: tuple[str, ...]  # every column the query reads (formula, filters, time, dimensions)
    dialect: str = "duckdb"
    expression: exp.Select | None = field(default=None, repr=False, compare=False)

    def sql_for(self, dialect: str) -> str:
        """The query rendered for another engine (e.g. "spark"); a plan read back from storage
        (without its tree) is parsed from its SQL."""
        tree = self.expression or sqlglot.parse_one(self.sql, read=self.dialect)
        return _render(tree, dialect)


def _render(query: exp.Select, dialect: str) -> str:
    # Every identifier quoted: entity and field names such as "order" or "year" stay names.
    return query.sql(dialect=dialect, pretty=True, identify=True)


@dataclass
class _Piece:
    """One SQL text of the spec, parsed."""

    role: str  # formula, filter, time_field, dimension
    text: SqlText
    tree: exp.Expr

    @property
    def columns(self) -> list[exp.Column]:
        found = [c for c in self.tree.find_all(exp.Column) if not isinstance(c.this, exp.Star)]
        return sorted(found, key=lambda c: c.this.meta.get("start", 0))


@dataclass
class _Kpi:
    """What every rule looks at; ``one_dataset`` fills in the table."""

    spec: KpiSpec
    gdp: dict[str, Dataset]
    pieces: list[_Piece]
    dialect: str
    table: str = ""

    @property
    def dataset(self) -> Dataset:
        return self.gdp[self.table]

    @property
    def entity(self) -> str:
        return self.table.rpartition(".")[2]

    def role(self, role: str) -> list[_Piece]:
        return [p for p in self.pieces if p.role == role]

    def field(self, column: exp.Column) -> Field:
        return next(f for f in self.dataset.fields if f.name.lower() == column.name.lower())


def _parse(text: SqlText, dialect: str) -> exp.Expr:
    statements = parse_sql(text, dialect)
    if not statements:
        raise text.error("empty", "is empty; write a SQL expression")
    if len(statements) > 1:
        raise text.error(
            "several_statements", "is one SQL expression; a second one starts here", statements[1][1]
        )
    tree, start = statements[0]
    if isinstance(tree, exp.Alias):
        raise text.error("alias", "takes no alias (AS): the KPI names its own columns", tree.args["alias"])
    if not isinstance(tree, exp.Condition | exp.Filter):
        raise text.error("not_an_expression", f"is one SQL expression, not {statement_kind(tree)}", start)
    return tree


def one_dataset(k: _Kpi) -> None:
    """The KPI reads exactly one GDP dataset: the one its columns name, or the only one based on."""
    entities = {name.rpartition(".")[2]: name for name in k.gdp}
    based_on = ", ".join(sorted(k.gdp))
    read: str | None = None
    for piece in k.pieces:
        for column in (c for c in piece.columns if c.table):
            entity = column.table.lower()
            if entity not in entities or (column.db and column.db.lower() != "gdp"):
                problem = f"unknown GDP dataset '{column.table}'; the KPI is based on {based_on}"
                raise piece.text.error(
                    "unknown_dataset", problem, column.args["table"], suggest(entity, entities)
                )
            if read is None:
                read = entities[entity]
            elif entities[entity] != read:
                problem = (
                    f"a KPI reads one GDP dataset; join in a GDP mapping instead ({read} is read already, "
                    f"this column is from {entities[entity]})"
                )
                raise piece.text.error("several_datasets", problem, column.args["table"])
    if read is None and len(k.gdp) != 1:
        if not k.gdp:
            raise InvalidInput("based_on", "a KPI is based on one GDP dataset; it names none")
        named = [(p, c) for p in k.pieces for c in p.columns]
        if not named:  # not one column anywhere: the time field is the one that must name a field
            (piece,) = k.role("time_field")
            raise piece.text.error("not_a_field", "names one field, e.g. <entity>.<field>", piece.text.whole)
        piece, column = named[0]
        problem = (
            f"column '{column.name}' does not say which GDP dataset it is from; the KPI is based on "
            f"{based_on}, so write <entity>.{column.name}"
        )
        raise piece.text.error("ambiguous_dataset", problem, column)
    k.table = read or next(iter(k.gdp))
    for piece in k.pieces:  # errors found from here on name the dataset too
        piece.text = replace(piece.text, dataset=k.table)


def known_columns(k: _Kpi) -> None:
    """Every column is a field of the dataset."""
    names = [f.name.lower() for f in k.dataset.fields]
    for piece in k.pieces:
        for column in piece.columns:
            if column.name.lower() not in names:
                problem = f"unknown column '{column.name}' in {k.table}"
                raise piece.text.error(
                    "unknown_column", problem, column.this, suggest(column.name.lower(), names)
                )


def field_references(k: _Kpi) -> None:
    """``time_field`` and ``dimensions`` each name one field; the time field is a date or timestamp."""
    seen: set[str] = set()
    for piece in k.role("time_field") + k.role("dimension"):
        if not isinstance(piece.tree, exp.Column) or isinstance(piece.tree.this, exp.Star):
            raise piece.text.error("not_a_field", f"names one field, e.g. {k.entity}.<field>", piece.tree)
        f = k.field(piece.tree)
        if piece.role == "time_field" and f.type not in TEMPORAL:
            problem = f"field '{f.name}' is {f.type}; the time field must be a date or timestamp"
            raise piece.text.error("not_temporal", problem, piece.tree)
        if piece.role == "dimension":
            if f.name.lower() in RESERVED:
                problem = f"field '{f.name}' cannot be a dimension: the query names its own '{f.name}' column"
                raise piece.text.error("reserved_name", problem, piece.tree)
            if f.name.lower() in seen:
                raise piece.text.error(
                    "duplicate_dimension", f"field '{f.name}' is a dimension twice", piece.tree
                )
            seen.add(f.name.lower())


def _plain(piece: _Piece) -> None:
    """No subqueries, window functions or stars (COUNT(*) aside) in a formula or filter."""
    for node in piece.tree.walk():
        if isinstance(node, exp.Query | exp.Subquery):
            problem = "cannot hold a subquery; a KPI reads its dataset's rows"
            raise piece.text.error("subquery", problem, piece.text.keyword("SELECT", node))
        if isinstance(node, exp.Window):
            problem = "cannot use a window function; grain and dimensions group the rows"
            raise piece.text.error("window", problem, node.this)
        if isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
            raise piece.text.error("star", "cannot read '*'; name the fields", node)


def aggregated_formula(k: _Kpi) -> None:
    """The formula aggregates: at least one aggregate, none nested, every column inside one."""
    (piece,) = k.role("formula")
    _plain(piece)
    aggregates = list(piece.tree.find_all(exp.AggFunc))
    if not aggregates:
        problem = "aggregates nothing; a KPI value is an aggregate such as SUM(...), COUNT(*) or AVG(...)"
        raise piece.text.error("no_aggregate", problem, piece.text.whole)
    for aggregate in aggregates:
        if aggregate.find_ancestor(exp.AggFunc):
            raise piece.text.error("nested_aggregate", "nests an aggregate inside another", aggregate)
    for column in piece.columns:
        # An aggregate's FILTER (WHERE ...) is part of the aggregate.
        if not column.find_ancestor(exp.AggFunc, exp.Filter):
            problem = f"column '{column.name}' is not inside an aggregate (SUM, COUNT, AVG, MIN, MAX, ...)"
            raise piece.text.error("unaggregated_column", problem, column)


def row_filters(k: _Kpi) -> None:
    """Filters are row predicates: no aggregates (those belong in the formula)."""
    for piece in k.role("filter"):
        _plain(piece)
        if aggregate := piece.tree.find(exp.AggFunc):
            problem = "is a row predicate; aggregates belong in the formula"
            raise piece.text.error("aggregate_in_filter", problem, aggregate)


def value_types(k: _Kpi) -> None:
    """The formula is numeric and each filter is boolean, as SQLGlot infers them."""
    (formula,) = k.role("formula")
    filters = k.role("filter")
    probe = exp.select(
        exp.alias_(_bind(k, formula.tree), "value"),
        *(exp.alias_(_bind(k, p.tree), f"filter_{i}") for i, p in enumerate(filters)),
    ).from_(_source(k))
    schema = sql_schema({k.table: k.dataset}, k.dialect)
    try:
        typed = annotate_types(
            qualify(probe, schema=schema, dialect=k.dialect), schema=schema, dialect=k.dialect
        )
    except SqlglotError as e:  # the rules before should have said why
        raise formula.text.error("unresolved", f"cannot resolve the KPI query: {e}") from None
    value, *predicates = typed.selects
    found = keel_type(value.type)
    if found is None and value.type.this == exp.DataType.Type.UNKNOWN:
        problem = "cannot tell the type of the value; CAST it, e.g. CAST(... AS DOUBLE)"
        raise formula.text.error("unknown_type", problem, formula.text.whole)
    if found not in NUMERIC:
        shown = found or value.type.sql(dialect=k.dialect)
        raise formula.text.error("not_numeric", f"is {shown}; a KPI value is a number", formula.text.whole)
    for piece, predicate in zip(filters, predicates, strict=True):
        if keel_type(predicate.type) != "boolean":
            shown = keel_type(predicate.type) or predicate.type.sql(dialect=k.dialect)
            raise piece.text.error("not_boolean", f"is {shown}, not a true/false condition", piece.text.whole)


RULES = (one_dataset, known_columns, field_references, aggregated_formula, row_filters, value_types)


def _source(k: _Kpi) -> exp.Table:
    db, _, name = k.table.rpartition(".")
    return exp.table_(name, db=db or None, alias=k.entity)


def _bind(k: _Kpi, tree: exp.Expr) -> exp.Expr:
    """A copy of ``tree`` whose columns all name the table alias and the field as declared."""

    def bind(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            return exp.column(k.field(node).name, table=k.entity)
        return node

    return tree.transform(bind)


def _compile(k: _Kpi) -> exp.Select:
    """SELECT period, dimensions..., value FROM the table WHERE filters GROUP BY / ORDER BY both."""
    (time_field,) = k.role("time_field")
    bucket = exp.TimestampTrunc(this=_bind(k, time_field.tree), unit=exp.var(k.spec.grain.upper()))
    # DuckDB keeps a truncated DATE a DATE, Spark makes it a TIMESTAMP: the cast makes period one type.
    period = exp.cast(bucket, exp.DataType.build("DATE"))
    dimensions = [_bind(k, p.tree) for p in k.role("dimension")]
    (formula,) = k.role("formula")
    query = exp.select(
        exp.alias_(period, "period"),
        *(exp.alias_(d, d.name) for d in dimensions),
        exp.alias_(_bind(k, formula.tree), "value"),
    ).from_(_source(k))
    filters = [_bind(k, p.tree) for p in k.role("filter")]
    if filters:
        query = query.where(exp.and_(*filters))
    keys = [period, *dimensions]
    query = query.group_by(*(key.copy() for key in keys))
    # NULLS LAST said out loud: DuckDB and Spark default differently.
    return query.order_by(*(exp.Ordered(this=key.copy(), nulls_first=False) for key in keys))


def validate_kpi(
    spec: KpiSpec, gdp: Mapping[str, Dataset], *, dialect: str = "duckdb", contract: str | None = None
) -> KpiPlan:
    """Check a KPI spec against the GDP datasets it is based on (``gdp`` maps "gdp.invoice" to its
    dataset) and compile its query; the first problem raises (a ``MappingError`` when it lies in
    one of the spec's SQL texts)."""
    if spec.grain not in GRAINS:
        raise InvalidInput("kpi.grain", f"'{spec.grain}' is not a grain; use one of {', '.join(GRAINS)}")
    whose = f"of KPI {contract}" if contract else "of the KPI"
    texts = [
        ("formula", "kpi.formula", f"formula {whose}", spec.formula),
        *(("filter", f"kpi.filters[{i}]", f"filter {i + 1} {whose}", f) for i, f in enumerate(spec.filters)),
        ("time_field", "kpi.time_field", f"time_field {whose}", spec.time_field),
        *(
            ("dimension", f"kpi.dimensions[{i}]", f"dimension {i + 1} {whose}", d)
            for i, d in enumerate(spec.dimensions)
        ),
    ]
    pieces = []
    for role, input_field, subject, sql in texts:
        text = SqlText(sql, input_field, subject, contract)
        pieces.append(_Piece(role, text, _parse(text, dialect)))
    k = _Kpi(spec, {name.lower(): dataset for name, dataset in gdp.items()}, pieces, dialect)
    for rule in RULES:
        rule(k)
    query = _compile(k)
    (formula,) = k.role("formula")
    return KpiPlan(
        sql=_render(query, dialect),
        table=k.table,
        lineage=tuple(sorted({(k.table, k.field(c).name) for c in formula.columns})),
        columns=tuple(sorted({k.field(c).name for p in pieces for c in p.columns})),
        dialect=dialect,
        expression=query,
    )


def evaluate_thresholds(value: float | Decimal | None, thresholds: Iterable[Threshold]) -> list[dict]:
    """Each threshold with its status for ``value``: "breached" when ``value <op> limit`` holds,
    "ok" when not, "no_data" when there is no value (None or NaN)."""
    missing = value is None or (isinstance(value, float | Decimal) and math.isnan(value))
    results = []
    for i, threshold in enumerate(thresholds):
        compare = OPS.get(threshold.op)
        if compare is None:
            problem = f"'{threshold.op}' is not a comparison; use one of {', '.join(OPS)}"
            raise InvalidInput(f"kpi.thresholds[{i}].op", problem)
        status = "no_data" if missing else ("breached" if compare(value, threshold.limit) else "ok")
        results.append(
            {
                "name": threshold.name,
                "op": threshold.op,
                "limit": threshold.limit,
                "severity": threshold.severity,
                "value": None if missing else value,
                "status": status,
            }
        )
    return results
