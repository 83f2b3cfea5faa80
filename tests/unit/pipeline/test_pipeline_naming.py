"""Names of built tables: what reaches SQL text is a safe identifier, and versioned names cannot
collide with an entity's own name."""

from __future__ import annotations

import pytest

from keel.kernel.errors import InvalidInput
from keel.pipeline.naming import canonical_version, layer_name, safe_name, version_tag, versioned


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("order", "order"),
        ("invoice_line", "invoice_line"),
        ("KPI-ORDER-VALUE", "kpi_order_value"),  # a contract id
        ("kpi.dso:eu", "kpi_dso_eu"),
        ("q4", "q4"),
    ],
)
def test_a_safe_name_is_lower_case_words_joined_by_single_underscores(text: str, name: str) -> None:
    assert safe_name(text) == name


@pytest.mark.parametrize(
    "text",
    [
        "",
        'order"; DROP TABLE raw.shop__orders; --',
        "order line",
        "order__v1_0_0",  # would be the table of version 1.0.0 of "order"
        "_order",
        "order_",
        "ordér",
        "a" * 64,
    ],
)
def test_an_unsafe_name_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        safe_name(text, "dataset")
    assert caught.value.fields["field"] == "dataset"


def test_a_version_is_built_into_a_table_named_after_it() -> None:
    assert (version_tag("1.2.3"), versioned("Order", "v10.0.1")) == ("v1_2_3", "order__v10_0_1")
    assert canonical_version("v1.2.3") == "1.2.3"


@pytest.mark.parametrize("version", ["1.2", "1.2.3-rc.1", "01.2.3", "1.2.3; --"])
def test_a_version_that_is_not_major_minor_patch_is_refused(version: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        versioned("order", version)
    assert caught.value.fields["field"] == "version"


def test_only_gdp_and_kpi_hold_materializations() -> None:
    assert (layer_name("gdp"), layer_name("kpi")) == ("gdp", "kpi")
    with pytest.raises(InvalidInput):
        layer_name("raw")
