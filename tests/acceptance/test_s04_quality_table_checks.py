"""Story 04: referential integrity, freshness, row count and volume change rules, through the
REST API, on real tenant DuckDB builds.

acme's invoices reference its customers (another GDP contract, built first): orphans are
quarantined by one anti-join, a row-count rule that fails blocks the build with nothing
published, a stale table only alerts, and a table-level rule cannot quarantine.
"""

from __future__ import annotations

import duckdb
import pytest
from tests.support_contracts import gdp_contract, publish_contract, raw_contract, write_raw

API = "/api/v1"
RULES = f"{API}/quality-rules"
CUSTOMER_FIELDS = {"customer_id": "string", "name": "string"}
INVOICE_FIELDS = {"invoice_id": "string", "customer_id": "string", "issued_on": "date"}
INVOICES = [
    ("INV-1", "C-1", "2026-01-05"),
    ("INV-2", "C-9", "2026-01-20"),  # C-9 is no customer
    ("INV-3", None, "2026-02-02"),  # no customer: passes (a NULL passes every check but not_null)
    ("INV-4", "C-2", "2026-02-14"),
]
RI = {
    "rule_id": "GDP-INVOICE-CUSTOMER-EXISTS",
    "layer": "gdp",
    "dataset": "invoice",
    "field": "customer_id",
    "check": "referential_integrity",
    "params": {"dataset": "customer", "field": "customer_id"},
    "on_fail": "quarantine",
}


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _ids(world, relation: str) -> list[str]:
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    with duckdb.connect(str(path), read_only=True) as con:
        return [r[0] for r in con.execute(f"SELECT invoice_id FROM {relation} ORDER BY 1").fetchall()]


def _build(world, schema_id: str = "GDP-INVOICE"):
    return world.post("acme:DE", f"{API}/tenants/{world.tenants['acme']}/builds", {"schema_id": schema_id})


def _rule(world, body: dict) -> dict:
    defined = _ok(world.post("SS", RULES, body), 201)
    return _ok(world.post("PA", f"{RULES}/{defined['rule_id']}/enable"))


def _last(world, event_type: str, **match) -> dict:
    events = [e for e in world.events(event_type) if all(e["payload"].get(k) == v for k, v in match.items())]
    return events[-1]["payload"]


@pytest.fixture
def ledger(world):
    """acme has built GDP-CUSTOMER (C-1, C-2) and runs GDP-INVOICE over four Raw invoices."""
    publish_contract(world, raw_contract("RAW-CRM", table="crm__customers", fields=CUSTOMER_FIELDS))
    publish_contract(
        world,
        gdp_contract(
            "GDP-CUSTOMER",
            based_on="RAW-CRM@1.0.0",
            table="customer",
            fields=CUSTOMER_FIELDS,
            mapping="SELECT customer_id, name FROM raw.crm__customers",
        ),
    )
    publish_contract(world, raw_contract(table="shop__invoices", fields=INVOICE_FIELDS))
    publish_contract(
        world,
        gdp_contract(
            "GDP-INVOICE",
            table="invoice",
            fields=INVOICE_FIELDS,
            mapping="SELECT invoice_id, customer_id, issued_on FROM raw.shop__invoices",
        ),
    )
    write_raw(
        world, "acme", "crm__customers", "customer_id VARCHAR, name VARCHAR", [("C-1", "Ada"), ("C-2", "Bo")]
    )
    write_raw(
        world, "acme", "shop__invoices", "invoice_id VARCHAR, customer_id VARCHAR, issued_on DATE", INVOICES
    )
    _ok(_build(world, "GDP-CUSTOMER"))
    return world


def test_invoices_of_unknown_customers_are_quarantined_by_the_referential_rule(ledger):
    world = ledger
    _rule(world, RI)

    built = _ok(_build(world))

    assert built["runs"][0]["rows"] == 3
    assert _ids(world, 'gdp."invoice"') == ["INV-1", "INV-3", "INV-4"]
    acme = world.tenants["acme"]
    page = _ok(world.get("acme:DE", f"{API}/tenants/{acme}/quarantine/invoice"))
    assert [(i["row"]["invoice_id"], i["rule_id"]) for i in page["items"]] == [
        ("INV-2", "GDP-INVOICE-CUSTOMER-EXISTS")
    ]
    assert "customer_id fails referential_integrity" in page["items"][0]["reason"]
    applied = _last(world, "rule.applied", rule_id="GDP-INVOICE-CUSTOMER-EXISTS")
    assert (applied["checked"], applied["failed"], applied["blocked"]) == (4, 1, False)
    assert _last(world, "alert.fired")["kind"] == "data_quality"
    # releasing the orphan unchanged is refused unless it is called a false positive
    orphan = page["items"][0]["quarantine_id"]
    release = f"{API}/tenants/{acme}/quarantine/invoice/release"
    refused = world.post("acme:DE", release, {"quarantine_ids": [orphan]})
    assert refused.status_code == 422, refused.text
    fixed = world.post(
        "acme:DE", release, {"quarantine_ids": [orphan], "fixes": {orphan: {"customer_id": "C-2"}}}
    )
    assert _ok(fixed)["released"] == 1
    assert _ids(world, 'gdp."invoice"') == ["INV-1", "INV-2", "INV-3", "INV-4"]


