"""The record hash: RFC 8785 canonical JSON, and DuckDB computing exactly the same hash as Python."""

from __future__ import annotations

import hashlib
import math
import string
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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
