"""Benchmark ingestion into Raw (rows/s) from PostgreSQL and from a CSV file, against plain loads.

Run ``python bench/bench_ingestion.py``; ``run()`` returns the rows for the common
runner (``bench/run.py``).

Data: ``ROWS`` invoice-like rows (a bigint key, ids, two dates, a currency, two
NUMERIC(14,2) amounts, a status, a timestamptz), made by DuckDB over ``range()``
into a CSV file and copied into a fresh PostgreSQL schema (``COPY ... FROM STDIN``).

Keel: ``sync_stream`` into a fresh tenant DuckDB file, ``BATCH`` records per batch
and checkpoint: the SQL connector (COPY into Arrow, keyset full refresh) or
the files connector (CSV); typed columns, ingestion metadata, the record hash,
and the batch record and checkpoint committed with each batch.

Baselines, side by side in the same run, rounds interleaved, medians compared:

* PostgreSQL: ``COPY (SELECT * ...) TO STDOUT (FORMAT csv)`` streamed to a file,
  then DuckDB ``read_csv`` of it into a table of a fresh DuckDB file: the plain
  way to land the table in DuckDB. An informational row times the COPY alone.
* CSV: DuckDB ``read_csv`` of the same file into a table of a fresh DuckDB file.

Target: Keel / baseline >= 0.5. ``KEEL_BENCH_PG_URL`` names the PostgreSQL server
(default: the test server); without one the PostgreSQL rows are reported as not run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import sqlalchemy as sa

try:
    from keel.ingestion.runner import sync_stream
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from keel.ingestion.runner import sync_stream

from keel.connectors.files import FilesConnector
from keel.connectors.sql import SqlConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.raw import RawStore

ROWS = 200_000
BATCH = 5_000
ROUNDS = 3
RATIO_TARGET = 0.5
PG_URL = os.environ.get("KEEL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

TABLE_DDL = """
CREATE TABLE {table} (
    row_id BIGINT PRIMARY KEY, invoice_id VARCHAR(24) NOT NULL, customer_id VARCHAR(16) NOT NULL,
    issued_at DATE NOT NULL, due_at DATE NOT NULL, currency VARCHAR(8), amount_net NUMERIC(14, 2),
    amount_tax NUMERIC(14, 2), status VARCHAR(16) NOT NULL, updated_at TIMESTAMPTZ NOT NULL)
