"""A tenant extension of a published contract, checked before it is deployed (pure, story 03e).

An extension adds namespaced fields to one dataset of a published Raw or GDP
contract, for one tenant. Each field is computed by a SQL expression over the
columns the base mapping reads (GDP) or the Raw table's own columns (Raw), and is
stored as ``x_<namespace>_<name>``, so it can never be mistaken for a base field.

The Schema Steward's check runs ``RULES``, an ordered list of functions sharing
one signature, each yielding ``rules.Problem`` values that name the field. What a
problem does to the proposal (``verdict``):

* a namespace conflict (format, reserved, owned by another tenant) or a name that
  clashes with a base field or another deployed extension rejects it, as do unknown
  types, missing classification and expressions that do not parse or type-check;
* a constraint (``required``, ``unique``, ``primary_key``) blocks it: an extension
  field cannot change what the base contract guarantees its consumers.

The expression is checked by adding ``<expression> AS x_<namespace>_<name>`` to the
base mapping's SELECT through SQLGlot (never by pasting text) and running
``mapping.validate_mapping`` on the extended dataset, so an unknown column or a
type that does not fit comes back with its place in the expression. The mapping
that is built casts each expression to its field's type (``extended_plan``).

A namespace belongs to the first tenant whose extension with it was deployed;
the reserved ones (``RESERVED``) belong to Keel.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from keel.contracts.mapping import MappingError, MappingPlan, validate_mapping
from keel.contracts.model import NAMESPACE, TYPES, Contract, Dataset, Field, Layer
from keel.contracts.rules import CLASSIFICATIONS, PRIVACY_TAGS, Problem
from keel.contracts.sqltext import SQL_TYPES, SqlText, parse_sql, span_of

DIALECT = "duckdb"
RESERVED = frozenset({"keel", "raw", "gdp", "kpi", "x", "system"})
FIELD_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_COLUMN = 63  # the longest identifier every engine keeps (PostgreSQL's limit)
PREFIX = "x"  # of stored field names, and of the tenant's extended GDP table
CONSTRAINTS = ("required", "unique", "primary_key")
# Node types an extension expression may not hold: it is computed from the row it extends,
# so it cannot aggregate, look at other rows, read another query or name a new column itself.
_NOT_ROW_LEVEL: tuple[tuple[type, str], ...] = (
    (exp.Query, "a subquery"),
    (exp.Subquery, "a subquery"),
    (exp.Window, "a window function"),
    (exp.AggFunc, "an aggregate"),
    (exp.Star, "*"),
    (exp.Alias, "an alias (the field's name is its column name)"),
)


@dataclass(frozen=True, slots=True)
class ExtensionField:
    """A field a tenant adds: its short ``name`` (stored as ``x_<namespace>_<name>``) and the
    SQL ``expression`` that computes it."""

    name: str
    type: str
    expression: str
    classification: str | None = None
    pii: bool | None = None
    description: str = ""
    required: bool = False
    unique: bool = False
    primary_key: bool = False

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ExtensionField:
        """A field from its stored (or submitted) form."""
        return cls(
            name=str(data.get("name") or ""),
            type=str(data.get("type") or ""),
            expression=str(data.get("expression") or ""),
            classification=data.get("classification"),
            pii=data.get("pii") if isinstance(data.get("pii"), bool) else None,
            description=str(data.get("description") or ""),
            required=bool(data.get("required")),
            unique=bool(data.get("unique")),
            primary_key=bool(data.get("primary_key")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "expression": self.expression,
            "classification": self.classification,
            "pii": self.pii,
            "description": self.description,
            "required": self.required,
            "unique": self.unique,
            "primary_key": self.primary_key,
        }


@dataclass(frozen=True, slots=True)
class Extension:
    """One tenant's namespaced fields on one dataset of a contract version."""

    id: str
    tenant_id: str
    namespace: str
    dataset: str
    fields: tuple[ExtensionField, ...]

    def column(self, item: ExtensionField) -> str:
        return stored_name(self.namespace, item.name)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.column(f) for f in self.fields)


