"""``keel connector`` and ``keel source`` (00b, 02, 02b, 13), each step by its persona, through the CLI.

The source is the sample CRM on loopback HTTP; its API key reaches the CLI through an
environment variable, never the command line.
"""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli, no_traceback

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
