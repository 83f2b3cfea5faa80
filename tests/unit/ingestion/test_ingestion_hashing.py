"""The record hash: RFC 8785 canonical JSON, and DuckDB computing exactly the same hash as Python,
whether a batch comes as records or as an Arrow table."""

from __future__ import annotations

import hashlib
import math
import string
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keel.connectors.errors import ConnectorError
from keel.connectors.files import json_schema_of
from keel.connectors.protocol import records_of
from keel.evidence.canonical import canonical_json
from keel.ingestion import columns as col
from keel.ingestion import staging
from keel.ingestion.hashing import record_hash


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_record_hashes_as_the_sha256_of_its_rfc_8785_form() -> None:
    record = {"b": 1.0, "a": "é\n", "c": [None, True, 0.1], "d": {"z": 1, "y": -0.0}}
    assert canonical_json(record) == '{"a":"é\\n","b":1,"c":[null,true,0.1],"d":{"y":0,"z":1}}'.encode()
    assert record_hash(record) == hashlib.sha256(canonical_json(record)).hexdigest()


@pytest.mark.parametrize(
    ("record", "as_if"),
    [
        ({"n": 2**53}, {"n": "9007199254740992"}),
        ({"n": -(2**63)}, {"n": "-9223372036854775808"}),
        ({"x": [float("nan"), float("inf"), -math.inf]}, {"x": ["NaN", "Infinity", "-Infinity"]}),
    ],
)
def test_values_rfc_8785_cannot_encode_hash_as_strings(record: dict, as_if: dict) -> None:
    assert record_hash(record) == record_hash(as_if)


def test_a_missing_key_and_a_null_hash_differently() -> None:
    assert record_hash({"a": 1}) != record_hash({"a": 1, "b": None})


# --- DuckDB computes the same hash -------------------------------------------

DUCKDB = duckdb.connect()  # in memory, for the whole module: connecting per example costs more


def sql_hashes(records: list[dict[str, Any]], types: dict[str, str]) -> tuple[list[str], str]:
    """The hashes DuckDB computes for a staged batch, and the hash expression used."""
    columns = staging.columns_of(records, "s")
    mapping = {name: (name, types.get(name, col.JSON)) for name in columns.fields}
    staged = staging.stage("s", records, columns, mapping, dedupe=False)
    DUCKDB.register("staged", staged.table)
    rows = DUCKDB.execute(f"SELECT {staged.hash_expression} FROM staged").fetchall()
    DUCKDB.unregister("staged")
    return [r[0] for r in rows], staged.hash_expression


def test_duckdb_hashes_an_ordinary_batch_itself_exactly_as_python() -> None:
    records = [
        {"id": i, "name": f'n"{i}\\', "amount": i / 4, "ok": i % 2 == 0, "at": "2026-01-01T00:00:00Z"}
        for i in range(50)
    ]
    types = {"id": col.BIGINT, "name": col.VARCHAR, "amount": col.DOUBLE, "ok": col.BOOLEAN}
    hashes, expression = sql_hashes(records, {**types, "at": col.TIMESTAMPTZ})
    assert expression.startswith("sha256(")
    assert hashes == [record_hash(r) for r in records]


def test_a_batch_duckdb_cannot_write_as_jcs_is_hashed_in_python_with_the_same_result() -> None:
    records = [{"tiny": 1e-7, "text": "vertical\x0btab"}, {"tiny": 2.5, "text": "x"}]
    hashes, expression = sql_hashes(records, {"tiny": col.DOUBLE, "text": col.VARCHAR})
    assert expression == "h"
    assert hashes == [record_hash(r) for r in records]


TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
KEYS = st.text(alphabet=string.ascii_letters + "é_ -\"'\\ö€😀", min_size=1, max_size=6)
VALUES = {
    col.BIGINT: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    col.DOUBLE: st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53),
    col.BOOLEAN: st.booleans(),
    col.VARCHAR: TEXT,
    col.TIMESTAMPTZ: st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-01 10:00:00.5+02:00"]),
    col.DECIMAL: st.sampled_from(["0", "12.50", "-1E-7", "99999999999999999999.999999999"]),
    col.JSON: st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
        max_leaves=6,
    ),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, str]]:
    types = draw(st.dictionaries(KEYS, st.sampled_from(sorted(VALUES)), min_size=1, max_size=5))
    records = []
    for _ in range(draw(st.integers(1, 6))):
        record = {}
        for name, kind in types.items():
            choice = draw(st.integers(0, 5))
            if choice == 0:
                continue  # the key is missing from this record
            record[name] = None if choice == 1 else draw(VALUES[kind])
        records.append(record)
    return records, types


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
@example(([{}, {"n": None}, {"n": 2**53}], {"n": col.BIGINT}))  # a null beside an unsafe integer
def test_duckdb_and_python_agree_on_every_record_hash(
    batch: tuple[list[dict[str, Any]], dict[str, str]],
) -> None:
    records, types = batch
    hashes, _ = sql_hashes(records, types)
    assert hashes == [record_hash(r) for r in records]


# --- a batch that comes as an Arrow table stages and hashes as its records do ------------------

