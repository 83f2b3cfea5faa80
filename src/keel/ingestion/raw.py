"""A tenant's Raw layer: each (source, stream) lands in a typed table of its DuckDB file, exactly once.

A stream's records go to ``raw."<source_key>__<stream>"`` (both parts reduced to
``[a-z0-9_]``), with columns typed from the stream's JSON Schema (see
``columns.py``) plus four of Keel's: ``_keel_batch_id``, ``_keel_source`` (the
source id), ``_keel_ingested_at`` and ``_keel_record_hash`` (``hashing.py``).
A field the schema gains later becomes a new column; a field a record holds that
the schema lacks becomes a ``JSON`` column. A column keeps the type it was made
with: a record must fit it.

Bookkeeping lives next to the data, so it commits in the same transaction::

    raw._keel_tables   table_name, source_id, source_key, stream, created_at
    raw._keel_batches  batch_id, source_id, stream, run_id, kind, rows, skipped_duplicates,
                       state, committed_at
    raw._keel_state    source_id, stream, state, batch_id, updated_at

``commit_batch`` inserts a batch's rows, records the batch and moves the stream's
state in ONE transaction: after a crash either all three happened or none did,
which is what makes a resumed read exactly-once. It lands in the stream's table,
or in one of the stream's side tables ``<table>__<suffix>`` (``side_table``; the
drift watch's quarantine table is ``<table>__quarantine``) with the same columns,
hashes and bookkeeping.

Each operation opens the file and closes it again (DuckDB lets one process at a
time write a file, and the API may need it between syncs); ``session()`` keeps
one connection for a run of operations, since opening costs ~25 ms.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from keel.connectors.errors import ConnectorError
from keel.connectors.protocol import Stream
from keel.ingestion import columns as col
from keel.ingestion import staging
from keel.ingestion.staging import META, quote
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id

DQ_QUARANTINE = "dq_quarantine"  # suffix of a table's data-quality quarantine (keel.quality.ingest)

Kind = Literal["sync", "replay", "backfill"]
KINDS: tuple[Kind, ...] = ("sync", "replay", "backfill")
RESERVED_PREFIX = "_keel_"
QUARANTINE = "quarantine"  # the side table a quarantined stream lands in (story 03a)

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw._keel_tables (
    table_name VARCHAR NOT NULL, source_id VARCHAR NOT NULL, source_key VARCHAR NOT NULL,
    stream VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS raw._keel_batches (
    batch_id VARCHAR NOT NULL, source_id VARCHAR NOT NULL, stream VARCHAR NOT NULL, run_id VARCHAR,
    kind VARCHAR NOT NULL, rows BIGINT NOT NULL, skipped_duplicates BIGINT NOT NULL, state JSON,
    committed_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS raw._keel_state (
    source_id VARCHAR NOT NULL, stream VARCHAR NOT NULL, state JSON, batch_id VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL);
"""
_NOT_NAME = re.compile(r"[^a-z0-9_]+")
_PART = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")  # a name part as ``_name_part`` leaves it


class RawBusy(Conflict):
    """Another process holds the tenant's DuckDB file (DuckDB allows one writing process)."""

    code = "raw_busy"
    title = "Raw layer busy"


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    rows: int  # inserted
    skipped: int  # duplicates not inserted again (dedupe)
    quarantined: int = 0  # rows a data-quality rule moved to the stream's dq_quarantine table
    rule_results: dict = field(default_factory=dict)  # Raw-layer rules: outcome per rule id (04)


def table_name(source_key: str, stream: str) -> str:
    """``<source_key>__<stream>``, each part lower-cased and reduced to ``[a-z0-9_]``.

    Runs of other characters and of underscores become one underscore, so the
    double underscore between the parts cannot occur inside either.
    """
    return f"{_name_part('source_key', source_key)}__{_name_part('stream', stream)}"


