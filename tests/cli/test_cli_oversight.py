"""``keel``: compliance review (01), decommissioning audit (01c), receipts and invitations."""

from __future__ import annotations

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_a_failed_compliance_review_blocks_the_tenant_and_a_passing_one_unblocks_it(cli, world):
    acme = world.tenants["acme"]

    failed = cli.json(
        "tenant",
        "review-compliance",
        acme,
        "--reject",
        "--finding",
        "no network evidence",
        token=world.tokens["CO"],
    )
    passed = cli.json("tenant", "review-compliance", acme, token=world.tokens["CO"])

    assert (failed["status"], failed["review"]["findings"]) == ("BLOCKED", ["no network evidence"])
    assert (passed["status"], passed["review"]["compliance_check"]) == ("ACTIVE", "PASS")


def test_a_review_without_findings_cannot_fail_and_says_why(cli, world):
    result = cli("tenant", "review-compliance", world.tenants["acme"], "--reject", token=world.tokens["CO"])

    assert result.exit_code == 2
    assert "findings: a failed review names at least one finding" in result.stderr


def test_the_auditor_audits_a_decommissioning_from_the_cli(cli, world):
    globex = world.tenants["globex"]
    request_id = cli.json("tenant", "offboard", globex, "--reason", "ended", token=world.tokens["PA"])[
        "request_id"
    ]
    cli.json("tenant", "approve-offboarding", request_id, token=world.tokens["PO"])
    cli.json("tenant", "archive-evidence", globex, token=world.tokens["CO"])
    cli.json("tenant", "decommission", globex, "--request", request_id, token=world.tokens["PA"])
    cli.json("tenant", "confirm-wipe", globex, token=world.tokens["SA"])

    audit = cli.json("tenant", "audit-decommission", globex, token=world.tokens["AU"])
    refused = cli("tenant", "audit-decommission", globex, token=world.tokens["CO"])

    assert (audit["policy_adherence"], audit["findings"]) == ("PASS", [])
    assert refused.exit_code == 3


def test_receipts_are_listed_and_filtered(cli, world):
    everything = cli.json("evidence", "receipts", token=world.tokens["CO"])
    deployments = cli.json("evidence", "receipts", "--kind", "deployment", token=world.tokens["AU"])
    table = cli("evidence", "receipts", "--subject", world.tenants["acme"], token=world.tokens["AU"])

    assert len(everything) == 6
    assert [r["kind"] for r in deployments] == ["deployment"]
    assert table.exit_code == 0 and "tenant.provisioning" in table.stdout and "deployment" not in table.stdout


def test_a_lost_invitation_is_reissued_and_accepted_from_the_cli(cli, world):
    member = cli.json(
        "user", "create", "--email", "late@acme.test", "--name", "Late", "--role", "AN",
        "--tenant", world.tenants["acme"], token=world.tokens["acme:TA"],
    )  # fmt: skip
    again = cli.json("user", "reinvite", member["id"], token=world.tokens["acme:TA"])

    accepted = cli.json(
        "user", "accept-invitation", "--invitation", again["token"], "--password-stdin",
        input="a long enough password\n",
    )  # fmt: skip
    login = cli("login", "--email", "late@acme.test", "--password-stdin", input="a long enough password\n")

    assert accepted["status"] == "ACTIVE"
    assert login.exit_code == 0, login.output