@dataclass(frozen=True)
class Context:
    """What the checks look at besides the extension.

    ``base``: the contract version extended; ``sources``: the tables its mapping may read
    (``rules.source_tables``; for Raw, the Raw table itself); ``owners``: namespace → the
    tenant that owns it; ``deployed``: the same tenant's deployed extensions of the contract.
    """

    base: Contract
    sources: Mapping[str, Dataset] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    deployed: tuple[Extension, ...] = ()

    def dataset(self, ext: Extension) -> Dataset | None:
        return self.base.dataset(ext.dataset)


Rule = Callable[[Extension, Context], Iterator[Problem]]


def stored_name(namespace: str, name: str) -> str:
    """The column an extension field is stored as: ``x_<namespace>_<name>``."""
    return f"{PREFIX}_{namespace}_{name}"


def extended_table(dataset: str) -> str:
    """The tenant's table holding a GDP dataset with its extensions: ``x_<dataset>``.

    The base table (``gdp."<dataset>"``, which global KPIs and consumers read) is never
    rebuilt by an extension; the extended one is a view of its own over versioned builds.
    """
    return f"{PREFIX}_{dataset}"


# -- the rules ---------------------------------------------------------------------------------


def namespace(ext: Extension, ctx: Context) -> Iterator[Problem]:
    """A lowercase identifier, not reserved, not owned by another tenant."""
    ns = ext.namespace
    if not NAMESPACE.match(ns or "") or "__" in ns or ns.endswith("_"):
        yield Problem(
            "namespace",
            "namespace",
            f"'{ns}' is not a namespace: 2-32 lowercase letters, digits and single underscores, "
            "starting with a letter",
        )
        return
    if ns in RESERVED:
        yield Problem(
            "namespace",
            "namespace",
            f"namespace conflict: '{ns}' is reserved ({', '.join(sorted(RESERVED))})",
        )
    owner = ctx.owners.get(ns)
    if owner is not None and owner != ext.tenant_id:
        yield Problem("namespace", "namespace", f"namespace conflict: '{ns}' belongs to another tenant")


def dataset_exists(ext: Extension, ctx: Context) -> Iterator[Problem]:
    if ctx.dataset(ext) is None:
        names = ", ".join(d.name for d in ctx.base.datasets)
        yield Problem("dataset", "dataset", f"'{ext.dataset}' is not a dataset of {ctx.base.key} ({names})")


def field_names(ext: Extension, ctx: Context) -> Iterator[Problem]:
    """Each name is an identifier, given once, and neither redefines a base field nor takes a
    column another of the tenant's deployed extensions of the contract holds."""
    if not ext.fields:
        yield Problem("field_names", "fields", "an extension adds at least one field")
    base = ctx.dataset(ext)
    base_names = {f.name.lower() for f in base.fields} if base else set()
    taken = {column: other.id for other in ctx.deployed if other.id != ext.id for column in other.columns}
    seen: set[str] = set()
    for i, item in enumerate(ext.fields):
        where = f"fields[{i}].name"
        column = ext.column(item)
        if not FIELD_NAME.match(item.name or ""):
            yield Problem(
                "field_names",
                where,
                f"'{item.name}' is not a field name: lowercase letters, digits and single underscores, "
                "starting with a letter",
            )
            continue
        if item.name in seen:
            yield Problem("field_names", where, f"field '{item.name}' is given twice")
        seen.add(item.name)
        if len(column) > MAX_COLUMN:
            yield Problem(
                "field_names", where, f"'{column}' is longer than {MAX_COLUMN} characters; shorten the name"
            )
        if item.name.lower() in base_names:
            yield Problem(
                "field_names",
                where,
                f"name conflict: '{item.name}' is a field of {ctx.base.key}; an extension adds fields, a "
                "change to a base field is a change request (03d)",
            )
        if column in base_names:
            yield Problem("field_names", where, f"name conflict: '{column}' is a field of {ctx.base.key}")
        if column in taken:
            yield Problem(
                "field_names",
                where,
                f"name conflict: '{column}' is deployed already by extension {taken[column]}",
            )


