"""Errors of data-quality rules."""

from __future__ import annotations

from keel.kernel.errors import Conflict


class RuleBlocked(Conflict):
    """A ``block`` rule failed while building a table: the build rolled back, nothing changed."""

    def __init__(self, table: str, rules, outcome: dict) -> None:
        names = ", ".join(f"{r.key} ({outcome[r.rule_id]['failed']} rows)" for r in rules)
        super().__init__(
            f"building {table} was blocked by data-quality rule {names}; nothing was published",
            table=table,
            rules=[r.rule_id for r in rules],
        )
        self.table = table
        self.outcome = outcome
