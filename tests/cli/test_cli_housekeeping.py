"""``keel housekeeping`` and ``keel scheduler``: policies, holds, runs, compaction, the scheduler (05b)."""

from __future__ import annotations

import duckdb
import pytest
from cli_harness import Cli


@pytest.fixture
def cli(settings):
    return Cli(settings)


def _invoices(world) -> None:
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    with duckdb.connect(str(path)) as con:
        con.execute(
            'CREATE TABLE gdp."invoice__v1_0_0" AS SELECT i AS invoice_id, '
            "now() - to_days(CAST(i * 30 AS INTEGER)) AS issued_at FROM range(24) t(i)"
        )


def test_a_policy_is_defined_approved_held_run_and_listed(cli, world):
    t, acme = world.tokens, world.tenants["acme"]
    _invoices(world)
    define = ("housekeeping", "policy", "define", "RET-12M", "--scope", "gdp", "--retention-months", "12",
              "--action", "tier_to_cold", "--table", "invoice", "--time-column", "issued_at")  # fmt: skip

    defined = cli.json(*define, token=t["PA"])
    approved = cli.json("housekeeping", "policy", "approve", "RET-12M", token=t["CO"])
    listed = cli.json("housekeeping", "policy", "list", token=t["AU"])
    hold = cli.json("housekeeping", "hold", "place", "--tenant", acme, "--layer", "gdp", "--reason", "Case 9",
                    token=t["SA"])  # fmt: skip
    (blocked,) = cli.json("housekeeping", "run", "--tenant", acme, token=t["PA"])
    release = ("housekeeping", "hold", "release", hold["hold_id"], "--tenant", acme, "--reason", "closed")
    released = cli.json(*release, token=t["SA"])
    (tiered,) = cli.json("housekeeping", "run", "--tenant", acme, "--policy", "RET-12M", token=t["PA"])
    runs = cli.json("housekeeping", "runs", "--tenant", acme, "--status", "SUCCEEDED", token=t["acme:TA"])
    compacted = cli.json("housekeeping", "compact", "--tenant", acme, "--layer", "gdp", "--table",
                         "invoice__v1_0_0", token=t["SRE"])  # fmt: skip
    holds = cli.json("housekeeping", "hold", "list", "--tenant", acme, "--released", token=t["SA"])

    assert (defined["status"], approved["status"]) == ("pending_approval", "approved")
    assert [p["policy_id"] for p in listed] == ["RET-12M"]
    assert blocked["status"] == "BLOCKED" and hold["hold_id"] in blocked["reason"]
    assert released["status"] == "released"
    assert (tiered["status"], tiered["rows_tiered"]) == ("SUCCEEDED", 11)
    assert [r["run_id"] for r in runs] == [tiered["run_id"]]
    assert compacted["status"] == "SUCCEEDED"
    assert [h["hold_id"] for h in holds] == [hold["hold_id"]]
    refused = cli("housekeeping", "policy", "approve", "RET-12M", token=t["PA"])
    assert refused.exit_code != 0 and "housekeeping:ApprovePolicy" in refused.output


def test_the_scheduler_lists_changes_and_ticks_its_jobs(cli, world):
    t = world.tokens
    jobs = cli.json("scheduler", "list", token=t["SRE"])
    assert {"housekeeping.retention", "housekeeping.compaction", "housekeeping.footprint"} <= {
        j["name"] for j in jobs
    }

    changed = cli.json(
        "scheduler", "set", "housekeeping.compaction", "--every-seconds", "3600", token=t["SRE"]
    )
    assert changed["every_seconds"] == 3600
    ran = cli.json("scheduler", "tick", "--job", "housekeeping.footprint", token=t["PA"])
    assert [(j["name"], j["last_status"], j["runs"]) for j in ran] == [
        ("housekeeping.footprint", "SUCCEEDED", 1)
    ]
    assert cli.json("scheduler", "tick", "--job", "housekeeping.footprint", token=t["PA"]) == []
    refused = cli("scheduler", "tick", token=t["acme:TA"])
    assert refused.exit_code != 0
