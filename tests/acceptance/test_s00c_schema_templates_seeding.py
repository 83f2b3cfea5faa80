"""Story 00c: schema templates seeding, through the REST API.

The Platform Admin (only) loads the Raw, GDP and KPI templates that ship with Keel;
the Schema Steward checks their structure, fields and lineage rules; the Compliance
Officer confirms their regulatory content; each is versioned, published with a
version receipt, exposed to tenants and its usage tracked. An invalid definition
fails and is logged, a regulatory gap is rejected and logged, a version clash is
blocked.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from tests.support import store_snapshot
from tests.support_contracts import path, raw_contract, step

from keel.contracts.documents import dump
from keel.contracts.templates import load_templates
from keel.store.tables import metric_samples, receipts

LOAD = "/api/v1/contract-templates/load"
SHIPPED = [(d["id"], d["version"]) for _, d in load_templates()]


def _walk_to_published(world, schema_id: str, version: str) -> dict:
    step(world, "SS", schema_id, version, "validate")
    step(world, "CO", schema_id, version, "compliance-review", {"approve": True})
    return step(world, "PA", schema_id, version, "publish")


def test_keel_ships_the_finance_templates_the_issue_names():
    ids = {schema_id for schema_id, _ in SHIPPED}
    assert {
        "GDP-CUSTOMER",
        "GDP-INVOICE",
        "GDP-PAYMENT",
        "GDP-VENDOR",
        "RAW-ERP",
        "RAW-CRM",
        "KPI-DSO",
    } <= ids
    assert len([i for i in ids if i.startswith("KPI-")]) >= 4


# Given loaded templates, when SS and CO approve, then published with version receipt ----------
def test_loaded_templates_approved_by_ss_and_co_are_published_with_a_version_receipt(world):
    loaded = world.post("PA", LOAD)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json() == {"loaded": [f"{i}@{v}" for i, v in SHIPPED], "skipped": []}

    for schema_id, version in SHIPPED:
        published = _walk_to_published(world, schema_id, version)
        # Artifact: schema_id=GDP-001, status=published, validated_by, compliance_check=PASS, version=v1.0
        assert (published["status"], published["compliance_check"], published["template"]) == (
            "published",
            "PASS",
            True,
        )
        assert published["validated_by"] == world.actors["SS"].user_id
        body = world.rows(sa.select(receipts.c.body).where(receipts.c.id == published["receipt_id"]))[0].body
        assert body["schema_id"] == schema_id and body["version"] == f"v{version}"
        assert body["compliance_check"] == "PASS" and body["validated_by"] == published["validated_by"]

    seeded = {e["payload"]["schema_id"] for e in world.events("schema.seeded")}
    validated = {e["payload"]["schema_id"] for e in world.events("schema.validated")}
    published_events = {e["payload"]["schema_id"] for e in world.events("schema.published")}
    assert seeded == validated == published_events == {schema_id for schema_id, _ in SHIPPED}
    rates = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "template_validation_outcome")
    )
    assert [bool(r.value) for r in rates] == [True] * len(SHIPPED)


def test_published_templates_are_exposed_to_tenants_and_their_usage_is_tracked(world):
    world.post("PA", LOAD)
    for schema_id, version in SHIPPED:
        _walk_to_published(world, schema_id, version)

    seen = world.get("acme:AN", "/api/v1/contracts", params={"status": "published", "limit": 500}).json()
    assert {c["schema_id"] for c in seen["items"]} == {schema_id for schema_id, _ in SHIPPED}
    invoice = world.get("acme:DE", "/api/v1/contracts/GDP-INVOICE").json()
    assert "KPI-INVOICED-REVENUE@1.0.0" in invoice["usage"]["dependents"]
    assert {"source": "raw.erp__invoices.amount_net", "target": "gdp.invoice.amount_net"} in invoice[
        "lineage"
    ]
    usage = world.rows(
        sa.select(metric_samples.c.labels).where(metric_samples.c.name == "schema_usage_count")
    )
    assert {r.labels["schema_id"] for r in usage} == {"RAW-ERP"}
    gdp_usage = world.rows(
        sa.select(metric_samples.c.labels).where(metric_samples.c.name == "gdp_usage_count")
    )
    assert {"GDP-INVOICE", "GDP-RECEIVABLE"} <= {r.labels["schema_id"] for r in gdp_usage}


def test_only_the_platform_admin_loads_templates(world):
    for who in ("SS", "CO", "SA", "PO", "acme:TA"):
        assert world.post(who, LOAD).status_code == 403, who
    assert world.post("PA", LOAD).status_code == 200


# CO finds a regulatory gap -> rejected, logged ----------------------------------------------
def test_a_regulatory_gap_the_compliance_officer_finds_rejects_the_template_and_is_logged(world):
    world.post("PA", LOAD)
    step(world, "SS", "RAW-CRM", "1.0.0", "validate")
    finding = "contact e-mails need a documented lawful basis before they are seeded"
    reviewed = step(
        world, "CO", "RAW-CRM", "1.0.0", "compliance-review", {"approve": False, "findings": finding}
    )

    assert reviewed["status"] == "rejected" and reviewed["compliance_check"] == "FAIL"
    logged = world.events("schema.compliance.reviewed")[-1]
    assert (
        logged["payload"]["compliance_check"] == "FAIL" and logged["actor_id"] == world.actors["CO"].user_id
    )
    assert world.post("PA", path("RAW-CRM", "1.0.0", "publish")).status_code in (403, 409)


# Invalid definition -> fail, log --------------------------------------------------------------
def test_an_invalid_template_definition_fails_validation_and_is_logged(world, tmp_path, monkeypatch):
    bad = raw_contract("RAW-PLATFORM-BAD")
    del bad["schema"][0]["properties"][0]["classification"]
    (tmp_path / "raw-platform-bad.yaml").write_text(dump(bad))
    monkeypatch.setattr(world.keel.settings, "contract_templates_dir", tmp_path)

    assert "RAW-PLATFORM-BAD@1.0.0" in world.post("PA", LOAD).json()["loaded"]
    checked = step(world, "SS", "RAW-PLATFORM-BAD", "1.0.0", "validate")

    assert checked["status"] == "rejected"
    assert [p["rule"] for p in checked["validation"]["problems"]] == ["classification"]
    assert world.events("schema.raw.rejected")[0]["payload"]["schema_id"] == "RAW-PLATFORM-BAD"
    rates = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "template_validation_outcome")
    )
    assert [bool(r.value) for r in rates] == [False]


@pytest.mark.parametrize(
    ("filename", "text", "field"),
    [
        ("raw-broken.yaml", "id: RAW-BROKEN\nschema: [unclosed\n", "raw-broken.yaml"),
        ("notes.yaml", "id: X\n", "templates"),
    ],
)
def test_a_template_file_that_cannot_be_read_loads_nothing(
    world, tmp_path, monkeypatch, filename, text, field
):
    (tmp_path / filename).write_text(text)
    monkeypatch.setattr(world.keel.settings, "contract_templates_dir", tmp_path)
    before = store_snapshot(world.keel)
    answer = world.post("PA", LOAD)
    assert answer.status_code == 422 and answer.json()["field"] == field
    assert store_snapshot(world.keel)["contract_versions"] == before["contract_versions"] == []


# Version clash -> block duplicate ------------------------------------------------------------
def test_loading_again_skips_what_is_loaded_and_a_changed_template_with_the_same_version_is_blocked(
    world, tmp_path, monkeypatch
):
    world.post("PA", LOAD)
    again = world.post("PA", LOAD).json()
    assert again == {"loaded": [], "skipped": [f"{i}@{v}" for i, v in SHIPPED]}

    world.post("SS", "/api/v1/contracts", {"document": raw_contract("RAW-PLATFORM-X")})
    (tmp_path / "raw-platform-x.yaml").write_text(
        dump(raw_contract("RAW-PLATFORM-X", tags=("SOX", "GDPR", "IFRS")))
    )
    monkeypatch.setattr(world.keel.settings, "contract_templates_dir", tmp_path)
    clash = world.post("PA", LOAD)
    assert clash.status_code == 409 and clash.json()["reason"] == "version_clash"
