"""The pure parts of the drift watch (story 03a step 5) and the handshake's check against a contract."""

from __future__ import annotations

import pytest

from keel.connectors.protocol import Stream
from keel.contracts.drift import detect
from keel.contracts.model import Contract, Dataset, Field, Layer
from keel.onboarding.drift import Finding, Link, expected_schemas, observed_columns, signature
from keel.onboarding.schema_check import ContractColumns, compare, observed_type

ORDERS = Dataset(
    "shop__orders",
    (Field("order_id", "string"), Field("amount", "decimal"), Field("placed_at", "timestamp")),
)
CUSTOMERS = Dataset("customers", (Field("customer_id", "string"),))


def _link(*datasets: Dataset, policy: str = "stop") -> Link:
    contract = Contract("RAW-SHOP", "shop", "1.0.0", Layer.RAW, datasets=datasets, drift_policy=policy)
    return Link("RAW-SHOP", "1.0.0", contract)


def _stream(**columns: dict) -> Stream:
    return Stream("orders", {"type": "object", "properties": columns})


NULLABLE = {
    "string": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
    "date-time": {"type": ["string", "null"], "format": "date-time"},
    "decimal": {"type": ["string", "null"], "format": "decimal"},
}


def test_a_streams_dataset_is_named_after_its_raw_table_or_else_after_the_stream():
    link = _link(ORDERS, CUSTOMERS)

    assert link.dataset("shop", "orders") is ORDERS
    assert link.dataset("shop", "customers") is CUSTOMERS
    assert link.dataset("Shop Inc.", "Orders") is None  # the table would be shop_inc__orders
    assert link.dataset("shop", "payments") is None


@pytest.mark.parametrize(
    ("schema", "kind"),
    [
        (NULLABLE["date-time"], "timestamp"),
        (NULLABLE["date"], "date"),
        (NULLABLE["decimal"], "decimal"),
        ({"type": "integer"}, "integer"),
        ({"type": ["integer", "number", "null"]}, "number"),
        ({"type": ["integer", "string", "null"]}, "string"),  # files that disagree: only text holds both
        ({"type": ["null"]}, "string"),
        ({"type": ["array", "null"], "items": {"type": ["integer"]}}, "array"),
        ({}, "string"),
    ],
)
def test_observed_types_are_in_the_contract_vocabulary(schema, kind):
    assert observed_type(schema) == kind


def test_observed_columns_compared_with_the_dataset_find_each_kind_of_drift():
    stream = _stream(
        order_id=NULLABLE["string"],
        amount=NULLABLE["string"],  # was a decimal
        placed_on=NULLABLE["date"],  # looks like placed_at, and a date fits a timestamp
        channel=NULLABLE["string"],
    )

    report = detect(observed_columns(stream), ORDERS)

    assert (report.added, report.removed, report.renamed, report.type_changed) == (
        ("channel",),
        (),
        (("placed_at", "placed_on"),),
        (("amount", "decimal", "string"),),
    )


def test_types_that_widen_into_the_declared_ones_are_no_drift():
    stream = _stream(order_id=NULLABLE["string"], amount=NULLABLE["integer"], placed_at=NULLABLE["date"])

    assert not detect(observed_columns(stream), ORDERS).drifted


def test_the_same_drift_has_the_same_signature_and_another_drift_another():
    a = detect({"order_id": "string", "amount": "decimal", "placed_at": "timestamp", "x": "string"}, ORDERS)
    again = detect(
        {"x": "string", "placed_at": "date-time", "amount": "decimal", "order_id": "string"}, ORDERS
    )
    b = detect({"order_id": "string", "amount": "decimal", "placed_at": "timestamp", "y": "string"}, ORDERS)

    assert signature(a) == signature(again) != signature(b)


def test_a_finding_names_the_columns_its_ticket_and_for_quarantine_where_the_rows_are():
    report = detect({"order_id": "string", "placed_at": "timestamp", "channel": "string"}, ORDERS)
    stop = Finding(report, "stop", _link(ORDERS), "TKT-1", "INC-1", "raw.shop__orders")
    kept = Finding(report, "quarantine", _link(ORDERS), "TKT-1", None, "raw.shop__orders__quarantine")

    assert stop.error()["message"] == (
        "schema drift against Raw contract RAW-SHOP@1.0.0 (drift policy stop): shop__orders drifted: "
        "added channel; removed amount; nothing of the stream was read; the checkpoint is unchanged"
    )
    assert {k: stop.error()[k] for k in ("failure", "schema_id", "version", "ticket_id")} == {
        "failure": "drift",
        "schema_id": "RAW-SHOP",
        "version": "1.0.0",
        "ticket_id": "TKT-1",
    }
    assert "quarantine_table" not in stop.error()
    assert kept.error(3)["quarantine_table"] == "raw.shop__orders__quarantine"
    assert kept.error(3)["message"].endswith("3 record(s) quarantined in raw.shop__orders__quarantine")


# The handshake (02b) against a Raw contract ----------------------------------------------------
def test_the_handshake_expects_the_contract_columns_of_the_streams_it_covers():
    expected = expected_schemas(_link(ORDERS), "shop", ["orders", "payments"])

    assert expected == {"orders": {"order_id": "string", "amount": "decimal", "placed_at": "timestamp"}}
    assert isinstance(expected["orders"], ContractColumns)


def test_against_a_contract_a_type_that_widens_passes_and_others_fail():
    discovered = _stream(
        order_id=NULLABLE["integer"], amount=NULLABLE["integer"], placed_at=NULLABLE["date"], extra={}
    ).json_schema
    expected = ContractColumns({"order_id": "string", "amount": "decimal", "placed_at": "timestamp"})

    assert compare(discovered, expected) == {
        "passed": False,
        "missing": [],
        "type_mismatches": [{"column": "order_id", "expected": "string", "found": "integer"}],
        "extra": ["extra"],
    }


def test_a_sources_own_expected_schemas_keep_the_exact_comparison():
    discovered = _stream(placed_at=NULLABLE["date"], amount=NULLABLE["integer"]).json_schema

    result = compare(discovered, {"placed_at": "date-time", "amount": "number"})

    assert result["type_mismatches"] == [{"column": "placed_at", "expected": "date-time", "found": "date"}]
