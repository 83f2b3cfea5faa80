"""``keel ticket``: review tickets listed, shown and resolved through the CLI (03a, 03g)."""

from __future__ import annotations

import pytest
from cli_harness import Cli, no_traceback

from keel.kernel.clock import utcnow
from keel.store.tables import review_tickets

TICKET = "TKT-20260101-CLI00001"


@pytest.fixture
def cli(settings):
    return Cli(settings)


@pytest.fixture
def ticket(world) -> str:
    """An open drift ticket of acme's (drift detection's ticket, as its row: the CLI reads it)."""
    with world.keel.engine.begin() as conn:
        conn.execute(
            review_tickets.insert().values(
                id=TICKET,
                tenant_id=world.tenants["acme"],
                kind="drift",
                subject="SRC-X/orders vs RAW-SHOP@1.0.0",
                details={"drift": {"added": ["channel"]}},
                status="OPEN",
                opened_by="drift",
                opened_at=utcnow(),
            )
        )
    return TICKET


def test_the_schema_steward_lists_shows_and_resolves_a_ticket_through_the_cli(cli, world, ticket):
    t = world.tokens

    listed = cli.json("ticket", "list", "--kind", "drift", "--status", "OPEN", token=t["SS"])
    shown = cli.json("ticket", "show", ticket, token=t["acme:AN"])
    resolved = cli.json("ticket", "resolve", ticket, "--note", "channel joins RAW-SHOP 1.1.0", token=t["SS"])
    again = cli("ticket", "resolve", ticket, "--note", "again", token=t["SRE"])
    table = cli("ticket", "list", "--status", "RESOLVED", token=t["SS"])

    assert [x["ticket_id"] for x in listed] == [ticket]
    assert (shown["status"], shown["details"]) == ("OPEN", {"drift": {"added": ["channel"]}})
    assert (resolved["status"], resolved["resolution"]) == ("RESOLVED", "channel joins RAW-SHOP 1.1.0")
    assert again.exit_code == 5 and "only an OPEN ticket is resolved" in again.output
    assert table.exit_code == 0 and ticket in table.output and "RESOLVED" in table.output


def test_a_ticket_is_resolved_by_the_steward_or_the_oe_only_and_never_seen_by_another_tenant(
    cli, world, ticket
):
    t = world.tokens

    analyst = cli("ticket", "resolve", ticket, "--note", "fine", token=t["acme:AN"])
    foreign = cli("ticket", "show", ticket, token=t["globex:TA"])
    no_note = cli("ticket", "resolve", ticket, "--note", " ", token=t["SRE"])

    assert analyst.exit_code == 3 and "'ticket:Resolve'" in analyst.output
    assert foreign.exit_code == 4 and "not found" in foreign.output
    assert no_note.exit_code == 2 and "field: note" in no_note.output
    assert all(no_traceback(r) for r in (analyst, foreign, no_note))
    assert cli.json("ticket", "list", token=t["globex:TA"]) == []
    assert cli.json("ticket", "show", ticket, token=t["SS"])["status"] == "OPEN"
