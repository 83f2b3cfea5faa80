"""Raw-layer rules at ingestion (04): applied to each batch inside the batch's own transaction.

``RawStore.commit_batch`` inserts a batch, then calls ``apply_to_batch`` before it commits:
the rules of the stream's Raw table (``layer = raw``, ``dataset`` = the Raw table name, e.g.
``shop__invoices``) are counted over the batch's rows by the same compiled query GDP builds
run (``compile.counts_query``, one scan). A failing ``block`` rule raises ``RuleBlocked`` and
the batch rolls back: nothing of it lands, the stream's checkpoint does not move. Rows failing
a ``quarantine`` rule move to ``raw."<table>__dq_quarantine"`` (their columns plus the rule,
the reason and a quarantine id) and only the good rows land. ``alert`` rules are counted.
Table-level rules judge the batch: ``row_count`` its rows, ``volume_change`` against the
previous batch of the stream, ``freshness`` its newest value. ``unique`` looks within the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from keel.ingestion.raw import DQ_QUARANTINE
from keel.kernel.errors import InvalidInput
from keel.quality.compile import counts_query, failures, observations, quarantined, reference
from keel.quality.errors import RuleBlocked, missing_reference

BATCH_VIEW = "_keel_dq_batch"
SUFFIX = DQ_QUARANTINE


def _sql(tree: exp.Expr) -> str:
    return tree.sql(dialect="duckdb")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_to_batch(
    con, table: str, batch_id: str, rules: Sequence, *, previous_rows: int | None = None
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Apply ``rules`` to the rows of ``batch_id`` in ``raw."<table>"`` on the DuckDB connection
    ``con`` (inside the batch's transaction): (rows moved to quarantine, outcome per rule id)."""
    rules = tuple(rules)
    if not rules:
        return 0, {}
    columns = [row[0] for row in con.execute(f"DESCRIBE raw.{_quoted(table)}").fetchall()]
    for rule in rules:
        if rule.field not in columns:
            raise InvalidInput("rules", f"rule {rule.key} checks '{rule.field}', not a column of raw.{table}")
        if rule.check == "referential_integrity":
            ref = reference(rule)
            found = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'gdp' "
                "AND table_name = ?",
                [rule.params["dataset"]],
            ).fetchall()
            if not found:
                raise missing_reference(rule, f"{_sql(ref)} has no active build")
            if rule.params["field"] not in {c for (c,) in found}:
                raise missing_reference(
                    rule, f"gdp.{rule.params['dataset']} has no field {rule.params['field']}"
                )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {BATCH_VIEW} AS SELECT * FROM raw.{_quoted(table)} "
        f"WHERE _keel_batch_id = '{batch_id}'"
    )
    try:
        batch = exp.to_table(BATCH_VIEW)
        cursor = con.execute(_sql(counts_query(batch, rules, previous_rows=previous_rows)))
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
        checked, failed = failures(row, rules)
        observed = observations(row, rules)
        outcome: dict[str, dict[str, Any]] = {}
        for rule in rules:
            level = {"level": "table", "observed": observed[rule.rule_id]} if rule.table_level else {}
            total = 1 if rule.table_level else checked
            outcome[rule.rule_id] = {
                "version": rule.version,
                "on_fail": rule.on_fail,
                "checked": total,
                "failed": failed[rule.rule_id],
                "passed": total - failed[rule.rule_id],
                **level,
            }
        blocked = [r for r in rules if r.on_fail == "block" and failed[r.rule_id]]
        if blocked:
            raise RuleBlocked(f"raw.{table}", blocked, outcome)
        moved = 0
        if any(r.on_fail == "quarantine" and failed[r.rule_id] for r in rules):
            moved = _quarantine(con, table, batch_id, batch, columns, rules)
        return moved, outcome
    finally:
        con.execute(f"DROP VIEW IF EXISTS {BATCH_VIEW}")


def _quarantine(con, table: str, batch_id: str, batch: exp.Table, columns: list[str], rules) -> int:
    """Copy the batch's rows failing a quarantine rule to the side table, delete them from Raw."""
    side = f"raw.{_quoted(f'{table}__{SUFFIX}')}"
    select = _sql(quarantined(batch, columns, rules))
    con.execute(f"CREATE TABLE IF NOT EXISTS {side} AS {select} LIMIT 0")
    have = {row[0] for row in con.execute(f"DESCRIBE {side}").fetchall()}
    for name, kind, *_ in con.execute(f"DESCRIBE raw.{_quoted(table)}").fetchall():
        if name not in have:  # the Raw table grew a column since: the side table grows it too
            con.execute(f"ALTER TABLE {side} ADD COLUMN {_quoted(name)} {kind}")
    con.execute(f"INSERT INTO {side} BY NAME {select}")
    (moved,) = con.execute(f"SELECT count(*) FROM {side} WHERE _keel_batch_id = ?", [batch_id]).fetchone()
    con.execute(
        f"DELETE FROM raw.{_quoted(table)} WHERE _keel_batch_id = ? AND _keel_record_hash IN "
        f"(SELECT _keel_record_hash FROM {side} WHERE _keel_batch_id = ?)",
        [batch_id, batch_id],
    )
    return int(moved)
