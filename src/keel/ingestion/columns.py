"""Raw column types from a stream's JSON Schema, and a column's record values staged as an Arrow array.

=================================  ====================================================
JSON Schema of the field           Raw column
=================================  ====================================================
``integer``                        ``BIGINT``
``number`` (or integer + number)   ``DOUBLE``
``boolean``                        ``BOOLEAN``
``string``, format ``date-time``   ``TIMESTAMP WITH TIME ZONE`` (values without an offset
                                   are UTC: the SQL connector reads in UTC)
``string``, format ``date``        ``DATE``
``string``, format ``decimal``     ``DECIMAL(38,9)``, exact: a value with more than 9
                                   decimal places or 29 integer digits is a type error
``string``, any other format       ``VARCHAR``
object, array, several types, any  ``JSON``
a record field not in the schema   ``JSON`` (keeps the value's JSON type: 12 and "12" differ)
=================================  ====================================================

Staging is strict: a value whose JSON type does not match the column (a string in
a ``BIGINT`` column, 1.5 in a ``BIGINT``, 1 in a ``VARCHAR``) raises ``BadValue``
with its index. Integral floats (3.0) are accepted as integers. Date-time and date
values are staged as text and parsed by DuckDB in the INSERT; a value it cannot
parse is found afterwards by ``staging.py``. Arrow converts a whole column in C, so
the per-value Python check runs only on a column that has a bad value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

BIGINT = "BIGINT"
DOUBLE = "DOUBLE"
BOOLEAN = "BOOLEAN"
VARCHAR = "VARCHAR"
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
DATE = "DATE"
DECIMAL = "DECIMAL(38,9)"
JSON = "JSON"

_STRING_FORMATS = {"date-time": TIMESTAMPTZ, "date": DATE, "decimal": DECIMAL}
_DECIMAL_ARROW = pa.decimal128(38, 9)
_EXACT_FLOAT_INT = 2**53  # from here on a float is no exact integer
_INT64 = (-(2**63), 2**63 - 1)

EXPECTED = {
    BIGINT: "an integer",
    DOUBLE: "a number",
    BOOLEAN: "true or false",
    VARCHAR: "a string",
    TIMESTAMPTZ: "an ISO 8601 date-time string",
    DATE: "an ISO 8601 date string",
    DECIMAL: "a decimal string with at most 29 integer digits and 9 decimal places",
    JSON: "any JSON value",
}


class BadValue(Exception):
    """The value at ``index`` does not fit the column; ``found`` says what it is."""

    def __init__(self, index: int, found: str) -> None:
        super().__init__(found)
        self.index = index
        self.found = found


def column_type(schema: Mapping[str, Any]) -> str:
    """The Raw column type of a field from its JSON Schema (see the module docstring)."""
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    types.discard("null")
    if types == {"integer"}:
        return BIGINT
    if types and types <= {"integer", "number"}:
        return DOUBLE
    if types == {"boolean"}:
        return BOOLEAN
    if types == {"string"}:
        return _STRING_FORMATS.get(schema.get("format"), VARCHAR)
    return JSON


def expected(column: str) -> str:
    return EXPECTED.get(column, f"a value DuckDB can cast to {column}")


def stage(values: list[Any], column: str) -> pa.Array:
    """``values`` as an Arrow array for a ``column``-typed Raw column; raises ``BadValue``."""
    if column == JSON:
        return _stage_json(values)
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        array = None
    staged = _convert(array, column) if array is not None else None
    if staged is None:
        raise _first_bad(values, column)
    return staged


def _convert(array: pa.Array, column: str) -> pa.Array | None:
    """The array in the column's staging type, or None when some value does not fit."""
    kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), _STAGING.get(column, pa.string()))
    try:
        if column == BIGINT:
            if pa.types.is_int64(kind):
                return array
            if pa.types.is_floating(kind) and _within(array, _EXACT_FLOAT_INT - 1):
                return array.cast(pa.int64())  # safe: raises on a fraction
        elif column == DOUBLE:
            if pa.types.is_floating(kind):
                return array
            if pa.types.is_int64(kind):
                return array.cast(pa.float64(), safe=False)  # a DOUBLE column holds approximations
        elif column == BOOLEAN:
            return array if pa.types.is_boolean(kind) else None
        elif pa.types.is_string(kind):
            if column == DECIMAL:
                array.cast(_DECIMAL_ARROW)  # raises unless every value fits exactly
            return array  # VARCHAR, or text DuckDB casts (dates, date-times, other types)
    except pa.ArrowException:
        return None
    return None


_STAGING = {BIGINT: pa.int64(), DOUBLE: pa.float64(), BOOLEAN: pa.bool_()}


def _within(array: pa.Array, bound: int) -> bool:
    extremes = pc.min_max(array)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    return low is None or (-bound <= low and high <= bound)


def _stage_json(values: list[Any]) -> pa.Array:
    texts: list[str | None] = []
    for index, value in enumerate(values):
        try:
            texts.append(
                None
                if value is None
                else json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise BadValue(index, unencodable(exc)) from None
    try:
        return pa.array(texts, pa.string())
    except (pa.ArrowException, ValueError):
        bad = next(i for i, text in enumerate(texts) if text is not None and not _valid_utf8(text))
        raise BadValue(bad, "text that is not valid Unicode") from None


def unencodable(exc: BaseException) -> str:
    """What made a value impossible to write as JSON, for a ``BadValue``."""
    text = str(exc)
    if isinstance(exc, RecursionError) or "too deep" in text:
        return "a value nested too deeply"
    if "Out of range float" in text:
        return "NaN or an infinite number, which JSON cannot hold"
    if "surrogate" in text or "UTF-8" in text:
        return "text that is not valid Unicode"
    return "a value that is not JSON"


def _first_bad(values: list[Any], column: str) -> BadValue:
    """The first value that does not fit, found one by one (only for a column known to hold one)."""
    fits = _FITS.get(column, _is_text)
    for index, value in enumerate(values):
        if value is not None and not fits(value):
            return BadValue(index, _json_kind(value, column))
    # Every value has the right type, so Arrow refused the column for another reason.
    for index, value in enumerate(values):
        if value is not None and _convert(pa.array([value]), column) is None:
            return BadValue(index, _json_kind(value, column) + " that does not fit")
    raise AssertionError(f"no value of the column fails to stage as {column}")  # pragma: no cover


def _is_integer(value: Any) -> bool:
    if type(value) is int:
        return _INT64[0] <= value <= _INT64[1]
    return type(value) is float and value.is_integer() and abs(value) < _EXACT_FLOAT_INT


def _is_number(value: Any) -> bool:
    if type(value) is int:
        return _INT64[0] <= value <= _INT64[1]
    return type(value) is float


def _is_text(value: Any) -> bool:
    return type(value) is str and _valid_utf8(value)


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_FITS = {
    BIGINT: _is_integer,
    DOUBLE: _is_number,
    BOOLEAN: lambda value: type(value) is bool,
}


def _json_kind(value: Any, column: str) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if type(value) is int:
        return "an integer" if _INT64[0] <= value <= _INT64[1] else "an integer beyond 64 bits"
    if isinstance(value, float):
        if column != BIGINT:
            return "a number"
        if not math.isfinite(value):
            return "NaN or an infinite number"
        return "a number too large to be exact" if value.is_integer() else "a number with a fraction"
    if isinstance(value, str):
        return "a string" if _valid_utf8(value) else "text that is not valid Unicode"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}, which is no JSON value"
