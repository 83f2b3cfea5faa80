"""``keel rule``: the new checks through the CLI (04): referential integrity and row counts."""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_referential_and_table_level_rules_are_defined_enabled_and_listed(cli, world):
    t = world.tokens
    ri = cli.json(
        "rule", "define", "GDP-INVOICE-CUSTOMER-EXISTS", "--dataset", "invoice", "--field", "customer_id",
        "--check", "referential_integrity", "--on-fail", "quarantine",
        "--params", json.dumps({"dataset": "customer", "field": "customer_id"}), token=t["SS"],
    )  # fmt: skip
    rows = cli.json(
        "rule", "define", "GDP-INVOICE-ENOUGH-ROWS", "--dataset", "invoice", "--field", "invoice_id",
        "--check", "row_count", "--on-fail", "block", "--params", json.dumps({"min": 1}), token=t["SS"],
    )  # fmt: skip
    enabled = cli.json("rule", "enable", "GDP-INVOICE-CUSTOMER-EXISTS", token=t["PA"])
    listed = cli.json("rule", "list", "--dataset", "invoice", token=t["SS"])

    assert (ri["check"], ri["params"]) == (
        "referential_integrity",
        {"dataset": "customer", "field": "customer_id"},
    )
    assert (rows["check"], rows["params"]) == ("row_count", {"min": 1, "max": None})
    assert enabled["enabled"] is True
    assert [r["rule_id"] for r in listed] == ["GDP-INVOICE-CUSTOMER-EXISTS", "GDP-INVOICE-ENOUGH-ROWS"]


def test_a_table_level_rule_that_would_quarantine_is_refused_naming_the_field(cli, world):
    refused = cli(
        "rule", "define", "GDP-INVOICE-FRESH", "--dataset", "invoice", "--field", "issued_on",
        "--check", "freshness", "--on-fail", "quarantine", "--params", json.dumps({"max_age_hours": 24}),
        token=world.tokens["SS"],
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "on_fail" in refused.output and "cannot quarantine rows" in refused.output


def test_a_kpi_rule_quarantine_is_listed_and_released_from_the_cli(cli, world):
    from tests.acceptance.test_pipeline_runs import FIRST, _land
    from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract

    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orders"))
    publish_contract(world, kpi_contract())
    _land(world, FIRST)
    t, acme = world.tokens, world.tenants["acme"]
    cli.json(
        "rule", "define", "KPI-ORDER-VALUE-PLAUSIBLE", "--layer", "kpi", "--dataset", "kpi_order_value",
        "--field", "value", "--check", "range", "--on-fail", "quarantine",
        "--params", json.dumps({"min": 0, "max": 300}), token=t["SS"],
    )  # fmt: skip
    cli.json("rule", "enable", "KPI-ORDER-VALUE-PLAUSIBLE", token=t["PA"])
    cli.json("pipeline", "run", "GDP-ORDER", "--tenant", acme, "--full", token=t["acme:DE"])

    held = cli.json(
        "rule", "quarantine", "kpi_order_value", "--tenant", acme, "--layer", "kpi", token=t["acme:DE"]
    )
    (row,) = held
    qid = row["quarantine_id"]
    edited = cli(
        "rule", "release", "kpi_order_value", "--tenant", acme, "--layer", "kpi", "--id", qid,
        "--fixes", json.dumps({qid: {"value": 1}}), token=t["acme:DE"],
    )  # fmt: skip
    released = cli.json(
        "rule", "release", "kpi_order_value", "--tenant", acme, "--layer", "kpi", "--id", qid,
        "--false-positive", token=t["acme:DE"],
    )  # fmt: skip

    assert row["rule_id"] == "KPI-ORDER-VALUE-PLAUSIBLE"
    assert edited.exit_code != 0 and "false positives" in edited.output
    assert (released["released"], released["false_positive"]) == (1, True)
    assert (
        cli.json(
            "rule", "quarantine", "kpi_order_value", "--tenant", acme, "--layer", "kpi", token=t["acme:DE"]
        )
        == []
    )
