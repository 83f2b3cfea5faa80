"""``keel rbac`` (story 00d: define, apply, review) and ``keel breakglass``."""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def define_and_apply(cli: Cli, world, *extra: str) -> str:
    bundle = cli.json("rbac", "define", *extra, token=world.tokens["SA"])
    applied = cli.json("rbac", "apply", bundle["bundle_id"], token=world.tokens["PA"])
    assert applied["status"] == "APPLIED"
    return bundle["bundle_id"]


def test_a_bundle_is_defined_applied_and_reviewed_by_three_personas(cli, world):
    bundle_id = define_and_apply(cli, world)

    reviewed = cli.json("rbac", "review", bundle_id, "--approve", token=world.tokens["CO"])
    bundles = cli.json("rbac", "list", token=world.tokens["AU"])
    policy = cli("rbac", "policy", token=world.tokens["AU"])

    receipt = reviewed["receipt"]
    assert (reviewed["status"], receipt["bundle_id"], receipt["compliance_check"], receipt["findings"]) == (
        "REVIEWED",
        bundle_id,
        "PASS",
        [],
    )
    assert (receipt["defined_by"], receipt["applied_by"], receipt["reviewed_by"]) == (
        world.actors["SA"].user_id,
        world.actors["PA"].user_id,
        world.actors["CO"].user_id,
    )
    assert [b["status"] for b in bundles if b["bundle_id"] == bundle_id] == ["REVIEWED"]
    assert (
        policy.exit_code == 0
        and f"# active bundle: {bundle_id}" in policy.stdout
        and "permit" in policy.stdout
    )
    assert [e["payload"]["bundle_id"] for e in world.events("rbac.reviewed")][-1] == bundle_id


def test_a_review_with_a_finding_rejects_the_bundle(cli, world, tmp_path):
    document = tmp_path / "bundle.json"
    baseline = cli.json("rbac", "list", token=world.tokens["SA"])[0]["document"]
    document.write_text(json.dumps({**baseline, "name": "tightened"}))
    bundle_id = define_and_apply(cli, world, "--bundle", str(document))

    reviewed = cli.json(
        "rbac", "review", bundle_id, "--reject", "--finding", "SRE keeps access it no longer needs",
        token=world.tokens["CO"],
    )  # fmt: skip

    assert (reviewed["status"], reviewed["receipt"]["compliance_check"]) == ("REJECTED", "FAIL")
    assert [f["detail"] for f in reviewed["receipt"]["findings"]] == ["SRE keeps access it no longer needs"]
    [mine] = [b for b in cli.json("rbac", "list", token=world.tokens["AU"]) if b["bundle_id"] == bundle_id]
    assert (mine["name"], mine["status"]) == ("tightened", "REJECTED")


def test_defining_is_the_security_admins_job(cli, world):
    result = cli("rbac", "define", token=world.tokens["PA"])

    assert result.exit_code == 3
    assert result.stderr.startswith("error: 'rbac:Define'")


def test_break_glass_is_requested_then_approved_for_a_time_box(cli, world):
    ticket = cli.json(
        "breakglass", "request", "--tenant", world.tenants["acme"], "--action", "workflow:Execute",
        "--minutes", "30", "--justification", "INC-42: stuck payout workflow", token=world.tokens["SRE"],
    )  # fmt: skip
    approved = cli.json("breakglass", "approve", ticket["ticket_id"], token=world.tokens["PO"])

    assert (ticket["status"], ticket["actions"], ticket["minutes"]) == ("PENDING", ["workflow:Execute"], 30)
    assert {k: approved[k] for k in ("ticket_id", "status", "user_id", "tenant_id")} == {
        "ticket_id": ticket["ticket_id"],
        "status": "APPROVED",
        "user_id": world.actors["SRE"].user_id,
        "tenant_id": world.tenants["acme"],
    }
    too_long = cli(
        "breakglass", "request", "--tenant", world.tenants["acme"], "--action", "workflow:Execute",
        "--minutes", "500", "--justification", "x", token=world.tokens["SRE"],
    )  # fmt: skip
    assert (too_long.exit_code, "  field: minutes" in too_long.stderr.splitlines()) == (2, True)
