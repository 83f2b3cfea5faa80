"""The delta of a select-project-join mapping (pure): which mappings qualify, and the terms written."""

from __future__ import annotations

import pytest
import sqlglot

from keel.pipeline.delta import delta_query, not_incremental
from keel.pipeline.statements import table

JOIN = "SELECT l.k, o.d FROM raw.lines AS l JOIN raw.orders AS o ON o.k = l.k WHERE l.q > 0"


def _parse(sql: str):
    return sqlglot.parse_one(sql, read="duckdb")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT l.k FROM raw.lines AS l LEFT JOIN raw.orders AS o ON o.k = l.k", "LEFT JOIN"),
        ("SELECT l.k FROM raw.lines AS l WHERE l.k IN (SELECT o.k FROM raw.orders AS o)", "subquery"),
        ("SELECT l.k, ROW_NUMBER() OVER (PARTITION BY l.k) AS n FROM raw.lines AS l", "window"),
        ("SELECT l.k, COUNT(*) AS n FROM raw.lines AS l GROUP BY l.k", "GROUP BY"),
        ("SELECT l.k FROM raw.lines AS l UNION ALL SELECT o.k FROM raw.orders AS o", "not one SELECT"),
        ("WITH x AS (SELECT l.k FROM raw.lines AS l) SELECT x.k FROM x", "WITH"),
        ("SELECT l.k, NOW() AS at FROM raw.lines AS l", "when it runs"),
    ],
)
def test_a_mapping_whose_old_rows_could_change_is_named_with_why(sql, reason) -> None:
    assert reason in (not_incremental(_parse(sql)) or "")


def test_a_select_project_join_qualifies() -> None:
    assert not_incremental(_parse(JOIN)) is None


def test_nothing_new_is_no_query_and_one_new_input_is_one_term() -> None:
    query = _parse(JOIN)

    assert delta_query(query, {"raw.lines": [], "raw.orders": []}) is None
    one = delta_query(query, {"raw.lines": ["B2"], "raw.orders": []}).sql("duckdb")
    assert "UNION" not in one and "l.\"_keel_batch_id\" IN ('B2')" in one.replace('"l"', "l")


def test_two_new_inputs_are_two_terms_the_second_reading_the_first_one_old() -> None:
    query = _parse(JOIN)

    both = delta_query(
        query, {"raw.lines": ["B2"], "raw.orders": ["B3"]}, {"raw.lines": table("gdp", "new_0")}
    )
    first, second = both.this.sql("duckdb"), both.expression.sql("duckdb")

    assert '"gdp"."new_0" AS "l"' in first and "B3" not in first  # the staged new lines, all orders
    assert "NOT" in second and "'B2'" in second and "'B3'" in second  # old lines, new orders only
    assert "WHERE l.q > 0" in first.replace('"', "") and "l.q > 0" in second.replace('"', "")