def field_types(ext: Extension, _: Context) -> Iterator[Problem]:
    for i, item in enumerate(ext.fields):
        if item.type not in TYPES:
            found = f"'{item.type}'" if item.type else "no type"
            yield Problem(
                "field_types", f"fields[{i}].type", f"{item.name} has {found}; Keel knows {', '.join(TYPES)}"
            )


def classification(ext: Extension, ctx: Context) -> Iterator[Problem]:
    """Every field is classified and flagged PII or not; PII is never public or internal, and
    only a contract with a privacy tag may hold it."""
    tagged = bool(PRIVACY_TAGS & {t.upper() for t in ctx.base.regulatory_tags})
    for i, item in enumerate(ext.fields):
        if item.classification not in CLASSIFICATIONS:
            found = f"'{item.classification}'" if item.classification else "none"
            yield Problem(
                "classification",
                f"fields[{i}].classification",
                f"{item.name} has classification {found}; one of {', '.join(CLASSIFICATIONS)}",
            )
        if item.pii is None:
            yield Problem("pii_flags", f"fields[{i}].pii", f"{item.name} must say pii: true or false")
        elif item.pii and item.classification in ("public", "internal"):
            yield Problem(
                "pii_handling",
                f"fields[{i}].classification",
                f"{item.name} is PII and cannot be classified {item.classification}",
            )
        elif item.pii and not tagged:
            yield Problem(
                "pii_handling",
                f"fields[{i}].pii",
                f"{item.name} is PII but {ctx.base.key} has no privacy tag "
                f"(one of {', '.join(sorted(PRIVACY_TAGS))})",
            )


def constraints(ext: Extension, _: Context) -> Iterator[Problem]:
    """No extension field is required, unique or a key: that would change what the base
    contract guarantees (rows it holds, rows it may hold) for everyone reading it."""
    for i, item in enumerate(ext.fields):
        for name in CONSTRAINTS:
            if getattr(item, name):
                yield Problem(
                    "constraints",
                    f"fields[{i}].{name}",
                    f"constraint violation: extension field {item.name} cannot be {name.replace('_', ' ')}; "
                    "an extension never changes what the base contract guarantees",
                )


def expressions(ext: Extension, ctx: Context) -> Iterator[Problem]:
    """Each expression parses as one row-level SQL expression over the columns the base mapping
    reads, and its type fits the field (converting takes an explicit CAST)."""
    base = ctx.dataset(ext)
    if base is None:
        return
    distinct = _distinct(ctx.base, base)
    for i, item in enumerate(ext.fields):
        if item.type not in TYPES or not FIELD_NAME.match(item.name or ""):
            continue  # reported by field_types / field_names; the SQL cannot be judged without them
        where = f"fields[{i}].expression"
        try:
            node, text = parse_expression(item.expression, where, ext.column(item))
        except MappingError as error:
            yield Problem("expression", where, _short(error))
            continue
        except (SqlglotError, RecursionError) as error:  # beyond what the SQL checks can place
            yield Problem("expression", where, f"expression of {ext.column(item)}: cannot be read ({error})")
            continue
        if distinct:
            problem = (
                f"{ctx.base.key}'s mapping of {base.name} is SELECT DISTINCT: "
                "a field added to it would change its rows"
            )
            yield Problem("expression", where, problem)
            continue
        column = ext.column(item)
        target = replace(base, fields=(*base.fields, Field(column, item.type)))
        try:
            query = _extended_query(ctx.base, base, [(column, item, node)], cast=False)
            validate_mapping(render(query), target, ctx.sources, dialect=DIALECT)
        except MappingError as error:
            yield Problem("expression", where, _blamed(error, node, text))
        except (SqlglotError, RecursionError) as error:
            yield Problem("expression", where, f"{text.subject}: cannot be checked ({error})")


