"""Story 03a: source (Raw) schema lifecycle, through the REST API.

The tenant's Data Engineer submits the Raw contract of its source, the Platform Admin
registers it, a Schema Steward checks structure and metadata, the Compliance Officer
reviews it and it is versioned (published) with lineage to the GDP fields built on
it. An invalid schema is rejected and logged; a version clash is blocked.
"""

from __future__ import annotations

import sqlalchemy as sa
from tests.support import store_snapshot
from tests.support_contracts import (
    BASE,
    gdp_contract,
    path,
    publish_contract,
    raw_contract,
    second_steward,
    step,
    with_field,
)

from keel.store.tables import contract_versions, metric_samples


def _draft(world, who, document, **extra):
    return world.post(who, BASE, {"document": document, **extra})


# Given onboarding, when registered, then validated, versioned ------------------------------
def test_a_data_engineers_raw_schema_is_registered_validated_and_versioned(world):
    acme = world.tenants["acme"]
    drafted = _draft(world, "acme:DE", raw_contract("RAW-ACME-SHOP"), tenant_id=acme)
    assert drafted.status_code == 201, drafted.text
    assert drafted.json()["status"] == "draft" and drafted.json()["tenant_id"] == acme

    registered = step(world, "PA", "RAW-ACME-SHOP", "1.0.0", "register")
    assert registered["status"] == "registered" and registered["registered_by"] == world.actors["PA"].user_id
    validated = step(world, "SS", "RAW-ACME-SHOP", "1.0.0", "validate")
    assert validated["status"] == "validated", validated["validation"]
    assert validated["validated_by"] == world.actors["SS"].user_id
    step(world, "CO", "RAW-ACME-SHOP", "1.0.0", "compliance-review", {"approve": True})
    published = step(world, "PA", "RAW-ACME-SHOP", "1.0.0", "publish")

    # Artifact: schema_id=RAW-CUST-001, status=registered, version=v1.0, validated_by
    assert {
        k: published[k] for k in ("schema_id", "version", "status", "validated_by", "compliance_check")
    } == {
        "schema_id": "RAW-ACME-SHOP",
        "version": "1.0.0",
        "status": "published",
        "validated_by": world.actors["SS"].user_id,
        "compliance_check": "PASS",
    }
    types = [e["type"] for e in world.events() if e["payload"].get("schema_id") == "RAW-ACME-SHOP"]
    assert types == [
        "schema.raw.created",
        "schema.raw.registered",
        "schema.raw.validated",
        "schema.compliance.reviewed",
        "schema.raw.versioned",
        "schema.published",
    ]
    receipt = world.get("CO", "/api/v1/evidence/receipts", params={"kind": "schema.version"}).json()["items"]
    assert receipt[0]["body"]["schema_id"] == "RAW-ACME-SHOP" and receipt[0]["body"]["version"] == "v1.0.0"


def test_the_raw_contract_is_versioned_with_lineage_to_the_gdp_fields_built_on_it(world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())

    raw = world.get("acme:AN", f"{BASE}/RAW-SHOP").json()
    assert raw["usage"]["dependents"] == ["GDP-ORDER@1.0.0"]
    gdp = world.get("acme:AN", path("GDP-ORDER", "1.0.0")).json()
    assert gdp["lineage"] == [
        {"target": "gdp.order.amount", "source": "raw.shop__orders.amount"},
        {"target": "gdp.order.order_id", "source": "raw.shop__orders.order_id"},
        {"target": "gdp.order.placed_at", "source": "raw.shop__orders.placed_at"},
    ]


def test_a_new_version_is_checked_for_compatibility_and_a_breaking_change_needs_a_major(world):
    publish_contract(world, raw_contract())
    breaking = with_field(raw_contract(version="1.1.0"), "channel", "string", required=True)
    _draft(world, "SS", breaking)
    step(world, "PA", "RAW-SHOP", "1.1.0", "register")
    rejected = step(world, second_steward(world), "RAW-SHOP", "1.1.0", "validate")
    assert rejected["status"] == "rejected"
    problem = next(p for p in rejected["validation"]["problems"] if p["rule"] == "compatibility")
    assert "2.0.0" in problem["detail"] and "channel" in problem["detail"]

    additive = with_field(raw_contract(version="1.2.0"), "channel", "string")
    assert publish_contract(world, additive)["status"] == "published"
    history = world.get("SS", f"{BASE}/RAW-SHOP/versions").json()["items"]
    assert [(v["version"], v["status"]) for v in history] == [
        ("1.0.0", "published"),
        ("1.1.0", "rejected"),
        ("1.2.0", "published"),
    ]


