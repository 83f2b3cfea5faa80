"""``keel platform``: story 00a's deployment chain, driven through the CLI."""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli
from tests.support import World


@pytest.fixture
def cli(settings):
    return Cli(settings)


@pytest.fixture
def undeployed(keel, client):
    return World.build(keel, client, deploy=False, baseline=False)


def test_the_platform_is_deployed_request_approve_execute_validate(cli, undeployed):
    w = undeployed
    template = {"name": "keel-cli-test", "version": "2"}
    path = w.keel.settings.home.parent / "template.json"
    path.write_text(json.dumps(template))

    requested = cli.json("platform", "deploy", "--template", str(path), token=w.tokens["PA"])
    dep = requested["deployment_id"]
    approved = cli.json("platform", "approve", dep, token=w.tokens["PO"])
    executed = cli.json("platform", "deploy", "--execute", dep, token=w.tokens["PA"])
    validated = cli.json("platform", "validate", dep, token=w.tokens["SA"])
    status = cli.json("platform", "status", token=w.tokens["AU"])

    assert [requested["status"], approved["status"], executed["status"], validated["status"]] == [
        "REQUESTED",
        "APPROVED",
        "DEPLOYED",
        "VALIDATED",
    ]
    assert (requested["template"]["name"], requested["template"]["version"]) == ("keel-cli-test", "2")
    assert (validated["requested_by"], validated["approved_by"], validated["validated_by"]) == (
        w.actors["PA"].user_id,
        w.actors["PO"].user_id,
        w.actors["SA"].user_id,
    )
    assert status["health"]["components"]["platform"]["status"] == "ok"
    assert [(d["deployment_id"], d["status"]) for d in status["deployments"]] == [(dep, "VALIDATED")]
    assert [e["payload"]["deployment_id"] for e in w.events("infra.deployed")] == [dep]


def test_a_deployment_the_security_admin_rejects_is_rolled_back(cli, undeployed):
    w = undeployed
    dep = cli.json("platform", "deploy", token=w.tokens["PA"])["deployment_id"]
    cli.json("platform", "approve", dep, token=w.tokens["PO"])
    cli.json("platform", "execute", dep, token=w.tokens["PA"])

    result = cli("platform", "reject", dep, "--reason", "network not segmented", token=w.tokens["SA"])

    assert result.exit_code == 0, result.output
    assert "rejected by the Security Admin: network not segmented" in result.stdout
    shown = cli.json("platform", "status", token=w.tokens["PA"])
    assert [(d["deployment_id"], d["status"]) for d in shown["deployments"]] == [(dep, "ROLLED_BACK")]
    assert shown["health"]["components"]["platform"]["status"] == "not_deployed"


def test_status_without_signing_in_shows_health_only(cli, undeployed):
    result = cli("platform", "status")

    assert result.exit_code == 0, result.output
    assert "platform" in result.stdout and "not_deployed" in result.stdout
    assert "sign in (keel login) to list deployments" in result.stdout
