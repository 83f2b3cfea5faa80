"""Story 03c: KPI schema lifecycle, through the REST API.

A Schema Steward defines a KPI over GDP fields (formula, grain, dimensions, unit,
thresholds and targets), the Platform Admin registers it, the Compliance Officer
validates it, and it is versioned, published and traced to the GDP columns it reads.
An invalid KPI is rejected and logged; a compliance gap blocks its publish.
"""

from __future__ import annotations

import sqlalchemy as sa
from tests.support_contracts import (
    BASE,
    gdp_contract,
    kpi_contract,
    path,
    publish_contract,
    raw_contract,
    second_steward,
    step,
)

from keel.store.tables import metric_samples


def _published_gdp(world) -> None:
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())


def _registered(world, document) -> tuple[str, str]:
    drafted = world.post("SS", BASE, {"document": document})
    assert drafted.status_code == 201, drafted.text
    step(world, "PA", document["id"], document["version"], "register")
    return document["id"], document["version"]


# Given GDP lifecycle, when a valid KPI is defined, then registered, versioned, publishable -----
def test_a_valid_kpi_is_registered_versioned_and_published_with_lineage_to_gdp(world):
    _published_gdp(world)
    published = publish_contract(world, kpi_contract(formula="SUM(amount) / NULLIF(COUNT(order_id), 0)"))

    # Artifact: schema_id=KPI-DSO, based_on=GDP-AR, status=published, validated_by, version=v1.0
    assert {k: published[k] for k in ("schema_id", "based_on", "status", "version")} == {
        "schema_id": "KPI-ORDER-VALUE",
        "based_on": ["GDP-ORDER@1.0.0"],
        "status": "published",
        "version": "1.0.0",
    }
    assert published["validated_by"] == world.actors["SS2"].user_id
    shown = world.get("acme:BO", f"{BASE}/KPI-ORDER-VALUE").json()
    assert shown["lineage"] == [
        {"target": "kpi.KPI-ORDER-VALUE.value", "source": "gdp.order.amount"},
        {"target": "kpi.KPI-ORDER-VALUE.value", "source": "gdp.order.order_id"},
    ]
    assert world.get("SS", f"{BASE}/GDP-ORDER").json()["usage"]["dependents"] == ["KPI-ORDER-VALUE@1.0.0"]
    types = [e["type"] for e in world.events() if e["payload"].get("schema_id") == "KPI-ORDER-VALUE"]
    assert types == [
        "schema.kpi.created",
        "schema.kpi.registered",
        "schema.kpi.validated",
        "schema.compliance.reviewed",
        "schema.kpi.versioned",
        "schema.published",
    ]
    rates = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "kpi_schema_validation_outcome")
    )
    assert [bool(r.value) for r in rates] == [True]
    usage = world.rows(sa.select(metric_samples.c.labels).where(metric_samples.c.name == "gdp_usage_count"))
    assert [r.labels["schema_id"] for r in usage] == ["GDP-ORDER"]


def test_the_kpi_document_round_trips_through_the_registry(world):
    _published_gdp(world)
    document = kpi_contract()
    publish_contract(world, document)
    assert world.get("acme:AN", path(document["id"], "1.0.0", "document")).json()["document"] == document


# Given a KPI schema, when invalid, then reject, log -------------------------------------------
def test_a_kpi_over_an_unknown_gdp_field_is_rejected_and_logged(world):
    _published_gdp(world)
    schema_id, version = _registered(world, kpi_contract(formula="SUM(amount_gross)"))

    checked = step(world, second_steward(world), schema_id, version, "validate")

    assert checked["status"] == "rejected"
    [problem] = checked["validation"]["problems"]
    assert problem["rule"] == "kpi_formula" and "amount_gross" in problem["detail"]
    assert world.events("schema.kpi.rejected")[0]["payload"]["problems"] == [problem]
    rates = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "kpi_schema_validation_outcome")
    )
    assert [bool(r.value) for r in rates] == [False]


def test_a_kpi_whose_formula_aggregates_nothing_or_whose_time_field_is_no_date_is_rejected(world):
    _published_gdp(world)
    steward = second_steward(world)
    schema_id, version = _registered(world, kpi_contract(formula="amount * 2"))
    problems = step(world, steward, schema_id, version, "validate")["validation"]["problems"]
    assert [p["rule"] for p in problems] == ["kpi_formula"] and "aggregates nothing" in problems[0]["detail"]

    schema_id, version = _registered(world, kpi_contract(version="1.0.1", time_field="order_id"))
    problems = step(world, steward, schema_id, version, "validate")["validation"]["problems"]
    assert [p["rule"] for p in problems] == ["kpi_formula"] and "order_id" in problems[0]["detail"]


def test_a_malformed_kpi_document_is_refused_naming_the_key(world):
    _published_gdp(world)
    document = kpi_contract()
    document["kpi"]["grain"] = "fortnight"
    answer = world.post("SS", BASE, {"document": document})
    assert answer.status_code == 422 and answer.json()["field"] == "kpi.grain"
    document = kpi_contract()
    document["kpi"]["colour"] = "blue"
    answer = world.post("SS", BASE, {"document": document})
    assert answer.status_code == 422 and answer.json()["field"] == "kpi.colour"


# Compliance gap -> block publish --------------------------------------------------------------
def test_a_kpi_without_retention_fails_compliance_and_cannot_be_published(world):
    _published_gdp(world)
    document = kpi_contract()
    del document["retention"]
    schema_id, version = _registered(world, document)
    step(world, second_steward(world), schema_id, version, "validate")
    reviewed = step(world, "CO", schema_id, version, "compliance-review", {"approve": True})
    assert reviewed["status"] == "rejected"
    assert [p["rule"] for p in reviewed["compliance"]["problems"]] == ["retention"]
    assert world.post("PA", path(schema_id, version, "publish")).status_code in (403, 409)


# Version clash -> no duplicate ----------------------------------------------------------------
def test_a_kpi_version_is_registered_once(world):
    _published_gdp(world)
    publish_contract(world, kpi_contract())
    assert world.post("SS", BASE, {"document": kpi_contract()}).status_code == 409


def test_a_meaning_change_of_a_published_kpi_needs_a_major_version(world):
    _published_gdp(world)
    publish_contract(world, kpi_contract())
    schema_id, version = _registered(world, kpi_contract(version="1.1.0", formula="AVG(amount)"))
    checked = step(world, second_steward(world), schema_id, version, "validate")
    assert checked["status"] == "rejected"
    assert [p["rule"] for p in checked["validation"]["problems"]] == ["compatibility"]
    assert (
        publish_contract(world, kpi_contract(version="2.0.0", formula="AVG(amount)"))["status"] == "published"
    )
