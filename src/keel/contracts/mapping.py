"""GDP mappings checked against their contracts (pure): one SELECT over declared tables whose
columns exist, whose output is exactly the target's fields with fitting types, traced to the
source columns each field derives from.

The SQL is parsed, qualified, typed and traced by SQLGlot, so it stays engine-neutral: the plan
renders for DuckDB today and for Spark (``MappingPlan.sql_for``) later. Checks run as an ordered
list of rules sharing one signature (``RULES``); the first rule that finds a problem raises a
``MappingError`` pointing at the offending token (line and column, 1-based, in the text the user
wrote). ``SqlText``, ``parse_sql`` and the type helpers, shared with ``kpi_sql.py``, are in
``sqltext.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage as sqlglot_lineage
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, ScopeType, build_scope, traverse_scope
from sqlglot.schema import MappingSchema

from keel.contracts.model import Dataset, widens
from keel.contracts.sqltext import (
    SQL_TYPES,
    MappingError,
    Span,
    SqlText,
    keel_type,
    parse_sql,
    span_of,
    sql_schema,
    statement_kind,
    suggest,
)

# --- the mapping ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingPlan:
    """A checked mapping: normalized SQL, the tables it reads and where each field comes from."""

    target: str  # "gdp.invoice"
    sql: str  # fully qualified SELECT in ``dialect``
    tables: tuple[str, ...]  # the source tables read, sorted
    lineage: dict[str, tuple[tuple[str, str], ...]]  # field -> sorted (source table, source column)
    dialect: str = "duckdb"
    expression: exp.Query | None = field(default=None, repr=False, compare=False)

    def sql_for(self, dialect: str) -> str:
        """The mapping rendered for another engine (e.g. "spark"); a plan read back from storage
        (without its tree) is parsed from its SQL."""
        tree = self.expression or sqlglot.parse_one(self.sql, read=self.dialect)
        return tree.sql(dialect=dialect, pretty=True)


@dataclass
class _Mapping:
    """What every rule looks at."""

    text: SqlText
    query: exp.Query
    target: Dataset
    target_table: str
    sources: dict[str, Dataset]
    dialect: str
    start: Span

    @cached_property
    def schema(self) -> MappingSchema:
        return sql_schema(self.sources, self.dialect)

    @cached_property
    def qualified(self) -> exp.Query:
        try:
            tree = qualify(
                self.query.copy(), schema=self.schema, dialect=self.dialect, validate_qualify_columns=True
            )
            return annotate_types(tree, schema=self.schema, dialect=self.dialect)
        except SqlglotError as e:  # the rules before should have said why
            raise self.text.error("unresolved", f"cannot resolve the query: {e}") from None

    @cached_property
    def output(self) -> exp.Select:
        return _branches(self.query)[0]


def _branches(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose rows a query returns (several for a UNION), left to right."""
    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.SetOperation):
        return _branches(query.this) + _branches(query.expression)
    return [query] if isinstance(query, exp.Select) else []


def _table_name(table: exp.Table) -> str:
    return ".".join(part.lower() for part in (table.catalog, table.db, table.name) if part)


def _table_span(table: exp.Table) -> Span | None:
    spans = [span_of(table.args[k]) for k in ("catalog", "db", "this") if table.args.get(k) is not None]
    spans = [s for s in spans if s]
    return (spans[0][0], spans[-1][1]) if spans else None


def _is_star(projection: exp.Expr) -> bool:
    return isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    )


def _output_name(projection: exp.Expr) -> str:
    """A projection's column name; "" for an expression without AS (engines name those differently)."""
    if isinstance(projection, exp.Alias):
        return projection.alias.lower()
    return projection.name.lower() if isinstance(projection, exp.Column) else ""


def _name_span(projection: exp.Expr) -> Span | None:
    if isinstance(projection, exp.Alias) and span_of(projection.args["alias"]):
        return span_of(projection.args["alias"])
    return span_of(projection)


def single_select(m: _Mapping) -> None:
    """The mapping is a query (SELECT, UNION, WITH ...), not a command."""
    if not isinstance(m.query, exp.Query):
        kind = statement_kind(m.query)
        raise m.text.error("not_a_select", f"a mapping is one SELECT, not {kind}", m.start)


# Row sources whose columns the checks cannot follow (yet): refused by name rather than misjudged.
_UNSUPPORTED: tuple[tuple[type, str], ...] = (
    (exp.Unnest, "UNNEST"),
    (exp.Lateral, "LATERAL"),
    (exp.Pivot, "PIVOT / UNPIVOT"),
)


def supported_forms(m: _Mapping) -> None:
    """No recursive CTEs, UNNEST, LATERAL or PIVOT: their columns are not checked or traced."""
    for node in m.query.walk():
        if isinstance(node, exp.With) and node.args.get("recursive"):
            problem = "WITH RECURSIVE is not supported in a mapping"
            raise m.text.error("unsupported", problem, m.text.keyword("RECURSIVE", node.expressions[0]))
        for kind, name in _UNSUPPORTED:
            if isinstance(node, kind):
                at = m.text.keyword(name.split()[0], node)
                raise m.text.error("unsupported", f"{name} is not supported in a mapping", at)


