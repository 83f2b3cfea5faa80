"""Failure injection on real database servers: the reading connection dropped in the middle of a sync.

PostgreSQL: another session ends the connector's backend (``pg_terminate_backend``)
right after the first batch is committed, as a server restart or a network cut
would. MariaDB: ``KILL CONNECTION`` at the same point. Either way the sync retries
from its last committed checkpoint, and Raw ends up holding each source row once:
the keys and the record hashes in Raw are compared with a fresh read of the source.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tests.integration.test_connectors_sql_servers import mariadb_url, run

from keel.connectors import RecordBatch
from keel.connectors.sql import SqlConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.hashing import record_hash
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import RetryPolicy, SyncResult, Window, sync_stream
from keel.samples.erp import ErpSpec, write

__all__ = ["mariadb_url"]  # a fixture, used by name

SOURCE = "SRC-20261127-ERP00001"
SPEC = ErpSpec(seed=21, months=2, customers=8, vendors=4, invoices_per_month=50, dirty_share=0.1)


@pytest.fixture
def raw(tmp_path: Path) -> RawStore:
    return RawStore(TenantDataPlanes(tmp_path).provision("TEN-20261127-ACME0001"))


@pytest.fixture
def pg_erp(postgres_url: str) -> Iterator[dict[str, Any]]:
    schema = f"keel_ingest_{uuid.uuid4().hex[:12]}"
    write(SPEC, postgres_url, schema)
    yield {"url": postgres_url, "schema": schema, "cursor_fields": {"invoices": "updated_at"}}
    run(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sync_dropping_the_connection(
    config: dict[str, Any], raw: RawStore, end_session: Callable[[], int], **options: Any
) -> SyncResult:
    """Sync invoices in batches of 10; after the first commit, ``end_session`` ends the reading session."""
    ended: list[int] = []

    def on_event(kind: str, details: dict[str, Any]) -> None:
        if kind == "batch" and not ended:
            ended.append(end_session())

    result = sync_stream(
        SqlConnector(), config, "invoices", raw, source_id=SOURCE, source_key="erp", run_id="RUN-1",
        batch_size=10, retry=RetryPolicy(max_attempts=3, base_delay=0.01), sleep=Sleeps(), on_event=on_event,
        **options,
    )  # fmt: skip
    assert ended == [1], "exactly one reading session should have been ended"
    return result


def terminate_postgresql_reader(config: dict[str, Any]) -> Callable[[], int]:
    """Ends the connector's backend: the one session other than ours locking this test's own table."""
    table = f'"{config["schema"]}".invoices'

    def end() -> int:
        rows = run(
            config["url"],
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE pid != pg_backend_pid() AND relation = CAST(:t AS regclass)",
            t=table,
        )
        return sum(1 for (ended,) in rows if ended)

    return end


def kill_mariadb_reader(url: str) -> Callable[[], int]:
    """KILLs the connector's session: the one session other than ours in this test's own database."""
    database = url.rsplit("/", 1)[1]

    def end() -> int:
        sessions = run(
            url,
            "SELECT id FROM information_schema.processlist WHERE db = :db AND id != CONNECTION_ID()",
            db=database,
        )
        for (session,) in sessions:
            run(url, f"KILL CONNECTION {int(session)}")
        return len(sessions)

    return end


def in_raw(raw: RawStore) -> list[tuple[int, str]]:
    with duckdb.connect(str(raw.path)) as con:
        return con.execute(
            "SELECT row_id, _keel_record_hash FROM raw.erp__invoices ORDER BY row_id"
        ).fetchall()


def in_source(
    config: dict[str, Any], start: str | None = None, end: str | None = None
) -> list[tuple[int, str]]:
    records = [
        r
        for m in SqlConnector().read(config, "invoices", None)
        if isinstance(m, RecordBatch)
        for r in m.records
        if (start is None or r["updated_at"] >= start) and (end is None or r["updated_at"] < end)
    ]
    return sorted((r["row_id"], record_hash(r)) for r in records)


@pytest.mark.postgres
def test_postgresql_connection_dropped_mid_read_loses_and_duplicates_nothing(
    pg_erp: dict[str, Any], raw: RawStore
) -> None:
    result = sync_dropping_the_connection(pg_erp, raw, terminate_postgresql_reader(pg_erp))

    assert (result.error, result.attempts, result.first_failure) == (None, 2, "unreachable")
    assert in_raw(raw) == in_source(pg_erp)
    assert (result.rows, result.skipped) == (len(in_source(pg_erp)), 0)


@pytest.mark.postgres
def test_postgresql_backfill_dropped_mid_read_lands_its_window_once_and_keeps_the_checkpoint(
    pg_erp: dict[str, Any], raw: RawStore
) -> None:
    window = Window("updated_at", "2026-01-15T00:00:00+00:00", "2026-02-15T00:00:00+00:00")
    result = sync_dropping_the_connection(
        pg_erp, raw, terminate_postgresql_reader(pg_erp), kind="backfill", window=window
    )

    assert (result.error, result.attempts) == (None, 2)
    assert in_raw(raw) == in_source(pg_erp, window.start, window.end)
    assert raw.last_state(SOURCE, "invoices") is None


def test_mariadb_connection_killed_mid_read_loses_and_duplicates_nothing(
    mariadb_url: str, raw: RawStore
) -> None:
    write(SPEC, mariadb_url)
    config = {"url": mariadb_url, "cursor_fields": {"invoices": "updated_at"}}
    result = sync_dropping_the_connection(config, raw, kill_mariadb_reader(mariadb_url))

    assert (result.error, result.attempts, result.first_failure) == (None, 2, "unreachable")
    assert in_raw(raw) == in_source(config)
