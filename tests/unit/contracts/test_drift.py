"""Schema drift of an ingested source against its Raw contract, and what the drift policy does about it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.contracts.drift import DriftReport, decide, detect
from keel.contracts.model import TYPES, Dataset, Field
from keel.kernel.errors import InvalidInput

INVOICES = Dataset(
    "erp__invoices",
    (
        Field("invoice_id", "string", required=True, primary_key=True),
        Field("customer_id", "string"),
        Field("issued_at", "date"),
        Field("amount_net", "decimal"),
        Field("updated_at", "timestamp"),
    ),
)
AS_DECLARED = {f.name: f.type for f in INVOICES.fields}


def observed(**changes: str | None) -> dict[str, str]:
    """The contract's columns as a source would report them, with ``changes`` (None drops a column)."""
    columns = {**AS_DECLARED, **changes}
    return {name: kind for name, kind in columns.items() if kind is not None}


def test_a_source_that_sends_what_the_contract_declares_has_not_drifted() -> None:
    report = detect(observed(), INVOICES)
    assert report == DriftReport("erp__invoices")
    assert (report.drifted, report.summary()) == (False, "erp__invoices: no drift")


def test_keels_bookkeeping_columns_are_not_drift() -> None:
    columns = observed(_keel_batch_id="string", _keel_ingested_at="date-time", _keel_record_hash="string")
    assert detect(columns, INVOICES) == DriftReport("erp__invoices")


def test_the_connector_name_date_time_is_a_timestamp() -> None:
    assert detect(observed(updated_at="date-time"), INVOICES) == DriftReport("erp__invoices")


@pytest.mark.parametrize(
    ("column", "found"),
    [("amount_net", "integer"), ("updated_at", "date"), ("issued_at", "date")],
)
def test_a_type_that_fits_the_declared_one_without_loss_is_not_drift(column: str, found: str) -> None:
    assert not detect(observed(**{column: found}), INVOICES).drifted


@pytest.mark.parametrize(
    ("column", "found", "expected"),
    [
        ("amount_net", "number", "decimal"),  # a float where money is declared loses exactness
        ("amount_net", "string", "decimal"),
        ("issued_at", "timestamp", "date"),
        ("customer_id", "integer", "string"),
    ],
)
def test_a_type_the_declared_one_cannot_hold_is_drift(column: str, found: str, expected: str) -> None:
    assert detect(observed(**{column: found}), INVOICES) == DriftReport(
        "erp__invoices", type_changed=((column, expected, found),)
    )


def test_unrelated_new_and_missing_columns_are_added_and_removed() -> None:
    report = detect(observed(customer_id=None, status="string", paid="boolean"), INVOICES)
    assert report == DriftReport("erp__invoices", added=("status", "paid"), removed=("customer_id",))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("customer_id", "CustomerId"),  # the same name spelt another way
        ("customer_id", "customer_ids"),  # difflib ratio 0.96
        ("customer_id", "cust_id"),  # ratio 0.78
        ("customer_id", "id"),  # one name contains the other
    ],
)
def test_a_missing_and_a_new_column_that_look_alike_are_a_rename(old: str, new: str) -> None:
    report = detect(observed(**{old: None, new: "string"}), INVOICES)
    assert report == DriftReport("erp__invoices", renamed=((old, new),))


def test_names_that_do_not_look_alike_are_no_rename() -> None:
    report = detect(observed(customer_id=None, client="string"), INVOICES)
    assert report == DriftReport("erp__invoices", added=("client",), removed=("customer_id",))


def test_a_look_alike_column_whose_values_do_not_fit_is_no_rename() -> None:
    report = detect(observed(amount_net=None, amount_nett="string"), INVOICES)
    assert report == DriftReport("erp__invoices", added=("amount_nett",), removed=("amount_net",))


def test_a_look_alike_column_whose_type_widens_is_a_rename() -> None:
    report = detect(observed(amount_net=None, amount_nett="integer"), INVOICES)
    assert report == DriftReport("erp__invoices", renamed=(("amount_net", "amount_nett"),))


