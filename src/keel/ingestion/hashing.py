"""The record hash: SHA-256 (hex) of a record's RFC 8785 canonical JSON, in Python or computed by DuckDB.

RFC 8785 (JCS) cannot encode integers beyond ±(2**53 - 1), NaN or the infinities,
all of which a source can hold; such a value is hashed as the JSON string of its
digits or as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. Every other record hashes
exactly as ``keel.evidence.canonical.canonical_json`` encodes it.

Hashing record by record in Python costs ~15 µs each (the pure-Python ``rfc8785``)
and would be most of an ingestion's time, so ``sql_hash`` builds the same
canonical JSON as a DuckDB expression over the staged columns, computed
vectorised inside the INSERT; ``sql_json`` picks, per column, the cheapest
expression that is exact for the values the batch holds. Where DuckDB's text
forms differ from JCS (floats below 1e-4 or at and above 2**53, control
characters ``to_json`` escapes in upper-case hex) it says so and the batch is
hashed in Python instead. Tests check the two against each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from keel.evidence.canonical import canonical_json
from keel.ingestion import columns as col
from keel.kernel.errors import InvalidInput

MAX_SAFE_INT = 2**53 - 1
_SMALLEST_PLAIN_FLOAT = 1e-4  # below it Python writes 1e-05 where JCS writes 0.00001
_UPPER_HEX_ESCAPES = r"[\x0b\x0e\x0f\x1a-\x1f]"  # DuckDB's to_json writes \u000B, JCS \u000b
_SQL_UNSAFE_KEY = re.compile(r"[\x00-\x1f]")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON; raises ``InvalidInput`` for non-JSON values."""
    return hashlib.sha256(canonical_json(_lift(record))).hexdigest()


def record_hashes(records: Sequence[Mapping[str, Any]]) -> pa.Array:
    """``record_hash`` of each record; raises ``BadValue`` at the first that is no JSON object."""
    return pa.array([_each(record_hash, record, index) for index, record in enumerate(records)], pa.string())


def canonical_column(values: Sequence[Any]) -> pa.Array:
    """Each value's canonical JSON as the record hash writes it (None stays null): for JSON columns."""
    return pa.array(
        [None if v is None else _each(_canonical_text, v, i) for i, v in enumerate(values)], pa.string()
    )


def _canonical_text(value: Any) -> str:
    return canonical_json(_lift(value)).decode()


def _each(encode: Any, value: Any, index: int) -> str:
    try:
        return encode(value)
    except InvalidInput as exc:
        raise col.BadValue(index, col.unencodable(exc.__cause__ or exc)) from None


