"""``keel pipeline``: run incrementally or in full, list and show the recorded runs."""

from __future__ import annotations

import pytest
from cli_harness import Cli
from tests.acceptance.test_pipeline_runs import FIRST, LATE, _land
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_runs_are_started_listed_and_shown(cli, world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orders"))
    publish_contract(world, kpi_contract())
    _land(world, FIRST)
    token, acme = world.tokens["acme:DE"], world.tenants["acme"]

    cli.json("pipeline", "run", "GDP-ORDER", "--tenant", acme, token=token)
    _land(world, LATE)
    refreshed = cli.json("pipeline", "run", "GDP-ORDER", "--tenant", acme, token=token)
    full = cli.json("pipeline", "run", "GDP-ORDER", "--tenant", acme, "--full", token=token)
    listed = cli.json("pipeline", "runs", "--tenant", acme, "--layer", "gdp", token=token)
    gdp_run = refreshed["runs"][0]
    shown = cli.json("pipeline", "show", gdp_run["id"], "--tenant", acme, token=token)
    table = cli("pipeline", "runs", "--tenant", acme, token=token)

    assert (gdp_run["mode"], gdp_run["delta_rows"]) == ("incremental", 2)
    assert full["mode"] == "full" and full["runs"][0]["delta_rows"] == 5
    assert [r["mode"] for r in listed] == ["full", "incremental", "full"]
    assert shown["id"] == gdp_run["id"] and shown["rows"] == 5
    assert table.exit_code == 0 and "incremental" in table.output


def test_evidence_completeness_is_checked_from_the_cli(cli, world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orders"))
    publish_contract(world, kpi_contract())
    _land(world, FIRST)
    acme = world.tenants["acme"]
    cli.json("pipeline", "run", "GDP-ORDER", "--tenant", acme, token=world.tokens["acme:DE"])

    report = cli.json("evidence", "completeness", token=world.tokens["CO"])
    table = cli("evidence", "completeness", "--tenant", acme, token=world.tokens["AU"])

    assert report["tenants"][acme]["evidence_completeness_rate"] == 1.0
    assert table.exit_code == 0 and acme in table.output