def side_table(source_key: str, stream: str, suffix: str) -> str:
    """``<source_key>__<stream>__<suffix>``: a table of the stream's other than its Raw table.

    It cannot be any stream's own table, whose name has one double underscore only.
    """
    return f"{table_name(source_key, stream)}__{_name_part('suffix', suffix)}"


def quarantine_table(source_key: str, stream: str) -> str:
    """The table a quarantined stream lands in: ``<source_key>__<stream>__quarantine``."""
    return side_table(source_key, stream, QUARANTINE)


def _target(source_key: str, stream: str, table: str | None) -> str:
    """The table a batch of the stream lands in: its Raw table (``table`` None), or ``table`` when
    that is one of the stream's side tables (named so, ``drop_source`` finds it under the source key)."""
    own = table_name(source_key, stream)
    if table is None or table == own:
        return own
    if not (table.startswith(f"{own}__") and _PART.fullmatch(table[len(own) + 2 :])):
        raise InvalidInput("table", f"'{table}' is neither raw.{own} nor one of its side tables ({own}__…)")
    return table


def _name_part(field: str, text: str) -> str:
    part = re.sub("_+", "_", _NOT_NAME.sub("_", str(text).lower())).strip("_")
    if not part:
        raise InvalidInput(field, f"'{text}' has no letter or digit to name a Raw table after")
    return part


