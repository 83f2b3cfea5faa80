"""The contract templates that ship with Keel (00c): every one is a valid document, its Raw → GDP →
KPI references resolve among the templates, and the registry's own rules find nothing wrong.

The registry loads the templates in ``load_templates`` order and refuses a reference to a
version it does not hold, so the order is checked here as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from keel.contracts import documents, odcs, rules
from keel.contracts.kpi_sql import validate_kpi
from keel.contracts.mapping import validate_mapping
from keel.contracts.model import Layer
from keel.contracts.templates import load_templates
from keel.identity.personas import Persona

SCHEMA_V310 = json.loads(
    (Path(__file__).parents[2] / "data" / "odcs" / "odcs-json-schema-v3.1.0.json").read_text()
)
TEMPLATES = load_templates()
DOCUMENTS = dict(TEMPLATES)
CONTRACTS = {name: documents.read_contract(document) for name, document in TEMPLATES}
CONTEXT = rules.Context({contract.key: contract for contract in CONTRACTS.values()})
ODCS = [name for name, document in TEMPLATES if odcs.is_odcs(document)]
OF_LAYER = {layer: [c for c in CONTRACTS.values() if c.layer is layer] for layer in Layer}


def test_keel_ships_the_templates_the_issue_asks_for():
    assert {layer: sorted(c.id for c in contracts) for layer, contracts in OF_LAYER.items()} == {
        Layer.RAW: ["RAW-CRM", "RAW-ERP"],
        Layer.GDP: ["GDP-CUSTOMER", "GDP-INVOICE", "GDP-PAYMENT", "GDP-RECEIVABLE", "GDP-VENDOR"],
        Layer.KPI: [
            "KPI-AVG-DAYS-TO-PAY",
            "KPI-COLLECTED-CASH",
            "KPI-DSO",
            "KPI-INVOICED-REVENUE",
            "KPI-OVERDUE-RATIO",
        ],
    }
    assert {c.version for c in CONTRACTS.values()} == {"1.0.0"}


def test_templates_load_raw_first_then_gdp_then_kpi_so_every_reference_is_loaded_before_it():
    order = [Layer.RAW, Layer.GDP, Layer.KPI]
    layers = [CONTRACTS[name].layer for name, _ in TEMPLATES]
    assert layers == sorted(layers, key=order.index)
    loaded: set[str] = set()
    for name, _ in TEMPLATES:
        contract = CONTRACTS[name]
        assert {str(ref) for ref in contract.based_on} <= loaded, name
        loaded.add(contract.key)


@pytest.mark.parametrize("name", [name for name, _ in TEMPLATES])
def test_a_templates_file_name_says_its_layer(name):
    assert name.partition("-")[0] == CONTRACTS[name].layer.value
    assert name == f"{CONTRACTS[name].id.lower()}.yaml"


@pytest.mark.parametrize("name", ODCS)
def test_every_odcs_template_is_a_valid_odcs_v310_document(name):
    document = DOCUMENTS[name]
    assert document["apiVersion"] == "v3.1.0"
    validator = jsonschema.validators.validator_for(SCHEMA_V310)(SCHEMA_V310)
    assert [error.message for error in validator.iter_errors(document)] == []
    odcs.check_standard(document)  # the installed standard's schema and models
    assert odcs.export(document) == document  # and it is kept as written


@pytest.mark.parametrize("name", [name for name, _ in TEMPLATES])
def test_every_template_passes_the_registrys_structure_and_compliance_rules(name):
    assert rules.run(rules.STRUCTURE + rules.COMPLIANCE, CONTRACTS[name], CONTEXT) == []


def test_every_reference_pins_a_template_version_of_the_layer_below_or_of_gdp():
    may_read = {Layer.GDP: {Layer.RAW, Layer.GDP}, Layer.KPI: {Layer.GDP}}
    based_on = {}
    for contract in OF_LAYER[Layer.GDP] + OF_LAYER[Layer.KPI]:
        for ref in contract.based_on:
            assert ref.version is not None, f"{contract.key} pins the version of {ref}"
            assert CONTEXT.resolve(ref).layer in may_read[contract.layer], contract.key
        based_on[contract.id] = sorted(str(ref) for ref in contract.based_on)
    assert based_on == {
        "GDP-CUSTOMER": ["RAW-ERP@1.0.0"],
        "GDP-INVOICE": ["RAW-ERP@1.0.0"],
        "GDP-PAYMENT": ["RAW-ERP@1.0.0"],
        "GDP-VENDOR": ["RAW-ERP@1.0.0"],
        "GDP-RECEIVABLE": ["GDP-INVOICE@1.0.0", "GDP-PAYMENT@1.0.0"],
        "KPI-AVG-DAYS-TO-PAY": ["GDP-INVOICE@1.0.0"],
        "KPI-COLLECTED-CASH": ["GDP-PAYMENT@1.0.0"],
        "KPI-DSO": ["GDP-RECEIVABLE@1.0.0"],
        "KPI-INVOICED-REVENUE": ["GDP-INVOICE@1.0.0"],
        "KPI-OVERDUE-RATIO": ["GDP-INVOICE@1.0.0"],
    }


def test_raw_templates_describe_the_tables_ingestion_makes_for_their_source():
    assert {c.custom["source"]: sorted(d.name for d in c.datasets) for c in OF_LAYER[Layer.RAW]} == {
        "erp": ["erp__customers", "erp__invoices", "erp__payments", "erp__vendors"],
        "crm": ["crm__accounts", "crm__contacts", "crm__opportunities"],
    }
    for contract in OF_LAYER[Layer.RAW]:
        assert contract.drift_policy in rules.DRIFT_POLICIES
        for dataset in contract.datasets:
            assert not [f.name for f in dataset.fields if f.name.startswith("_keel_")]
            assert [f.name for f in dataset.fields if f.primary_key], dataset.name


def test_gdp_mappings_read_only_the_tables_they_are_based_on_and_trace_every_field():
    plans = {}
    for contract in OF_LAYER[Layer.GDP]:
        (dataset,) = contract.datasets
        plans[contract.id] = validate_mapping(
            dataset.mapping_sql, dataset, rules.source_tables(contract, CONTEXT)
        )
    assert {cid: plan.tables for cid, plan in plans.items()} == {
        "GDP-CUSTOMER": ("raw.erp__customers",),
        "GDP-INVOICE": ("raw.erp__invoices", "raw.erp__payments"),
        "GDP-PAYMENT": ("raw.erp__invoices", "raw.erp__payments"),
        "GDP-RECEIVABLE": ("gdp.invoice", "gdp.payment"),
        "GDP-VENDOR": ("raw.erp__vendors",),
    }
    assert {
        cid: [f for f, sources in plan.lineage.items() if not sources] for cid, plan in plans.items()
    } == {cid: [] for cid in plans}
    assert plans["GDP-INVOICE"].lineage["amount_open"] == (
        ("raw.erp__invoices", "amount_net"),
        ("raw.erp__invoices", "amount_tax"),
        ("raw.erp__payments", "amount"),
    )
    assert plans["GDP-VENDOR"].lineage["is_critical"] == (("raw.erp__vendors", "critical"),)
    assert plans["GDP-RECEIVABLE"].lineage["amount_open"] == (
        ("gdp.invoice", "amount_gross"),
        ("gdp.payment", "amount"),
    )


def test_money_in_finance_templates_is_an_exact_decimal():
    money = [
        (c.id, f.name, f.type)
        for c in CONTRACTS.values()
        if c.domain == "finance"
        for d in c.datasets
        for f in d.fields
        if f.name.startswith("amount") or f.name.endswith("_limit")
    ]
    assert money and {kind for *_, kind in money} == {"decimal"}


def test_personal_data_is_flagged_classified_and_tagged_for_privacy():
    pii = {
        (c.id, d.name, f.name): f.classification
        for c in CONTRACTS.values()
        for d in c.datasets
        for f in d.fields
        if f.pii
    }
    assert pii == {
        ("RAW-CRM", "crm__contacts", "first_name"): "confidential",
        ("RAW-CRM", "crm__contacts", "last_name"): "confidential",
        ("RAW-CRM", "crm__contacts", "email"): "restricted",
    }
    assert "GDPR" in CONTRACTS["raw-crm.yaml"].regulatory_tags


@pytest.mark.parametrize("contract", OF_LAYER[Layer.KPI], ids=lambda c: c.id)
def test_kpi_templates_compile_and_are_visible_only_to_tenant_personas(contract):
    plan = validate_kpi(contract.kpi, rules.gdp_tables(contract, CONTEXT))
    assert plan.sql.strip()
    assert contract.kpi.visible_to and not [p for p in contract.kpi.visible_to if Persona(p).is_provider]
    assert contract.kpi.thresholds and contract.kpi.targets
    assert (contract.owner, contract.retention, contract.domain) == (
        "finance-kpis@keel.local",
        "7y",
        "finance",
    )