def test_a_failing_row_count_rule_blocks_the_build_and_publishes_nothing(ledger):
    world = ledger
    assert _ok(_build(world))["runs"][0]["rows"] == 4  # no rules yet
    _rule(
        world,
        {
            "rule_id": "GDP-INVOICE-ENOUGH-ROWS",
            "layer": "gdp",
            "dataset": "invoice",
            "field": "invoice_id",
            "check": "row_count",
            "params": {"min": 10},
            "on_fail": "block",
        },
    )
    write_raw(
        world,
        "acme",
        "shop__invoices",
        "invoice_id VARCHAR, customer_id VARCHAR, issued_on DATE",
        [("INV-5", "C-1", "2026-03-01")],
    )

    blocked = _build(world)

    assert blocked.status_code == 409, blocked.text
    assert "GDP-INVOICE-ENOUGH-ROWS" in blocked.json()["detail"] and "observed 5" in blocked.json()["detail"]
    assert _ids(world, 'gdp."invoice"') == ["INV-1", "INV-2", "INV-3", "INV-4"]  # INV-5 not published
    assert _last(world, "policy.enforced")["rule_id"] == "GDP-INVOICE-ENOUGH-ROWS"
    applied = _last(world, "rule.applied", rule_id="GDP-INVOICE-ENOUGH-ROWS")
    assert (applied["checked"], applied["failed"], applied["blocked"]) == (1, 1, True)


def test_stale_data_and_a_volume_jump_only_alert(ledger):
    world = ledger
    assert _ok(_build(world))["runs"][0]["rows"] == 4
    base = {"layer": "gdp", "dataset": "invoice", "on_fail": "alert"}
    _rule(
        world,
        base
        | {
            "rule_id": "GDP-INVOICE-FRESH",
            "field": "issued_on",
            "check": "freshness",
            "params": {"max_age_hours": 24},
        },
    )
    _rule(
        world,
        base
        | {
            "rule_id": "GDP-INVOICE-VOLUME",
            "field": "invoice_id",
            "check": "volume_change",
            "params": {"max_percent": 20},
        },
    )
    more = [(f"INV-{n}", "C-1", "2026-03-01") for n in range(5, 8)]  # 4 -> 7 rows: +75 %
    write_raw(
        world, "acme", "shop__invoices", "invoice_id VARCHAR, customer_id VARCHAR, issued_on DATE", more
    )

    built = _ok(_build(world))

    assert built["runs"][0]["rows"] == 7  # alert rules publish every row
    fresh = _last(world, "rule.applied", rule_id="GDP-INVOICE-FRESH")
    assert (fresh["level"], fresh["failed"], fresh["blocked"]) == ("table", 1, False)
    assert fresh["observed"].startswith("2026-03-01")  # the newest invoice, months old
    volume = _last(world, "rule.applied", rule_id="GDP-INVOICE-VOLUME")
    assert (volume["failed"], volume["previous_rows"], volume["observed"]) == (1, 4, "7")
    incident = _last(world, "alert.fired")
    assert incident["kind"] == "data_quality"


def test_table_level_rules_cannot_quarantine_and_contradicting_row_counts_conflict(ledger):
    world = ledger
    base = {"layer": "gdp", "dataset": "invoice", "field": "invoice_id", "check": "row_count"}
    refused = world.post(
        "SS", RULES, base | {"rule_id": "GDP-INVOICE-ROWS-Q", "params": {"min": 1}, "on_fail": "quarantine"}
    )
    assert refused.status_code == 422 and "cannot quarantine rows" in refused.text
    _rule(world, base | {"rule_id": "GDP-INVOICE-ROWS-MIN", "params": {"min": 100}, "on_fail": "alert"})
    defined = world.post(
        "SS",
        RULES,
        base
        | {
            "rule_id": "GDP-INVOICE-ROWS-MAX",
            "field": "customer_id",
            "params": {"max": 10},
            "on_fail": "alert",
        },
    )
    _ok(defined, 201)
    clash = world.post("PA", f"{RULES}/GDP-INVOICE-ROWS-MAX/enable")
    assert clash.status_code == 409 and "GDP-INVOICE-ROWS-MIN" in clash.json()["detail"]
    # a referential rule against a table acme never built fails the build, naming it
    _rule(world, RI | {"rule_id": "GDP-INVOICE-SUPPLIER", "params": {"dataset": "supplier", "field": "id"}})
    missing = _build(world)
    assert missing.status_code == 409 and "gdp.supplier has no active build" in missing.json()["detail"]