class RawStore:
    """The Raw layer in one tenant's DuckDB file (``TenantDataPlanes.database_path``)."""

    def __init__(self, path: Path | str, *, _connection: duckdb.DuckDBPyConnection | None = None) -> None:
        self.path = Path(path)
        self._held = _connection

    # --- connections --------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[RawStore]:
        """A store that keeps one connection open until the block ends (for a whole sync).

        Not for sharing between threads: a DuckDB connection is used by one at a time.
        """
        if self._held is not None:
            yield self
            return
        with self._connection() as con:
            yield RawStore(self.path, _connection=con)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._held is not None:
            yield self._held
            return
        if not self.path.is_file():
            raise NotFound("data plane", self.path.parent.name)
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise RawBusy(
                    "the tenant's Raw layer is open in another process; try again shortly",
                    tenant_id=self.path.parent.name,
                ) from None
            raise
        try:
            con.execute("SET TimeZone = 'UTC'")  # date-times without an offset are UTC
            con.execute(_BOOKKEEPING)
            yield con
        finally:
            con.close()

    # --- writing ------------------------------------------------------------------------------

    def commit_batch(
        self,
        source_id: str,
        source_key: str,
        stream: Stream,
        *,
        run_id: str | None,
        records: Sequence[Mapping[str, Any]] | pa.Table,
        state: Mapping[str, Any] | None,
        kind: Kind = "sync",
        dedupe: bool = False,
        advance_state: bool = True,
        table: str | None = None,
        rules: Sequence = (),
    ) -> BatchResult:
        """Insert ``records``, record the batch and (``advance_state``) the stream's state, atomically.

        ``records`` are dicts, or an Arrow table whose rows are the records (as in
        ``RecordBatch.arrow``): each lands with the same columns and record hash.
        ``dedupe`` skips records whose hash is in the table already or earlier in
        the batch. A value that does not fit its column raises ``ConnectorError``
        (reason ``type``) naming the field, the 1-based record number in the batch
        and the expected type; nothing of the batch is committed then.
        ``table`` lands the batch in one of the stream's side tables (``side_table``)
        instead of its Raw table; the bookkeeping and the state are the stream's all the same.
        ``rules`` (the Raw table's enabled data-quality rules, ``keel.quality.model.Rule``) are
        applied to the batch before it commits (``keel.quality.ingest``): a failing ``block``
        rule raises ``RuleBlocked`` and nothing of the batch lands; rows failing a
        ``quarantine`` rule go to ``<table>__dq_quarantine`` instead (not into a side table).
        """
        if kind not in KINDS:
            raise InvalidInput("kind", f"must be one of {', '.join(KINDS)}")
        table = _target(source_key, stream.name, table)
        if not isinstance(records, list | pa.Table):
            records = list(records)
        columns = staging.columns_of(records, stream.name)
        batch_id = new_id("BAT")
        now = utcnow()
        with self._connection() as con:
            con.begin()
            try:
                types = _ensure_table(con, table, source_id, stream, columns.fields, now)
                staged = staging.stage(stream.name, records, columns, types, dedupe=dedupe)
                inserted = staged.insert(con, table, (batch_id, source_id, now), dedupe=dedupe)
                skipped = columns.rows - inserted
                moved, outcome = 0, {}
                if rules and table == table_name(source_key, stream.name):
                    from keel.quality.ingest import apply_to_batch

                    last = con.execute(
                        "SELECT rows FROM raw._keel_batches WHERE source_id = ? AND stream = ? "
                        "AND kind <> 'release' ORDER BY committed_at DESC LIMIT 1",  # a release is no read
                        [source_id, stream.name],
                    ).fetchall()
                    moved, outcome = apply_to_batch(
                        con, table, batch_id, rules, previous_rows=last[0][0] if last else None
                    )
                    inserted -= moved
                con.execute(
                    "INSERT INTO raw._keel_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch_id, source_id, stream.name, run_id, kind, inserted, skipped, _json(state), now],
                )
                if advance_state:
                    con.execute(
                        "DELETE FROM raw._keel_state WHERE source_id = ? AND stream = ?",
                        [source_id, stream.name],
                    )
                    con.execute(
                        "INSERT INTO raw._keel_state VALUES (?, ?, ?, ?, ?)",
                        [source_id, stream.name, _json(state), batch_id, now],
                    )
                con.commit()
            except BaseException:
                con.rollback()
                raise
        return BatchResult(batch_id, inserted, skipped, moved, outcome)

    def drop_source(self, source_id: str, source_key: str) -> list[str]:
        """Drop the tables the source landed under ``source_key`` (with the rows data-quality rules
        quarantined from them) and all its bookkeeping; the tables' names."""
        key = _name_part("source_key", source_key)
        with self._connection() as con:
            con.begin()
            try:
                names = [
                    row[0]
                    for row in con.execute(
                        "SELECT table_name FROM raw._keel_tables WHERE source_id = ? AND source_key = ? "
                        "ORDER BY table_name",
                        [source_id, key],
                    ).fetchall()
                ]
                # Rows a data-quality rule held back (``<table>__dq_quarantine``) go with their table.
                held = [f"{name}__{DQ_QUARANTINE}" for name in names]
                present = {
                    row[0]
                    for row in con.execute(
                        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'"
                    ).fetchall()
                }
                names += [side for side in held if side in present]
                for name in names:
                    con.execute(f"DROP TABLE IF EXISTS raw.{quote(name)}")
                for bookkeeping in ("_keel_tables", "_keel_batches", "_keel_state"):
                    con.execute(f"DELETE FROM raw.{bookkeeping} WHERE source_id = ?", [source_id])
                con.commit()
            except BaseException:
                con.rollback()
                raise
        return names

    # --- reading ------------------------------------------------------------------------------

    def last_state(self, source_id: str, stream: str) -> dict[str, Any] | None:
        """The state of the stream's last committed (state-advancing) batch; None before the first."""
        with self._connection() as con:
            rows = con.execute(
                "SELECT state FROM raw._keel_state WHERE source_id = ? AND stream = ?", [source_id, stream]
            ).fetchall()
        return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    def batches(self, source_id: str, stream: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        """The source's committed batches, newest first."""
        if limit < 1:
            raise InvalidInput("limit", "must be at least 1")
        query = "SELECT * FROM raw._keel_batches WHERE source_id = ?"
        params: list[Any] = [source_id]
        if stream is not None:
            query += " AND stream = ?"
            params.append(stream)
        query += " ORDER BY committed_at DESC, batch_id DESC LIMIT ?"
        with self._connection() as con:
            cursor = con.execute(query, [*params, limit])
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        out = []
        for row in rows:
            batch = dict(zip(names, row, strict=True))
            batch["state"] = json.loads(batch["state"]) if batch["state"] is not None else None
            out.append(batch)
        return out

    def row_count(self, source_id: str, source_key: str, stream: str) -> int:
        """Rows in the stream's Raw table (0 before its first batch)."""
        table = table_name(source_key, stream)
        with self._connection() as con:
            if _owner(con, table) != (source_id, stream):
                return 0
            return con.execute(f"SELECT count(*) FROM raw.{quote(table)}").fetchall()[0][0]

    def tables(self, source_id: str | None = None) -> list[dict[str, Any]]:
        """Raw tables (of one source, or all) with their source, stream and row count."""
        query = "SELECT table_name, source_id, source_key, stream, created_at FROM raw._keel_tables"
        params = []
        if source_id is not None:
            query += " WHERE source_id = ?"
            params.append(source_id)
        with self._connection() as con:
            rows = con.execute(query + " ORDER BY table_name", params).fetchall()
            out = []
            for name, owner, key, stream, created_at in rows:
                count = con.execute(f"SELECT count(*) FROM raw.{quote(name)}").fetchall()[0][0]
                out.append(
                    {
                        "table": f"raw.{name}",
                        "source_id": owner,
                        "source_key": key,
                        "stream": stream,
                        "rows": count,
                        "created_at": created_at,
                    }
                )
        return out


# --- tables -------------------------------------------------------------------------------------


def _ensure_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source_id: str,
    stream: Stream,
    fields: list[str],
    now: datetime,
) -> dict[str, tuple[str, str]]:
    """Create or widen the table for the schema and the batch's fields; field → (column, type)."""
    owner = _owner(con, table)
    existing = {
        name: kind
        for name, kind in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'raw' AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
    }
    if owner != (source_id, stream.name) and (owner is not None or existing):
        holder = f"stream '{owner[1]}' of source {owner[0]}" if owner else "data Keel did not ingest"
        raise Conflict(f"Raw table raw.{table} holds {holder}", table=f"raw.{table}")
    if owner is None:
        con.execute(
            "INSERT INTO raw._keel_tables VALUES (?, ?, ?, ?, ?)",
            [table, source_id, table.split("__", 1)[0], stream.name, now],
        )
    created = bool(existing)
    wanted = {
        name: col.column_type(schema if isinstance(schema, Mapping) else {})
        for name, schema in stream.json_schema.get("properties", {}).items()
    }
    for name in fields:
        wanted.setdefault(name, col.JSON)
    by_lower = {name.lower(): name for name in existing}
    claimed: dict[str, str] = {}
    mapping: dict[str, tuple[str, str]] = {}
    added: list[tuple[str, str]] = []
    for name, kind in wanted.items():
        lower = name.lower()
        if lower.startswith(RESERVED_PREFIX):
            raise ConnectorError(
                f"field '{name}' uses the prefix '{RESERVED_PREFIX}' reserved for Keel's columns",
                stream=stream.name,
                reason="schema",
                field=name,
            )
        if lower in claimed:
            raise ConnectorError(
                f"fields '{claimed[lower]}' and '{name}' differ only in case; Raw column names do not",
                stream=stream.name,
                reason="schema",
                field=name,
            )
        claimed[lower] = name
        column = by_lower.get(lower)
        if column is None:
            column = name
            added.append((name, kind))
            by_lower[lower] = name
            existing[name] = kind
        mapping[name] = (column, existing[column])
    if not created:
        definitions = [f"{quote(n)} {k} NOT NULL" for n, k in META] + [f"{quote(n)} {k}" for n, k in added]
        con.execute(f"CREATE TABLE raw.{quote(table)} ({', '.join(definitions)})")
    else:
        for name, kind in added:
            con.execute(f"ALTER TABLE raw.{quote(table)} ADD COLUMN {quote(name)} {kind}")
    return mapping


def _owner(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, str] | None:
    rows = con.execute(
        "SELECT source_id, stream FROM raw._keel_tables WHERE table_name = ?", [table]
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))
