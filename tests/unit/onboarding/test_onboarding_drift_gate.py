"""The runner's gate, which the drift watch uses: ``sync_stream`` on the sample ERP (a real SQLite
file) into a real tenant DuckDB file, refused or diverted to the stream's quarantine table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keel.connectors import Connector, ConnectorError, Message, Stream
from keel.connectors.sql import SqlConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import Admission, RetryPolicy, quarantine_table, sync_stream
from keel.samples.erp import ErpSpec, generate, write

SOURCE = "SRC-20261207-ERP00001"
SPEC = ErpSpec(seed=5, months=1, customers=4, vendors=2, invoices_per_month=25, dirty_share=0.0)
INVOICES = len(generate(SPEC)["invoices"])


@pytest.fixture
def erp(tmp_path: Path) -> dict[str, Any]:
    write(SPEC, f"sqlite:///{tmp_path / 'erp.db'}")
    return {"url": f"sqlite:///{tmp_path / 'erp.db'}", "cursor_fields": {"invoices": "updated_at"}}


@pytest.fixture
def raw(tmp_path: Path) -> RawStore:
    return RawStore(TenantDataPlanes(tmp_path / "planes").provision("TEN-20261207-ACME0001"))


class DropsOnce(Connector):
    """The SQL connector, whose first read drops the connection after ``after`` messages."""

    name = "drops-once"
    version = "1.0.0"

    def __init__(self, after: int) -> None:
        self.inner, self.after, self.reads = SqlConnector(), after, 0

    def spec(self) -> dict[str, Any]:
        return self.inner.spec()

    def probe(self, cfg: dict[str, Any]) -> Any:
        return self.inner.probe(cfg)

    def discover(self, config: Mapping[str, Any]) -> Any:
        return self.inner.discover(config)

    def read(self, config, stream, state, *, batch_size: int = 1000) -> Iterator[Message]:
        self.reads += 1
        for index, message in enumerate(self.inner.read(config, stream, state, batch_size=batch_size)):
            if self.reads == 1 and index == self.after:
                raise ConnectorError("server closed the connection", stream=stream, reason="unreachable")
            yield message


class Gate(list):
    """A gate answering ``admission``, recording the streams it is shown."""

    def __init__(self, admission: Admission) -> None:
        super().__init__()
        self.admission = admission

    def __call__(self, stream: Stream) -> Admission:
        self.append(stream.name)
        return self.admission


def sync(connector: Connector, config: dict, raw: RawStore, gate: Gate):
    return sync_stream(
        connector, config, "invoices", raw, source_id=SOURCE, source_key="erp", run_id="RUN-1", batch_size=10,
        retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0), sleep=lambda _: None, gate=gate,
    )  # fmt: skip


def rows(raw: RawStore, sql: str) -> list[tuple]:
    with duckdb.connect(str(raw.path)) as con:
        return con.execute(sql).fetchall()


def test_a_refusing_gate_reads_nothing_writes_nothing_and_keeps_the_checkpoint(erp, raw):
    first = sync(SqlConnector(), erp, raw, Gate(Admission()))
    reader = DropsOnce(after=10**6)
    gate = Gate(Admission("refuse", "drift", "invoices drifted: added po_number"))

    refused = sync(reader, erp, raw, gate)

    assert (refused.error, refused.failure, refused.rows, refused.batches) == (
        "invoices drifted: added po_number",
        "drift",
        0,
        0,
    )
    assert reader.reads == 0 and gate == ["invoices"]
    assert refused.state == first.state == raw.last_state(SOURCE, "invoices")
    assert rows(raw, "SELECT count(*) FROM raw.erp__invoices") == [(INVOICES,)]


def test_a_quarantining_gate_lands_every_batch_in_the_quarantine_table_exactly_once(erp, raw):
    gate = Gate(Admission("quarantine"))

    result = sync(DropsOnce(after=5), erp, raw, gate)  # a dropped connection, retried from the checkpoint

    assert (result.error, result.quarantined, result.attempts, result.rows) == (None, True, 2, INVOICES)
    assert gate == ["invoices"]  # asked once per run, not once per attempt
    assert quarantine_table("erp", "invoices") == "erp__invoices__quarantine"
    ids = rows(raw, 'SELECT row_id FROM raw."erp__invoices__quarantine" ORDER BY row_id')
    assert len(ids) == len(set(ids)) == INVOICES
    tables = {t["table"]: t["stream"] for t in raw.tables(SOURCE)}
    assert tables == {"raw.erp__invoices__quarantine": "invoices"}  # nothing in the Raw table
    assert result.state == raw.last_state(SOURCE, "invoices")  # kept, so the checkpoint moved

    again = sync(SqlConnector(), erp, raw, Gate(Admission("quarantine")))
    assert (again.rows, again.batches) == (0, 0)


def test_a_quarantine_table_has_the_raw_tables_columns_so_its_rows_can_be_released(erp, raw, tmp_path):
    sync(SqlConnector(), erp, raw, Gate(Admission("quarantine")))
    clean = RawStore(TenantDataPlanes(tmp_path / "clean").provision("TEN-20261207-ACME0002"))
    sync(SqlConnector(), erp, clean, Gate(Admission()))

    def columns(store: RawStore, table: str) -> list[tuple]:
        return rows(
            store,
            "SELECT column_name, data_type FROM duckdb_columns() "
            f"WHERE table_name = '{table}' ORDER BY column_index",
        )

    assert columns(raw, "erp__invoices__quarantine") == columns(clean, "erp__invoices")
    hashes = "SELECT _keel_record_hash FROM raw.{} ORDER BY 1"
    assert rows(raw, hashes.format('"erp__invoices__quarantine"')) == rows(
        clean, hashes.format("erp__invoices")
    )