# Given an invalid schema, when checked, then reject, log -----------------------------------
def test_an_invalid_schema_is_rejected_and_logged_naming_each_problem(world):
    invalid = raw_contract(fields={"order_id": "string", "amount": "decimal"})
    invalid["schema"][0]["properties"][0].pop("classification")
    invalid["schema"][0]["properties"][1].pop("logicalType")  # the standard allows it; Keel needs a type
    _draft(world, "SS", invalid)
    step(world, "PA", "RAW-SHOP", "1.0.0", "register")

    checked = step(world, second_steward(world), "RAW-SHOP", "1.0.0", "validate")

    assert checked["status"] == "rejected" and checked["validation"]["passed"] is False
    assert [(p["rule"], p["where"]) for p in checked["validation"]["problems"]] == [
        ("field_types", "schema[0].properties[1].logicalType"),
        ("classification", "schema[0].properties[0].classification"),
    ]
    logged = world.events("schema.raw.rejected")
    assert logged[0]["payload"]["schema_id"] == "RAW-SHOP"
    assert logged[0]["payload"]["problems"] == checked["validation"]["problems"]
    outcomes = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "schema_validation_outcome")
    )
    assert [bool(r.value) for r in outcomes] == [False]
    refused = world.post("PA", path("RAW-SHOP", "1.0.0", "publish"))
    assert refused.status_code == 403  # no two sign-offs: dual control refuses before the state check


def test_a_schema_that_breaks_the_standard_is_refused_at_submission_and_nothing_is_stored(world):
    bad = raw_contract()
    bad["schema"][0]["properties"][1]["logicalType"] = "strnig"
    before = store_snapshot(world.keel)
    answer = _draft(world, "SS", bad)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "schema[0].properties[1].logicalType"
    malformed = _draft(world, "SS", "id: RAW-X\nschema: [unclosed\n")
    assert malformed.status_code == 422 and malformed.json()["line"] == 3
    assert world.scalar(sa.select(sa.func.count()).select_from(contract_versions)) == 0
    after = store_snapshot(world.keel)
    assert after["contract_versions"] == before["contract_versions"] == []


# Version clash -> block duplicate ------------------------------------------------------------
def test_a_version_clash_is_blocked_whatever_the_earlier_versions_state(world):
    assert _draft(world, "SS", raw_contract()).status_code == 201
    again = _draft(world, "SS", with_field(raw_contract(), "note", "string"))
    assert again.status_code == 409 and again.json()["reason"] == "version_clash"
    assert world.scalar(sa.select(sa.func.count()).select_from(contract_versions)) == 1


# Who may do what ------------------------------------------------------------------------------
def test_a_data_engineer_drafts_only_its_own_tenants_raw_contracts(world):
    assert _draft(world, "acme:DE", raw_contract()).status_code == 403  # global: a control-plane change
    other = _draft(world, "acme:DE", raw_contract(), tenant_id=world.tenants["globex"])
    assert other.status_code == 403
    assert _draft(world, "acme:AN", raw_contract(), tenant_id=world.tenants["acme"]).status_code == 403


def test_nobody_validates_their_own_draft_and_a_tenants_contract_is_invisible_to_other_tenants(world):
    acme = world.tenants["acme"]
    _draft(world, "SS", raw_contract("RAW-ACME-ONLY"), tenant_id=acme)
    step(world, "PA", "RAW-ACME-ONLY", "1.0.0", "register")
    own = world.post("SS", path("RAW-ACME-ONLY", "1.0.0", "validate"))
    assert own.status_code == 403 and own.json()["rule"] == "sod-approve-own-draft"
    assert world.get("acme:AN", path("RAW-ACME-ONLY", "1.0.0")).status_code == 200
    hidden = world.get("globex:AN", path("RAW-ACME-ONLY", "1.0.0"))
    missing = world.get("globex:AN", path("RAW-NOTHING", "1.0.0"))
    assert hidden.status_code == missing.status_code == 404
    listed = world.get("globex:AN", BASE).json()["items"]
    assert "RAW-ACME-ONLY" not in {c["schema_id"] for c in listed}


# Retirement -----------------------------------------------------------------------------------
def test_a_raw_contract_is_deprecated_then_retired_once_nothing_uses_it(world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    step(world, "SS", "RAW-SHOP", "1.0.0", "deprecate", {"reason": "the shop moves to v2"})
    blocked = world.post("SS", path("RAW-SHOP", "1.0.0", "retire"), {"reason": "done"})
    assert blocked.status_code == 409 and "GDP-ORDER@1.0.0" in blocked.json()["detail"]
    step(world, "SS", "GDP-ORDER", "1.0.0", "deprecate", {"reason": "replaced"})
    step(world, "SS", "GDP-ORDER", "1.0.0", "retire", {"reason": "replaced"})
    retired = step(world, "SS", "RAW-SHOP", "1.0.0", "retire", {"reason": "done"})
    assert retired["status"] == "retired"
    reuse = _draft(world, "SS", gdp_contract(version="2.0.0"))
    assert reuse.status_code == 422 and "retired" in reuse.json()["detail"]
