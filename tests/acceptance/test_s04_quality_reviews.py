"""Story 04 "over-blocking → review" and "gap → ticket", through the REST API on real builds.

A quarantine rule whose reviewed rows are mostly released as false positives gets a
``dq_over_blocking`` review ticket; a GDP field the contract marks required that no enabled
rule checks gets a ``dq_coverage_gap`` ticket when the table is built.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, publish_contract, raw_contract, write_raw

from keel.store.tables import review_tickets

API = "/api/v1"
RULES = f"{API}/quality-rules"
FIELDS = {"invoice_id": "string", "amount_net": "decimal", "issued_on": "date"}
MAPPING = "SELECT invoice_id, amount_net, issued_on FROM raw.shop__invoices"
NOT_NULL = {
    "rule_id": "GDP-INVOICE-AMT-NOT-NULL",
    "layer": "gdp",
    "dataset": "invoice",
    "field": "amount_net",
    "check": "not_null",
    "on_fail": "quarantine",
}


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _build(world):
    return _ok(
        world.post("acme:DE", f"{API}/tenants/{world.tenants['acme']}/builds", {"schema_id": "GDP-INVOICE"})
    )


def _tickets(world, kind: str) -> list:
    stored = world.rows(sa.select(review_tickets).where(review_tickets.c.kind == kind))
    # the API's kind filter finds the same tickets
    listed = _ok(world.get("SS", f"{API}/review-tickets", params={"kind": kind}))["items"]
    assert sorted(t["ticket_id"] for t in listed) == sorted(t.id for t in stored)
    return stored


@pytest.fixture
def invoices(world):
    """GDP-INVOICE marks invoice_id and amount_net required; six Raw invoices lack amount_net."""
    publish_contract(world, raw_contract(table="shop__invoices", fields=FIELDS))
    document = gdp_contract("GDP-INVOICE", table="invoice", fields=FIELDS, mapping=MAPPING)
    for prop in document["schema"][0]["properties"]:
        prop["required"] = prop["name"] in ("invoice_id", "amount_net")
    publish_contract(world, document)
    rows = [(f"INV-{n}", None, "2026-01-05") for n in range(1, 7)] + [("INV-7", "10.00", "2026-01-06")]
    write_raw(
        world, "acme", "shop__invoices", "invoice_id VARCHAR, amount_net DECIMAL(38, 9), issued_on DATE", rows
    )
    defined = _ok(world.post("SS", RULES, NOT_NULL), 201)
    _ok(world.post("PA", f"{RULES}/{defined['rule_id']}/enable"))
    return world


def test_a_rule_mostly_released_as_false_positive_goes_to_review(invoices):
    world = invoices
    _build(world)
    acme = world.tenants["acme"]
    page = _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))
    ids = sorted(i["quarantine_id"] for i in page["items"])
    assert len(ids) == 6
    release = f"{API}/tenants/{acme}/quarantine/invoice/release"

    first = _ok(world.post("acme:DE", release, {"quarantine_ids": ids[:2], "false_positive": True}))
    assert first["review_tickets"] == []  # 2 reviewed rows: too few to judge the rule
    second = _ok(world.post("acme:DE", release, {"quarantine_ids": ids[2:5], "false_positive": True}))

    (ticket,) = _tickets(world, "dq_over_blocking")
    assert second["review_tickets"] == [ticket.id]
    assert (ticket.tenant_id, ticket.subject, ticket.status) == (
        acme,
        "dq_rule:GDP-INVOICE-AMT-NOT-NULL",
        "OPEN",
    )
    assert (ticket.details["reviewed_rows"], ticket.details["false_positive_rows"]) == (5, 5)
    opened = [e for e in world.events("review_ticket.opened") if e["payload"]["kind"] == "dq_over_blocking"]
    assert len(opened) == 1
    # the next false positive keeps the one OPEN ticket; a tenant reviewer sees it
    third = _ok(world.post("acme:DE", release, {"quarantine_ids": ids[5:], "false_positive": True}))
    assert third["review_tickets"] == [ticket.id] and len(_tickets(world, "dq_over_blocking")) == 1
    listed = _ok(world.get("acme:DE", f"{API}/review-tickets"))
    assert ticket.id in {t["ticket_id"] for t in listed["items"]}


def test_fixed_rows_do_not_count_against_the_rule(invoices):
    world = invoices
    _build(world)
    acme = world.tenants["acme"]
    page = _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))
    ids = sorted(i["quarantine_id"] for i in page["items"])
    fixes = {i: {"amount_net": 1.5} for i in ids}
    done = _ok(
        world.post(
            "acme:DE",
            f"{API}/tenants/{acme}/quarantine/invoice/release",
            {"quarantine_ids": ids, "fixes": fixes},
        )
    )
    assert done["review_tickets"] == [] and _tickets(world, "dq_over_blocking") == []


def test_a_required_field_without_a_rule_opens_a_coverage_ticket_once(invoices):
    world = invoices
    _build(world)

    (ticket,) = _tickets(world, "dq_coverage_gap")
    assert (ticket.tenant_id, ticket.subject) == (world.tenants["acme"], "gdp.invoice")
    assert ticket.details["fields_without_rules"] == ["invoice_id"]  # amount_net has its rule
    _build(world)  # the same gap again: the OPEN ticket stands, no second one
    assert len(_tickets(world, "dq_coverage_gap")) == 1
    # a rule on invoice_id closes the gap for later builds
    defined = _ok(
        world.post(
            "SS",
            RULES,
            NOT_NULL | {"rule_id": "GDP-INVOICE-ID-SET", "field": "invoice_id", "on_fail": "alert"},
        ),
        201,
    )
    _ok(world.post("PA", f"{RULES}/{defined['rule_id']}/enable"))
    resolved = world.post("SS", f"{API}/review-tickets/{ticket.id}/resolution", {"note": "rule added"})
    assert resolved.status_code == 200, resolved.text
    _build(world)
    assert [t.status for t in _tickets(world, "dq_coverage_gap")] == ["RESOLVED"]


def test_the_over_blocking_thresholds_are_settings(invoices):
    world = invoices
    world.keel.settings.dq_over_blocking_min_rows = 1  # as KEEL_DQ_OVER_BLOCKING_MIN_ROWS=1 would
    world.keel.settings.dq_over_blocking_rate = 0.5
    _build(world)
    acme = world.tenants["acme"]
    items = _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))["items"]
    ids = sorted(i["quarantine_id"] for i in items)
    release = f"{API}/tenants/{acme}/quarantine/invoice/release"

    fixed = {"quarantine_ids": ids[:1], "fixes": {ids[0]: {"amount_net": 2}}}
    assert _ok(world.post("acme:DE", release, fixed))["review_tickets"] == []  # 0 of 1 false
    half = _ok(world.post("acme:DE", release, {"quarantine_ids": ids[1:2], "false_positive": True}))
    assert half["review_tickets"] == []  # 1 of 2 false positives: not above one half
    more = _ok(world.post("acme:DE", release, {"quarantine_ids": ids[2:3], "false_positive": True}))
    (ticket,) = _tickets(world, "dq_over_blocking")  # 2 of 3: above
    assert more["review_tickets"] == [ticket.id] and ticket.details["threshold"] == 0.5