RULES: tuple[Rule, ...] = (
    namespace,
    dataset_exists,
    field_names,
    field_types,
    classification,
    constraints,
    expressions,
)


def check(ext: Extension, ctx: Context, rules: Sequence[Rule] = RULES) -> list[Problem]:
    """Every problem of ``ext`` on ``ctx.base``, in rule order."""
    return [problem for rule in rules for problem in rule(ext, ctx)]


def verdict(problems: Sequence[Problem]) -> str:
    """``approved`` without problems; ``blocked`` when only constraints are violated;
    else ``rejected`` (a namespace conflict rejects, whatever else is wrong)."""
    if not problems:
        return "approved"
    return "blocked" if all(p.rule == "constraints" for p in problems) else "rejected"


# -- building ----------------------------------------------------------------------------------


def parse_expression(text: str, where: str, column: str) -> tuple[exp.Expr, SqlText]:
    """One row-level SQL expression; a ``MappingError`` positioned in ``text`` otherwise."""
    sql = SqlText(text, where, f"expression of {column}")
    statements = parse_sql(sql, DIALECT)
    if not statements:
        raise sql.error("empty", "the expression is empty")
    if len(statements) > 1:
        raise sql.error(
            "several_statements",
            "an expression is one SQL expression; a second one starts here",
            statements[1][1],
        )
    node = statements[0][0]
    if isinstance(node, (exp.Command, exp.DDL, exp.DML)):
        raise sql.error("not_an_expression", "an expression is a SQL expression, not a statement", sql.whole)
    for kind, name in _NOT_ROW_LEVEL:
        found = next(node.find_all(kind), None)  # the node itself included
        if found is not None:
            problem = f"an extension field is computed from the row it extends; the expression holds {name}"
            raise sql.error("not_row_level", problem, _place(sql, found))
    return node, sql


def extended_plan(
    base: Contract,
    dataset: Dataset,
    extensions: Sequence[Extension],
    sources: Mapping[str, Dataset],
    *,
    target: str | None = None,
) -> tuple[Dataset, MappingPlan]:
    """The dataset with every extension's fields appended (named ``target``, default its own
    name) and its checked mapping, each expression cast to its field's type."""
    columns, fields = [], []
    for ext in extensions:
        for item in ext.fields:
            node, _ = parse_expression(item.expression, "expression", ext.column(item))
            columns.append((ext.column(item), item, node))
            fields.append(as_field(ext, item))
    extended = replace(dataset, name=target or dataset.name, fields=(*dataset.fields, *fields))
    query = _extended_query(base, dataset, columns, cast=True)
    return extended, validate_mapping(render(query), extended, sources, dialect=DIALECT, contract=base.key)


def as_field(ext: Extension, item: ExtensionField) -> Field:
    """The extension field as a contract field (never required, unique or a key)."""
    return Field(
        ext.column(item),
        item.type,
        classification=item.classification,
        pii=item.pii,
        description=item.description,
    )


def lineage(plan: MappingPlan, extensions: Sequence[Extension], table: str) -> list[tuple[str, str]]:
    """Column lineage ``(target, source)`` of the extension fields only; ``table`` names where
    they live (``gdp.x_order``, ``raw.shop__orders``)."""
    edges = {
        (f"{table}.{column}", f"{source_table}.{source_column}")
        for ext in extensions
        for column in ext.columns
        for source_table, source_column in plan.lineage.get(column, ())
    }
    return sorted(edges)


def extended_document(
    document: dict[str, Any], tenant_id: str, extensions: Sequence[Extension], tables: Mapping[str, str]
) -> dict[str, Any]:
    """The base ODCS document as one tenant sees it: each extension's fields appended to its
    dataset, marked with where they come from (``customProperties``: ``keelExtension``).
    ``tables`` maps a dataset to the tenant's table holding its extended rows."""
    out = copy.deepcopy(document)
    if not extensions:
        return out
    objects = {str(obj.get("physicalName") or obj.get("name") or ""): obj for obj in out.get("schema") or []}
    for ext in extensions:
        obj = objects[ext.dataset]
        obj.setdefault("properties", []).extend(_property(ext, item) for item in ext.fields)
    for name, table in tables.items():
        objects[name].setdefault("customProperties", []).append(
            {"property": "keelTenantTable", "value": table}
        )
    scope = {"tenant": tenant_id, "extensions": [ext.id for ext in extensions]}
    out.setdefault("customProperties", []).append({"property": "keelScope", "value": scope})
    return out


