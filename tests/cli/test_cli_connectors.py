"""``keel connector`` and ``keel source`` (00b, 02, 02b, 03a, 13), each step by its persona, through the CLI.

The source is the sample CRM on loopback HTTP; its API key reaches the CLI through an
environment variable, never the command line.
"""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli, no_traceback
from tests.support_contracts import publish_contract, raw_contract

from keel.samples.crm import serve_crm


@pytest.fixture
def cli(settings):
    return Cli(settings)


@pytest.fixture(scope="module")
def crm():
    with serve_crm() as server:
        yield server


def test_a_source_is_onboarded_and_ingested_through_the_cli(cli, world, crm, tmp_path):
    tenant = world.tenants["acme"]
    t = world.tokens
    templates = cli.json("connector", "templates", token=t["acme:DE"])
    assert "crm-http" in {x["name"] for x in templates}
    connector = cli.json(
        "connector", "deploy", "--tenant", tenant, "--template", "crm-http", "--name", "CRM", token=t["PA"]
    )
    cid = connector["connector_id"]
    config = tmp_path / "crm.json"
    config.write_text(json.dumps({"base_url": crm.url, "auth": {"type": "bearer"}}))

    configured = cli.json(
        "connector",
        "configure",
        cid,
        "--config",
        str(config),
        "--secret",
        "auth.token=CRM_KEY",
        token=t["acme:DE"],
        env={"CRM_KEY": crm.api_key},
    )
    cli.json("connector", "validate-secrets", cid, "--tenant", tenant, token=t["SA"])
    active = cli.json("connector", "preflight", cid, "--tenant", tenant, token=t["PA"])
    source = cli.json(
        "source",
        "request",
        "--name",
        "CRM",
        "--stream",
        "accounts",
        "--stream",
        "opportunities",
        "--justification",
        "pipeline KPIs",
        "--connector",
        cid,
        token=t["acme:DE"],
    )
    sid = source["source_id"]
    for verb, who in (("register", "PA"), ("validate", "SA"), ("preflight", "PA"), ("handshake", "PA")):
        last = cli.json("source", verb, sid, "--tenant", tenant, token=t[who])
    runs = cli.json("source", "ingest", sid, token=t["acme:IO"])
    listed = cli.json("source", "runs", "--source", sid, token=t["acme:DE"])

    assert configured["config"]["auth"] == {"type": "bearer", "token": "***"}
    assert active["status"] == "ACTIVE" and last["status"] == "READY"
    assert {r["stream"]: r["status"] for r in runs} == {"accounts": "SUCCEEDED", "opportunities": "SUCCEEDED"}
    assert sum(r["rows"] for r in runs) == len(crm.data["accounts"]) + len(crm.data["opportunities"])
    assert sorted(r["run_id"] for r in listed) == sorted(r["run_id"] for r in runs)
    assert crm.api_key not in json.dumps([configured, active, last, runs])


def test_bad_cli_input_is_named_and_exits_2(cli, world, tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    missing_env = cli(
        "connector",
        "configure",
        "CON-x",
        "--config",
        str(config),
        "--secret",
        "password=NOPE",
        token=world.tokens["acme:DE"],
        env={"NOPE": None},
    )
    no_tenant = cli("connector", "list", token=world.tokens["PA"])
    bad_pair = cli(
        "connector",
        "configure",
        "CON-x",
        "--config",
        str(config),
        "--secret",
        "password",
        token=world.tokens["acme:DE"],
    )

    for result, words in ((missing_env, "NOPE is not set"), (no_tenant, "--tenant"), (bad_pair, "PATH=ENV")):
        assert result.exit_code == 2, result.output
        assert words in result.output and no_traceback(result)


def test_a_source_is_linked_to_a_raw_contract_in_its_request_or_later_through_the_cli(cli, world):
    publish_contract(world, raw_contract(table="orders"))  # a dataset named after the stream
    t = world.tokens
    request = ["source", "request", "--stream", "orders", "--justification", "orders for DSO"]

    named = cli.json(*request, "--name", "Shop", "--raw-contract", "RAW-SHOP", token=t["acme:DE"])
    later = cli.json(*request, "--name", "Shop EU", token=t["acme:DE"])
    linked = cli.json("source", "raw-contract", later["source_id"], "RAW-SHOP", token=t["acme:TA"])
    shown = cli.json("source", "show", later["source_id"], token=t["acme:DE"])

    assert (named["raw_contract"], later["raw_contract"]) == ("RAW-SHOP", None)
    assert linked["raw_contract"] == shown["raw_contract"] == "RAW-SHOP"
    [event] = world.events("source.raw_contract.linked")
    assert (event["actor_id"], event["payload"]["raw_contract"]) == (
        world.actors["acme:TA"].user_id,
        "RAW-SHOP@1.0.0",
    )


def test_a_raw_contract_the_source_cannot_use_is_named_and_only_its_de_or_ta_link_one(cli, world):
    publish_contract(world, raw_contract(table="orders"))
    t = world.tokens
    request = ["source", "request", "--stream", "orders", "--justification", "orders for DSO"]
    sid = cli.json(*request, "--name", "Shop", token=t["acme:DE"])["source_id"]

    unknown = cli("source", "raw-contract", sid, "RAW-NOPE", token=t["acme:DE"])
    refused_request = cli(*request, "--name", "Shop EU", "--raw-contract", "RAW-NOPE", token=t["acme:DE"])
    analyst = cli("source", "raw-contract", sid, "RAW-SHOP", token=t["acme:AN"])
    provider = cli(
        "source", "raw-contract", sid, "RAW-SHOP", "--tenant", world.tenants["acme"], token=t["PA"]
    )

    for result in (unknown, refused_request):
        assert result.exit_code == 2, result.output
        assert "'RAW-NOPE' is not a Raw contract" in result.output and "field: raw_contract" in result.output
    for result in (analyst, provider):
        assert result.exit_code == 3, result.output
        assert "'source:Request' requires connector:M" in result.output
    assert all(no_traceback(r) for r in (unknown, refused_request, analyst, provider))
    assert cli.json("source", "show", sid, token=t["acme:DE"])["raw_contract"] is None
    assert [s["name"] for s in cli.json("source", "list", token=t["acme:DE"])] == ["Shop"]
