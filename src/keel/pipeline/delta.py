"""The rows a GDP mapping adds when its Raw inputs only grow (pure).

Raw tables are append-only: every row carries the ``_keel_batch_id`` of the batch that
landed it. For a mapping that is a select-project-join (inner joins, row filters, no
aggregates, windows, DISTINCT, subqueries, set operations or clock-dependent
functions), the new result is the old one plus, for the table references ``r1 … rm``
that gained batches, the sum of the terms

    Q(r1 old, …, r(k-1) old, rk new rows only, r(k+1) …, rm as they are now)

(the telescoping rule of incremental view maintenance: each new combination of rows
is counted exactly once, by its first new row). ``delta_query`` writes those terms as
one ``UNION ALL`` with batch-id filters; anything else is rebuilt in full, and
``not_incremental`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from keel.pipeline.statements import qualified_name

BATCH = "_keel_batch_id"

# Functions whose value depends on when the query runs: an older row computed with them
# would differ from a rebuild's.
_CLOCK = (exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime, exp.Rand, exp.Uuid)
_CLOCK_NAMES = frozenset(  # the same, as DuckDB spells some of them (parsed as plain function calls)
    {"now", "get_current_timestamp", "transaction_timestamp", "current_localtimestamp", "gen_random_uuid",
     "random", "uuid", "today", "get_current_time"}
)  # fmt: skip
_INNER = ("", "INNER", "CROSS")


def not_incremental(query: exp.Expr) -> str | None:
    """Why the mapping's new rows cannot be computed from the new Raw rows alone; None if they can."""
    if not isinstance(query, exp.Select):
        return "the mapping is not one SELECT (a UNION or a query in parentheses)"
    for clause, what in (
        ("with_", "a WITH clause"),
        ("group", "GROUP BY"),
        ("having", "HAVING"),
        ("qualify", "QUALIFY"),
        ("distinct", "DISTINCT"),
        ("limit", "LIMIT"),
        ("offset", "OFFSET"),
    ):
        if query.args.get(clause):
            return f"the mapping uses {what}: a new row can change rows built earlier"
    for node in query.walk():
        if node is query:
            continue
        if isinstance(node, exp.Window):
            return "the mapping uses a window function: a new row can change rows built earlier"
        if isinstance(node, exp.AggFunc):
            return "the mapping aggregates: a new row can change rows built earlier"
        if isinstance(node, exp.Select | exp.Subquery | exp.SetOperation):
            return "the mapping has a subquery"
        if isinstance(node, exp.Unnest | exp.Lateral):
            return "the mapping unnests or joins laterally"
        if isinstance(node, _CLOCK) or (
            isinstance(node, exp.Anonymous) and node.name.lower() in _CLOCK_NAMES
        ):
            return f"the mapping calls {node.sql()}: its value depends on when it runs"
    for join in query.args.get("joins") or ():
        side, kind = (join.side or "").upper(), (join.kind or "").upper()
        if side or kind not in _INNER:
            what = " ".join(p for p in (side, kind) if p)
            return f"the mapping has a {what} JOIN: a new row can change rows built earlier"
    return None


def references(query: exp.Expr) -> list[exp.Table]:
    """The query's table references, in a stable order (the order ``delta_query`` numbers them)."""
    return list(query.find_all(exp.Table))


def delta_query(
    query: exp.Select, new: Mapping[str, Sequence[str]], staged: Mapping[str, exp.Table] | None = None
) -> exp.Query | None:
    """The mapping restricted to the combinations of rows with at least one new row, as one query;
    ``new`` maps each input (``raw.erp__invoices``) to its batch ids not yet built. None: no input
    gained a batch. ``query`` must pass ``not_incremental``; its table references must be aliased
    (a qualified mapping always is).

    ``staged`` maps an input to a table already holding just its new rows, read instead of
    filtering the input: the engine then knows how few they are and joins accordingly."""
    positions = [i for i, t in enumerate(references(query)) if new.get(qualified_name(t))]
    if not positions:
        return None
    terms = []
    for k, position in enumerate(positions):
        term = query.copy()
        tables = references(term)
        for earlier in positions[:k]:
            term = term.where(exp.not_(_in_batches(tables[earlier], new)), copy=False)
        reference = tables[position]
        name = qualified_name(reference)
        if staged and name in staged:
            replacement = staged[name].copy()
            replacement.set(
                "alias", exp.TableAlias(this=exp.to_identifier(reference.alias_or_name, quoted=True))
            )
            reference.replace(replacement)
        else:
            term = term.where(_in_batches(reference, new), copy=False)
        terms.append(term)
    combined: exp.Query = terms[0]
    for term in terms[1:]:
        combined = exp.union(combined, term, distinct=False)
    return combined


def _in_batches(reference: exp.Table, new: Mapping[str, Sequence[str]]) -> exp.Expr:
    batch = exp.column(BATCH, table=exp.to_identifier(reference.alias_or_name, quoted=True), quoted=True)
    ids = new[qualified_name(reference)]
    return exp.In(this=batch, expressions=[exp.Literal.string(i) for i in ids])