def test_each_column_is_in_at_most_one_rename_and_the_most_alike_pair_wins() -> None:
    contract = Dataset("crm__customers", (Field("customer_nr", "string"), Field("customer_name", "string")))
    # customer_no is alike both (ratio 0.91 with customer_nr, 0.83 with customer_name): customer_nr wins.
    report = detect({"customer_no": "string"}, contract)
    assert report == DriftReport(
        "crm__customers", removed=("customer_name",), renamed=(("customer_nr", "customer_no"),)
    )


def test_renames_are_paired_best_match_first() -> None:
    contract = Dataset("crm__customers", (Field("region", "string"), Field("customer_id", "string")))
    report = detect({"customerid": "string", "regions": "string"}, contract)
    assert report.renamed == (("customer_id", "customerid"), ("region", "regions"))


def test_the_summary_names_every_kind_of_drift_on_one_line() -> None:
    report = detect(
        observed(customer_id=None, CustomerId="string", issued_at=None, amount_net="string", status="string"),
        INVOICES,
    )
    assert report == DriftReport(
        "erp__invoices",
        added=("status",),
        removed=("issued_at",),
        renamed=(("customer_id", "CustomerId"),),
        type_changed=(("amount_net", "decimal", "string"),),
    )
    assert report.summary() == (
        "erp__invoices drifted: added status; removed issued_at; renamed customer_id → CustomerId; "
        "type changed amount_net (decimal → string)"
    )


def test_a_type_outside_the_contract_vocabulary_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        detect(observed(amount_net="money"), INVOICES)
    assert caught.value.to_dict() == {
        "code": "invalid_input",
        "title": "Invalid input",
        "detail": f"observed: column amount_net has type 'money', not one of {', '.join(TYPES)}",
        "field": "observed",
        "column": "amount_net",
    }


# -- the drift policy -------------------------------------------------------------------------------

DRIFTED = DriftReport("erp__invoices", added=("status",))


@pytest.mark.parametrize(
    ("policy", "decision"),
    [("alert", "continue"), ("quarantine", "quarantine"), ("stop", "stop"), ("STOP", "stop")],
)
def test_drift_is_handled_as_the_contract_policy_says(policy: str, decision: str) -> None:
    assert decide(DRIFTED, policy) == decision


@pytest.mark.parametrize("policy", ["alert", "quarantine", "stop"])
def test_a_source_without_drift_continues_under_every_policy(policy: str) -> None:
    assert decide(DriftReport("erp__invoices"), policy) == "continue"


def test_an_unknown_policy_is_invalid_input_even_without_drift() -> None:
    with pytest.raises(InvalidInput) as caught:
        decide(DriftReport("erp__invoices"), "ignore")
    assert caught.value.to_dict() == {
        "code": "invalid_input",
        "title": "Invalid input",
        "detail": "drift_policy: 'ignore' is not a drift policy; use one of alert, quarantine, stop",
        "field": "drift_policy",
        "valid": ["alert", "quarantine", "stop"],
    }


# -- properties -------------------------------------------------------------------------------------

names = st.text(alphabet="abcde_", min_size=1, max_size=8).filter(lambda n: not n.startswith("_keel_"))
columns = st.dictionaries(names, st.sampled_from(TYPES), max_size=6)


@given(columns, columns)
def test_every_column_is_accounted_for_exactly_once(declared: dict[str, str], found: dict[str, str]) -> None:
    report = detect(found, Dataset("t", tuple(Field(name, kind) for name, kind in declared.items())))
    kept = [name for name in declared if name in found]
    renamed_old = [old for old, _ in report.renamed]
    renamed_new = [new for _, new in report.renamed]
    assert sorted(kept + list(report.removed) + renamed_old) == sorted(declared)
    assert sorted(kept + list(report.added) + renamed_new) == sorted(found)
    assert {column for column, _, _ in report.type_changed} <= set(kept)


@given(columns)
def test_a_source_observed_exactly_as_declared_never_drifts(declared: dict[str, str]) -> None:
    report = detect(declared, Dataset("t", tuple(Field(name, kind) for name, kind in declared.items())))
    assert report == DriftReport("t")
    assert decide(report, "stop") == "continue"
