"""A batch of records on its way into a Raw table: columns, then one Arrow table, then one INSERT.

``columns_of`` turns the records (dicts) into one value list per field, or takes
the columns of a batch that came as an Arrow table. ``stage`` converts each to an
Arrow array of its Raw column's type (``columns.py``)
and picks the DuckDB expression of the record hash (``hashing.py``), or hashes
the batch in Python when DuckDB cannot. ``StagedBatch.insert`` lands it in a
single ``INSERT ... SELECT`` that casts the dates, date-times and decimals,
computes the hashes and, with ``dedupe``, leaves out the records whose hash the
table (or an earlier record of the batch) holds already.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from keel.connectors.errors import ConnectorError
from keel.connectors.protocol import jsonable_column, records_of
from keel.ingestion import columns as col
from keel.ingestion import hashing

META = (  # Keel's columns, first in every Raw table
    ("_keel_batch_id", col.VARCHAR),
    ("_keel_source", col.VARCHAR),
    ("_keel_ingested_at", col.TIMESTAMPTZ),
    ("_keel_record_hash", col.VARCHAR),
)
STAGED = "_keel_staged"  # the name the batch is registered under on the connection
_CHUNK = 2048
_STAGED_TYPED = (col.BIGINT, col.DOUBLE, col.BOOLEAN, col.VARCHAR, col.JSON)  # inserted without a cast


Batch = Sequence[Mapping[str, Any]] | pa.Table  # records, or an Arrow table whose rows are the records


@dataclass(frozen=True)
class Columns:
    """The batch's fields in first-seen order, their values (a list, or the Arrow column of a batch
    that came as a table), and whether every record holds each."""

    fields: list[str]
    values: dict[str, list[Any] | pa.ChunkedArray]
    present: dict[str, bool]
    rows: int


def rows(batch: Batch) -> int:
    return batch.num_rows if isinstance(batch, pa.Table) else len(batch)


def columns_of(records: Batch, stream: str) -> Columns:
    """One value list per field (a record lacking a field gives None there); an Arrow table's columns."""
    if isinstance(records, pa.Table):
        # Where names repeat, the last column wins, as in the table's records (dicts).
        last = {name: index for index, name in enumerate(records.column_names)}
        values = {name: records.column(index) for name, index in last.items()}
        return Columns(list(last), values, dict.fromkeys(last, True), records.num_rows)
    for index, record in enumerate(records):
        if not isinstance(record, dict) and not isinstance(record, Mapping):
            raise ConnectorError(
                f"record is {type(record).__name__}, not a JSON object",
                stream=stream,
                row=index + 1,
                reason="type",
            )
    if not records:
        return Columns([], {}, {}, 0)
    first = records[0]
    if len(set(map(len, records))) == 1:
        # Records of one length that all hold the first one's keys hold the same keys: the usual case.
        try:
            values = {name: [record[name] for record in records] for name in first}
        except KeyError:
            pass
        else:
            return Columns(list(first), values, dict.fromkeys(first, True), len(records))
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(record.keys())
    return Columns(
        list(counts),
        {name: [record.get(name) for record in records] for name in counts},
        {name: n == len(records) for name, n in counts.items()},
        len(records),
    )


@dataclass(frozen=True)
class Target:
    field: str  # the records' key
    column: str  # the Raw column (its name may differ in case)
    kind: str  # the Raw column's type
    ref: str  # the staged column


