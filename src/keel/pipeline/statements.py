"""The statements of a materialization as SQLGlot trees (pure), rendered for each engine's dialect.

Nothing here pastes a name or value into SQL text: identifiers are SQLGlot identifiers,
always quoted when rendered, and values are SQLGlot literals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlglot import exp

from keel.kernel.errors import InvalidInput

_IDENTIFIER = re.compile(r"^[a-z0-9_]+$")


def render(tree: exp.Expr, dialect: str) -> str:
    """The statement in ``dialect``, every identifier quoted (entities may be called "order")."""
    return tree.sql(dialect=dialect, identify=True)


def table(schema: str, name: str, alias: exp.TableAlias | None = None) -> exp.Table:
    """A reference to ``schema.name``; both must already be safe (``naming.py``)."""
    for part in (schema, name):
        if not _IDENTIFIER.match(part):
            raise InvalidInput("name", f"'{part}' is not a safe identifier")
    return exp.Table(
        this=exp.to_identifier(name, quoted=True),
        db=exp.to_identifier(schema, quoted=True),
        alias=alias,
    )


def qualified_name(source: exp.Table) -> str:
    """``schema.name`` of a table reference, lower-cased (as the contract plans name tables)."""
    return ".".join(part.lower() for part in (source.catalog, source.db, source.name) if part)


def create_schema(schema: str) -> exp.Create:
    return exp.Create(this=exp.Table(this=exp.to_identifier(schema, quoted=True)), kind="SCHEMA", exists=True)


def scratch_table(name: str) -> exp.Table:
    """``temp.main.name``: a table of the connection's own, for rows a run stages on its way. It is
    never written to the tenant's file, so creating and dropping it costs the commit nothing (a
    table created and dropped in the file within one transaction still does, ~0.2 s for 60 k
    TPC-H lines: ``bench/bench_incremental_refresh.py``)."""
    table_ = table("main", name)
    table_.set("catalog", exp.to_identifier("temp", quoted=True))
    return table_


def create_table_as(target: exp.Table, query: exp.Query) -> exp.Create:
    """``CREATE OR REPLACE TABLE target AS query``: a rebuild replaces only that table (a
    ``scratch_table`` is created TEMPORARY)."""
    scratch = target.catalog == "temp"
    properties = exp.Properties(expressions=[exp.TemporaryProperty()]) if scratch else None
    return exp.Create(this=target, kind="TABLE", replace=True, expression=query, properties=properties)


def drop_table(target: exp.Table) -> exp.Drop:
    """``DROP TABLE IF EXISTS target``."""
    return exp.Drop(tables=[target], kind="TABLE", exists=True)


def create_view(view: exp.Table, source: exp.Table, columns: Sequence[str]) -> exp.Create:
    """``CREATE OR REPLACE VIEW view AS SELECT columns FROM source``."""
    query = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(source)
    return exp.Create(this=view, kind="VIEW", replace=True, expression=query)


def count_rows(source: exp.Table) -> exp.Select:
    return exp.select(exp.alias_(exp.Count(this=exp.Star()), "rows", quoted=True)).from_(source)


def retarget(query: exp.Query, read: str, source: exp.Table) -> exp.Query:
    """A copy of ``query`` reading ``source`` wherever it read the table ``read`` ("gdp.order"),
    keeping the alias its columns are qualified with."""
    found = False

    def swap(node: exp.Expr) -> exp.Expr:
        nonlocal found
        if isinstance(node, exp.Table) and qualified_name(node) == read.lower():
            found = True
            replacement = source.copy()
            replacement.set("alias", node.args.get("alias"))
            return replacement
        return node

    rewritten = query.copy().transform(swap)
    if not found:
        raise InvalidInput("plan", f"the query does not read {read}")
    return rewritten


def ordered(source: exp.Table, columns: Sequence[str], keys: Sequence[str]) -> exp.Select:
    """``SELECT columns FROM source ORDER BY keys`` with NULLs last on every engine."""
    return (
        exp.select(*(exp.column(c, quoted=True) for c in columns))
        .from_(source)
        .order_by(*(exp.Ordered(this=exp.column(k, quoted=True), nulls_first=False) for k in keys))
    )
