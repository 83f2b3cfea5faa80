"""Raw column types from JSON Schema, and the strict staging of values into them."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from keel.ingestion import columns as col


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer"}, "BIGINT"),
        ({"type": ["integer", "null"]}, "BIGINT"),
        ({"type": ["number", "null"]}, "DOUBLE"),
        ({"type": ["integer", "number"]}, "DOUBLE"),
        ({"type": ["boolean"]}, "BOOLEAN"),
        ({"type": ["string", "null"]}, "VARCHAR"),
        ({"type": ["string"], "format": "date-time"}, "TIMESTAMP WITH TIME ZONE"),
        ({"type": ["string", "null"], "format": "date"}, "DATE"),
        ({"type": ["string"], "format": "decimal"}, "DECIMAL(38,9)"),
        ({"type": ["string"], "format": "time"}, "VARCHAR"),
        ({"type": ["string"], "contentEncoding": "base64"}, "VARCHAR"),
        ({"type": ["object", "null"]}, "JSON"),
        ({"type": "array"}, "JSON"),
        ({"type": ["string", "integer"]}, "JSON"),
        ({"type": ["array", "boolean", "number", "object", "string", "null"]}, "JSON"),
        ({}, "JSON"),
    ],
)
def test_each_json_schema_maps_to_its_raw_column_type(schema: dict[str, Any], expected: str) -> None:
    assert col.column_type(schema) == expected


@pytest.mark.parametrize(
    ("values", "column", "staged_type", "as_python"),
    [
        ([1, None, -(2**63)], "BIGINT", pa.int64(), [1, None, -(2**63)]),
        ([3.0, 4], "BIGINT", pa.int64(), [3, 4]),  # integral floats are integers
        ([1, 2.5, None], "DOUBLE", pa.float64(), [1.0, 2.5, None]),
        ([True, None], "BOOLEAN", pa.bool_(), [True, None]),
        (["a", None, "é"], "VARCHAR", pa.string(), ["a", None, "é"]),
        (["2026-01-01T10:00:00Z"], "TIMESTAMP WITH TIME ZONE", pa.string(), ["2026-01-01T10:00:00Z"]),
        (["12.50", "1E-7", "-0.000000001"], "DECIMAL(38,9)", pa.string(), ["12.50", "1E-7", "-0.000000001"]),
        ([None, None], "BIGINT", pa.int64(), [None, None]),
        (
            [{"b": 1, "a": [1, "x"]}, "s", 7, None],
            "JSON",
            pa.string(),
            ['{"b":1,"a":[1,"x"]}', '"s"', "7", None],
        ),
    ],
)
def test_values_that_fit_are_staged_in_one_arrow_array(
    values: list[Any], column: str, staged_type: pa.DataType, as_python: list[Any]
) -> None:
    staged = col.stage(values, column)
    assert (staged.type, staged.to_pylist()) == (staged_type, as_python)


@pytest.mark.parametrize(
    ("values", "column", "index", "found"),
    [
        ([1, "2"], "BIGINT", 1, "a string"),
        ([1, 2.5], "BIGINT", 1, "a number with a fraction"),
        ([1, True], "BIGINT", 1, "a boolean"),
        ([2.0**60], "BIGINT", 0, "a number too large to be exact"),
        ([1, 2**64], "BIGINT", 1, "an integer beyond 64 bits"),
        ([1.5, "x"], "DOUBLE", 1, "a string"),
        ([True, 1], "BOOLEAN", 1, "an integer"),
        (["a", 1], "VARCHAR", 1, "an integer"),
        (["a", {"k": 1}], "VARCHAR", 1, "an object"),
        (["a", "\ud800"], "VARCHAR", 1, "text that is not valid Unicode"),
        (["2026-01-01", 20260101], "DATE", 1, "an integer"),
        (["1.5", "1.1234567891"], "DECIMAL(38,9)", 1, "a string that does not fit"),
        (["1" * 30], "DECIMAL(38,9)", 0, "a string that does not fit"),
        (["1.5", 1.5], "DECIMAL(38,9)", 1, "a number"),
        ([{"x": float("nan")}], "JSON", 0, "NaN or an infinite number, which JSON cannot hold"),
    ],
)
def test_the_first_value_that_does_not_fit_is_named_by_index_and_json_type(
    values: list[Any], column: str, index: int, found: str
) -> None:
    with pytest.raises(col.BadValue) as bad:
        col.stage(values, column)
    assert (bad.value.index, bad.value.found) == (index, found)
