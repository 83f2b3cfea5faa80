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

A batch that arrives as an Arrow table (``RecordBatch.arrow``) is staged column by
column by ``stage_arrow`` without any Python value: each Arrow type it knows is
turned into exactly the array ``stage`` makes of the column's JSON values
(``jsonable`` of ``to_pylist``); for any other type, or a value that does not
fit, it returns None and the column takes the value-by-value path.
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


def stage_arrow(array: pa.Array | pa.ChunkedArray, column: str) -> pa.Array | None:
    """An Arrow column staged exactly as ``stage`` stages its JSON values; None: stage those instead."""
    if column == JSON:
        return None  # its canonical text is written value by value
    values = json_values(array)
    return None if values is None else _convert(values, column)


def json_values(array: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """The array ``pa.array`` makes of the column's JSON values, computed in Arrow; None for a type
    (or a value) it cannot compute exactly: temporal values outside years 1-9999, time zones other
    than UTC, nested, binary and other types."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    t = pa.types
    if array.null_count == len(array):
        return pa.nulls(len(array))
    if t.is_boolean(kind) or t.is_int64(kind) or t.is_float64(kind) or t.is_string(kind):
        return array
    if t.is_signed_integer(kind) or kind in (pa.uint8(), pa.uint16(), pa.uint32()):
        return array.cast(pa.int64())
    if t.is_uint64(kind):
        return array.cast(pa.int64()) if pc.max(array).as_py() <= _INT64[1] else None
    if t.is_float32(kind):
        return array.cast(pa.float64())  # exact: every float32 is a float64
    if t.is_large_string(kind) or t.is_string_view(kind):
        return array.cast(pa.string())
    if t.is_date32(kind):
        return _iso_dates(array)
    if t.is_timestamp(kind):
        return _iso_date_times(array)
    if t.is_decimal(kind) and kind.scale >= 0:
        return array.cast(pa.string())  # str(Decimal): Arrow writes it as Python does (a test checks)
    return None


_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "+00:00"})
# The days, seconds and microseconds since 1970 of 0001-01-01 and of the end of 9999-12-31:
# Python has no other years.
_DAYS = (-719_162, 2_932_896)
_SECONDS = (_DAYS[0] * 86_400, (_DAYS[1] + 1) * 86_400 - 1)
_MICROSECONDS = (_SECONDS[0] * 1_000_000, (_SECONDS[1] + 1) * 1_000_000 - 1)


def _in_range(array: pa.Array, bounds: tuple[int, int]) -> bool:
    extremes = pc.min_max(array)
    return bounds[0] <= extremes["min"].as_py() and extremes["max"].as_py() <= bounds[1]


def _iso_dates(array: pa.Array) -> pa.Array | None:
    """``date.isoformat()`` of each value."""
    return array.cast(pa.string()) if _in_range(array.cast(pa.int32()), _DAYS) else None


def _iso_date_times(array: pa.Array) -> pa.Array | None:
    """``datetime.isoformat()`` of each value: ``T`` between date and time, microseconds only when
    not zero, ``+00:00`` for UTC (no offset for a naive value)."""
    kind = array.type
    if kind.tz is not None and kind.tz not in _UTC_ZONES:
        return None
    try:
        seconds = array.cast(pa.timestamp("s"))  # safe: raises when a value has a fraction of a second
    except pa.ArrowInvalid:
        seconds = None
    if seconds is not None:
        if not _in_range(seconds.cast(pa.int64()), _SECONDS):
            return None
        text = seconds.cast(pa.string())  # 2026-01-01 08:00:37
    else:
        try:
            micros = array.cast(pa.timestamp("us"))  # a nanosecond fraction is no Python datetime
        except pa.ArrowInvalid:
            return None
        if not _in_range(micros.cast(pa.int64()), _MICROSECONDS):
            return None
        # 2026-01-01 08:00:37.500000, and .000000 where isoformat writes no fraction
        text = pc.replace_substring(micros.cast(pa.string()), ".000000", "")
    text = pc.utf8_replace_slice(text, 10, 11, "T")
    return pc.binary_join_element_wise(text, "+00:00", "") if kind.tz is not None else text


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