def _lift(value: Any) -> Any:
    """``value`` with what JCS cannot encode replaced by strings (see the module docstring)."""
    kind = type(value)
    if kind is int:
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if kind is float:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if kind is dict:
        return {k: _lift(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_lift(v) for v in value]
    return value


@dataclass(frozen=True)
class SqlText:
    """A value's JCS text in DuckDB: the literal text ``before``, the expression, the literal ``after``
    (quotes kept apart from the expression so ``sql_hash`` merges them with the keys around)."""

    expression: str
    before: str = ""
    after: str = ""


def sql_json(column_type: str, array: pa.Array, ref: str) -> SqlText | None:
    """The JCS text of each value of staged column ``ref`` ('null' for null), as DuckDB writes it.

    The expression is the cheapest that is exact for the values ``array`` holds;
    None when DuckDB cannot write one of them as JCS does (the batch is then hashed
    in Python). For a JSON column, ``array`` and ``ref`` are its canonical text.
    """
    if array.null_count == len(array):
        return SqlText("'null'")
    if column_type == col.JSON:
        text: SqlText | None = SqlText(ref)
    elif column_type == col.BIGINT:
        text = SqlText(_sql_integer(array, ref))
    elif column_type == col.DOUBLE:
        double = _sql_double(array, ref)
        text = SqlText(double) if double is not None else None
    elif column_type == col.BOOLEAN:
        text = SqlText(f"CASE WHEN {ref} THEN 'true' WHEN NOT {ref} THEN 'false' END")
    else:
        text = _sql_string(array, ref)
    if text is None or array.null_count == 0:
        return text
    quoted = " || ".join(
        p for p in (_sql_literal(text.before), text.expression, _sql_literal(text.after)) if p != "''"
    )
    return SqlText(f"coalesce({quoted}, 'null')")


def _sql_integer(array: pa.Array, ref: str) -> str:
    extremes = pc.min_max(array)
    if extremes["min"].as_py() >= -MAX_SAFE_INT and extremes["max"].as_py() <= MAX_SAFE_INT:
        return f"CAST({ref} AS VARCHAR)"
    return (
        f"CASE WHEN {ref} BETWEEN {-MAX_SAFE_INT} AND {MAX_SAFE_INT} THEN CAST({ref} AS VARCHAR) "
        f"ELSE '\"' || CAST({ref} AS VARCHAR) || '\"' END"  # || keeps NULL NULL; concat would not
    )


def _sql_double(array: pa.Array, ref: str) -> str | None:
    magnitude = pc.abs(array)
    finite = pc.is_finite(magnitude)
    odd = pc.or_(
        pc.and_(pc.less(magnitude, _SMALLEST_PLAIN_FLOAT), pc.not_equal(magnitude, 0)),
        pc.and_(pc.greater_equal(magnitude, 2.0**53), finite),
    )
    if pc.any(odd).as_py():
        return None
    integral = pc.and_(finite, pc.equal(pc.floor(array), array))
    as_integer = f"CAST(CAST({ref} AS BIGINT) AS VARCHAR)"
    if not pc.all(finite).as_py():
        return (
            f"CASE WHEN isnan({ref}) THEN '\"NaN\"' "
            f"WHEN isinf({ref}) THEN CASE WHEN {ref} > 0 THEN '\"Infinity\"' ELSE '\"-Infinity\"' END "
            f"WHEN {ref} = trunc({ref}) THEN {as_integer} ELSE CAST({ref} AS VARCHAR) END"
        )
    if pc.all(integral).as_py():
        return as_integer
    if not pc.any(integral).as_py():
        return f"CAST({ref} AS VARCHAR)"
    return f"CASE WHEN {ref} = trunc({ref}) THEN {as_integer} ELSE CAST({ref} AS VARCHAR) END"


def _sql_string(array: pa.Array, ref: str) -> SqlText | None:
    def holds(pattern: str) -> bool:
        return bool(pc.any(pc.match_substring_regex(array, pattern)).as_py())

    if not holds(r'[\x00-\x1f"\\]'):
        return SqlText(ref, '"', '"')
    if not holds(r"[\x00-\x1f]"):
        return SqlText(f"replace(replace({ref}, '\\', '\\\\'), '\"', '\\\"')", '"', '"')
    if not holds(_UPPER_HEX_ESCAPES):
        return SqlText(f"CAST(to_json({ref}) AS VARCHAR)")
    return None


def sql_key_safe(key: str) -> bool:
    return not _SQL_UNSAFE_KEY.search(key)


def sql_hash(parts: Sequence[tuple[str, SqlText, str | None]]) -> str:
    """DuckDB expression of the record hash; ``parts`` are (key, its value's ``sql_json``, presence ref).

    The presence ref, when given, names a boolean column that is false where the
    record lacks the key (a missing key is not a null). One ``concat`` call with
    the literals merged: a chain of ``||`` costs twice as much.
    """
    ordered = sorted(parts, key=lambda p: p[0].encode("utf-16-be"))  # JCS orders keys by UTF-16 code units
    if any(present is not None for _, _, present in ordered):
        pieces = [
            f"CASE WHEN {present} THEN {_concat([_label(key), text])} END"
            if present
            else _concat([_label(key), text])
            for key, text, present in ordered
        ]
        return f"sha256(concat('{{', concat_ws(',', {', '.join(pieces)}), '}}'))"
    items: list[str | SqlText] = ["{"]
    for index, (key, text, _) in enumerate(ordered):
        items += [("," if index else "") + _label(key), text]
    return f"sha256({_concat([*items, '}'])})"


def _label(key: str) -> str:
    return json.dumps(key, ensure_ascii=False) + ":"


def _concat(items: Sequence[str | SqlText]) -> str:
    """``concat`` of literal texts (str) and values (``SqlText``), adjacent literals merged."""
    args: list[str] = []
    literal = ""
    for item in items:
        if isinstance(item, str):
            literal += item
            continue
        literal += item.before
        if literal:
            args.append(_sql_literal(literal))
        args.append(item.expression)
        literal = item.after
    if literal:
        args.append(_sql_literal(literal))
    return f"concat({', '.join(args)})"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
