"""PostgreSQL read with COPY into Arrow: the same records and record hashes as a plain cursor read.

The SQL connector reads a PostgreSQL table whose columns all have types Arrow
parses exactly from ``COPY ... (FORMAT csv)`` into Arrow batches. The oracle is
an independent read of the same table with a SQLAlchemy cursor, each value
made JSON by ``jsonable`` (what the connector's cursor path does): records must
be equal value for value, and the hashes Raw stores equal ``record_hash`` of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from tests.integration.test_connectors_sql_servers import records_of, run

from keel.connectors import RecordBatch, StateCheckpoint
from keel.connectors.protocol import jsonable
from keel.connectors.sql import SqlConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.hashing import record_hash
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import sync_stream

SQL = SqlConnector()

ODD = """
CREATE TABLE {schema}.odd (
    id INTEGER PRIMARY KEY, small SMALLINT, big BIGINT, r REAL, d DOUBLE PRECISION, n NUMERIC,
    n2 NUMERIC(14, 2), t TEXT, c CHAR(3), b BOOLEAN, day DATE, naive TIMESTAMP, aware TIMESTAMPTZ);
INSERT INTO {schema}.odd VALUES
    (1, -32768, 9007199254740993, 1.1, 0.1, 0.0000001, 12.50, '', 'ab', true, '0999-01-01',
     '1969-12-31 23:59:59.000001', '2026-01-01 08:00:00.5+02'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 7, -1, -0.25, 1e-7, 0.00000000, -0.05, 'a,b "quoted"' || chr(10) || 'line\\N', 'x', false,
     '2026-02-28', '2026-02-28 23:59:59', '2026-02-28 23:59:59+00'),
    (4, 0, 0, 3.4e38, 1e300, 12345678901234567890.123456789, 0, 'é😀 t', 'NUL', true,
     '9999-12-31', '2026-01-01 00:00:00', '1970-01-01 00:00:00.000001+00'),
    (5, 1, 1, 0, -0.0, 100, 1, 'NULL', '', false, '2000-02-29', '2026-06-30 12:00:00.123456',
     '2026-06-30 12:00:00.123456-07');
CREATE TABLE {schema}.extremes (id INTEGER PRIMARY KEY, d DOUBLE PRECISION, n NUMERIC);
INSERT INTO {schema}.extremes VALUES (1, 'NaN', 'NaN'), (2, 'Infinity', 1e-30), (3, '-Infinity', -0.000001),
    (4, 2.5, 123456789012345678901234567890.5);
CREATE TABLE {schema}.documents (id INTEGER PRIMARY KEY, body JSONB);
INSERT INTO {schema}.documents VALUES (1, '{{"a": [1, 2]}}'), (2, NULL);
"""


@pytest.fixture
def pg(postgres_url: str) -> Iterator[dict[str, Any]]:
    schema = f"keel_copy_{uuid.uuid4().hex[:12]}"
    run(postgres_url, f'CREATE SCHEMA "{schema}"')
    for statement in ODD.format(schema=f'"{schema}"').split(";"):
        if statement.strip():
            run(postgres_url, statement)
    yield {"url": postgres_url, "schema": schema}
    run(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def cursor_records(config: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """The table read with a plain cursor, in key order, each value made JSON as connectors do."""
    engine = sa.create_engine(config["url"], connect_args={"options": "-c timezone=UTC"})
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(f'SELECT * FROM "{config["schema"]}".{table} ORDER BY id'))
            return [{k: jsonable(v) for k, v in row._mapping.items()} for row in result]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["odd", "extremes"])
def test_copy_reads_every_value_as_the_cursor_does(pg: dict[str, Any], table: str) -> None:
    messages = list(SQL.read(pg, table, None, batch_size=2))
    batches = [m for m in messages if isinstance(m, RecordBatch)]
    assert batches and all(b.arrow is not None for b in batches)  # read with COPY
    assert repr(records_of(messages)) == repr(cursor_records(pg, table))  # repr: NaN equals NaN


@pytest.mark.postgres
def test_copy_batches_land_with_the_hash_of_their_records(pg: dict[str, Any], tmp_path: Path) -> None:
    raw = RawStore(TenantDataPlanes(tmp_path).provision("TEN-20261127-ACME0001"))
    result = sync_stream(
        SQL, pg, "odd", raw, source_id="SRC-1", source_key="erp", run_id="RUN-1", batch_size=2
    )  # fmt: skip
    assert (result.error, result.rows, result.batches) == (None, 5, 4)  # the last commits the end of the read
    with duckdb.connect(str(raw.path)) as con:
        hashes = [
            h for (h,) in con.execute("SELECT _keel_record_hash FROM raw.erp__odd ORDER BY id").fetchall()
        ]
    assert hashes == [record_hash(r) for r in cursor_records(pg, "odd")]


@pytest.mark.postgres
def test_a_copy_read_resumes_after_its_checkpoint(pg: dict[str, Any]) -> None:
    first = list(SQL.read(pg, "odd", None, batch_size=2))
    checkpoint = next(m for m in first if isinstance(m, StateCheckpoint))
    assert checkpoint.state == {"mode": "full_refresh", "last_pk": [2]}
    rest = list(SQL.read(pg, "odd", checkpoint.state, batch_size=2))
    assert records_of(rest) == cursor_records(pg, "odd")[2:]


@pytest.mark.postgres
def test_a_table_with_a_type_copy_text_cannot_give_exactly_is_read_with_the_cursor(
    pg: dict[str, Any],
) -> None:
    messages = list(SQL.read(pg, "documents", None))
    batches = [m for m in messages if isinstance(m, RecordBatch)]
    assert [b.arrow for b in batches] == [None]
    assert records_of(messages) == [{"id": 1, "body": {"a": [1, 2]}}, {"id": 2, "body": None}]
