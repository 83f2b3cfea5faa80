"""Raw-layer rules on one batch (04): ``keel.quality.ingest.apply_to_batch`` on a real DuckDB."""

from __future__ import annotations

import duckdb
import pytest

from keel.kernel.errors import InvalidInput
from keel.quality.errors import RuleBlocked
from keel.quality.ingest import apply_to_batch
from keel.quality.model import validate


def rule(rule_id: str, field: str, check: str, on_fail: str, /, **params):
    return validate(
        rule_id=rule_id, layer="raw", dataset="erp__invoices", field=field, check=check, params=params,
        on_fail=on_fail,
    )  # fmt: skip


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute(
        'CREATE TABLE raw."erp__invoices" (_keel_batch_id VARCHAR, _keel_record_hash VARCHAR, '
        "invoice_id VARCHAR, amount DOUBLE)"
    )
    con.execute(
        "INSERT INTO raw.erp__invoices VALUES ('B1', 'h1', 'I-1', 1), ('B1', 'h2', 'I-2', NULL), "
        "('B2', 'h3', 'I-3', NULL), ('B2', 'h4', 'I-4', 4)"
    )
    yield con
    con.close()


def test_only_the_batch_is_judged_and_its_failing_rows_move_aside(con):
    moved, outcome = apply_to_batch(
        con, "erp__invoices", "B2", [rule("R-NN", "amount", "not_null", "quarantine")]
    )

    assert (moved, outcome["R-NN"]["checked"], outcome["R-NN"]["failed"]) == (1, 2, 1)
    left = con.execute("SELECT invoice_id FROM raw.erp__invoices ORDER BY 1").fetchall()
    assert left == [("I-1",), ("I-2",), ("I-4",)]  # B1's NULL was not this batch's
    aside = con.execute('SELECT invoice_id, _keel_rule_id FROM raw."erp__invoices__dq_quarantine"').fetchall()
    assert aside == [("I-3", "R-NN")]


def test_the_side_table_grows_the_columns_the_raw_table_gains(con):
    nn = [rule("R-NN", "amount", "not_null", "quarantine")]
    apply_to_batch(con, "erp__invoices", "B1", nn)
    con.execute("ALTER TABLE raw.erp__invoices ADD COLUMN currency VARCHAR")
    con.execute("INSERT INTO raw.erp__invoices VALUES ('B3', 'h5', 'I-5', NULL, 'EUR')")

    moved, _ = apply_to_batch(con, "erp__invoices", "B3", nn)

    assert moved == 1
    rows = con.execute(
        'SELECT invoice_id, currency FROM raw."erp__invoices__dq_quarantine" ORDER BY 1'
    ).fetchall()
    assert rows == [("I-2", None), ("I-5", "EUR")]


def test_a_block_rule_raises_and_a_rule_on_a_missing_column_is_refused(con):
    with pytest.raises(RuleBlocked, match="R-ROWS"):
        apply_to_batch(
            con, "erp__invoices", "B1", [rule("R-ROWS", "invoice_id", "row_count", "block", min=5)]
        )
    with pytest.raises(InvalidInput, match=r"not a column of raw\.erp__invoices"):
        apply_to_batch(con, "erp__invoices", "B1", [rule("R-X", "nope", "not_null", "alert")])
    assert con.execute("SELECT count(*) FROM raw.erp__invoices").fetchone() == (4,)  # nothing moved
