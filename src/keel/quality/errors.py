"""Errors of data-quality rules."""

from __future__ import annotations

from keel.kernel.errors import Conflict


class RuleBlocked(Conflict):
    """A ``block`` rule failed while building a table: the build rolled back, nothing changed."""

    def __init__(self, table: str, rules, outcome: dict) -> None:
        names = ", ".join(f"{r.key} ({_failure(outcome[r.rule_id])})" for r in rules)
        super().__init__(
            f"building {table} was blocked by data-quality rule {names}; nothing was published",
            table=table,
            rules=[r.rule_id for r in rules],
        )
        self.table = table
        self.outcome = outcome


def _failure(result: dict) -> str:
    if result.get("level") == "table":
        return f"the table fails it; observed {result.get('observed')}"
    return f"{result['failed']} rows"


def missing_reference(rule, why: str) -> Conflict:
    """A ``referential_integrity`` rule whose referenced GDP table or field is not there."""
    return Conflict(
        f"data-quality rule {rule.key} checks {rule.field} against "
        f"gdp.{rule.params['dataset']}.{rule.params['field']}, but {why}; build it first",
        rule_id=rule.rule_id,
        references=f"gdp.{rule.params['dataset']}",
    )
