"""Story 04: data-quality rules, through the REST API, on real tenant data planes.

A Schema Steward defines versioned rules, a Platform Admin enables them (a rule that
contradicts an enabled one is refused), and every GDP build of a tenant applies them
in one set-based query: ``quarantine`` moves failing rows aside and alerts, ``block``
fails the build with nothing published, ``alert`` only counts. Raw rows are written
straight into the tenant's DuckDB file (standing in for ingestion).
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, publish_contract, raw_contract, write_raw

from keel.store.tables import incidents, metric_samples

API = "/api/v1"
RULES = f"{API}/quality-rules"
FIELDS = {"invoice_id": "string", "amount_net": "decimal", "issued_on": "date"}
MAPPING = "SELECT invoice_id, amount_net, issued_on FROM raw.shop__invoices"
INVOICES = [
    ("INV-1", "120.50", "2026-01-05"),
    ("INV-2", None, "2026-01-20"),
    ("INV-3", "310.25", "2026-02-02"),
    ("INV-4", None, "2026-02-14"),
]
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


def _rows(world, slug: str, relation: str) -> list[tuple]:
    path = world.keel.dataplanes.database_path(world.tenants[slug])
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT invoice_id, amount_net FROM {relation} ORDER BY invoice_id").fetchall()


def _last(world, event_type: str) -> dict:
    event = world.events(event_type)[-1]
    return {**event, **event["payload"]}


def _build(world, slug: str = "acme"):
    return world.post(
        f"{slug}:DE", f"{API}/tenants/{world.tenants[slug]}/builds", {"schema_id": "GDP-INVOICE"}
    )


@pytest.fixture
def invoices(world):
    """acme runs GDP-INVOICE 1.0.0 over Raw invoices, two of them without amount_net."""
    publish_contract(world, raw_contract(table="shop__invoices", fields=FIELDS))
    publish_contract(world, gdp_contract("GDP-INVOICE", table="invoice", fields=FIELDS, mapping=MAPPING))
    write_raw(
        world,
        "acme",
        "shop__invoices",
        "invoice_id VARCHAR, amount_net DECIMAL(38, 9), issued_on DATE",
        INVOICES,
    )
    return world


def _rule(world, body: dict, *, enable: bool = True) -> dict:
    defined = _ok(world.post("SS", RULES, body), 201)
    if enable:
        defined = _ok(world.post("PA", f"{RULES}/{defined['rule_id']}/enable"))
    return defined


# Given GDP-INVOICE-AMT-NOT-NULL, when amount_net is null, then quarantine, alert ----------------
def test_rows_failing_a_quarantine_rule_are_quarantined_and_an_alert_fires(invoices):
    world = invoices
    rule = _rule(world, NOT_NULL)
    assert (rule["version"], rule["enabled"], rule["enabled_by"]) == (1, True, world.actors["PA"].user_id)
    assert _last(world, "rule.versioned")["rule_id"] == "GDP-INVOICE-AMT-NOT-NULL"

    built = _ok(_build(world))

    assert built["runs"][0]["rows"] == 2
    assert _rows(world, "acme", 'gdp."invoice"') == [("INV-1", 120.5), ("INV-3", 310.25)] or [
        r[0] for r in _rows(world, "acme", 'gdp."invoice"')
    ] == ["INV-1", "INV-3"]
    acme = world.tenants["acme"]
    page = _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))
    assert sorted(i["row"]["invoice_id"] for i in page["items"]) == ["INV-2", "INV-4"]
    assert {i["rule_id"] for i in page["items"]} == {"GDP-INVOICE-AMT-NOT-NULL"}
    applied = _last(world, "rule.applied")
    assert (applied["failed"], applied["passed"], applied["blocked"]) == (2, 2, False)
    alert = _last(world, "alert.fired")
    assert alert["kind"] == "data_quality" and alert["tenant_id"] == acme
    summary = world.scalar(sa.select(incidents.c.summary).where(incidents.c.id == alert["incident_id"]))
    assert "GDP-INVOICE-AMT-NOT-NULL" in summary

    # DE fixes one row and releases it; the other is a false positive released unchanged
    fixed, other = (i["quarantine_id"] for i in sorted(page["items"], key=lambda i: i["row"]["invoice_id"]))
    still_null = world.post(
        "acme:DE", f"{API}/tenants/{acme}/quarantine/invoice/release", {"quarantine_ids": [other]}
    )
    assert still_null.status_code == 422, still_null.text
    released = _ok(
        world.post(
            "acme:DE",
            f"{API}/tenants/{acme}/quarantine/invoice/release",
            {"quarantine_ids": [fixed], "fixes": {fixed: {"amount_net": 99.5}}},
        )
    )
    assert released["released"] == 1
    _ok(
        world.post(
            "acme:DE",
            f"{API}/tenants/{acme}/quarantine/invoice/release",
            {"quarantine_ids": [other], "false_positive": True},
        )
    )
    assert [r[0] for r in _rows(world, "acme", 'gdp."invoice"')] == ["INV-1", "INV-2", "INV-3", "INV-4"]
    assert _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))["items"] == []
    assert len(world.events("quarantine.released")) == 2
    outcomes = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "false_positive_outcome")
    )
    assert sorted(bool(r.value) for r in outcomes) == [False, True]

    # a rebuild yields both rows again from Raw: the reviewer's decisions stand, nothing alerts anew
    alerts = len(world.events("alert.fired"))
    _ok(_build(world))
    assert _rows(world, "acme", 'gdp."invoice"') == [
        ("INV-1", Decimal("120.500000000")), ("INV-2", Decimal("99.500000000")),
        ("INV-3", Decimal("310.250000000")), ("INV-4", None),
    ]  # fmt: skip
    assert _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))["items"] == []
    applied = _last(world, "rule.applied")
    assert (applied["failed"], applied["waived"]) == (2, 2)  # the rule still fails them, knowingly
    assert len(world.events("alert.fired")) == alerts
    # a row that changed at the source is another row: the decision on the old one does not cover it
    path = world.keel.dataplanes.database_path(acme)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE raw.shop__invoices SET issued_on = DATE '2026-02-15' WHERE invoice_id = 'INV-4'")
    _ok(_build(world))
    held = _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))["items"]
    assert [(i["row"]["invoice_id"], i["row"]["issued_on"]) for i in held] == [("INV-4", "2026-02-15")]


# A block rule fails the build and nothing changes ----------------------------------------------
def test_a_failing_block_rule_fails_the_build_and_publishes_nothing(invoices):
    world = invoices
    before = _ok(_build(world))  # no rules yet: every row is built
    assert before["runs"][0]["rows"] == 4
    _rule(world, NOT_NULL | {"rule_id": "GDP-INVOICE-AMT-REQUIRED", "on_fail": "block"})
    write_raw(
        world,
        "acme",
        "shop__invoices",
        "invoice_id VARCHAR, amount_net DECIMAL(38, 9), issued_on DATE",
        [("INV-5", "1.00", "2026-03-01")],
    )

    blocked = _build(world)

    assert blocked.status_code == 409, blocked.text
    assert "GDP-INVOICE-AMT-REQUIRED" in blocked.json()["detail"]
    assert len(_rows(world, "acme", 'gdp."invoice"')) == 4  # the new row was not published
    assert _last(world, "policy.enforced")["rule_id"] == "GDP-INVOICE-AMT-REQUIRED"
    assert _last(world, "rule.applied")["blocked"] is True
    assert _last(world, "alert.fired")["kind"] == "data_quality"


# conflict → fail, log; versions ------------------------------------------------------------------
def test_a_conflicting_rule_is_refused_and_logged(invoices):
    world = invoices
    accepted = {
        "layer": "gdp",
        "dataset": "invoice",
        "field": "invoice_id",
        "check": "accepted_values",
        "on_fail": "alert",
    }
    _rule(world, accepted | {"rule_id": "GDP-INVOICE-ID-A", "params": {"values": ["INV-1", "INV-2"]}})
    _rule(world, accepted | {"rule_id": "GDP-INVOICE-ID-B", "params": {"values": ["X-1"]}}, enable=False)

    refused = world.post("PA", f"{RULES}/GDP-INVOICE-ID-B/enable")

    assert refused.status_code == 409
    assert "GDP-INVOICE-ID-A" in refused.json()["detail"] and "GDP-INVOICE-ID-B" in refused.json()["detail"]
    assert _last(world, "rule.conflict")["conflicts_with"] == "GDP-INVOICE-ID-A"
    # a new version that agrees may be enabled
    v2 = _ok(
        world.post("SS", RULES, accepted | {"rule_id": "GDP-INVOICE-ID-B", "params": {"values": ["INV-1"]}}),
        201,
    )
    assert (v2["version"], v2["enabled"]) == (2, False)
    assert _ok(world.post("PA", f"{RULES}/GDP-INVOICE-ID-B/enable"))["enabled"] is True
    listed = _ok(world.get("SS", RULES))
    assert [(r["rule_id"], r["version"]) for r in listed["items"]] == [
        ("GDP-INVOICE-ID-A", 1),
        ("GDP-INVOICE-ID-B", 2),
    ]


def test_rules_are_validated_and_only_stewards_define_and_admins_enable(invoices):
    world = invoices
    bad = world.post(
        "SS", RULES, NOT_NULL | {"check": "custom_sql", "params": {"predicate": "amount_net >>> ("}}
    )
    assert bad.status_code == 422 and "parse" in bad.text
    assert world.post("SS", RULES, NOT_NULL | {"check": "sometimes"}).status_code == 422
    assert world.post("PA", RULES, NOT_NULL).status_code == 403
    _rule(world, NOT_NULL, enable=False)
    assert world.post("SS", f"{RULES}/GDP-INVOICE-AMT-NOT-NULL/enable").status_code == 403


def _quarantined_by_not_null(world) -> tuple[str, list[dict]]:
    """NOT_NULL enabled and acme built: the quarantine's path and the rows it holds (INV-2, INV-4)."""
    quarantine = f"{API}/tenants/{world.tenants['acme']}/quarantine/invoice"
    _rule(world, NOT_NULL)
    _ok(_build(world))
    return quarantine, _ok(world.get("acme:DE", quarantine))["items"]


