"""The ODCS v3 standard's own example contracts validate in Keel and round-trip without loss.

The examples and the v3.1.0 JSON Schema are copies of the standard's published files
(tests/data/odcs, from ../shared/testdata/odcs).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from keel.contracts import documents, odcs
from keel.contracts.model import Layer
from keel.kernel.errors import InvalidInput

DATA = Path(__file__).parents[2] / "data" / "odcs"
EXAMPLES = sorted(DATA.glob("*.odcs.yaml"))
SCHEMA_V310 = json.loads((DATA / "odcs-json-schema-v3.1.0.json").read_text())


def test_every_example_of_the_standard_is_here():
    assert len(EXAMPLES) == 18


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_the_standards_v310_json_schema(path):
    document = documents.parse(path.read_text())
    validator = jsonschema.validators.validator_for(SCHEMA_V310)(SCHEMA_V310)
    assert [e.message for e in validator.iter_errors(document)] == []
    odcs.check_standard(document)  # and the standard's own models


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trips_import_export_import_without_loss(path):
    imported = documents.parse(path.read_text())
    exported = odcs.export(imported)
    assert exported == imported
    again = documents.parse(documents.dump(exported))
    assert again == imported
    assert odcs.to_contract(again, Layer.RAW) == odcs.to_contract(imported, Layer.RAW)


def test_dates_stay_the_strings_the_document_holds():
    document = documents.parse((DATA / "fundamentals__table-column-description.odcs.yaml").read_text())
    assert document["schema"][0]["properties"][0]["examples"] == ["2022-10-03", "2025-01-28"]


def test_reading_an_example_gives_keels_view_of_its_datasets_and_fields():
    document = documents.parse((DATA / "all__full-example.odcs.yaml").read_text())
    contract = odcs.to_contract(document, "gdp")
    assert (contract.id, contract.version, contract.layer, contract.domain) == (
        "53581432-6c55-4ba2-a65f-72344a91553a",
        "1.1.0",
        Layer.GDP,
        "seller",
    )
    table = contract.datasets[0]
    assert table.name == "tbl_1"
    first = table.fields[0]
    assert (first.name, first.type, first.classification, first.location) == (
        "transaction_reference_date",
        "date",
        "public",
        "schema[0].properties[0]",
    )


def test_a_document_breaking_the_standard_is_refused_naming_the_place():
    document = documents.parse((DATA / "schema__table-column.odcs.yaml").read_text())
    document["schema"][0]["properties"][0]["logicalType"] = "strnig"
    with pytest.raises(InvalidInput) as caught:
        odcs.check_standard(document)
    assert caught.value.fields["field"] == "schema[0].properties[0].logicalType"
    assert "strnig" in caught.value.detail


def test_an_unknown_top_level_key_is_refused():
    with pytest.raises(InvalidInput) as caught:
        odcs.check_standard({"apiVersion": "v3.1.0", "kind": "DataContract", "id": "x", "version": "1.0.0",
                             "status": "active", "colour": "blue"})  # fmt: skip
    assert "colour" in caught.value.detail


@pytest.mark.parametrize(
    ("text", "line"),
    [("id: [unclosed\n", 2), ("a: 1\n b: 2\n", 2), ("key: value\n\t- tab\n", 2)],
)
def test_malformed_yaml_is_refused_naming_line_and_column(text, line):
    with pytest.raises(InvalidInput) as caught:
        documents.parse(text)
    assert caught.value.fields["line"] == line
    assert caught.value.fields["field"] == "document"


def test_a_document_that_is_not_a_mapping_is_refused():
    with pytest.raises(InvalidInput, match="must be a mapping"):
        documents.parse("- just\n- a list\n")


def test_an_odcs_contract_must_say_its_layer():
    document = documents.parse((DATA / "schema__table-column.odcs.yaml").read_text())
    with pytest.raises(InvalidInput) as caught:
        odcs.to_contract(document)
    assert caught.value.fields["field"] == "customProperties.keelLayer"
