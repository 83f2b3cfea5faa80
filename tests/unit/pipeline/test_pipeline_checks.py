"""Constraint checks of a GDP dataset: derived from its fields, counted by one query whose figures
match the same counts done in plain Python."""

from __future__ import annotations

from collections import Counter

import duckdb
import pytest

from keel.contracts.model import Dataset, Field
from keel.pipeline.checks import Check, constraint_checks, counts, quality_query
from keel.pipeline.statements import render, table

LINE = Dataset(
    "order_line",
    (
        Field("order_id", "string", primary_key=True),
        Field("line", "integer", primary_key=True),
        Field("sku", "string", required=True),
        Field("ean", "string", unique=True),
        Field("note", "string"),
    ),
)
ROWS = [  # order_id, line, sku, ean, type error
    ("o1", 1, "s1", "e1", False),
    ("o1", 2, None, "e2", False),
    ("o1", 2, "s2", "e2", True),  # the key (o1, 2) twice, and e2 twice
    ("o2", 1, "s3", None, False),
    ("o2", None, "s4", None, False),  # a NULL key part: not a duplicate, but NULL
    ("o3", 1, "s5", "e5", True),
]


def test_a_dataset_declares_not_null_then_unique_then_its_primary_key() -> None:
    assert constraint_checks(LINE) == (
        Check("not_null:order_id", "not_null", ("order_id",)),
        Check("not_null:line", "not_null", ("line",)),
        Check("not_null:sku", "not_null", ("sku",)),
        Check("unique:ean", "unique", ("ean",)),
        Check("primary_key:order_id,line", "primary_key", ("order_id", "line")),
    )


def test_a_single_field_key_is_checked_once_even_when_also_unique() -> None:
    dataset = Dataset("order", (Field("order_id", "string", primary_key=True, unique=True),))

    assert [c.name for c in constraint_checks(dataset)] == ["not_null:order_id", "primary_key:order_id"]


@pytest.fixture
def built() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gdp")
    con.execute(
        'CREATE TABLE gdp."order_line__v1_0_0" (order_id VARCHAR, line BIGINT, sku VARCHAR, ean VARCHAR, '
        "note VARCHAR, _keel_type_error BOOLEAN)"
    )
    con.executemany(
        'INSERT INTO gdp."order_line__v1_0_0" VALUES (?, ?, ?, ?, NULL, ?)', [list(r) for r in ROWS]
    )
    return con


def test_one_query_counts_each_constraint_and_the_rows_breaking_any_as_python_does(
    built: duckdb.DuckDBPyConnection,
) -> None:
    checks = constraint_checks(LINE)
    query = quality_query(table("gdp", "order_line__v1_0_0"), checks, "_keel_type_error")

    cursor = built.execute(render(query, "duckdb"))
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))

    keys = Counter((o, n) for o, n, *_ in ROWS if o is not None and n is not None)
    eans = Counter(e for *_, e, _ in ROWS if e is not None)
    broken = [
        {
            "not_null:order_id": o is None,
            "not_null:line": n is None,
            "not_null:sku": s is None,
            "unique:ean": e is not None and eans[e] > 1,
            "primary_key:order_id,line": o is not None and n is not None and keys[(o, n)] > 1,
        }
        for o, n, s, e, _ in ROWS
    ]
    per_check = {name: sum(b[name] for b in broken) for name in broken[0]}
    failing = sum(any(b.values()) for b in broken)
    assert counts(row, checks) == (len(ROWS), sum(r[-1] for r in ROWS), failing, per_check)
    assert per_check == {
        "not_null:order_id": 0,
        "not_null:line": 1,
        "not_null:sku": 1,
        "unique:ean": 2,
        "primary_key:order_id,line": 2,
    }


def test_a_dataset_without_constraints_counts_rows_only(built: duckdb.DuckDBPyConnection) -> None:
    query = quality_query(table("gdp", "order_line__v1_0_0"), ())

    assert built.execute(render(query, "duckdb")).fetchone() == (len(ROWS), 0, 0)


def test_the_quality_query_reads_the_table_once_plus_once_per_key_and_renders_for_spark() -> None:
    query = quality_query(table("gdp", "order_line__v1_0_0"), constraint_checks(LINE), "_keel_type_error")

    spark = render(query, "spark")

    assert spark.count("FROM `gdp`.`order_line__v1_0_0`") == 3  # the flags, unique:ean, the key
    assert "GROUP BY `a`.`order_id`, `a`.`line` HAVING COUNT(*) > 1" in spark
    assert " OVER " not in spark  # no window: it would partition every row
