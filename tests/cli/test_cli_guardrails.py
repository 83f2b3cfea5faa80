"""``keel guardrail``: define, enable, list and evaluate through the CLI (04, 05b)."""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_a_quota_is_defined_enabled_and_refuses_past_its_limit(cli, world):
    t = world.tokens
    acme = world.tenants["acme"]
    spec = json.dumps(
        {"policy_id": "ACT-QUOTA-01", "scope": "tenant", "quota_per_day": 1, "enforcement": "block"}
    )

    defined = cli.json("guardrail", "define", spec, token=t["SA"])
    enabled = cli.json("guardrail", "enable", "ACT-QUOTA-01", token=t["PA"])
    listed = cli.json("guardrail", "list", token=t["AU"])
    first = cli.json(
        "guardrail", "evaluate", "--tenant", acme, "--action", "workflow:Execute", token=t["acme:TA"]
    )
    second = cli(
        "guardrail", "evaluate", "--tenant", acme, "--action", "workflow:Execute", token=t["acme:TA"]
    )

    assert (defined["version"], enabled["status"]) == (1, "enabled")
    assert [g["guardrail_id"] for g in listed] == ["ACT-QUOTA-01"]
    assert first["allowed"] is True
    assert second.exit_code != 0 and "ACT-QUOTA-01" in second.output
    board = cli.json("guardrail", "events", "--tenant", acme, token=t["SRE"])
    assert board["enforcements"] == [
        {"guardrail_id": "ACT-QUOTA-01", "outcome": "blocked", "tenant_id": acme, "count": 1}
    ]
