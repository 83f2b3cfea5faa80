"""A table's enabled rules as set-based SQLGlot queries (pure).

Each rule becomes one boolean flag per row (true: the row breaks it; a NULL value
passes every check but ``not_null``, as SQL ``CHECK`` constraints do). ``counts_query``
counts the flags of every rule in one scan; ``quarantined`` and ``kept`` split the
table on its ``quarantine`` rules. No row ever comes back to Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from keel.quality.model import Rule, parse_predicate

ROWS = "rows"
RULE_COLUMN, REASON_COLUMN, QID_COLUMN = "_keel_rule_id", "_keel_reason", "_keel_qid"
FLAGS = "flags"


def _literal(value) -> exp.Expr:
    return exp.Literal.string(value) if isinstance(value, str) else exp.Literal.number(value)


def violation(rule: Rule) -> exp.Expr:
    """True where a row breaks ``rule`` (never NULL)."""
    column = exp.column(rule.field, quoted=True)
    params = rule.params
    if rule.check == "not_null":
        return column.is_(exp.null())
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
    else:  # custom_sql: the predicate must hold
        broken = exp.not_(exp.Paren(this=parse_predicate(params["predicate"])))
    return exp.Coalesce(this=exp.Paren(this=broken), expressions=[exp.false()])


def _flag(i: int) -> exp.Column:
    return exp.column(f"r{i}", quoted=True)


def _flagged(source: exp.Table, columns: Sequence[str], rules: Sequence[Rule]) -> exp.Subquery:
    """``(SELECT columns, <flag of rule i> AS r<i> FROM source) AS flags``."""
    select = exp.select(
        *(exp.column(c, quoted=True) for c in columns),
        *(exp.alias_(violation(r), f"r{i}", quoted=True) for i, r in enumerate(rules)),
    ).from_(source)
    return exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(FLAGS, quoted=True)))


def counts_query(source: exp.Table, rules: Sequence[Rule]) -> exp.Select:
    """One row: ``rows`` and ``r<i>``, the rows breaking rule i, from one scan of ``source``."""
    counted = [
        exp.alias_(
            exp.Count(this=exp.Case(ifs=[exp.If(this=_flag(i), true=exp.Literal.number(1))])),
            f"r{i}",
            quoted=True,
        )
        for i in range(len(rules))
    ]
    return exp.select(exp.alias_(exp.Count(this=exp.Star()), ROWS, quoted=True), *counted).from_(
        _flagged(source, [], rules) if rules else source
    )


def failures(row: Mapping[str, int], rules: Sequence[Rule]) -> tuple[int, dict[str, int]]:
    """The rows checked and the failures per rule id, from the row of ``counts_query``."""
    return int(row[ROWS]), {r.rule_id: int(row[f"r{i}"]) for i, r in enumerate(rules)}


def _quarantining(rules: Sequence[Rule]) -> list[int]:
    return [i for i, r in enumerate(rules) if r.on_fail == "quarantine"]


def reason(rule: Rule) -> str:
    params = ", ".join(f"{k}={v}" for k, v in rule.params.items() if v is not None)
    return f"{rule.field} fails {rule.check}" + (f" ({params})" if params else "") + f" [{rule.key}]"


def quarantined(source: exp.Table, columns: Sequence[str], rules: Sequence[Rule]) -> exp.Select:
    """The rows breaking a ``quarantine`` rule: their columns, the first such rule and why, an id."""
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
        )
        .from_(_flagged(source, columns, rules))
        .where(exp.or_(*(_flag(i) for i in marks)))
    )


def kept(source: exp.Table, columns: Sequence[str], rules: Sequence[Rule]) -> exp.Select:
    """The rows breaking no ``quarantine`` rule."""
    marks = _quarantining(rules)
    return (
        exp.select(*(exp.column(c, quoted=True) for c in columns))
        .from_(_flagged(source, columns, rules))
        .where(exp.not_(exp.or_(*(_flag(i) for i in marks))))
    )


def still_failing(source: exp.Table, rules: Sequence[Rule], where: exp.Expr) -> exp.Select:
    """How many rows of ``source`` matching ``where`` break a row-level (not ``unique``) rule that
    blocks or quarantines: released rows must pass them."""
    checked = [r for r in rules if r.on_fail in ("block", "quarantine") and r.check != "unique"]
    if not checked:
        return exp.select(exp.alias_(exp.Literal.number(0), ROWS, quoted=True))
    return (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), ROWS, quoted=True))
        .from_(source)
        .where(where)
        .where(exp.or_(*(violation(r) for r in checked)))
    )