"""
GENERATE = """
COPY (
    SELECT i AS row_id,
           'INV-' || lpad(CAST(i AS VARCHAR), 9, '0') AS invoice_id,
           'CUS-' || lpad(CAST(i % 500 AS VARCHAR), 4, '0') AS customer_id,
           DATE '2026-01-01' + CAST(i % 180 AS INTEGER) AS issued_at,
           DATE '2026-01-31' + CAST(i % 180 AS INTEGER) AS due_at,
           ['EUR', 'GBP', 'USD', 'CHF'][i % 4 + 1] AS currency,
           CAST((i * 7919) % 2500000 AS DECIMAL(14, 2)) / 100 AS amount_net,
           CAST((i * 7919) % 2500000 AS DECIMAL(14, 2)) / 500 AS amount_tax,
           ['open', 'paid', 'overdue'][i % 3 + 1] AS status,
           TIMESTAMPTZ '2026-01-01 08:00:00+00' + to_seconds(i * 37) AS updated_at
    FROM range(1, {rows} + 1) t(i)
) TO '{path}' (HEADER, DELIMITER ',')
"""


def _csv(work: Path, rows: int) -> Path:
    path = work / "invoices" / "invoices.csv"
    path.parent.mkdir()
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(GENERATE.format(rows=rows, path=path))
    return path


def _pg_schema(csv_path: Path) -> str | None:
    """A fresh schema holding ``invoices`` loaded from the CSV file; None without a server."""
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError:
        return None
    schema = f"keel_bench_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(TABLE_DDL.format(table=f'"{schema}".invoices')))
        cursor = conn.connection.dbapi_connection.cursor()
        with (
            cursor.copy(f'COPY "{schema}".invoices FROM STDIN (FORMAT csv, HEADER)') as copy,
            csv_path.open("rb") as fh,
        ):
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        conn.execute(sa.text(f'ANALYZE "{schema}".invoices'))
    engine.dispose()
    return schema


def _drop(schema: str) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


class _Tenants:
    """A fresh tenant DuckDB file per round, as provisioning makes it."""

    def __init__(self, root: Path) -> None:
        self.planes = TenantDataPlanes(root)
        self.count = 0

    def fresh(self) -> Path:
        self.count += 1
        return self.planes.provision(f"TEN-BENCH-{self.count:04d}")


def _keel(connector, config: dict, stream: str, path: Path, rows: int) -> float:
    started = time.perf_counter()
    result = sync_stream(
        connector, config, stream, RawStore(path), source_id="SRC-BENCH", source_key="bench",
        run_id="RUN-BENCH", batch_size=BATCH,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if result.error is not None or result.rows != rows:
        raise AssertionError(f"the benchmarked sync failed: {result}")
    return elapsed


def _read_csv(csv_path: Path, path: Path) -> float:
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE raw.invoices AS SELECT * FROM read_csv('{csv_path}')")
    return time.perf_counter() - started


def _pg_copy(schema: str, target: Path, path: Path | None) -> float:
    """COPY the table to a CSV file, then (``path``) read it into DuckDB."""
    engine = sa.create_engine(PG_URL)
    started = time.perf_counter()
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        query = f'COPY (SELECT * FROM "{schema}".invoices) TO STDOUT (FORMAT csv, HEADER)'
        with cursor.copy(query) as copy, target.open("wb") as out:
            for chunk in copy:
                out.write(chunk)
    if path is not None:
        with duckdb.connect(str(path)) as con:
            con.execute(f"CREATE TABLE raw.invoices AS SELECT * FROM read_csv('{target}')")
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def run(rows: int = ROWS, rounds: int = ROUNDS, directory: str | None = None) -> list[dict]:
    work = Path(
        tempfile.mkdtemp(prefix="keel-bench-ingest-", dir=directory or os.environ.get("KEEL_BENCH_DIR"))
    )
    tenants = _Tenants(work / "tenants")
    csv_path = _csv(work, rows)
    schema = _pg_schema(csv_path)
    files_config = {"path": str(csv_path.parent), "pattern": "*.csv", "format": "csv", "stream": "invoices"}
    times: dict[str, list[float]] = {"csv": [], "read_csv": [], "pg": [], "copy": [], "copy_only": []}
    try:
        for _ in range(rounds):
            times["csv"].append(_keel(FilesConnector(), files_config, "invoices", tenants.fresh(), rows))
            times["read_csv"].append(_read_csv(csv_path, tenants.fresh()))
            if schema is not None:
                pg_config = {"url": PG_URL, "schema": schema, "tables": ["invoices"]}
                times["pg"].append(_keel(SqlConnector(), pg_config, "invoices", tenants.fresh(), rows))
                times["copy"].append(_pg_copy(schema, work / "export.csv", tenants.fresh()))
                times["copy_only"].append(_pg_copy(schema, work / "export.csv", None))
    finally:
        if schema is not None:
            _drop(schema)
        shutil.rmtree(work, ignore_errors=True)

    def rate(name: str) -> float:
        return rows / statistics.median(times[name])

    out = [_row(f"CSV file ({rows:,} rows) into Raw vs DuckDB read_csv", rate("csv"), rate("read_csv"))]
    if schema is None:
        out.append({"name": f"PostgreSQL: not run ({PG_URL} does not answer)", "pass": True})
        return out
    out.append(
        _row(
            f"PostgreSQL table ({rows:,} rows) into Raw vs COPY TO STDOUT + read_csv",
            rate("pg"),
            rate("copy"),
        )
    )
    out.append(
        _row(
            "PostgreSQL into Raw vs COPY TO STDOUT alone (informational)",
            rate("pg"),
            rate("copy_only"),
            gated=False,
        )
    )
    return out


def _row(name: str, keel: float, baseline: float, *, gated: bool = True) -> dict:
    ratio = keel / baseline
    return {
        "name": name,
        "value": round(keel),
        "unit": "rows/s",
        "baseline": round(baseline),
        "ratio": round(ratio, 3),
        "target": f">= {RATIO_TARGET} x baseline" if gated else None,
        "pass": ratio >= RATIO_TARGET if gated else True,
    }


if __name__ == "__main__":  # this benchmark alone, through the common runner (bench/run.py)
    from run import main as run_benches

    sys.exit(run_benches([Path(__file__).stem]))
