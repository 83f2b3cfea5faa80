"""Data-quality rules (04): validation, conflicts, and the compiled set-based SQL run on DuckDB."""

from __future__ import annotations

import duckdb
import pytest
from sqlglot import exp

from keel.kernel.errors import InvalidInput
from keel.pipeline.statements import render, table
from keel.quality import compile as dq
from keel.quality.model import validate
from keel.quality.service import conflict

SOURCE = table("gdp", "invoice")
COLUMNS = ["invoice_id", "currency", "amount_net"]


def rule(rule_id: str, field: str, check: str, on_fail: str = "alert", **params):
    return validate(
        rule_id=rule_id,
        layer="gdp",
        dataset="invoice",
        field=field,
        check=check,
        params=params,
        on_fail=on_fail,
    )


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gdp")
    con.execute("CREATE TABLE gdp.invoice (invoice_id VARCHAR, currency VARCHAR, amount_net DECIMAL(18, 2))")
    con.execute(
        "INSERT INTO gdp.invoice VALUES ('INV-1', 'EUR', 10), ('INV-2', 'USD', NULL), "
        "('BAD-3', 'XXX', 500), ('INV-1', NULL, 20)"
    )
    yield con
    con.close()


def test_every_rule_of_a_table_is_counted_in_one_query(con):
    rules = [
        rule("R-NN", "amount_net", "not_null"),
        rule("R-UQ", "invoice_id", "unique"),
        rule("R-AV", "currency", "accepted_values", values=["EUR", "USD"]),
        rule("R-RG", "amount_net", "range", min=0, max=100),
        rule("R-RX", "invoice_id", "regex", pattern="^INV-[0-9]+$"),
        rule("R-SQL", "amount_net", "custom_sql", predicate="amount_net >= 15 OR currency = 'EUR'"),
    ]
    sql = render(dq.counts_query(SOURCE, rules), "duckdb")

    # one scan of the table for the flags (and the counts over them), plus one GROUP BY over
    # invoice_id for the unique rule, which is only counted
    assert sql.count('FROM "gdp"."invoice"') == 2 and sql.count("GROUP BY") == 1
    assert "OVER" not in sql
    cursor = con.execute(sql)
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    checked, failed = dq.failures(row, rules)
    assert checked == 4
    # NULLs pass every check but not_null (as SQL CHECK constraints do)
    assert failed == {"R-NN": 1, "R-UQ": 2, "R-AV": 1, "R-RG": 1, "R-RX": 1, "R-SQL": 0}


def test_a_quarantining_unique_rule_is_a_row_flag_in_the_same_scan(con):
    rules = [rule("R-UQ", "invoice_id", "unique", "quarantine"), rule("R-NN", "amount_net", "not_null")]
    sql = render(dq.counts_query(SOURCE, rules), "duckdb")
    assert sql.count('FROM "gdp"."invoice"') == 1 and "OVER" in sql
    cursor = con.execute(sql)
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    assert dq.failures(row, rules) == (4, {"R-UQ": 2, "R-NN": 1}) and row["kept_rows"] == 2


def test_quarantine_rules_split_the_table_into_kept_and_quarantined_rows(con):
    rules = [
        rule("R-NN", "amount_net", "not_null", "quarantine"),
        rule("R-AV", "currency", "accepted_values", "quarantine", values=["EUR", "USD"]),
        rule("R-RG", "amount_net", "range", "alert", max=100),
    ]
    out = con.execute(render(dq.quarantined(SOURCE, COLUMNS, rules), "duckdb")).fetchall()
    kept = con.execute(render(dq.kept(SOURCE, COLUMNS, rules), "duckdb")).fetchall()

    assert sorted((r[0], r[3]) for r in out) == [("BAD-3", "R-AV"), ("INV-2", "R-NN")]
    assert all(r[4].startswith(("amount_net fails not_null", "currency fails accepted_values")) for r in out)
    assert len({r[5] for r in out}) == 2  # each quarantined row has an id of its own
    assert sorted(r[0] for r in kept) == ["INV-1", "INV-1"]  # the alert rule only counts


def test_released_rows_must_pass_the_blocking_and_quarantining_rules(con):
    rules = [
        rule("R-NN", "amount_net", "not_null", "quarantine"),
        rule("R-UQ", "invoice_id", "unique", "block"),
    ]
    (left,) = con.execute(render(dq.still_failing(SOURCE, rules, exp.true()), "duckdb")).fetchone()
    assert left == 1  # unique is a table-wide check and is left to the next build


@pytest.mark.parametrize(
    ("check", "params", "message"),
    [
        ("no_such_check", {}, "unknown check"),
        ("accepted_values", {}, "list of"),
        ("range", {}, "min, max"),
        ("range", {"min": 5, "max": 1}, "above max"),
        ("regex", {"pattern": "(["}, "not a valid regular expression"),
        ("custom_sql", {"predicate": "amount_net >>> ("}, "does not parse"),
        ("custom_sql", {"predicate": "(SELECT 1)"}, "not a statement"),
        ("not_null", {"values": [1]}, "no parameters"),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_error(check, params, message):
    with pytest.raises(InvalidInput, match=message):
        rule("R-BAD", "amount_net", check, **params)


def test_rules_that_cannot_both_hold_conflict():
    eur = rule("R-A", "currency", "accepted_values", values=["EUR"])
    assert conflict(eur, rule("R-B", "currency", "accepted_values", values=["USD"]))
    assert conflict(eur, rule("R-C", "currency", "accepted_values", values=["USD", "EUR"])) is None
    assert conflict(
        rule("R-D", "amount_net", "range", min=0, max=10), rule("R-E", "amount_net", "range", min=20)
    )
    assert (
        conflict(rule("R-F", "amount_net", "range", min=0, max=10), rule("R-G", "amount_net", "range", max=5))
        is None
    )
    assert conflict(
        rule("R-H", "amount_net", "range", min=100),
        rule("R-I", "amount_net", "accepted_values", values=[1, 2]),
    )
    assert conflict(
        rule("R-J", "amount_net", "not_null"),
        rule("R-K", "amount_net", "custom_sql", predicate="amount_net IS NULL"),
    )
    assert conflict(eur, rule("R-L", "amount_net", "accepted_values", values=["USD"])) is None  # other field
