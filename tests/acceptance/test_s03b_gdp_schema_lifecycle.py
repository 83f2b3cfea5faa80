"""Story 03b: GDP schema lifecycle, through the REST API.

A Schema Steward defines a Golden Data Point schema mapped from Raw with SQL, the
Platform Admin registers it, the Compliance Officer checks its regulatory fields, and
it is versioned with column lineage Raw → GDP. A bad mapping is rejected at its exact
place; a compliance gap blocks the publish; a version clash makes no duplicate.
"""

from __future__ import annotations

import sqlalchemy as sa
from tests.support_contracts import (
    BASE,
    gdp_contract,
    path,
    publish_contract,
    raw_contract,
    second_steward,
    step,
)

from keel.store.tables import contract_lineage, metric_samples


def _registered(world, document) -> tuple[str, str]:
    drafted = world.post("SS", BASE, {"document": document})
    assert drafted.status_code == 201, drafted.text
    schema_id, version = drafted.json()["schema_id"], drafted.json()["version"]
    step(world, "PA", schema_id, version, "register")
    return schema_id, version


# Given raw lifecycle, when defined and CO-validated, then registered, versioned ---------------
def test_a_gdp_schema_mapped_from_raw_is_registered_validated_and_versioned_with_lineage(world):
    publish_contract(world, raw_contract())
    mapping = (
        "SELECT o.order_id, CAST(o.amount AS DECIMAL(38, 9)) AS amount, o.placed_at\n"
        "FROM raw.shop__orders AS o\nWHERE o.amount IS NOT NULL"
    )
    published = publish_contract(world, gdp_contract(mapping=mapping))

    # Artifact: schema_id=GDP-AR, fields=[...], status=versioned, version=v1.0
    assert (published["schema_id"], published["status"], published["version"]) == (
        "GDP-ORDER",
        "published",
        "1.0.0",
    )
    assert published["based_on"] == ["RAW-SHOP@1.0.0"]
    shown = world.get("acme:AN", f"{BASE}/GDP-ORDER").json()
    assert shown["lineage"] == [
        {"target": "gdp.order.amount", "source": "raw.shop__orders.amount"},
        {"target": "gdp.order.order_id", "source": "raw.shop__orders.order_id"},
        {"target": "gdp.order.placed_at", "source": "raw.shop__orders.placed_at"},
    ]
    types = [e["type"] for e in world.events() if e["payload"].get("schema_id") == "GDP-ORDER"]
    assert types == [
        "schema.gdp.created",
        "schema.gdp.registered",
        "schema.gdp.validated",
        "schema.compliance.reviewed",
        "schema.gdp.versioned",
        "schema.published",
    ]
    rates = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "gdp_validation_outcome")
    )
    assert [bool(r.value) for r in rates] == [True]
    usage = world.rows(
        sa.select(metric_samples.c.labels).where(metric_samples.c.name == "schema_usage_count")
    )
    assert [r.labels for r in usage] == [{"schema_id": "RAW-SHOP", "usage": "based_on:GDP-ORDER"}]
    assert world.get("acme:AN", "/metrics").status_code == 200


def test_the_exported_gdp_document_is_the_odcs_document_that_was_registered(world):
    publish_contract(world, raw_contract())
    document = gdp_contract()
    publish_contract(world, document)
    exported = world.get("acme:AN", path("GDP-ORDER", "1.0.0", "document")).json()
    assert exported["document"] == document


# Given a GDP schema, when a regulatory field is missing, then block publish, log ----------------
def test_a_missing_regulatory_field_fails_the_compliance_review_and_blocks_the_publish(world):
    publish_contract(world, raw_contract())
    schema_id, version = _registered(world, gdp_contract(tags=()))
    step(world, second_steward(world), schema_id, version, "validate")

    reviewed = step(world, "CO", schema_id, version, "compliance-review", {"approve": True})

    assert reviewed["status"] == "rejected" and reviewed["compliance_check"] == "FAIL"
    assert reviewed["compliance"]["problems"] == [
        {
            "rule": "domain_tags",
            "where": "customProperties.regulatoryTags",
            "detail": "a finance contract needs a regulatory tag "
            "(one of BASEL, GAAP, IFRS, IFRS15, MIFID, SOX, SOX404)",
        }
    ]
    logged = world.events("schema.compliance.reviewed")[-1]["payload"]
    assert logged["compliance_check"] == "FAIL" and logged["gaps"] == reviewed["compliance"]["problems"]
    assert world.events("schema.gdp.rejected")
    blocked = world.post("PA", path(schema_id, version, "publish"))
    assert blocked.status_code in (403, 409)
    assert world.get("SS", path(schema_id, version)).json()["status"] == "rejected"


def test_a_compliance_officer_may_reject_with_findings_kept_out_of_the_ledger_as_text(world):
    publish_contract(world, raw_contract())
    schema_id, version = _registered(world, gdp_contract())
    step(world, second_steward(world), schema_id, version, "validate")
    no_reason = world.post("CO", path(schema_id, version, "compliance-review"), {"approve": False})
    assert no_reason.status_code == 422
    finding = "the amount field lacks the IFRS 15 revenue-recognition tag"
    rejected = step(
        world, "CO", schema_id, version, "compliance-review", {"approve": False, "findings": finding}
    )
    assert rejected["status"] == "rejected" and rejected["compliance"]["reviewer_approved"] is False
    assert finding not in str(world.events())


