"""Data-quality rules (04): referential integrity, freshness, row count and volume change.

Compiled to set-based SQL and run on DuckDB: a referential-integrity rule is one hash
anti-join (a mark join) per rule, table-level rules are aggregates of the one counts scan.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from keel.kernel.errors import InvalidInput
from keel.pipeline.statements import render, table
from keel.quality import compile as dq
from keel.quality.model import validate
from keel.quality.service import conflict

SOURCE = table("gdp", "invoice")
COLUMNS = ["invoice_id", "customer_id", "issued_at"]
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def rule(rule_id: str, field: str, check: str, on_fail: str = "alert", /, **params):
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
    con.execute("CREATE TABLE gdp.customer (id VARCHAR)")
    con.execute("INSERT INTO gdp.customer VALUES ('C-1'), ('C-2'), (NULL)")
    con.execute("CREATE TABLE gdp.invoice (invoice_id VARCHAR, customer_id VARCHAR, issued_at TIMESTAMPTZ)")
    con.execute(
        "INSERT INTO gdp.invoice VALUES ('INV-1', 'C-1', '2026-03-01 06:00+00'), "
        "('INV-2', 'C-9', '2026-02-28 10:00+00'), ('INV-3', NULL, NULL), ('INV-4', 'C-8', NULL)"
    )
    yield con
    con.close()


def _counts(con, rules, **kwargs) -> dict:
    cursor = con.execute(render(dq.counts_query(SOURCE, rules, now=NOW, **kwargs), "duckdb"))
    return dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))


RI = {"dataset": "customer", "field": "id"}


def test_referential_integrity_is_one_anti_join_and_null_keys_pass(con):
    rules = [rule("R-RI", "customer_id", "referential_integrity", **RI)]
    sql = render(dq.counts_query(SOURCE, rules, now=NOW), "duckdb")
    plan = con.execute(f"EXPLAIN {sql}").fetchall()[0][1]

    assert plan.count("MARK") == 1 and plan.count("Seq Scan") == 2  # one scan each side, one join
    assert dq.failures(_counts(con, rules), rules) == (4, {"R-RI": 2})  # C-9 and C-8; NULL passes


def test_table_level_rules_are_aggregates_of_the_same_scan(con):
    rules = [
        rule("R-NN", "issued_at", "not_null"),
        rule("R-FRESH", "issued_at", "freshness", max_age_hours=12),
        rule("R-STALE", "issued_at", "freshness", max_age_hours=1),
        rule("R-MANY", "invoice_id", "row_count", min=5),
        rule("R-FEW", "invoice_id", "row_count", min=1, max=4),
        rule("R-GREW", "invoice_id", "volume_change", max_percent=50),
        rule("R-STEADY", "invoice_id", "volume_change", max_percent=100),
    ]
    sql = render(dq.counts_query(SOURCE, rules, now=NOW, previous_rows=2), "duckdb")
    assert sql.count("FROM") == 2  # one scan: the flags subquery and the aggregates over it

    row = _counts(con, rules, previous_rows=2)
    _, failed = dq.failures(row, rules)
    assert failed == {
        "R-NN": 2,
        "R-FRESH": 0,  # newest 06:00, 6 hours before NOW
        "R-STALE": 1,
        "R-MANY": 1,
        "R-FEW": 0,
        "R-GREW": 1,  # 2 -> 4 rows is +100 %
        "R-STEADY": 0,
    }
    seen = dq.observations(row, rules)
    assert seen["R-FRESH"].startswith("2026-03-01 06:00") and seen["R-MANY"] == "4"


def test_volume_change_without_a_previous_build_passes_and_an_empty_table_is_not_fresh(con):
    rules = [rule("R-VOL", "invoice_id", "volume_change", max_percent=1)]
    assert dq.failures(_counts(con, rules), rules)[1] == {"R-VOL": 0}
    con.execute("DELETE FROM gdp.invoice")
    fresh = [rule("R-FRESH", "issued_at", "freshness", max_age_hours=24)]
    assert dq.failures(_counts(con, fresh), fresh)[1] == {"R-FRESH": 1}


def test_row_count_and_volume_judge_the_rows_that_stay_after_quarantine(con):
    rules = [
        rule("R-RI", "customer_id", "referential_integrity", "quarantine", **RI),
        rule("R-ROWS", "invoice_id", "row_count", min=3),
    ]
    row = _counts(con, rules)
    assert (row["rows"], row["kept_rows"], dq.failures(row, rules)[1]) == (4, 2, {"R-RI": 2, "R-ROWS": 1})

    out = con.execute(render(dq.quarantined(SOURCE, COLUMNS, rules), "duckdb")).fetchall()
    kept = con.execute(render(dq.kept(SOURCE, COLUMNS, rules), "duckdb")).fetchall()
    assert sorted(r[0] for r in out) == ["INV-2", "INV-4"] and {r[3] for r in out} == {"R-RI"}
    assert sorted(r[0] for r in kept) == ["INV-1", "INV-3"]


def test_released_rows_must_still_reference_an_existing_key(con):
    from sqlglot import exp

    rules = [
        rule("R-RI", "customer_id", "referential_integrity", "quarantine", **RI),
        rule("R-ROWS", "invoice_id", "row_count", "block", min=100),  # table-level: not per row
    ]
    (left,) = con.execute(render(dq.still_failing(SOURCE, rules, exp.true()), "duckdb")).fetchone()
    assert left == 2


@pytest.mark.parametrize(
    ("check", "params", "on_fail", "message"),
    [
        ("freshness", {"max_age_hours": 24}, "quarantine", "cannot quarantine rows"),
        ("row_count", {"min": 1}, "quarantine", "cannot quarantine rows"),
        ("volume_change", {"max_percent": 10}, "quarantine", "cannot quarantine rows"),
        ("referential_integrity", {"dataset": "customer"}, "alert", "params.field"),
        ("referential_integrity", {"dataset": "Customers!", "field": "id"}, "alert", "params.dataset"),
        ("referential_integrity", {**RI, "where": "x"}, "alert", "only dataset and field"),
        ("referential_integrity", {"dataset": 5, "field": "id"}, "alert", "params.dataset"),
        ("freshness", {}, "alert", "max_age_hours"),
        ("freshness", {"max_age_hours": -1}, "alert", "above 0"),
        ("row_count", {}, "alert", "min, max"),
        ("row_count", {"min": 1.5}, "alert", "whole number"),
        ("row_count", {"min": 9, "max": 3}, "alert", "above max"),
        ("volume_change", {"max_percent": 0}, "alert", "above 0"),
    ],
)
def test_invalid_table_rules_are_refused_naming_the_field(check, params, on_fail, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        rule("R-BAD", "invoice_id", check, on_fail, **params)
    assert refused.value.fields.get("field") or refused.value.detail


def test_row_count_ranges_that_cannot_both_hold_conflict_on_any_field():
    assert conflict(
        rule("R-A", "invoice_id", "row_count", min=100), rule("R-B", "customer_id", "row_count", max=10)
    )
    assert (
        conflict(rule("R-C", "invoice_id", "row_count", min=1), rule("R-D", "issued_at", "row_count", max=10))
        is None
    )
    assert (
        conflict(
            rule("R-E", "issued_at", "freshness", max_age_hours=1),
            rule("R-F", "issued_at", "freshness", max_age_hours=9),
        )
        is None
    )