def test_a_release_covers_the_rule_it_was_judged_by_not_a_rule_enabled_since(invoices):
    world = invoices
    quarantine, held = _quarantined_by_not_null(world)
    body = {"quarantine_ids": [i["quarantine_id"] for i in held], "false_positive": True}
    _ok(world.post("acme:DE", f"{quarantine}/release", body))
    # a second rule on the field, enabled after the review, holds the same rows back first
    _rule(world, NOT_NULL | {"rule_id": "GDP-INVOICE-AMOUNT-SET", "check": "custom_sql",
                             "params": {"predicate": "amount_net IS NOT NULL"}})  # fmt: skip

    _ok(_build(world))

    again = _ok(world.get("acme:DE", quarantine))["items"]
    assert sorted((i["row"]["invoice_id"], i["rule_id"]) for i in again) == [
        ("INV-2", "GDP-INVOICE-AMOUNT-SET"), ("INV-4", "GDP-INVOICE-AMOUNT-SET"),
    ]  # fmt: skip
    assert [r[0] for r in _rows(world, "acme", 'gdp."invoice"')] == ["INV-1", "INV-3"]


def test_a_fixed_row_that_breaks_a_rule_enabled_since_is_held_back_again(invoices):
    world = invoices
    quarantine, held = _quarantined_by_not_null(world)
    inv2 = next(i for i in held if i["row"]["invoice_id"] == "INV-2")
    fix = {"quarantine_ids": [inv2["quarantine_id"]], "fixes": {inv2["quarantine_id"]: {"amount_net": 99.5}}}
    _ok(world.post("acme:DE", f"{quarantine}/release", fix))
    _rule(world, NOT_NULL | {"rule_id": "GDP-INVOICE-AMT-RANGE", "check": "range", "params": {"max": 50}})

    _ok(_build(world))

    held = sorted(i["row"]["invoice_id"] for i in _ok(world.get("acme:DE", quarantine))["items"])
    assert held == ["INV-1", "INV-2", "INV-3", "INV-4"]  # INV-2's fix (99.5) breaks the new rule
    assert _rows(world, "acme", 'gdp."invoice"') == []
