"""``keel tenant``: stories 01, 01b and 01c, each step by its persona, through the CLI."""

from __future__ import annotations

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def provision_initech(cli: Cli, world) -> str:
    tenant = cli.json(
        "tenant", "provision", "--slug", "initech", "--name", "Initech", "--admin-email", "ta@initech.test",
        "--region", "eu-west", "--quota-mb", "512", token=world.tokens["PA"],
    )  # fmt: skip
    assert {k: tenant[k] for k in ("slug", "status", "region", "storage_quota_mb")} == {
        "slug": "initech",
        "status": "PROVISIONED",
        "region": "eu-west",
        "storage_quota_mb": 512,
    }
    return tenant["tenant_id"]


def test_a_tenant_goes_from_provisioned_to_wiped_through_the_cli(cli, world):
    t = provision_initech(cli, world)
    validated = cli.json("tenant", "validate", t, token=world.tokens["SA"])
    listed = cli.json("tenant", "list", token=world.tokens["PA"])
    request = cli.json("tenant", "offboard", t, "--reason", "contract ended", token=world.tokens["PA"])
    request_id = request["request_id"]
    decision = cli.json("tenant", "approve-offboarding", request_id, token=world.tokens["PO"])
    archive = cli.json("tenant", "archive-evidence", t, token=world.tokens["CO"])
    decommissioned = cli.json("tenant", "decommission", t, "--request", request_id, token=world.tokens["PA"])
    wiped = cli.json("tenant", "confirm-wipe", t, token=world.tokens["SA"])
    shown = cli.json("tenant", "show", t, token=world.tokens["PA"])

    assert validated["status"] == "ACTIVE"
    assert {x["slug"] for x in listed} == {"acme", "globex", "initech"}
    assert (request["status"], decision["status"]) == ("PENDING", "APPROVED")
    assert len(archive["sha256"]) == 64 and archive["archived_by"] == world.actors["CO"].user_id
    assert (decommissioned["status"], wiped["status"], shown["status"]) == ("DECOMMISSIONED",) * 3
    receipt = shown["receipts"][-1]
    assert {k: receipt[k] for k in ("status", "deleted_by", "validated_by", "archived_by")} == {
        "status": "DECOMMISSIONED",
        "deleted_by": world.actors["PA"].user_id,
        "validated_by": world.actors["SA"].user_id,
        "archived_by": world.actors["CO"].user_id,
    }
    assert [e["tenant_id"] for e in world.events("tenant.decommissioned")] == [t]
    assert [e["tenant_id"] for e in world.events("data.wiped")] == [t]


def test_validation_hides_the_invitation_token_unless_asked_to_hand_it_over(cli, world):
    hidden_id = provision_initech(cli, world)
    hidden = cli.json("tenant", "validate", hidden_id, token=world.tokens["SA"])
    shown_id = cli.json(
        "tenant", "provision", "--slug", "hooli", "--name", "Hooli", "--admin-email", "ta@hooli.test",
        token=world.tokens["PA"],
    )["tenant_id"]  # fmt: skip
    shown = cli.json("tenant", "validate", shown_id, "--show-invitation", token=world.tokens["SA"])

    assert hidden["invitation"]["token"] == "(hidden: issued once, pass --show-invitation to print it)"
    assert len(shown["invitation"]["token"]) >= 20 and "hidden" not in shown["invitation"]["token"]


def test_a_rejected_offboarding_request_cannot_decommission(cli, world):
    t = world.tenants["globex"]
    request = cli.json("tenant", "offboard", t, "--reason", "duplicate account", token=world.tokens["PA"])
    request_id = request["request_id"]
    rejected = cli.json(
        "tenant", "approve-offboarding", request_id, "--reject", "--reason", "still under contract",
        token=world.tokens["PO"],
    )  # fmt: skip

    blocked = cli("tenant", "decommission", t, "--request", request_id, token=world.tokens["PA"])

    assert rejected["status"] == "REJECTED"
    assert blocked.exit_code == 5
    assert blocked.stderr.startswith("error: decommissioning needs an approved offboarding request")
    assert cli.json("tenant", "show", t, token=world.tokens["PA"])["status"] == "ACTIVE"


def test_the_tenant_table_lists_every_tenant_with_its_status(cli, world):
    result = cli("tenant", "list", token=world.tokens["AU"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for slug in ("acme", "globex"):
        [row] = [line for line in lines if world.tenants[slug] in line]
        assert f" {slug} " in row and " ACTIVE " in row
