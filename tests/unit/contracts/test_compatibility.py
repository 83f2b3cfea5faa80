"""Compatibility of contract versions: what each change breaks, what a mode allows, which bump it needs."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.contracts.compatibility import Change, Mode, Report, check, check_version, diff, required_bump
from keel.contracts.model import TYPES, Contract, Dataset, Field, KpiSpec, Layer, Threshold
from keel.kernel.errors import InvalidInput

BACKWARD = frozenset({"backward"})
FORWARD = frozenset({"forward"})
BOTH = BACKWARD | FORWARD
NEITHER: frozenset[str] = frozenset()

ID = Field("id", "integer", required=True, primary_key=True)
AMOUNT = Field("amount", "decimal", required=True)
NOTE = Field("note", "string")


def contract(*datasets: Dataset, version: str = "1.0.0", compatibility: str = "BACKWARD") -> Contract:
    return Contract(
        id="sales.orders",
        name="Orders",
        version=version,
        layer=Layer.GDP,
        datasets=datasets,
        compatibility=compatibility,
    )


def orders(*fields: Field, mapping_sql: str | None = None) -> Dataset:
    return Dataset("orders", fields, mapping_sql)


def kpi_contract(version: str = "1.0.0", **spec) -> Contract:
    base = KpiSpec(
        formula="SUM(amount)",
        grain="month",
        time_field="placed_at",
        unit="EUR",
        dimensions=("region",),
        filters=("status = 'paid'", "amount > 0"),
        thresholds=(Threshold("low", "<", 1000.0),),
        targets=(("default", 5000.0),),
        visible_to=("cfo",),
    )
    return Contract(
        id="sales.revenue",
        name="Revenue",
        version=version,
        layer=Layer.KPI,
        kpi=dataclasses.replace(base, **spec),
    )


# -- modes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "directions", "transitive"),
    [
        (Mode.NONE, NEITHER, False),
        (Mode.BACKWARD, BACKWARD, False),
        (Mode.BACKWARD_TRANSITIVE, BACKWARD, True),
        (Mode.FORWARD, FORWARD, False),
        (Mode.FORWARD_TRANSITIVE, FORWARD, True),
        (Mode.FULL, BOTH, False),
        (Mode.FULL_TRANSITIVE, BOTH, True),
    ],
)
def test_each_mode_checks_its_directions_against_the_newest_or_every_earlier_version(
    mode: Mode, directions: frozenset[str], transitive: bool
) -> None:
    assert (mode.directions, mode.transitive) == (directions, transitive)


def test_a_mode_is_read_in_any_case() -> None:
    assert [Mode.parse(text) for text in ("full_transitive", " Backward ", Mode.NONE)] == [
        Mode.FULL_TRANSITIVE,
        Mode.BACKWARD,
        Mode.NONE,
    ]


def test_an_unknown_mode_is_invalid_input_listing_the_valid_modes() -> None:
    with pytest.raises(InvalidInput) as caught:
        check(contract(orders(ID)), [contract(orders(ID))], "SIDEWAYS")
    valid = [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ]
    assert caught.value.to_dict() == {
        "code": "invalid_input",
        "title": "Invalid input",
        "detail": f"compatibility: 'SIDEWAYS' is not a compatibility mode; use one of {', '.join(valid)}",
        "field": "compatibility",
        "valid": valid,
    }


# -- what each change breaks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            orders(ID),
            orders(ID, NOTE),
            Change("field_added", "orders", "note", "optional field orders.note (string) was added"),
            id="optional field added",
        ),
        pytest.param(
            orders(ID),
            orders(ID, AMOUNT),
            Change(
                "field_added",
                "orders",
                "amount",
                "required field orders.amount (decimal) was added; older data has no value for it",
                BACKWARD,
            ),
            id="required field added",
        ),
        pytest.param(
            orders(ID, NOTE),
            orders(ID),
            Change("field_removed", "orders", "note", "optional field orders.note was removed"),
            id="optional field removed",
        ),
        pytest.param(
            orders(ID, AMOUNT),
            orders(ID),
            Change(
                "field_removed",
                "orders",
                "amount",
                "required field orders.amount was removed; readers of the old contract still expect it",
                FORWARD,
            ),
            id="required field removed",
        ),
        pytest.param(
            orders(ID, Field("amount", "integer", required=True)),
            orders(ID, AMOUNT),
            Change(
                "type_changed",
                "orders",
                "amount",
                "type of orders.amount widened from integer to decimal",
                FORWARD,
            ),
            id="type widened",
        ),
        pytest.param(
            orders(ID, Field("placed", "timestamp")),
            orders(ID, Field("placed", "date")),
            Change(
                "type_changed",
                "orders",
                "placed",
                "type of orders.placed narrowed from timestamp to date",
                BACKWARD,
            ),
            id="type narrowed",
        ),
        pytest.param(
            orders(ID, NOTE),
            orders(ID, Field("note", "integer")),
            Change(
                "type_changed", "orders", "note", "type of orders.note changed from string to integer", BOTH
            ),
            id="type changed to an unrelated type",
        ),
        pytest.param(
            orders(ID, NOTE),
            orders(ID, Field("note", "string", required=True)),
            Change(
                "required_changed",
                "orders",
                "note",
                "orders.note changed from optional to required",
                BACKWARD,
            ),
            id="optional became required",
        ),
        pytest.param(
            orders(ID, AMOUNT),
            orders(ID, Field("amount", "decimal")),
            Change(
                "required_changed",
                "orders",
                "amount",
                "orders.amount changed from required to optional",
                FORWARD,
            ),
            id="required became optional",
        ),
        pytest.param(
            orders(ID, NOTE),
            orders(ID, Field("note", "string", unique=True)),
            Change(
                "unique_changed", "orders", "note", "orders.note changed from not unique to unique", BACKWARD
            ),
            id="became unique",
        ),
        pytest.param(
            orders(ID, Field("note", "string", unique=True)),
            orders(ID, NOTE),
            Change(
                "unique_changed", "orders", "note", "orders.note changed from unique to not unique", FORWARD
            ),
            id="no longer unique",
        ),
        pytest.param(
            orders(ID, NOTE),
            orders(ID, Field("note", "string", description="Free text")),
            Change(
                "description_changed",
                "orders",
                "note",
                "orders.note description changed from none to 'Free text'",
            ),
            id="description changed",
        ),
        pytest.param(
            orders(ID, Field("note", "string", classification="internal")),
            orders(ID, Field("note", "string", classification="confidential", pii=True)),
            [
                Change(
                    "classification_changed",
                    "orders",
                    "note",
                    "orders.note classification changed from 'internal' to 'confidential'",
                ),
                Change("pii_changed", "orders", "note", "orders.note pii changed from none to True"),
            ],
            id="classification and PII changed",
        ),
        pytest.param(
            orders(ID, Field("code", "string", required=True)),
            orders(
                Field("id", "integer", required=True),
                Field("code", "string", required=True, primary_key=True),
            ),
            Change(
                "primary_key_changed",
                "orders",
                None,
                "primary key of orders changed from (id) to (code)",
                BOTH,
            ),
            id="primary key changed",
        ),
        pytest.param(
            orders(ID, mapping_sql="SELECT id FROM raw.erp__orders"),
            orders(ID, mapping_sql="SELECT order_id AS id FROM raw.erp__orders"),
            Change(
                "mapping_changed",
                "orders",
                None,
                "mapping of orders changed from 'SELECT id FROM raw.erp__orders' "
                "to 'SELECT order_id AS id FROM raw.erp__orders'",
            ),
            id="GDP mapping changed",
        ),
    ],
)
def test_each_change_says_which_directions_it_breaks(
    old: Dataset, new: Dataset, expected: Change | list[Change]
) -> None:
    assert diff(contract(old), contract(new)) == tuple(expected if isinstance(expected, list) else [expected])


def test_an_added_dataset_breaks_nothing_and_a_removed_one_breaks_forward() -> None:
    lines = Dataset("lines", (ID, AMOUNT))
    assert diff(contract(orders(ID)), contract(orders(ID), lines)) == (
        Change("dataset_added", "lines", None, "dataset lines was added"),
    )
    assert diff(contract(orders(ID), lines), contract(orders(ID))) == (
        Change(
            "dataset_removed",
            "lines",
            None,
            "dataset lines was removed; readers of the old contract still expect it",
            FORWARD,
        ),
    )


def test_field_order_and_primary_key_order_are_not_changes() -> None:
    code = Field("code", "string", required=True, primary_key=True)
    assert diff(contract(orders(ID, code, NOTE)), contract(orders(NOTE, code, ID))) == ()


def test_changes_come_in_dataset_order_then_added_datasets() -> None:
    old = contract(orders(ID, NOTE), Dataset("lines", (ID,)))
    new = contract(Dataset("refunds", (ID,)), Dataset("lines", (ID, NOTE)), orders(ID))
    assert [(c.kind, c.dataset, c.field) for c in diff(old, new)] == [
        ("field_removed", "orders", "note"),
        ("field_added", "lines", "note"),
        ("dataset_added", "refunds", None),
    ]


# -- what each mode allows --------------------------------------------------------------------------

NON_TRANSITIVE_AND_TRANSITIVE = {
    NEITHER: set(Mode),
    BACKWARD: {Mode.NONE, Mode.FORWARD, Mode.FORWARD_TRANSITIVE},
    FORWARD: {Mode.NONE, Mode.BACKWARD, Mode.BACKWARD_TRANSITIVE},
    BOTH: {Mode.NONE},
}


@pytest.mark.parametrize(
    ("old", "new", "breaks"),
    [
        pytest.param(orders(ID), orders(ID, NOTE), NEITHER, id="optional field added"),
        pytest.param(orders(ID), orders(ID, AMOUNT), BACKWARD, id="required field added"),
        pytest.param(orders(ID, AMOUNT), orders(ID), FORWARD, id="required field removed"),
        pytest.param(orders(ID, NOTE), orders(ID, Field("note", "integer")), BOTH, id="type changed"),
    ],
)
def test_each_mode_refuses_exactly_the_changes_that_break_its_directions(
    old: Dataset, new: Dataset, breaks: frozenset[str]
) -> None:
    allowed = {mode for mode in Mode if check(contract(new), [contract(old)], mode).compatible}
    assert allowed == NON_TRANSITIVE_AND_TRANSITIVE[breaks]


def test_a_report_pairs_each_breaking_change_with_the_version_it_breaks() -> None:
    old = contract(orders(ID, NOTE))
    new = contract(orders(ID, AMOUNT), version="2.0.0")
    added = Change(
        "field_added",
        "orders",
        "amount",
        "required field orders.amount (decimal) was added; older data has no value for it",
        BACKWARD,
    )
    removed = Change("field_removed", "orders", "note", "optional field orders.note was removed")
    report = check(new, [old], "BACKWARD")
    assert report == Report(mode=Mode.BACKWARD, changes=(removed, added), breaking=((added, "1.0.0"),))
    assert report.compatible is False


def test_a_first_version_is_compatible_with_no_history() -> None:
    assert check(contract(orders(ID)), [], Mode.FULL_TRANSITIVE) == Report(Mode.FULL_TRANSITIVE, (), ())


def test_transitive_modes_also_hold_the_new_version_to_older_versions() -> None:
    # 1.0.0 has note as text, 1.1.0 drops it (optional: fine both ways), 1.2.0 brings it back as a
    # number: fine next to 1.1.0, but readers and data of 1.0.0 disagree on what note holds.
    history = [
        contract(orders(ID, NOTE), version="1.0.0"),
        contract(orders(ID), version="1.1.0"),
    ]
    new = contract(orders(ID, Field("note", "integer")), version="1.2.0")
    retyped = Change(
        "type_changed", "orders", "note", "type of orders.note changed from string to integer", BOTH
    )
    readded = Change("field_added", "orders", "note", "optional field orders.note (integer) was added")
    compatible = {mode: check(new, history, mode).compatible for mode in Mode}
    assert compatible == {
        Mode.NONE: True,
        Mode.BACKWARD: True,
        Mode.FORWARD: True,
        Mode.FULL: True,
        Mode.BACKWARD_TRANSITIVE: False,
        Mode.FORWARD_TRANSITIVE: False,
        Mode.FULL_TRANSITIVE: False,
    }
    assert check(new, history, Mode.FULL_TRANSITIVE) == Report(
        mode=Mode.FULL_TRANSITIVE, changes=(readded,), breaking=((retyped, "1.0.0"),)
    )


# -- KPI contracts ---------------------------------------------------------------------------------

OTHER_NUMBERS = "; the same KPI would report other numbers"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"formula": "SUM(amount_net)"},
            Change(
                "formula_changed",
                None,
                None,
                f"KPI formula changed from 'SUM(amount)' to 'SUM(amount_net)'{OTHER_NUMBERS}",
                BOTH,
            ),
            id="formula",
        ),
        pytest.param(
            {"grain": "week"},
            Change(
                "grain_changed", None, None, f"KPI grain changed from 'month' to 'week'{OTHER_NUMBERS}", BOTH
            ),
            id="grain",
        ),
        pytest.param(
            {"time_field": "paid_at"},
            Change(
                "time_field_changed",
                None,
                None,
                f"KPI time field changed from 'placed_at' to 'paid_at'{OTHER_NUMBERS}",
                BOTH,
            ),
            id="time field",
        ),
        pytest.param(
            {"unit": "USD"},
            Change("unit_changed", None, None, f"KPI unit changed from 'EUR' to 'USD'{OTHER_NUMBERS}", BOTH),
            id="unit",
        ),
        pytest.param(
            {"filters": ("status = 'paid'",)},
            Change(
                "filters_changed",
                None,
                None,
                f"KPI filters changed from (status = 'paid', amount > 0) to (status = 'paid'){OTHER_NUMBERS}",
                BOTH,
            ),
            id="filters",
        ),
        pytest.param(
            {"dimensions": ()},
            Change(
                "dimension_removed",
                None,
                "region",
                "KPI dimension region was removed; results broken down by it no longer exist",
                BOTH,
            ),
            id="dimension removed",
        ),
    ],
)
def test_a_kpi_whose_numbers_change_meaning_breaks_every_mode_but_none(spec: dict, expected: Change) -> None:
    old, new = kpi_contract(), kpi_contract("1.1.0", **spec)
    assert diff(old, new) == (expected,)
    assert {mode for mode in Mode if check(new, [old], mode).compatible} == {Mode.NONE}
    assert required_bump(old, new) == "major"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"dimensions": ("region", "channel")},
            Change("dimension_added", None, "channel", "KPI dimension channel was added"),
            id="dimension added",
        ),
        pytest.param(
            {"thresholds": (Threshold("low", "<", 800.0, "critical"),)},
            Change(
                "thresholds_changed",
                None,
                None,
                "KPI thresholds changed from (low < 1000 (warning)) to (low < 800 (critical))",
            ),
            id="threshold",
        ),
        pytest.param(
            {"targets": (("default", 6000.0),)},
            Change(
                "targets_changed",
                None,
                None,
                "KPI targets changed from (default: 5000) to (default: 6000)",
            ),
            id="target",
        ),
        pytest.param(
            {"visible_to": ("cfo", "controller")},
            Change(
                "visible_to_changed", None, None, "KPI visible to changed from (cfo) to (cfo, controller)"
            ),
            id="audience",
        ),
    ],
)
def test_a_kpi_that_adds_a_dimension_or_moves_a_threshold_or_target_breaks_nobody(
    spec: dict, expected: Change
) -> None:
    old, new = kpi_contract(), kpi_contract("1.1.0", **spec)
    assert diff(old, new) == (expected,)
    assert check(new, [old], Mode.FULL_TRANSITIVE).compatible
    assert required_bump(old, new) == "minor"


def test_reordered_kpi_filters_and_dimensions_mean_the_same_numbers() -> None:
    old = kpi_contract(dimensions=("region", "channel"))
    new = kpi_contract(dimensions=("channel", "region"), filters=("amount > 0", "status = 'paid'"))
    assert diff(old, new) == ()


def test_dropping_the_kpi_definition_breaks_both_directions() -> None:
    old = kpi_contract()
    new = dataclasses.replace(old, kpi=None)
    assert diff(old, new) == (Change("kpi_removed", None, None, "the KPI definition was removed", BOTH),)
    assert diff(new, old) == (Change("kpi_added", None, None, "a KPI definition was added"),)


# -- version numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [
        pytest.param(orders(ID), orders(ID), "patch", id="nothing changed"),
        pytest.param(
            orders(ID, NOTE), orders(ID, Field("note", "string", description="x")), "patch", id="description"
        ),
        pytest.param(
            orders(ID, mapping_sql="SELECT 1"), orders(ID, mapping_sql="SELECT 2"), "patch", id="mapping"
        ),
        pytest.param(orders(ID), orders(ID, NOTE), "minor", id="optional field added"),
        pytest.param(orders(ID, NOTE), orders(ID), "minor", id="optional field removed"),
        pytest.param(
            orders(ID, NOTE),
            orders(ID, Field("note", "string", classification="confidential")),
            "minor",
            id="classification",
        ),
        pytest.param(orders(ID), orders(ID, AMOUNT), "major", id="breaks backward"),
        pytest.param(orders(ID, AMOUNT), orders(ID), "major", id="breaks forward"),
    ],
)
def test_the_required_bump_follows_the_strongest_change(old: Dataset, new: Dataset, bump: str) -> None:
    assert required_bump(contract(old), contract(new)) == bump


@pytest.mark.parametrize("version", ["1.0.0", "0.9.9"])
def test_a_version_that_does_not_move_forward_is_refused(version: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_version(contract(orders(ID), version=version), [contract(orders(ID))])
    assert caught.value.to_dict() == {
        "code": "invalid_input",
        "title": "Invalid input",
        "detail": f"version: {version} is not greater than the newest earlier version 1.0.0",
        "field": "version",
        "version": version,
        "newest": "1.0.0",
    }


def test_a_version_that_is_not_semver_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_version(contract(orders(ID), version="2.0"), [contract(orders(ID))])
    assert caught.value.fields == {"field": "version", "version": "2.0"}


def test_a_breaking_change_without_a_major_bump_names_the_change_and_the_version_needed() -> None:
    history = [contract(orders(ID), version="1.0.0"), contract(orders(ID, NOTE), version="1.3.0")]
    with pytest.raises(InvalidInput) as caught:
        check_version(contract(orders(ID, NOTE, AMOUNT), version="1.4.0"), history)
    assert caught.value.to_dict() == {
        "code": "invalid_input",
        "title": "Invalid input",
        "detail": "version: 1.4.0 breaks BACKWARD compatibility with 1.3.0 (required field orders.amount "
        "(decimal) was added; older data has no value for it); publish it as 2.0.0",
        "field": "version",
        "version": "1.4.0",
        "change": "field_added",
        "against": "1.3.0",
        "needed": "2.0.0",
    }


def test_a_breaking_change_with_a_major_bump_is_published_and_reported() -> None:
    report = check_version(contract(orders(ID, AMOUNT), version="2.0.0"), [contract(orders(ID))])
    assert (report.compatible, [c.kind for c, _ in report.breaking]) == (False, ["field_added"])


def test_the_contracts_own_mode_decides_what_needs_a_major_bump() -> None:
    old = contract(orders(ID), compatibility="FORWARD")
    new = contract(orders(ID, AMOUNT), version="1.1.0", compatibility="FORWARD")
    assert check_version(new, [old]).compatible  # a required field only breaks backward
    with pytest.raises(InvalidInput) as caught:
        check_version(new, [old], Mode.BACKWARD)
    assert caught.value.fields["needed"] == "2.0.0"


def test_mode_none_only_asks_the_version_to_move_forward() -> None:
    new = contract(orders(Field("id", "string", required=True)), version="1.0.1")
    assert check_version(new, [contract(orders(ID))], "NONE").changes != ()
    with pytest.raises(InvalidInput, match="not greater"):
        check_version(new, [new], "NONE")


def test_a_break_against_an_older_major_line_needs_no_new_major() -> None:
    # 2.0.0 already told consumers of 1.x to expect breaks; 2.1.0 only owes compatibility to 2.x.
    one = contract(orders(ID, NOTE), version="1.0.0")
    two = contract(orders(ID), version="2.0.0")
    new = contract(orders(ID, Field("note", "integer")), version="2.1.0")
    report = check_version(new, [one, two], Mode.FULL_TRANSITIVE)
    assert [(c.kind, against) for c, against in report.breaking] == [("type_changed", "1.0.0")]


def test_a_break_against_an_older_version_of_the_same_major_line_needs_a_new_major() -> None:
    history = [contract(orders(ID, NOTE), version="1.0.0"), contract(orders(ID), version="1.1.0")]
    new = contract(orders(ID, Field("note", "integer")), version="1.2.0")
    assert check_version(new, history, Mode.BACKWARD).compatible
    with pytest.raises(InvalidInput) as caught:
        check_version(new, history, Mode.BACKWARD_TRANSITIVE)
    assert (caught.value.fields["against"], caught.value.fields["needed"]) == ("1.0.0", "2.0.0")


def test_the_first_version_of_a_contract_is_accepted() -> None:
    assert check_version(contract(orders(ID), version="0.1.0"), []).compatible


def test_check_version_refuses_an_unknown_mode_before_looking_at_versions() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_version(contract(orders(ID), compatibility="sometimes"), [])
    assert caught.value.fields["field"] == "compatibility"


# -- properties -------------------------------------------------------------------------------------

NAMES = ("id", "amount", "note", "placed_at")
TABLES = ("orders", "lines")


def field_named(name: str) -> st.SearchStrategy[Field]:
    return st.builds(
        Field,
        name=st.just(name),
        type=st.sampled_from(TYPES),
        required=st.booleans(),
        unique=st.booleans(),
        primary_key=st.booleans(),
        classification=st.sampled_from((None, "internal")),
        description=st.sampled_from(("", "text")),
    )


fields = st.lists(st.sampled_from(NAMES), unique=True).flatmap(
    lambda names: st.tuples(*map(field_named, names))
)


def dataset(name: str) -> st.SearchStrategy[Dataset]:
    return st.builds(
        Dataset, name=st.just(name), fields=fields, mapping_sql=st.sampled_from((None, "SELECT 1"))
    )


kpis = st.builds(
    KpiSpec,
    formula=st.sampled_from(("SUM(amount)", "COUNT(*)")),
    grain=st.sampled_from(("day", "month")),
    time_field=st.just("placed_at"),
    unit=st.sampled_from(("EUR", "orders")),
    dimensions=st.lists(st.sampled_from(("region", "channel")), unique=True).map(tuple),
)

contracts = st.builds(
    Contract,
    id=st.just("sales.orders"),
    name=st.just("Orders"),
    version=st.just("1.0.0"),
    layer=st.just(Layer.GDP),
    datasets=st.lists(st.sampled_from(TABLES), unique=True).flatmap(
        lambda names: st.tuples(*map(dataset, names))
    ),
    kpi=st.none() | kpis,
)


@st.composite
def edited(draw: st.DrawFn, old: Contract) -> Contract:
    """``old`` with one or two fields of one table added, dropped or redefined: a realistic next version
    (two random contracts differ so much that every mode refuses them, which proves nothing)."""
    table = old.dataset(draw(st.sampled_from(TABLES))) or draw(dataset(draw(st.sampled_from(TABLES))))
    by_name = {f.name: f for f in table.fields}
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(NAMES))
        if name in by_name and draw(st.booleans()):
            del by_name[name]
        else:
            by_name[name] = draw(field_named(name))
    edit = dataclasses.replace(table, fields=tuple(by_name.values()))
    others = tuple(d for d in old.datasets if d.name != table.name)
    return dataclasses.replace(old, datasets=(*others, edit))


@st.composite
def histories(draw: st.DrawFn, length: int, first: st.SearchStrategy[Contract] = contracts) -> list[Contract]:
    versions = [draw(first)]
    while len(versions) < length:
        versions.append(draw(edited(versions[-1])))
    return versions


@given(contracts)
def test_a_contract_has_no_changes_against_itself(version: Contract) -> None:
    assert diff(version, version) == ()
    assert required_bump(version, version) == "patch"


@given(histories(3))
def test_full_compatibility_is_backward_and_forward_compatibility(history: list[Contract]) -> None:
    *earlier, new = history
    for full, backward, forward in [
        (Mode.FULL, Mode.BACKWARD, Mode.FORWARD),
        (Mode.FULL_TRANSITIVE, Mode.BACKWARD_TRANSITIVE, Mode.FORWARD_TRANSITIVE),
    ]:
        both = check(new, earlier, backward).compatible and check(new, earlier, forward).compatible
        assert check(new, earlier, full).compatible == both


both_tables = contracts.filter(lambda c: len(c.datasets) == len(TABLES))


@given(histories(2, both_tables))
def test_reading_new_with_old_is_the_mirror_of_reading_old_with_new(history: list[Contract]) -> None:
    # Within the same tables every field rule is symmetric: what breaks backward one way breaks forward
    # the other. (Tables are not: an added one breaks nobody, a removed one breaks forward.)
    old, new = history
    assert check(new, [old], Mode.BACKWARD).compatible == check(old, [new], Mode.FORWARD).compatible


@given(histories(2))
def test_a_major_bump_is_needed_exactly_when_full_compatibility_fails(history: list[Contract]) -> None:
    old, new = history
    assert (required_bump(old, new) == "major") == (not check(new, [old], Mode.FULL).compatible)
