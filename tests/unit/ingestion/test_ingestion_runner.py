"""``sync_stream`` reading the sample ERP (a real SQLite file) into a real tenant DuckDB file.

Failures a SQLite file cannot produce (a dropped connection, a source that breaks
mid-read) are injected by ``Faulty``, which wraps the real SQL connector and
raises a chosen error at a chosen message of a chosen read. The real thing, on
PostgreSQL, an HTTP server and a killed process, is in
``tests/integration/test_ingestion_failures.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from keel.connectors import Connector, ConnectorError, Message, RecordBatch, Stream
from keel.connectors.files import FilesConnector
from keel.connectors.protocol import records_of
from keel.connectors.sql import SqlConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.hashing import record_hash
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import RetryPolicy, SyncResult, Window, _window_filter, sync_stream
from keel.kernel.errors import InvalidInput
from keel.samples.erp import ErpSpec, generate, write

SOURCE = "SRC-20261127-ERP00001"
SPEC = ErpSpec(seed=3, months=2, customers=5, vendors=3, invoices_per_month=40, dirty_share=0.1)
INVOICES = len(generate(SPEC)["invoices"])  # 82: ten-row batches, the last one short
UNREACHABLE = ConnectorError(
    "server closed the connection unexpectedly", stream="invoices", reason="unreachable"
)


@pytest.fixture
def erp(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "erp.db"
    write(SPEC, f"sqlite:///{path}")
    return {"url": f"sqlite:///{path}", "cursor_fields": {"invoices": "updated_at"}}


@pytest.fixture
def raw(tmp_path: Path) -> RawStore:
    return RawStore(TenantDataPlanes(tmp_path / "planes").provision("TEN-20261127-ACME0001"))


class Faulty(Connector):
    """The SQL connector, raising ``faults[n] = (index, error)`` before message ``index`` of read ``n``."""

    name = "faulty"
    version = "1.0.0"

    def __init__(self, faults: dict[int, tuple[int, BaseException]]) -> None:
        self.inner = SqlConnector()
        self.faults = faults
        self.reads: list[Any] = []  # the state each read started from

    def spec(self) -> dict[str, Any]:
        return self.inner.spec()

    def probe(self, cfg: dict[str, Any]) -> Any:
        return self.inner.probe(cfg)

    def discover(self, config: Mapping[str, Any]) -> Any:
        return self.inner.discover(config)

    def window_state(self, config: Mapping[str, Any], stream: str, start: Any, end: Any = None) -> dict:
        return self.inner.window_state(config, stream, start, end)

    def read(
        self, config: Mapping[str, Any], stream: str, state: Any, *, batch_size: int = 1000
    ) -> Iterator[Message]:
        self.reads.append(state)
        fault = self.faults.get(len(self.reads))
        for index, message in enumerate(self.inner.read(config, stream, state, batch_size=batch_size)):
            if fault is not None and index == fault[0]:
                raise fault[1]
            yield message


class Recorder(list):
    """Records what it is called with (``sleep`` delays, ``on_event`` events) instead of acting."""

    def __call__(self, *args: Any) -> None:
        self.append(args if len(args) > 1 else args[0])


def sync(connector: Connector, config: dict[str, Any], raw: RawStore, **options: Any) -> SyncResult:
    options.setdefault("sleep", Recorder())
    options.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=4.0))
    return sync_stream(
        connector, config, "invoices", raw, source_id=SOURCE, source_key="erp", run_id="RUN-1", batch_size=10,
        **options,
    )  # fmt: skip


def landed(raw: RawStore, where: str = "true") -> list[tuple[int, str]]:
    """(row_id, record hash) of every Raw row, in key order: duplicates would show twice."""
    with duckdb.connect(str(raw.path)) as con:
        return con.execute(
            f"SELECT row_id, _keel_record_hash FROM raw.erp__invoices WHERE {where} ORDER BY row_id"
        ).fetchall()


def source(
    config: dict[str, Any], start: str | None = None, end: str | None = None, *, first: int | None = None
) -> list[tuple[int, str]]:
    """(row_id, record hash) of the source's rows, read afresh: those within [start, end) of updated_at,
    or the ``first`` in the order of an incremental read."""
    records = [
        r
        for m in SqlConnector().read(config, "invoices", None)
        if isinstance(m, RecordBatch)
        for r in m.records
        if (start is None or r["updated_at"] >= start) and (end is None or r["updated_at"] < end)
    ]
    return sorted((r["row_id"], record_hash(r)) for r in records[:first])


def test_a_sync_lands_every_source_row_once_and_a_rerun_from_its_state_adds_nothing(
    erp: dict[str, Any], raw: RawStore
) -> None:
    first = sync(SqlConnector(), erp, raw)
    again = sync(SqlConnector(), erp, raw)

    assert (first.rows, first.batches, first.attempts, first.error) == (INVOICES, 9, 1, None)
    assert landed(raw) == source(erp)
    assert first.state == raw.last_state(SOURCE, "invoices")
    assert first.state is not None and first.state["mode"] == "incremental"
    assert (again.rows, again.batches, again.state) == (0, 0, first.state)


def test_a_transient_failure_is_retried_from_the_last_checkpoint_without_loss_or_duplicates(
    erp: dict[str, Any], raw: RawStore
) -> None:
    connector = Faulty({1: (6, UNREACHABLE)})  # after three committed batches
    sleeps, events = Recorder(), Recorder()
    result = sync(connector, erp, raw, sleep=sleeps, on_event=events)

    assert (result.rows, result.attempts, result.error, result.first_failure) == (
        INVOICES,
        2,
        None,
        "unreachable",
    )
    assert landed(raw) == source(erp)
    assert connector.reads[1] == raw.batches(SOURCE)[-3]["state"]  # resumed from the third checkpoint
    assert [kind for kind, _ in events].count("retry") == 1
    retry = next(details for kind, details in events if kind == "retry")
    assert (retry["attempt"], retry["failure"], retry["batches"]) == (1, "unreachable", 3)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 1.0


def test_records_read_after_the_last_checkpoint_are_not_committed_when_the_read_fails(
    erp: dict[str, Any], raw: RawStore
) -> None:
    broken = ConnectorError("the source broke", stream="invoices", reason="source")
    failed = sync(Faulty({1: (7, broken)}), erp, raw)  # the fourth batch is read, its checkpoint never comes

    assert (failed.rows, failed.batches, failed.attempts) == (30, 3, 1)
    assert (failed.error, failed.failure, failed.transient) == (
        "stream 'invoices': the source broke",
        "source",
        False,
    )
    assert len(landed(raw)) == 30
    assert failed.state == raw.last_state(SOURCE, "invoices") == raw.batches(SOURCE)[0]["state"]

    resumed = sync(SqlConnector(), erp, raw)
    assert (resumed.rows, resumed.error) == (INVOICES - 30, None)
    assert landed(raw) == source(erp)


def test_retries_run_out_after_the_last_attempt_keeping_what_was_committed(
    erp: dict[str, Any], raw: RawStore
) -> None:
    reset = ConnectionResetError(104, "Connection reset by peer")
    sleeps = Recorder()
    result = sync(Faulty({n: (2, reset) for n in (1, 2, 3)}), erp, raw, sleep=sleeps)

    assert (result.rows, result.batches, result.attempts) == (30, 3, 3)  # one batch per attempt
    assert (result.error, result.failure, result.transient) == (
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        "unreachable",
        True,
    )
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0
    assert landed(raw) == source(erp, first=30)

    recovered = sync(SqlConnector(), erp, raw)
    assert landed(raw) == source(erp)
    assert recovered.rows == INVOICES - 30


def test_a_value_of_the_wrong_type_ends_the_run_naming_field_and_record(
    erp: dict[str, Any], raw: RawStore
) -> None:
    class Mistyped(Faulty):
        def read(self, config, stream, state, *, batch_size=1000):
            batches = 0
            for message in super().read(config, stream, state, batch_size=batch_size):
                if isinstance(message, RecordBatch):
                    batches += 1
                    if batches == 3:
                        message.records[4]["amount_net"] = (
                            12.5  # a number where the schema says a decimal string
                        )
                yield message

    result = sync(Mistyped({}), erp, raw)

    assert (result.rows, result.attempts, result.failure, result.transient) == (20, 1, "type", False)
    assert result.error == (
        "stream 'invoices', row 5: field 'amount_net' must be a decimal string with at most 29 integer digits"
        " and 9 decimal places (DECIMAL(38,9)), but holds a number"
    )


def test_a_secret_of_the_configuration_never_appears_in_the_error(erp: dict[str, Any], raw: RawStore) -> None:
    leak = ConnectorError("login as reader:pa55-Secret failed", stream="invoices", reason="auth")
    result = sync(Faulty({1: (0, leak)}), {**erp, "password": "pa55-Secret"}, raw)
    assert (result.error, result.failure) == ("stream 'invoices': login as reader:*** failed", "auth")


# --- windows -----------------------------------------------------------------------------------

START, END = "2026-01-20T00:00:00+00:00", "2026-02-10T00:00:00+00:00"
NAIVE_START, NAIVE_END = "2026-01-20T00:00:00", "2026-02-10T00:00:00"  # SQLite keeps them without zone


def test_a_replay_over_landed_rows_adds_nothing_and_leaves_the_checkpoint(
    erp: dict[str, Any], raw: RawStore
) -> None:
    synced = sync(SqlConnector(), erp, raw)
    replay = sync(SqlConnector(), erp, raw, kind="replay", window=Window("updated_at", START, END))

    in_window = source(erp, NAIVE_START, NAIVE_END)
    assert 0 < len(in_window) < INVOICES
    assert (replay.rows, replay.skipped, replay.error) == (0, len(in_window), None)
    assert raw.last_state(SOURCE, "invoices") == synced.state == replay.state
    assert landed(raw) == source(erp)
    assert {b["kind"] for b in raw.batches(SOURCE)} == {"sync", "replay"}


def test_a_backfill_lands_exactly_the_missing_rows_of_its_window(erp: dict[str, Any], raw: RawStore) -> None:
    synced = sync(SqlConnector(), erp, raw)
    with duckdb.connect(str(raw.path)) as con:  # rows of the window lost from Raw (a purge gone wrong)
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"DELETE FROM raw.erp__invoices WHERE updated_at >= '{START}' AND updated_at < '{END}'")
    backfill = sync(SqlConnector(), erp, raw, kind="backfill", window=Window("updated_at", START, END))

    assert (backfill.rows, backfill.skipped) == (len(source(erp, NAIVE_START, NAIVE_END)), 0)
    assert landed(raw) == source(erp)
    assert raw.last_state(SOURCE, "invoices") == synced.state


def test_a_first_backfill_lands_only_its_window(erp: dict[str, Any], raw: RawStore) -> None:
    connector = Faulty({1: (4, UNREACHABLE)})
    result = sync(
        connector, erp, raw, kind="backfill", window=Window("updated_at", "2026-01-20", "2026-02-10")
    )

    assert (result.attempts, result.error) == (2, None)
    assert landed(raw) == source(erp, NAIVE_START, NAIVE_END)
    assert connector.reads[0] == {
        "mode": "incremental",
        "cursor": "2026-01-20",
        "last_pk": None,
        "inclusive": True,
        "until": "2026-02-10",
    }
    assert connector.reads[1]["until"] == "2026-02-10"  # the retry resumed inside the window
    assert raw.last_state(SOURCE, "invoices") is None


@pytest.mark.parametrize(
    ("connector", "kind", "window", "field"),
    [
        (SqlConnector(), "sync", Window("updated_at", START, END), "window"),
        (SqlConnector(), "replay", None, "window"),
        (SqlConnector(), "rerun", None, "kind"),
        (FilesConnector(), "backfill", Window("updated_at", START, END), "window"),
        (SqlConnector(), "replay", Window("issued_at", START, END), "window.cursor_field"),
        (SqlConnector(), "replay", Window("updated_at", END, START), "window.end"),
        (SqlConnector(), "replay", Window("updated_at", "soon", END), "window.start"),
    ],
)
def test_a_run_that_cannot_be_done_is_refused_before_reading(
    erp: dict[str, Any], raw: RawStore, connector: Connector, kind: str, window: Window | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        sync(connector, erp, raw, kind=kind, window=window)
    assert raised.value.fields["field"] == field


# --- retry policy --------------------------------------------------------------------------------


def test_retry_delays_grow_exponentially_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=9, base_delay=0.5, max_delay=5.0)
    assert [policy.delay(n, rand=lambda: 1.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    assert policy.delay(10_000, rand=lambda: 1.0) == 5.0


@pytest.mark.parametrize(
    ("options", "field"), [({"max_attempts": 0}, "retry.max_attempts"), ({"max_delay": -1}, "retry")]
)
def test_a_retry_policy_without_attempts_or_with_negative_delays_is_invalid(
    options: dict, field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        RetryPolicy(**options)
    assert raised.value.fields["field"] == field


def test_the_window_bounds_compare_as_instants_whatever_their_zone(
    erp: dict[str, Any], raw: RawStore
) -> None:
    in_paris = Window(
        "updated_at", "2026-01-20T01:00:00+01:00", dt.datetime(2026, 2, 10, tzinfo=dt.UTC).isoformat()
    )
    result = sync(SqlConnector(), erp, raw, kind="backfill", window=in_paris)
    assert result.rows == len(source(erp, NAIVE_START, NAIVE_END))


def _instants(unit: str, zone: str | None, *texts: str | None) -> pa.Array:
    values = [None if t is None else dt.datetime.fromisoformat(t) for t in texts]
    return pa.array(values, pa.timestamp(unit, zone))


@pytest.mark.parametrize(
    ("schema", "column", "start", "end"),
    [
        ({"type": "integer"}, pa.array([1, 5, None, 10, -3], pa.int32()), 1, 10),
        ({"type": ["number", "null"]}, pa.array([0.5, float("nan"), 2.0, None, -0.0]), 0, 2.0),
        (
            {"type": "string", "format": "date-time"},
            _instants("s", None, "2026-01-01T00:00:00", "2026-01-01T23:59:59", "2026-01-02T00:00:00", None),
            "2026-01-01",
            "2026-01-02T00:00:00+01:00",
        ),
        (
            {"type": "string", "format": "date-time"},
            _instants("us", "Europe/Paris", "2026-01-20T00:30:00+00:00", "2026-01-20T01:00:00+00:00"),
            "2026-01-20T01:45:00+01:00",  # 00:45 UTC
            "2026-01-21",
        ),
        (
            {"type": "string", "format": "date"},
            pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 31), None]),
            "2026-01-01",
            "2026-01-31",
        ),
        ({"type": "string"}, pa.array(["a", "é", "b", None, "c"]), "a", "c"),
    ],
)
def test_a_window_keeps_the_same_rows_of_an_arrow_batch_as_of_its_records(
    schema: dict[str, Any], column: pa.Array, start: Any, end: Any
) -> None:
    keep = _window_filter(Stream("s", {"properties": {"cursor": schema}}), Window("cursor", start, end))
    table = pa.table({"cursor": column, "n": range(len(column))})
    kept = keep.table(table)
    assert kept is not None  # computed in Arrow
    assert records_of(kept) == [r for r in records_of(table) if keep(r)]
    assert 0 < kept.num_rows < table.num_rows


def test_a_window_arrow_cannot_compare_exactly_is_left_to_the_records() -> None:
    keep = _window_filter(Stream("s", {"properties": {"cursor": {"type": "number"}}}), Window("cursor", 1, 5))
    assert keep.table(pa.table({"cursor": ["2", "7"]})) is None  # text read as numbers, one by one
    assert keep.table(pa.table({"other": [1]})).num_rows == 0  # no record holds the cursor