@dataclass(frozen=True)
class StagedBatch:
    """The batch as one Arrow table (columns ``c0``, ``c1``, ...) and the expression of its hashes."""

    stream: str
    table: pa.Table
    targets: list[Target]
    hash_expression: str

    def insert(self, con: duckdb.DuckDBPyConnection, table: str, meta: Sequence[Any], *, dedupe: bool) -> int:
        """Insert into ``raw."<table>"`` within the caller's transaction; the number of rows inserted.

        ``meta`` fills the first columns (``_keel_batch_id``, ``_keel_source``,
        ``_keel_ingested_at``). A value DuckDB cannot cast raises the type error
        naming its field and record; the transaction is rolled back and begun again.
        """
        if self.table.num_rows == 0:
            return 0
        # In chunks of DuckDB's vector size, which its threads hash and insert in parallel.
        con.register(STAGED, pa.Table.from_batches(self.table.to_batches(max_chunksize=_CHUNK)))
        try:
            columns = "".join(f", {quote(t.column)}" for t in self.targets)
            values = "".join(f", {_cast(t)}" for t in self.targets)
            source = f"(SELECT *, {self.hash_expression} AS _keel_hash FROM {STAGED}) s"
            where = ""
            if dedupe:
                where = (
                    f" WHERE NOT EXISTS (SELECT 1 FROM raw.{quote(table)} r"
                    " WHERE r._keel_record_hash = s._keel_hash)"
                    " QUALIFY row_number() OVER (PARTITION BY s._keel_hash ORDER BY s.n) = 1 ORDER BY s.n"
                )
            names = ", ".join(name for name, _ in META)
            sql = (
                f"INSERT INTO raw.{quote(table)} ({names}{columns}) "
                f"SELECT ?, ?, ?, s._keel_hash{values} FROM {source}{where}"
            )
            try:
                return con.execute(sql, list(meta)).fetchall()[0][0]
            except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                con.rollback()
                con.begin()  # the caller ends the transaction it began
                raise self._cast_error(con) or exc from None
        finally:
            con.unregister(STAGED)

    def _cast_error(self, con: duckdb.DuckDBPyConnection) -> ConnectorError | None:
        """The first value DuckDB could not cast, as a type error (None if none is found)."""
        first: tuple[int, Target] | None = None
        rows = pa.array(range(1, self.table.num_rows + 1), pa.int64())
        con.register(STAGED, self.table.append_column("_row", rows))
        for target in self.targets:
            if target.kind in _STAGED_TYPED:
                continue
            row = con.execute(
                f"SELECT min(_row) FROM {STAGED} "
                f"WHERE {target.ref} IS NOT NULL AND TRY_CAST({target.ref} AS {target.kind}) IS NULL"
            ).fetchall()[0][0]
            if row is not None and (first is None or row < first[0]):
                first = (row, target)
        if first is None:
            return None
        row, target = first
        return type_error(
            self.stream, target.field, target.kind, row - 1, "a string that cannot be read as one"
        )


def stage(
    stream: str,
    records: Batch,
    columns: Columns,
    types: Mapping[str, tuple[str, str]],
    *,
    dedupe: bool,
) -> StagedBatch:
    """Stage the batch for ``types`` (field → (Raw column, type)); a value that does not fit raises."""
    arrays: dict[str, pa.Array] = {}
    targets: list[Target] = []
    parts: list[tuple[str, hashing.SqlText, str | None]] | None = []
    for position, name in enumerate(columns.fields):
        column, kind = types[name]
        ref = f"c{position}"
        values = columns.values[name]
        try:
            staged = col.stage_arrow(values, kind) if isinstance(values, pa.ChunkedArray) else None
            if staged is None:
                if isinstance(values, pa.ChunkedArray):
                    values = jsonable_column(values.to_pylist())  # the column's records' values
                staged = col.stage(values, kind)
            arrays[ref] = staged
            canonical = hashing.canonical_column(values) if kind == col.JSON else None
        except col.BadValue as bad:
            raise type_error(stream, name, kind, bad.index, bad.found) from None
        targets.append(Target(name, column, kind, ref))
        hashed_ref, hashed = ref, arrays[ref]
        if canonical is not None:
            hashed_ref, hashed = f"j{position}", canonical
            arrays[hashed_ref] = canonical
        presence = None
        if not columns.present[name]:
            presence = f"p{position}"
            arrays[presence] = pa.array([name in record for record in records], pa.bool_())
        if parts is not None:
            text = hashing.sql_json(kind, hashed, hashed_ref) if hashing.sql_key_safe(name) else None
            parts = None if text is None else [*parts, (name, text, presence)]
    if parts is None:
        try:
            arrays["h"] = hashing.record_hashes(
                records_of(records) if isinstance(records, pa.Table) else records
            )
        except col.BadValue as bad:
            raise ConnectorError(
                f"record holds {bad.found}", stream=stream, row=bad.index + 1, reason="type"
            ) from None
    if dedupe or not arrays:
        arrays["n"] = pa.array(range(columns.rows), pa.int64())
    expression = "h" if parts is None else hashing.sql_hash(parts)
    return StagedBatch(stream, pa.table(arrays), targets, expression)


def type_error(stream: str, field: str, kind: str, index: int, found: str) -> ConnectorError:
    """The error of a value that does not fit its column; ``index`` is 0-based in the batch."""
    return ConnectorError(
        f"field '{field}' must be {col.expected(kind)} ({kind}), but holds {found}",
        stream=stream,
        row=index + 1,
        reason="type",
        field=field,
        expected=kind,
    )


def _cast(target: Target) -> str:
    """Staged text becomes a date, a date-time or a decimal here; other columns are staged typed."""
    ref = f"s.{target.ref}"
    return ref if target.kind in _STAGED_TYPED else f"CAST({ref} AS {target.kind})"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
