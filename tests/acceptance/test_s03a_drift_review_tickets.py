"""Story 03a step 5: the review ticket a schema drift opens is seen and resolved through the REST API.

A real source (CSV files read by the ``files`` connector) is linked to a published Raw
contract, then delivers a column the contract lacks: the run opens a drift ticket. The
Schema Steward lists it, reads it and resolves it with a note; the note stays in the
ticket and the ledger holds its hash only. A ticket is resolved once; the acme tenant's
people see it, globex's read it as one that does not exist, and an analyst cannot resolve it.
"""

from __future__ import annotations

import hashlib

import pytest
from tests.support_contracts import publish_contract, raw_contract
from tests.support_onboarding import active_connector, api, ready_source

TICKETS = "/api/v1/review-tickets"
ORDERS = {"order_id": "string", "customer_email": "string", "amount": "number", "placed_at": "date"}
NOTE = "channel is a new optional column of the shop export; RAW-SHOP 1.1.0 will declare it"


@pytest.fixture
def drift(world, tmp_path) -> dict:
    """acme's order files gained a column its Raw contract (drift policy ``stop``) lacks; one run
    found it. The run as the API answered it."""
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "order_id,customer_email,amount,placed_at,channel\nA1,ann@shop.test,10.5,2026-01-05,web\n"
    )
    config = {"path": str(folder), "pattern": "*.csv", "format": "csv", "stream": "orders"}
    connector = active_connector(world, "acme", "files", "Shop", config)
    publish_contract(world, raw_contract(table="shop__orders", fields=ORDERS, drift_policy="stop"))
    source_id = ready_source(world, "acme", connector["connector_id"], "Shop", ["orders"])["source_id"]
    sources = f"{api(world.tenants['acme'])}/sources/{source_id}"
    assert world.put("acme:DE", f"{sources}/raw-contract", {"raw_contract": "RAW-SHOP"}).status_code == 200
    answer = world.post("acme:IO", f"{sources}/runs", json={})
    assert answer.status_code == 201, answer.text
    [run] = answer.json()["items"]
    assert (run["status"], run["error"]["failure"]) == ("FAILED", "drift")
    return run


def test_the_schema_steward_sees_the_drift_ticket_and_resolves_it_once(world, drift):
    ticket_id = drift["error"]["ticket_id"]

    listed = world.get("SS", TICKETS, params={"kind": "drift", "status": "OPEN"})
    shown = world.get("SS", f"{TICKETS}/{ticket_id}")
    resolved = world.post("SS", f"{TICKETS}/{ticket_id}/resolution", {"note": NOTE})
    again = world.post("SS", f"{TICKETS}/{ticket_id}/resolution", {"note": "once more"})

    assert listed.status_code == 200, listed.text
    assert [t["ticket_id"] for t in listed.json()["items"]] == [ticket_id]
    ticket = shown.json()
    assert {k: ticket[k] for k in ("kind", "status", "tenant_id", "resolved_by", "resolution")} == {
        "kind": "drift",
        "status": "OPEN",
        "tenant_id": world.tenants["acme"],
        "resolved_by": None,
        "resolution": None,
    }
    assert ticket["details"]["drift"]["added"] == ["channel"]
    assert resolved.status_code == 200, resolved.text
    assert {k: resolved.json()[k] for k in ("status", "resolved_by", "resolution")} == {
        "status": "RESOLVED",
        "resolved_by": world.actors["SS"].user_id,
        "resolution": NOTE,
    }
    assert resolved.json()["details"] == ticket["details"]  # the findings are kept as they were
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    [event] = world.events("review_ticket.resolved")
    assert event["actor_id"] == world.actors["SS"].user_id
    assert event["tenant_id"] == world.tenants["acme"]
    assert event["payload"] == {
        "ticket_id": ticket_id,
        "kind": "drift",
        "note_sha256": hashlib.sha256(NOTE.encode()).hexdigest(),
    }
    assert "new optional column" not in str(event)  # the ledger holds the note's hash, not its text
    assert world.get("SS", TICKETS, params={"status": "OPEN"}).json()["items"] == []
    assert [t["status"] for t in world.get("SS", TICKETS, params={"status": "resolved"}).json()["items"]] == [
        "RESOLVED"
    ]


def test_the_observability_engineer_resolves_a_drift_ticket_too(world, drift):
    ticket_id = drift["error"]["ticket_id"]

    resolved = world.post("SRE", f"{TICKETS}/{ticket_id}/resolution", {"note": NOTE})

    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved_by"] == world.actors["SRE"].user_id


def test_the_tenants_people_see_its_ticket_and_another_tenants_cannot(world, drift):
    ticket_id = drift["error"]["ticket_id"]
    missing = "TKT-20260101-ZZZZZZZZ"

    own = world.get("acme:AN", TICKETS)
    foreign_list = world.get("globex:TA", TICKETS)
    foreign = world.get("globex:TA", f"{TICKETS}/{ticket_id}")
    absent = world.get("globex:TA", f"{TICKETS}/{missing}")
    foreign_resolve = world.post("globex:TA", f"{TICKETS}/{ticket_id}/resolution", {"note": NOTE})
    aimed = world.get("globex:TA", TICKETS, params={"tenant_id": world.tenants["acme"]})

    assert [t["ticket_id"] for t in own.json()["items"]] == [ticket_id]
    assert foreign_list.status_code == 200 and foreign_list.json()["items"] == []
    assert (foreign.status_code, foreign_resolve.status_code, absent.status_code) == (404, 404, 404)

    def without_id(answer) -> dict:
        body = {k: v for k, v in answer.json().items() if k != "instance"}
        return {k: str(v).replace(ticket_id, "<id>").replace(missing, "<id>") for k, v in body.items()}

    assert without_id(foreign) == without_id(absent)  # a foreign ticket reads as one that does not exist
    assert aimed.status_code == 403 and aimed.json()["rule"] == "deny-cross-tenant"
    assert world.get("PA", TICKETS).json()["items"][0]["ticket_id"] == ticket_id  # providers see all


def test_an_analyst_cannot_resolve_a_ticket_nor_anyone_but_the_steward_and_the_oe(world, drift):
    ticket_id = drift["error"]["ticket_id"]

    for who in ("acme:AN", "acme:TA", "acme:DE", "PA", "KA"):
        answer = world.post(who, f"{TICKETS}/{ticket_id}/resolution", {"note": NOTE})

        assert answer.status_code == 403, (who, answer.text)
        assert answer.json()["action"] == "ticket:Resolve"
    assert world.get("SS", f"{TICKETS}/{ticket_id}").json()["status"] == "OPEN"
    assert world.events("review_ticket.resolved") == []
