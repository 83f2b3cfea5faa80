"""A GDP mapping's output typed as its contract declares (pure).

A mapping is checked against the Raw contract's types, but a Raw table may hold
other types than its contract says (drift). The build therefore looks at what the
engine says the mapping returns and converts, with ``TRY_CAST``, only the columns
whose kind differs from their field's type: a value that does not convert is
stored as NULL and its row flagged in ``_keel_type_error`` (the run's
``error_rows``). Precision within a kind (DECIMAL(18,2) for a decimal) is the
engine's business and is kept. Object and array fields are never converted.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp
from sqlglot.errors import SqlglotError

from keel.contracts.model import Dataset
from keel.contracts.sqltext import SQL_TYPES, keel_type

TYPE_ERROR = "_keel_type_error"
MAPPING = "_keel_mapping"
_NOT_CONVERTED = frozenset({"object", "array"})


def cast_target(field_type: str, found: str | None, dialect: str) -> exp.DataType | None:
    """The type to convert a column the engine types ``found`` to, or None to keep it as it is."""
    if field_type in _NOT_CONVERTED or field_type not in SQL_TYPES or found is None:
        return None
    try:
        actual = exp.DataType.build(found.strip().strip('"'), dialect=dialect)
    except (SqlglotError, ValueError):
        return None  # a type SQLGlot cannot read: leave the engine's value alone
    if actual.this != exp.DataType.Type.NULL and keel_type(actual) in (field_type, None):
        return None
    return exp.DataType.build(SQL_TYPES[field_type], dialect="duckdb")


def conform(query: exp.Query, dataset: Dataset, found: Mapping[str, str], dialect: str) -> exp.Select:
    """``SELECT <fields in contract order, converted where needed>, <type-error flag> FROM (query)``.

    ``found`` maps the mapping's output columns (lower-cased) to the engine's type names.
    """
    projections: list[exp.Expr] = []
    failed: list[exp.Expr] = []
    for f in dataset.fields:
        value = exp.column(f.name, table=MAPPING, quoted=True)
        target = cast_target(f.type, found.get(f.name.lower()), dialect)
        if target is not None:
            converted = exp.TryCast(this=value.copy(), to=target)
            failed.append(exp.and_(exp.not_(value.is_(exp.null())), converted.copy().is_(exp.null())))
            value = converted
        projections.append(exp.alias_(value, f.name, quoted=True))
    flag = exp.or_(*failed) if failed else exp.false()
    alias = exp.TableAlias(this=exp.to_identifier(MAPPING, quoted=True))
    source = exp.Subquery(this=query.copy(), alias=alias)
    return exp.select(*projections, exp.alias_(flag, TYPE_ERROR, quoted=True)).from_(source)
