"""The statements a build runs: built as SQLGlot trees, names quoted, rendered for any dialect; the
KPI query reads the GDP build it is given; a mapping's output is typed as its contract says."""

from __future__ import annotations

import pytest
from sqlglot import exp

from keel.contracts.kpi_sql import validate_kpi
from keel.contracts.mapping import validate_mapping
from keel.contracts.model import Dataset, Field, KpiSpec
from keel.kernel.errors import InvalidInput
from keel.pipeline.conform import cast_target, conform
from keel.pipeline.statements import create_table_as, create_view, render, retarget, table

RAW = Dataset(
    "shop__orders", (Field("order_id", "string"), Field("amount", "decimal"), Field("placed_at", "date"))
)
ORDER = Dataset(
    "order",
    (Field("order_id", "string", required=True), Field("amount", "decimal"), Field("placed_at", "date")),
)


def test_a_reference_to_an_unsafe_table_is_refused() -> None:
    with pytest.raises(InvalidInput):
        table("gdp", 'order"; DROP TABLE x; --')


def test_the_kpi_query_is_pointed_at_a_versioned_gdp_table_keeping_its_alias() -> None:
    plan = validate_kpi(KpiSpec("SUM(amount)", "month", "placed_at", "EUR"), {"gdp.order": ORDER})

    query = retarget(plan.expression, "gdp.order", table("gdp", "order__v2_0_0"))

    assert 'FROM "gdp"."order__v2_0_0" AS "order"' in render(query, "duckdb")
    assert 'SUM("order"."amount")' in render(query, "duckdb")
    assert 'FROM "gdp"."order" AS "order"' in render(plan.expression, "duckdb")  # the plan is untouched


def test_pointing_a_query_at_a_table_it_does_not_read_is_refused() -> None:
    plan = validate_kpi(KpiSpec("SUM(amount)", "month", "placed_at", "EUR"), {"gdp.order": ORDER})

    with pytest.raises(InvalidInput):
        retarget(plan.expression, "gdp.invoice", table("gdp", "invoice__v1_0_0"))


def test_a_build_and_its_view_render_for_duckdb_and_spark() -> None:
    plan = validate_mapping(
        "SELECT order_id, amount, placed_at FROM raw.shop__orders", ORDER, {"raw.shop__orders": RAW}
    )
    build = create_table_as(table("gdp", "order__v1_0_0"), conform(plan.expression, ORDER, {}, "duckdb"))
    view = create_view(table("gdp", "order"), table("gdp", "order__v1_0_0"), ["order_id", "amount"])

    assert render(build, "spark").startswith("CREATE OR REPLACE TABLE `gdp`.`order__v1_0_0` AS SELECT")
    assert render(view, "duckdb") == (
        'CREATE OR REPLACE VIEW "gdp"."order" AS SELECT "order_id", "amount" FROM "gdp"."order__v1_0_0"'
    )


@pytest.mark.parametrize(
    ("field_type", "found", "target"),
    [
        ("decimal", "DECIMAL(18,2)", None),  # same kind: the engine's precision is kept
        ("string", "VARCHAR", None),
        ("timestamp", "TIMESTAMP WITH TIME ZONE", None),
        ("decimal", "VARCHAR", "DECIMAL(38, 9)"),  # the Raw table drifted from its contract
        ("decimal", "INTEGER", "DECIMAL(38, 9)"),
        ("timestamp", "DATE", "TIMESTAMP"),
        ("string", '"NULL"', "TEXT"),  # NULL AS field: typed as the field
        ("object", "VARCHAR", None),  # objects and arrays are never converted
        ("string", None, None),  # the engine did not say
        ("string", "NOT A TYPE ((", None),
    ],
)
def test_only_a_column_of_another_kind_than_its_field_is_converted(
    field_type: str, found: str | None, target: str | None
) -> None:
    converted = cast_target(field_type, found, "duckdb")

    assert (converted.sql("duckdb") if converted else None) == target


def test_a_converted_column_flags_the_rows_whose_value_did_not_convert() -> None:
    plan = validate_mapping(
        "SELECT order_id, amount, placed_at FROM raw.shop__orders", ORDER, {"raw.shop__orders": RAW}
    )

    query = conform(
        plan.expression, ORDER, {"order_id": "VARCHAR", "amount": "VARCHAR", "placed_at": "DATE"}, "duckdb"
    )

    assert [s.alias for s in query.selects] == ["order_id", "amount", "placed_at", "_keel_type_error"]
    assert render(query.selects[-1], "duckdb") == (
        'NOT "_keel_mapping"."amount" IS NULL '
        'AND TRY_CAST("_keel_mapping"."amount" AS DECIMAL(38, 9)) IS NULL AS "_keel_type_error"'
    )
    assert isinstance(query.selects[0].this, exp.Column)