# Bad mapping -> reject -----------------------------------------------------------------------
def test_a_mapping_with_an_unknown_column_is_rejected_at_its_exact_position(world):
    publish_contract(world, raw_contract())
    mapping = "SELECT order_id,\n       amount_nett AS amount,\n       placed_at\nFROM raw.shop__orders"
    schema_id, version = _registered(world, gdp_contract(mapping=mapping))

    checked = step(world, second_steward(world), schema_id, version, "validate")

    assert checked["status"] == "rejected"
    [problem] = checked["validation"]["problems"]
    assert problem["rule"] == "gdp_mappings" and problem["where"] == "schema[0].customProperties.mapping"
    assert (
        "line 2" in problem["detail"] and "amount_nett" in problem["detail"] and "amount" in problem["detail"]
    )
    assert world.scalar(sa.select(sa.func.count()).select_from(contract_lineage)) == 0


def test_a_mapping_reading_an_unknown_table_or_a_type_that_does_not_fit_is_rejected(world):
    publish_contract(world, raw_contract())
    steward = second_steward(world)
    unknown = gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orderz")
    schema_id, version = _registered(world, unknown)
    detail = step(world, steward, schema_id, version, "validate")["validation"]["problems"][0]["detail"]
    assert "raw.shop__orderz" in detail

    wrong_type = gdp_contract(
        version="1.0.1", mapping="SELECT order_id, order_id AS amount, placed_at FROM raw.shop__orders"
    )
    schema_id, version = _registered(world, wrong_type)
    detail = step(world, steward, schema_id, version, "validate")["validation"]["problems"][0]["detail"]
    assert "amount" in detail and "string" in detail and "decimal" in detail


def test_a_mapping_over_a_raw_contract_that_is_not_registered_is_refused_at_submission(world):
    answer = world.post("SS", BASE, {"document": gdp_contract(based_on="RAW-NOWHERE@1.0.0")})
    assert answer.status_code == 422 and "RAW-NOWHERE@1.0.0" in answer.json()["detail"]


def test_a_gdp_contract_is_published_only_when_the_raw_contract_it_reads_is(world):
    drafted = world.post("SS", BASE, {"document": raw_contract()})
    assert drafted.status_code == 201
    step(world, "PA", "RAW-SHOP", "1.0.0", "register")
    schema_id, version = _registered(world, gdp_contract())
    step(world, second_steward(world), schema_id, version, "validate")
    step(world, "CO", schema_id, version, "compliance-review", {"approve": True})
    blocked = world.post("PA", path(schema_id, version, "publish"))
    assert blocked.status_code == 409 and "RAW-SHOP@1.0.0" in blocked.json()["detail"]


# Version clash -> no duplicate ----------------------------------------------------------------
def test_publishing_a_version_twice_is_blocked_as_a_clash(world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    again = world.post("PA", path("GDP-ORDER", "1.0.0", "publish"))
    assert again.status_code == 409 and again.json()["reason"] == "version_clash"
    duplicate = world.post("SS", BASE, {"document": gdp_contract()})
    assert duplicate.status_code == 409


# Dual control ---------------------------------------------------------------------------------
def test_publishing_needs_two_sign_offs_by_people_other_than_the_author(world):
    publish_contract(world, raw_contract())
    schema_id, version = _registered(world, gdp_contract())
    step(world, second_steward(world), schema_id, version, "validate")
    early = world.post("PA", path(schema_id, version, "publish"))
    assert early.status_code == 403 and early.json()["rule"] == "dual-control-publish"
    author_review = world.post("SS", path(schema_id, version, "compliance-review"), {"approve": True})
    assert author_review.status_code == 403


# Circular mappings -> rejected, naming the cycle ---------------------------------------------------
def test_a_contract_based_on_itself_is_refused_as_circular(world):
    answer = world.post("SS", BASE, {"document": gdp_contract(based_on="GDP-ORDER@1.0.0")})
    assert answer.status_code == 422 and "circular" in answer.json()["detail"]


def test_a_mapping_that_closes_a_cycle_between_gdp_entities_is_rejected(world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())  # gdp.order from raw.shop__orders
    totals = gdp_contract(
        "GDP-ORDER-TOTAL",
        based_on="GDP-ORDER@1.0.0",
        table="order_total",
        fields={"order_id": "string", "amount": "decimal"},
        mapping="SELECT order_id, amount FROM gdp.order",
    )
    publish_contract(world, totals)  # gdp.order_total from gdp.order
    looped = gdp_contract(
        version="2.0.0",
        based_on="GDP-ORDER-TOTAL@1.0.0",
        mapping="SELECT order_id, amount, CAST(NULL AS DATE) AS placed_at FROM gdp.order_total",
    )
    schema_id, version = _registered(world, looped)  # gdp.order from gdp.order_total: a loop

    checked = step(world, second_steward(world), schema_id, version, "validate")

    assert checked["status"] == "rejected"
    [problem] = checked["validation"]["problems"]
    assert problem["rule"] == "cycle"
    assert problem["detail"] == "circular mapping: gdp.order -> gdp.order_total -> gdp.order"
