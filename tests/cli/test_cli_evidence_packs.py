"""``keel evidence template``: export templates defined and packs generated through the CLI (05)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_the_compliance_officer_defines_a_template_and_generates_a_pack(cli, world):
    t = world.tokens
    acme = world.tenants["acme"]

    defined = cli.json(
        "evidence", "template", "define", "EV-STD-01", "--section", "action_receipts",
        "--section", "identity_map", "--retention-years", "7", token=t["CO"],
    )  # fmt: skip
    listed = cli.json("evidence", "template", "list", token=t["AU"])
    pack = cli.json("evidence", "template", "pack", "EV-STD-01", "--tenant", acme, token=t["CO"])
    refused = cli("evidence", "template", "pack", "EV-STD-01", "--tenant", acme, token=t["AU"])

    assert (defined["version"], defined["sections"]) == (1, ["action_receipts", "identity_map"])
    assert [x["template_id"] for x in listed] == ["EV-STD-01"]
    assert hashlib.sha256(Path(pack["path"]).read_bytes()).hexdigest() == pack["sha256"]
    assert refused.exit_code != 0