def known_tables(m: _Mapping) -> None:
    """Every table read is a declared source, named with its schema; no table functions."""
    ctes = {cte.alias.lower() for cte in m.query.find_all(exp.CTE)}
    tables = sorted(m.query.find_all(exp.Table), key=lambda t: (_table_span(t) or span_of(t) or (0, 0))[0])
    for table in tables:
        if not isinstance(table.this, exp.Identifier):
            problem = "reads a table function; a mapping reads declared source tables only"
            raise m.text.error("table_function", problem, table.this)
        name = _table_name(table)
        if not table.db and name in ctes:
            continue
        if name not in m.sources:
            if not table.db:
                same = [s for s in m.sources if s.rpartition(".")[2] == name]
                problem = f"table '{name}' must be named with its schema"
                raise m.text.error("unqualified_table", problem, _table_span(table), next(iter(same), None))
            readable = ", ".join(sorted(m.sources)) or "nothing"
            problem = f"unknown table '{name}'; the mapping may read {readable}"
            raise m.text.error("unknown_table", problem, _table_span(table), suggest(name, m.sources))


def explicit_columns(m: _Mapping) -> None:
    """No ``SELECT *``: every column a mapping reads is named, so lineage and drift are exact."""
    stars = [p for select in m.query.find_all(exp.Select) for p in select.expressions if _is_star(p)]
    if stars:
        first = min(stars, key=lambda star: (span_of(star) or (0, 0))[0])
        raise m.text.error("star", "SELECT * is not allowed; name each column", first)


def resolved_columns(m: _Mapping) -> None:
    """Every column reference resolves to exactly one column of a table, CTE or subquery."""
    seen: set[int] = set()
    problems: list[MappingError] = []
    for scope in traverse_scope(m.query):  # innermost first: a column is judged where it is written
        for column in scope.columns:
            if id(column) not in seen:
                seen.add(id(column))
                if problem := _resolve(m, scope, column):
                    problems.append(problem)
    if problems:
        raise min(problems, key=lambda p: p.offset if p.offset is not None else -1)


def _visible(scope: Scope) -> Iterator[Scope]:
    """The scope and, for a correlated subquery, the scopes it sits in."""
    while scope is not None:
        yield scope
        scope = scope.parent if scope.scope_type == ScopeType.SUBQUERY else None


def _columns_of(m: _Mapping, alias: str, node: exp.Expr, source: exp.Table | Scope) -> tuple[str, list[str]]:
    """How a message names a source, and its column names."""
    if isinstance(source, exp.Table):
        dataset = m.sources[_table_name(source)]
        return _table_name(source), [f.name.lower() for f in dataset.fields]
    definition = source.expression.parent
    named = node.alias_column_names or (definition.alias_column_names if definition else [])
    names = [n.lower() for n in (named or source.expression.named_selects)]
    if isinstance(definition, exp.CTE):
        return f"CTE {definition.alias}", names
    return f"subquery {alias}", names


def _resolve(m: _Mapping, scope: Scope, column: exp.Column) -> MappingError | None:
    """Why ``column`` does not resolve in ``scope`` (or, if correlated, an outer one), or None."""
    name = column.name.lower()
    if column.table:
        alias = column.table.lower()
        for visible in _visible(scope):
            found = {a.lower(): pair for a, pair in visible.selected_sources.items()}
            if alias in found:
                label, names = _columns_of(m, alias, *found[alias])
                if name in names:
                    return None
                problem = f"unknown column '{column.name}' in {label}"
                return m.text.error("unknown_column", problem, column.this, suggest(name, names))
        aliases = [a for v in _visible(scope) for a in v.selected_sources]
        problem = f"unknown table or alias '{column.table}'"
        return m.text.error("unknown_alias", problem, column.args["table"], suggest(alias, aliases))
    for visible in _visible(scope):
        owners = [
            label
            for alias, (node, source) in visible.selected_sources.items()
            for label, names in [_columns_of(m, alias, node, source)]
            if name in names
        ]
        if len(owners) == 1 or (owners and name in _using(visible)):
            return None
        if owners:
            problem = f"column '{column.name}' is ambiguous: it is in {' and '.join(owners)}; qualify it"
            return m.text.error("ambiguous_column", problem, column.this)
    outputs = {n.lower() for n in scope.expression.named_selects}
    if name in outputs and column.find_ancestor(exp.Group, exp.Order, exp.Having):
        return None  # GROUP BY / ORDER BY naming an output column
    labelled = [_columns_of(m, alias, *pair) for alias, pair in scope.selected_sources.items()]
    where = f" in {', '.join(dict.fromkeys(label for label, _ in labelled))}" if labelled else ""
    names = [n for _, ns in labelled for n in ns]
    return m.text.error(
        "unknown_column", f"unknown column '{column.name}'{where}", column.this, suggest(name, names)
    )


def _using(scope: Scope) -> set[str]:
    joins = scope.expression.args.get("joins") or []
    return {ident.name.lower() for join in joins for ident in join.args.get("using") or []}


