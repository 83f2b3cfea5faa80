"""Failure injection: the process running a sync is killed (SIGKILL) between batches.

A child process (``ingestion_child.py``) syncs the sample ERP from a SQLite file
into a tenant's DuckDB file and stops after three committed batches, with a
fourth batch read but not committed. It is killed there, with no chance to clean
up; DuckDB recovers the file from its write-ahead log on the next open. A sync
in this process then resumes from the last committed checkpoint, and Raw must
hold every source row exactly once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
from tests.support import killed_when_paused

from keel.connectors import RecordBatch
from keel.connectors.sql import SqlConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.hashing import record_hash
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import sync_stream
from keel.samples.erp import ErpSpec, write

CHILD = Path(__file__).with_name("ingestion_child.py")
SOURCE = "SRC-20261127-ERP00001"
SPEC = ErpSpec(seed=8, months=2, customers=6, vendors=3, invoices_per_month=45, dirty_share=0.1)


def test_a_sync_killed_between_batches_resumes_without_losing_or_duplicating_a_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    write(SPEC, url)
    database = TenantDataPlanes(tmp_path / "planes").provision("TEN-20261127-ACME0001")
    marker = tmp_path / "paused"

    killed_when_paused(
        [sys.executable, str(CHILD), str(database), url, str(marker), "3"], marker, "where it should"
    )

    raw = RawStore(database)
    committed = raw.batches(SOURCE)
    assert (len(committed), raw.row_count(SOURCE, "erp", "invoices")) == (3, 30)  # the fourth batch is gone
    assert raw.last_state(SOURCE, "invoices") == committed[0]["state"]

    config = {"url": url, "cursor_fields": {"invoices": "updated_at"}}
    resumed = sync_stream(
        SqlConnector(), config, "invoices", raw, source_id=SOURCE, source_key="erp", run_id="RUN-RESUMED",
        batch_size=10,
    )  # fmt: skip

    source = [
        r
        for m in SqlConnector().read(config, "invoices", None)
        if isinstance(m, RecordBatch)
        for r in m.records
    ]
    with duckdb.connect(str(database)) as con:
        landed = con.execute(
            "SELECT row_id, _keel_record_hash FROM raw.erp__invoices ORDER BY row_id"
        ).fetchall()
    assert (resumed.error, resumed.rows) == (None, len(source) - 30)
    assert landed == sorted((r["row_id"], record_hash(r)) for r in source)