_SECONDS = (-62135596800, 253402300799)  # 0001-01-01 to 9999-12-31 23:59:59
ARROW_VALUES: list[tuple[pa.DataType, st.SearchStrategy[Any]]] = [
    (pa.int8(), st.integers(-128, 127)),
    (pa.int64(), VALUES[col.BIGINT]),
    (pa.uint64(), st.integers(0, 2**64 - 1)),
    (pa.float32(), st.floats(width=32)),
    (pa.float64(), st.floats()),
    (pa.bool_(), st.booleans()),
    (pa.string(), TEXT),
    (pa.large_string(), TEXT),
    (pa.date32(), st.integers(_SECONDS[0] // 86400, _SECONDS[1] // 86400)),
    (pa.timestamp("s"), st.integers(*_SECONDS)),
    (pa.timestamp("ms", "UTC"), st.integers(_SECONDS[0] * 1000, _SECONDS[1] * 1000)),
    (pa.timestamp("us", "UTC"), st.integers(_SECONDS[0] * 10**6, _SECONDS[1] * 10**6) | st.just(0)),
    (pa.timestamp("us", "Europe/Paris"), st.integers(0, 2**40)),
    (
        pa.timestamp("ns"),
        st.integers(-(2**62), 2**62).map(lambda n: n - n % 1000) | st.integers(-(2**63), 2**63 - 1),
    ),
    (pa.decimal128(20, 4), st.decimals(-(10**15), 10**15, places=4, allow_nan=False)),
    (pa.decimal128(38, 12), st.decimals(-(10**20), 10**20, places=12, allow_nan=False)),
    (pa.list_(pa.int64()), st.lists(st.integers(-3, 3), max_size=2)),
    (pa.time64("us"), st.integers(0, 86_400 * 10**6 - 1)),
]


def _arrow(kind: pa.DataType, values: list[Any]) -> pa.Array:
    if pa.types.is_temporal(kind):  # drawn as integers: days, or units since 1970
        storage = pa.int32() if pa.types.is_date32(kind) else pa.int64()
        return pa.array(values, storage).cast(kind)
    return pa.array(values, kind)


@st.composite
def arrow_batches(draw: st.DrawFn) -> tuple[pa.Table, dict[str, str]]:
    rows = draw(st.integers(1, 5))
    columns, kinds = {}, {}
    for index, (kind, values) in enumerate(
        draw(st.lists(st.sampled_from(ARROW_VALUES), min_size=1, max_size=4))
    ):
        name = f"f{index}"
        columns[name] = _arrow(kind, draw(st.lists(st.none() | values, min_size=rows, max_size=rows)))
        # Mostly the column type discovery gives, sometimes another (the table was made earlier).
        typed = col.column_type(json_schema_of(kind))
        kinds[name] = draw(st.sampled_from([typed, typed, typed, *sorted(VALUES)]))
    return pa.table(columns), kinds


def staged_or_error(batch: Any, kinds: dict[str, str]) -> staging.StagedBatch | str:
    columns = staging.columns_of(batch, "s")
    try:
        return staging.stage("s", batch, columns, {n: (n, kinds[n]) for n in columns.fields}, dedupe=False)
    except ConnectorError as exc:
        return str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrow_batches())
@example(
    (
        pa.table({"t": pa.array([0, None, 1500], pa.int64()).cast(pa.timestamp("ms", "UTC"))}),
        {"t": col.TIMESTAMPTZ},
    )
)
@example((pa.table({"d": pa.array([Decimal("1E-7"), Decimal(0)], pa.decimal128(38, 9))}), {"d": col.DECIMAL}))
def test_an_arrow_batch_stages_and_hashes_exactly_as_its_records(
    batch: tuple[pa.Table, dict[str, str]],
) -> None:
    table, kinds = batch
    try:
        records = records_of(table)
    except ValueError:  # a value Python cannot hold (a nanosecond, a year beyond 9999): no records
        return
    by_arrow, by_records = staged_or_error(table, kinds), staged_or_error(records, kinds)
    if isinstance(by_records, str) or isinstance(by_arrow, str):
        assert by_arrow == by_records  # the same type error, naming the same field and row
        return
    assert by_arrow.table.schema == by_records.table.schema
    assert repr(by_arrow.table.to_pylist()) == repr(by_records.table.to_pylist())  # NaN is NaN here
    assert by_arrow.hash_expression == by_records.hash_expression
    DUCKDB.register("staged", by_arrow.table)
    hashes = [h for (h,) in DUCKDB.execute(f"SELECT {by_arrow.hash_expression} FROM staged").fetchall()]
    DUCKDB.unregister("staged")
    assert hashes == [record_hash(r) for r in records]


def test_a_table_whose_column_names_repeat_keeps_the_last_as_its_records_do() -> None:
    table = pa.table([pa.array([1, 2]), pa.array(["x", "y"]), pa.array([3, 4])], names=["a", "b", "a"])
    columns = staging.columns_of(table, "s")
    assert (columns.fields, columns.values["a"].to_pylist()) == (["a", "b"], [3, 4])
    assert records_of(table) == [{"a": 3, "b": "x"}, {"a": 4, "b": "y"}]
