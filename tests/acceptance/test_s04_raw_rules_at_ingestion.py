"""Story 04 "enforce in ingest": Raw-layer rules applied to each batch as it lands in Raw.

The source is the sample ERP in a real SQLite file (its invoices hold a few NULL amounts and
unknown currencies). A quarantine rule lands only the good rows and keeps the rest in the
stream's ``__dq_quarantine`` table; a block rule rejects the batch, nothing of it lands; an
alert rule only counts.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_onboarding import (
    api,
    erp_ready,
)

from keel.samples.erp import CURRENCIES

RULES = "/api/v1/quality-rules"
BASE = {"layer": "raw", "dataset": "erp__invoices"}


@pytest.fixture
def erp(world, tmp_path):
    url, counts, source = erp_ready(world, "acme", tmp_path)
    with sa.create_engine(url).connect() as conn:
        nulls = conn.execute(sa.text("SELECT count(*) FROM invoices WHERE amount_net IS NULL")).scalar()
        odd = conn.execute(
            sa.text(
                f"SELECT count(*) FROM invoices WHERE currency NOT IN ({', '.join(map(repr, CURRENCIES))})"
            )
        ).scalar()
    assert nulls and odd  # the sample is dirty, as it should be
    return {"counts": counts, "source_id": source["source_id"], "nulls": nulls, "odd": odd}


def _rule(world, body: dict) -> None:
    defined = world.post("SS", RULES, BASE | body)
    assert defined.status_code == 201, defined.text
    enabled = world.post("PA", f"{RULES}/{defined.json()['rule_id']}/enable")
    assert enabled.status_code == 200, enabled.text


def _sync(world, erp) -> dict:
    answer = world.post("acme:IO", f"{api(world.tenants['acme'])}/sources/{erp['source_id']}/runs", json={})
    assert answer.status_code == 201, answer.text
    return {r["stream"]: r for r in answer.json()["items"]}


def _raw(world, sql: str):
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _applied(world, rule_id: str) -> list[dict]:
    return [e["payload"] for e in world.events("rule.applied") if e["payload"]["rule_id"] == rule_id]


def test_a_quarantine_rule_lands_the_good_rows_and_keeps_the_rest_aside(world, erp):
    _rule(
        world,
        {
            "rule_id": "RAW-INVOICE-AMT-SET",
            "field": "amount_net",
            "check": "not_null",
            "on_fail": "quarantine",
        },
    )

    runs = _sync(world, erp)

    total, nulls = erp["counts"]["invoices"], erp["nulls"]
    assert runs["invoices"]["status"] == "SUCCEEDED" and runs["invoices"]["rows"] == total - nulls
    assert _raw(world, 'SELECT count(*), count(amount_net) FROM raw."erp__invoices"') == [
        (total - nulls,) * 2
    ]
    kept = _raw(
        world, 'SELECT count(*), count(DISTINCT _keel_rule_id) FROM raw."erp__invoices__dq_quarantine"'
    )
    assert kept == [(nulls, 1)]
    applied = _applied(world, "RAW-INVOICE-AMT-SET")
    assert sum(a["failed"] for a in applied) == nulls and {a["table"] for a in applied} == {
        "raw.erp__invoices"
    }
    assert world.events("alert.fired")[-1]["payload"]["kind"] == "data_quality"
    assert runs["customers"]["rows"] == erp["counts"]["customers"]  # other streams have no rules


def test_a_block_rule_rejects_the_batch_and_nothing_of_it_lands(world, erp):
    _rule(
        world,
        {
            "rule_id": "RAW-INVOICE-CURRENCY",
            "field": "currency",
            "check": "accepted_values",
            "params": {"values": sorted(CURRENCIES)},
            "on_fail": "block",
        },
    )

    runs = _sync(world, erp)

    invoices = runs["invoices"]
    assert invoices["status"] == "FAILED", invoices
    assert "RAW-INVOICE-CURRENCY" in invoices["error"]["message"]
    # the 80 invoices are one batch (5,000 records a batch): it was the stream's first, so even
    # the Raw table it would have created is not there, and the checkpoint did not move
    assert invoices["rows"] == 0
    assert _raw(world, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'erp__invoices'") == [(0,)]
    assert _raw(world, "SELECT count(*) FROM raw._keel_state WHERE stream = 'invoices'") == [(0,)]
    assert world.events("policy.enforced")[-1]["payload"]["rule_id"] == "RAW-INVOICE-CURRENCY"
    assert any(a["blocked"] for a in _applied(world, "RAW-INVOICE-CURRENCY"))
    assert runs["customers"]["status"] == "SUCCEEDED"  # bad data fails only its own stream's run


def test_an_alert_rule_lands_everything_and_counts(world, erp):
    _rule(
        world,
        {
            "rule_id": "RAW-INVOICE-MANY",
            "field": "invoice_id",
            "check": "row_count",
            "params": {"min": 1_000_000},
            "on_fail": "alert",
        },
    )

    runs = _sync(world, erp)

    assert runs["invoices"]["status"] == "SUCCEEDED" and runs["invoices"]["rows"] == erp["counts"]["invoices"]
    (applied,) = _applied(world, "RAW-INVOICE-MANY")
    assert applied["failed"] >= 1 and applied["level"] == "table" and applied["blocked"] is False