def target_fields(m: _Mapping) -> None:
    """The SELECT's columns are exactly the target's fields (in any order), each named once."""
    projections = m.output.expressions
    for branch in _branches(m.query)[1:]:
        if len(branch.expressions) != len(projections):
            problem = f"each branch of the UNION selects {len(projections)} columns; this one selects "
            raise m.text.error("union_arity", f"{problem}{len(branch.expressions)}", branch.expressions[0])
    fields = [f.name.lower() for f in m.target.fields]
    seen: set[str] = set()
    for position, projection in enumerate(projections, start=1):
        name = _output_name(projection)
        if not name:
            problem = f"column {position} has no name; add AS <field>"
            raise m.text.error("unnamed_column", problem, projection)
        if name in seen:
            problem = f"column '{name}' is selected twice"
            raise m.text.error("duplicate_column", problem, _name_span(projection))
        seen.add(name)
        if name not in fields:
            problem = f"column '{name}' is not a field of {m.target_table}"
            raise m.text.error("extra_column", problem, _name_span(projection), suggest(name, fields))
    for f in m.target.fields:
        if f.name.lower() not in seen:
            problem = f"field '{f.name}' of {m.target_table} is missing from the SELECT list"
            raise m.text.error("missing_field", problem, projections[0] if projections else m.start)


def fitting_types(m: _Mapping) -> None:
    """Each column's type fits its field (``widens``); converting takes an explicit CAST."""
    names = [_output_name(p) for p in m.output.expressions]
    for written, typed in zip(_branches(m.query), _branches(m.qualified), strict=True):
        for name, projection, result in zip(names, written.expressions, typed.expressions, strict=True):
            if isinstance(projection.unalias(), exp.Null):
                continue  # NULL fits any field (whether it may be NULL is a quality rule)
            expected = next(f for f in m.target.fields if f.name.lower() == name)
            found = keel_type(result.type)
            cast = f"CAST it, e.g. CAST(... AS {SQL_TYPES.get(expected.type, 'the field type')})"
            if found is None and (result.type is None or result.type.this == exp.DataType.Type.UNKNOWN):
                problem = f"cannot tell the type of column '{name}' (field type {expected.type}); {cast}"
                raise m.text.error("unknown_type", problem, _name_span(projection))
            if found is None or not widens(found, expected.type):
                shown = found or result.type.sql(dialect=m.dialect)
                problem = f"field '{name}' is {expected.type} but the column is {shown}; {cast}"
                raise m.text.error("type_mismatch", problem, _name_span(projection))


RULES = (
    single_select,
    supported_forms,
    known_tables,
    explicit_columns,
    resolved_columns,
    target_fields,
    fitting_types,
)


def validate_mapping(
    sql: str,
    target: Dataset,
    sources: Mapping[str, Dataset],
    *,
    dialect: str = "duckdb",
    contract: str | None = None,
) -> MappingPlan:
    """Check a GDP mapping against its target dataset and the tables it may read; raise the first
    problem as a ``MappingError``, or return the plan (normalized SQL, tables, column lineage).

    ``sources`` maps qualified table names ("raw.erp__invoices", "gdp.customer") to their datasets.
    """
    target_table = target.name if "." in target.name else f"gdp.{target.name}"
    subject = f"mapping of {target_table}"
    text = SqlText(sql, f"datasets.{target.name}.mapping", subject, contract, target_table)
    statements = parse_sql(text, dialect)
    if not statements:
        raise text.error("empty", "the mapping is empty; write one SELECT")
    if len(statements) > 1:
        problem = "a mapping is one SELECT statement; a second one starts here"
        raise text.error("several_statements", problem, statements[1][1])
    query, start = statements[0]
    tables = {name.lower(): dataset for name, dataset in sources.items()}
    m = _Mapping(text, query, target, target_table, tables, dialect, start)
    for rule in RULES:
        rule(m)
    return MappingPlan(
        target=target_table,
        sql=m.qualified.sql(dialect=dialect, pretty=True),
        tables=tuple(sorted({_table_name(t) for t in m.qualified.find_all(exp.Table)} & set(m.sources))),
        lineage=_lineage(m),
        dialect=dialect,
        expression=m.qualified,
    )


def _lineage(m: _Mapping) -> dict[str, tuple[tuple[str, str], ...]]:
    """For every target field, the (source table, column) pairs its value is computed from."""
    tree = m.qualified.copy()
    nodes = sqlglot_lineage(None, tree, m.schema, dialect=m.dialect, scope=build_scope(tree))
    by_name = {name.lower(): node for name, node in nodes.items()}
    result: dict[str, tuple[tuple[str, str], ...]] = {}
    for f in m.target.fields:
        pairs = set()
        for node in by_name[f.name.lower()].walk():
            if isinstance(node.expression, exp.Table) and not node.downstream:
                column = exp.to_column(node.name, dialect=m.dialect)
                pairs.add((_table_name(node.expression), column.name))
        result[f.name] = tuple(sorted(pairs))
    return result