def render(query: exp.Expr) -> str:
    return query.sql(dialect=DIALECT, pretty=True)


# -- helpers -----------------------------------------------------------------------------------


def _property(ext: Extension, item: ExtensionField) -> dict[str, Any]:
    logical, physical = ("number", "decimal(38,9)") if item.type == "decimal" else (item.type, None)
    prop: dict[str, Any] = {"name": ext.column(item), "logicalType": logical}
    if physical:
        prop["physicalType"] = physical
    if item.classification:
        prop["classification"] = item.classification
    if item.description:
        prop["description"] = item.description
    origin = {
        "extension": ext.id,
        "tenant": ext.tenant_id,
        "namespace": ext.namespace,
        "expression": item.expression,
    }
    prop["customProperties"] = [
        {"property": "pii", "value": bool(item.pii)},
        {"property": "keelExtension", "value": origin},
    ]
    return prop


def _base_query(base: Contract, dataset: Dataset) -> exp.Query:
    """The query an extension adds its columns to: the GDP mapping, or (Raw) the Raw table's columns."""
    if base.layer is Layer.GDP:
        return sqlglot.parse_one(dataset.mapping_sql or "", read=DIALECT)
    columns = [exp.column(exp.to_identifier(f.name)) for f in dataset.fields]
    return exp.select(*columns).from_(
        exp.table_(exp.to_identifier(dataset.name), db=exp.to_identifier("raw"))
    )


def _extended_query(base: Contract, dataset: Dataset, columns, *, cast: bool) -> exp.Query:
    query = _base_query(base, dataset)
    for select in _outputs(query):
        for name, item, node in columns:
            value = node.copy()
            if cast and item.type != "array":  # an ARRAY without its element type is no SQL type
                value = exp.cast(value, exp.DataType.build(SQL_TYPES[item.type], dialect=DIALECT))
            select.select(exp.alias_(value, name), copy=False)
    return query


def _outputs(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose rows a query returns (each branch of a UNION)."""
    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.SetOperation):
        return _outputs(query.this) + _outputs(query.expression)
    return [query] if isinstance(query, exp.Select) else []


def _distinct(base: Contract, dataset: Dataset) -> bool:
    if base.layer is not Layer.GDP or not dataset.mapping_sql:
        return False
    try:
        return any(select.args.get("distinct") for select in _outputs(_base_query(base, dataset)))
    except SqlglotError:
        return False  # the published mapping parsed once; validate_mapping says why it no longer does


def _place(sql: SqlText, node: exp.Expr):
    """Where a node starts: its keyword (SELECT, the function's name) when SQLGlot kept no offset for it."""
    word = "SELECT" if isinstance(node, (exp.Query, exp.Subquery)) else None
    if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
        word = node.sql_name()
    if span_of(node) is None:
        return sql.whole
    return sql.keyword(word, node) if word else node


def _short(error: MappingError) -> str:
    """A mapping error's words without the input name it starts with (the problem names it)."""
    return error.detail.removeprefix(f"{error.fields.get('field')}: ")


def _blamed(error: MappingError, node: exp.Expr, text: SqlText) -> str:
    """The problem found in the extended mapping, placed in the expression the tenant wrote."""
    if error.token:
        for part in node.walk():
            span = span_of(part) if "start" in part.meta else None
            if span and text.text[span[0] : span[1] + 1].lower() == error.token.lower():
                return _short(text.error(error.kind, error.problem, span))
    return f"{text.subject}: {error.problem}"
