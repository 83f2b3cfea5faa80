"""``keel kpi``: publish, read, unpublish, roll back and list publications through the CLI (06, 07)."""

from __future__ import annotations

import pytest
from cli_harness import Cli
from tests.acceptance.test_s06_kpi_publishing import COLUMNS, KPI_ID, ORDERS, _expected
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract, write_raw


def _build(world) -> None:  # builds are the pipeline's verbs; this test is about the kpi verbs
    built = world.post(
        "acme:DE", f"/api/v1/tenants/{world.tenants['acme']}/builds", {"schema_id": "GDP-ORDER"}
    )
    assert built.status_code == 200, built.text


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_a_kpi_is_published_read_rolled_back_and_withdrawn(cli, world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    publish_contract(world, kpi_contract())
    write_raw(world, "acme", "shop__orders", COLUMNS, ORDERS)
    t, acme = world.tokens, world.tenants["acme"]
    _build(world)

    unpublished = cli.json("kpi", "list", "--tenant", acme, token=t["acme:BO"])
    published = cli.json("kpi", "publish", KPI_ID, "--tenant", acme, token=t["PA"])
    listed = cli.json("kpi", "list", "--tenant", acme, token=t["acme:BO"])
    shown = cli.json("kpi", "show", KPI_ID, "--tenant", acme, token=t["acme:BO"])
    publish_contract(world, kpi_contract(version="2.0.0", formula="MAX(amount)"))
    _build(world)
    second = cli.json("kpi", "publish", KPI_ID, "--tenant", acme, "--version", "2.0.0", token=t["PA"])
    back = cli.json("kpi", "rollback", KPI_ID, "--tenant", acme, token=t["PA"])
    withdrawn = cli.json("kpi", "unpublish", KPI_ID, "--tenant", acme, token=t["PA"])
    history = cli.json("kpi", "publications", KPI_ID, "--tenant", acme, token=t["CO"])
    table = cli("kpi", "publications", KPI_ID, "--tenant", acme, token=t["CO"])
    refused = cli("kpi", "publish", KPI_ID, "--tenant", acme, token=t["acme:TA"])
    gone = cli("kpi", "show", KPI_ID, "--tenant", acme, token=t["acme:BO"])

    assert unpublished == [] and [k["kpi_id"] for k in listed] == [KPI_ID]
    assert (published["status"], second["version"], back["version"]) == ("PUBLISHED", "2.0.0", "1.0.0")
    assert {r["period"]: r["value"] for r in shown["history"]} == pytest.approx(_expected(ORDERS))
    assert withdrawn["status"] == "UNPUBLISHED"
    assert [(p["version"], p["status"]) for p in history] == [
        ("1.0.0", "UNPUBLISHED"),
        ("2.0.0", "ROLLED_BACK"),
        ("1.0.0", "SUPERSEDED"),
    ]
    assert table.exit_code == 0 and "ROLLED_BACK" in table.output
    assert refused.exit_code != 0 and "kpi:Publish" in refused.output
    assert gone.exit_code != 0 and "not found" in gone.output
