"""The files connector on real CSV, JSON-lines and Parquet files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.connectors import Catalog, ConnectorError, RecordBatch, StateCheckpoint, Stream
from keel.connectors.files import FilesConnector, stream_name
from keel.kernel.errors import NotFound

FILES = FilesConnector()
T0 = 1_700_000_000_000_000_000  # mtimes are set explicitly so the reading order is known


def write(root: Path, name: str, text: str, *, at: int) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, ns=(T0 + at, T0 + at))
    return path


def invoice_csv(first: int, count: int) -> str:
    lines = ["id,amount,currency"] + [f"{i},{i * 10}.5,EUR" for i in range(first, first + count)]
    return "\n".join(lines) + "\n"


def invoices(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": i, "amount": i * 10 + 0.5, "currency": "EUR"} for i in range(first, first + count)]


def csv_config(root: Path, **extra: Any) -> dict[str, Any]:
    return {"path": str(root), "pattern": "invoices/*.csv", "format": "csv", **extra}


def read_all(config: dict[str, Any], state: dict[str, Any] | None = None, *, batch_size: int = 1000):
    """(records, messages, final state) of one complete read."""
    messages = list(FILES.read(config, config.get("stream", "invoices"), state, batch_size=batch_size))
    records = [r for m in messages if isinstance(m, RecordBatch) for r in m.records]
    states = [m.state for m in messages if isinstance(m, StateCheckpoint)]
    return records, messages, states[-1] if states else state


# --- check -------------------------------------------------------------------


def test_check_passes_on_a_readable_directory(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 2), at=1)
    result = FILES.check(csv_config(tmp_path))
    assert (result.ok, result.message, result.failure) == (
        True,
        f"directory '{tmp_path}' is readable; 1 file(s) match 'invoices/*.csv'",
        None,
    )
    assert result.latency_ms >= 0


def test_check_reports_a_missing_directory_as_unreachable(tmp_path: Path) -> None:
    result = FILES.check(csv_config(tmp_path / "gone"))
    assert (result.ok, result.failure) == (False, "unreachable")


def test_check_reports_a_file_given_as_directory_as_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "a\n", at=1)
    result = FILES.check(csv_config(path))
    assert (result.ok, result.failure, result.message) == (False, "config", f"'{path}' is not a directory")


def test_check_reports_an_invalid_config_without_raising(tmp_path: Path) -> None:
    result = FILES.check({"path": str(tmp_path), "pattern": "../*.csv", "format": "csv"})
    assert (result.ok, result.failure, result.message) == (
        False,
        "config",
        "config.pattern: must be relative to path and stay inside it",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory: permissions cannot be denied here")
def test_check_reports_an_unreadable_directory_as_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        result = FILES.check(csv_config(locked))
    finally:
        locked.chmod(0o700)
    assert (result.ok, result.failure) == (False, "permission")


# --- discover ----------------------------------------------------------------


def test_discover_infers_a_csv_schema_unified_across_files(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", "id,amount,paid_on,note\n1,10,2024-01-31,\n", at=1)
    write(tmp_path, "invoices/b.csv", "id,amount,paid_on,vip\n2,10.5,2024-02-29,true\n", at=2)
    assert FILES.discover(csv_config(tmp_path)) == Catalog(
        streams=(
            Stream(
                name="invoices",
                json_schema={
                    "type": "object",
                    "properties": {
                        "id": {"type": ["integer", "null"]},
                        "amount": {"type": ["number", "null"]},
                        "paid_on": {"type": ["string", "null"], "format": "date"},
                        "note": {"type": ["null"]},
                        "vip": {"type": ["boolean", "null"]},
                    },
                },
                supported_sync_modes=frozenset({"full_refresh", "incremental"}),
            ),
        )
    )


def test_discover_reads_json_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        "events.jsonl",
        '{"id": 1, "tags": ["a"], "who": {"name": "x"}}\n{"id": 2, "tags": []}\n',
        at=1,
    )
    catalog = FILES.discover({"path": str(tmp_path), "pattern": "events*.jsonl", "format": "jsonl"})
    assert catalog.stream("events").json_schema == {
        "type": "object",
        "properties": {
            "id": {"type": ["integer", "null"]},
            "tags": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
            "who": {"type": ["object", "null"], "properties": {"name": {"type": ["string", "null"]}}},
        },
    }


def test_discover_reads_parquet_and_names_the_stream_as_configured(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "amount": pa.array([1.5, None], pa.float64()),
            "at": pa.array([0, 1], pa.timestamp("s")),
            "raw": pa.array([b"x", b"y"]),
        }
    )
    pq.write_table(table, tmp_path / "p1.parquet")
    catalog = FILES.discover(
        {"path": str(tmp_path), "pattern": "*.parquet", "format": "parquet", "stream": "pay"}
    )
    assert catalog.stream("pay").json_schema == {
        "type": "object",
        "properties": {
            "id": {"type": ["integer", "null"]},
            "amount": {"type": ["number", "null"]},
            "at": {"type": ["string", "null"], "format": "date-time"},
            "raw": {"type": ["string", "null"], "contentEncoding": "base64"},
        },
    }
    with pytest.raises(NotFound):
        catalog.stream("invoices")


def test_discover_without_matching_files_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError) as caught:
        FILES.discover(csv_config(tmp_path))
    assert caught.value.fields["reason"] == "no_files"


def test_the_default_stream_name_comes_from_the_pattern() -> None:
    assert [
        stream_name(p) for p in ("invoices/*.csv", "sales-*.jsonl", "data.parquet", "**/*", "2024/*.csv")
    ] == [
        "invoices",
        "sales",
        "data",
        "files",
        "_2024",
    ]


# --- read --------------------------------------------------------------------


def test_read_yields_every_record_in_file_order_with_a_checkpoint_after_each_batch(tmp_path: Path) -> None:
    write(tmp_path, "invoices/b.csv", invoice_csv(1, 3), at=1)  # older file first, whatever its name
    write(tmp_path, "invoices/a.csv", invoice_csv(4, 2), at=2)
    messages = list(FILES.read(csv_config(tmp_path), "invoices", None, batch_size=2))
    b = {"size": len(invoice_csv(1, 3)), "mtime_ns": T0 + 1}
    a = {"size": len(invoice_csv(4, 2)), "mtime_ns": T0 + 2}
    sha_b = messages[-1].state["files"]["invoices/b.csv"]["sha256"]
    sha_a = messages[-1].state["files"]["invoices/a.csv"]["sha256"]
    assert messages == [
        RecordBatch("invoices", invoices(1, 2)),
        StateCheckpoint(
            "invoices", {"files": {}, "in_progress": {"file": "invoices/b.csv", "offset": 2, **b}}
        ),
        RecordBatch("invoices", invoices(3, 1) + invoices(4, 1)),
        StateCheckpoint(
            "invoices",
            {
                "files": {"invoices/b.csv": {**b, "sha256": sha_b}},
                "in_progress": {"file": "invoices/a.csv", "offset": 1, **a},
            },
        ),
        RecordBatch("invoices", invoices(5, 1)),
        StateCheckpoint(
            "invoices",
            {"files": {"invoices/b.csv": {**b, "sha256": sha_b}, "invoices/a.csv": {**a, "sha256": sha_a}}},
        ),
    ]
    assert len(sha_a) == len(sha_b) == 64


def test_csv_batches_come_as_arrow_tables_and_as_records_only_across_files_of_other_columns(
    tmp_path: Path,
) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 3), at=1)
    write(tmp_path, "invoices/b.csv", invoice_csv(4, 1), at=2)  # the same columns: one table
    write(tmp_path, "invoices/c.csv", "id,note\n5,late\n", at=3)  # other columns
    write(tmp_path, "invoices/d.csv", invoice_csv(6, 1), at=4)
    messages = FILES.read(csv_config(tmp_path), "invoices", None, batch_size=2)
    batches = [m for m in messages if isinstance(m, RecordBatch)]
    assert [(b.size, b.arrow is not None) for b in batches] == [(2, True), (2, True), (2, False)]
    assert batches[1].arrow.column_names == ["id", "amount", "currency"]
    records = [r for b in batches for r in b.records]
    assert records == [*invoices(1, 4), {"id": 5, "note": "late"}, *invoices(6, 1)]


def test_an_incremental_read_picks_up_only_the_new_file(tmp_path: Path) -> None:
    write(tmp_path, "invoices/jan.csv", invoice_csv(1, 3), at=1)
    records, _, state = read_all(csv_config(tmp_path))
    assert records == invoices(1, 3)
    write(tmp_path, "invoices/feb.csv", invoice_csv(4, 2), at=2)
    write(tmp_path, "other/mar.csv", invoice_csv(9, 2), at=3)  # outside the pattern
    records, _, state = read_all(csv_config(tmp_path), state)
    assert records == invoices(4, 2)
    assert sorted(state["files"]) == ["invoices/feb.csv", "invoices/jan.csv"]
    assert read_all(csv_config(tmp_path), state)[:2] == ([], [])  # nothing new: not even a checkpoint


def test_resuming_from_a_mid_file_checkpoint_yields_exactly_the_remaining_rows(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 7), at=1)
    write(tmp_path, "invoices/b.csv", invoice_csv(8, 3), at=2)
    stream = FILES.read(csv_config(tmp_path), "invoices", None, batch_size=3)
    first = [next(stream), next(stream)]
    assert first[1] == StateCheckpoint(
        "invoices",
        {
            "files": {},
            "in_progress": {
                "file": "invoices/a.csv",
                "offset": 3,
                "size": len(invoice_csv(1, 7)),
                "mtime_ns": T0 + 1,
            },
        },
    )
    rest, _, _ = read_all(csv_config(tmp_path), first[1].state, batch_size=3)
    assert first[0].records + rest == invoices(1, 10)


def test_the_interrupted_file_is_finished_before_a_new_older_file(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 4), at=5)
    batch, checkpoint = list(FILES.read(csv_config(tmp_path), "invoices", None, batch_size=2))[:2]
    write(tmp_path, "invoices/0.csv", invoice_csv(20, 1), at=1)  # copied in with an old mtime
    rest, _, state = read_all(csv_config(tmp_path), checkpoint.state)
    assert batch.records + rest == invoices(1, 4) + invoices(20, 1)
    assert sorted(state["files"]) == ["invoices/0.csv", "invoices/a.csv"]


def test_a_file_changed_after_it_was_read_is_an_error_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 2), at=1)
    _, _, state = read_all(csv_config(tmp_path))
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 3), at=2)
    with pytest.raises(ConnectorError) as caught:
        read_all(csv_config(tmp_path), state)
    assert (caught.value.fields["file"], caught.value.fields["reason"]) == ("invoices/a.csv", "changed")


def test_a_changed_file_is_read_again_when_configured_to(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 2), at=1)
    _, _, state = read_all(csv_config(tmp_path, on_change="reread"))
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 3), at=2)
    records, _, _ = read_all(csv_config(tmp_path, on_change="reread"), state)
    assert records == invoices(1, 3)


def test_a_file_touched_without_changing_its_content_is_not_read_again(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 2), at=1)
    _, _, state = read_all(csv_config(tmp_path))
    os.utime(tmp_path / "invoices/a.csv", ns=(T0 + 9, T0 + 9))
    records, _, new_state = read_all(csv_config(tmp_path), state)
    assert records == []
    assert new_state["files"]["invoices/a.csv"]["mtime_ns"] == T0 + 9


def test_a_file_changed_while_being_read_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 4), at=1)
    checkpoint = list(FILES.read(csv_config(tmp_path), "invoices", None, batch_size=2))[1]
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 5), at=3)
    with pytest.raises(ConnectorError) as caught:
        list(FILES.read(csv_config(tmp_path), "invoices", checkpoint.state))
    assert (caught.value.fields["file"], caught.value.fields["reason"]) == ("invoices/a.csv", "changed")


def test_a_malformed_csv_row_names_file_and_row_and_earlier_files_stay_committed(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", invoice_csv(1, 2), at=1)
    write(tmp_path, "invoices/b.csv", "id,amount,currency\n3,30,EUR\n4,40,EUR,extra\n5,50,EUR\n", at=2)
    messages: list[Any] = []
    with pytest.raises(ConnectorError) as caught:
        messages.extend(FILES.read(csv_config(tmp_path), "invoices", None))
    error = caught.value
    assert (error.code, error.fields["file"], error.fields["row"], error.fields["reason"]) == (
        "connector_error",
        "invoices/b.csv",
        2,
        "malformed",
    )
    assert error.detail.startswith("stream 'invoices', file 'invoices/b.csv', row 2: malformed csv")
    # The generator yielded a.csv's batch and checkpoint before raising; collect them again.
    stream = FILES.read(csv_config(tmp_path), "invoices", None)
    committed = [next(stream), next(stream)]
    assert committed[0] == RecordBatch("invoices", invoices(1, 2))
    assert list(committed[1].state["files"]) == ["invoices/a.csv"]
    assert "in_progress" not in committed[1].state
    with pytest.raises(ConnectorError):
        next(stream)


def test_a_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "e.jsonl", '{"id": 1}\n\n{"id": 2\n{"id": 3}\n', at=1)
    config = {"path": str(tmp_path), "pattern": "e.jsonl", "format": "jsonl"}
    for call in (lambda: list(FILES.read(config, "e", None)), lambda: FILES.discover(config)):
        with pytest.raises(ConnectorError) as caught:
            call()
        assert (caught.value.fields["file"], caught.value.fields["row"]) == ("e.jsonl", 3)


def test_a_json_line_that_is_not_an_object_is_malformed(tmp_path: Path) -> None:
    write(tmp_path, "e.jsonl", '{"id": 1}\n[1, 2]\n', at=1)
    with pytest.raises(ConnectorError) as caught:
        list(FILES.read({"path": str(tmp_path), "pattern": "e.jsonl", "format": "jsonl"}, "e", None))
    assert (caught.value.fields["row"], "JSON object" in caught.value.detail) == (2, True)


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    write(tmp_path, "bad.parquet", "not parquet at all", at=1)
    with pytest.raises(ConnectorError) as caught:
        list(FILES.read({"path": str(tmp_path), "pattern": "*.parquet", "format": "parquet"}, "files", None))
    assert (caught.value.fields["file"], caught.value.fields["row"]) == ("bad.parquet", None)


def test_json_lines_and_parquet_records_read_back_as_json_values(tmp_path: Path) -> None:
    rows = [{"id": 1, "name": "Ada", "tags": ["x"]}, {"id": 2, "name": None, "tags": []}]
    write(tmp_path, "people.jsonl", "".join(json.dumps(r) + "\n" for r in rows), at=1)
    records, _, _ = read_all(
        {"path": str(tmp_path), "pattern": "*.jsonl", "format": "jsonl", "stream": "invoices"}
    )
    assert records == rows
    table = pa.table({"id": [1, 2], "at": pa.array([0, 86_400], pa.timestamp("s")), "tags": [["x"], []]})
    pq.write_table(table, tmp_path / "p.parquet")
    records, _, _ = read_all(
        {"path": str(tmp_path), "pattern": "*.parquet", "format": "parquet", "stream": "invoices"}
    )
    assert records == [
        {"id": 1, "at": "1970-01-01T00:00:00", "tags": ["x"]},
        {"id": 2, "at": "1970-01-02T00:00:00", "tags": []},
    ]


def test_a_headerless_semicolon_csv_gets_generated_column_names(tmp_path: Path) -> None:
    write(tmp_path, "invoices/a.csv", "1;x\n2;y\n", at=1)
    records, _, _ = read_all(csv_config(tmp_path, csv={"delimiter": ";", "header": False}))
    assert records == [{"f0": 1, "f1": "x"}, {"f0": 2, "f1": "y"}]


def test_reading_another_stream_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        FILES.read(csv_config(tmp_path), "payments", None)


# --- exactly once across crashes ---------------------------------------------

SIZES = (5, 0, 1, 8, 3)  # rows per file, including an empty one


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source")
    first = 1
    for n, size in enumerate(SIZES):
        write(root, f"invoices/{n}.csv", invoice_csv(first, size) if size else "", at=n)
        first += size
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch_size=st.integers(min_value=1, max_value=9),
    crashes=st.lists(st.integers(min_value=0, max_value=12), max_size=6),
)
def test_crashes_at_any_message_lose_and_duplicate_nothing(
    source: Path, batch_size: int, crashes: list[int]
) -> None:
    committed: list[dict[str, Any]] = []
    state: dict[str, Any] | None = None
    for crash_after in [*crashes, None]:  # the last run goes to the end
        pending: list[dict[str, Any]] = []
        stream = FILES.read(csv_config(source), "invoices", state, batch_size=batch_size)
        for seen, message in enumerate(stream):
            if crash_after is not None and seen >= crash_after:
                break  # the process dies: the pending batch is lost, the state was not committed
            if isinstance(message, RecordBatch):
                assert len(message.records) <= batch_size
                pending.extend(message.records)
            else:  # commit batch and checkpoint together
                committed.extend(pending)
                pending = []
                state = message.state
        assert crash_after is not None or pending == []
    assert committed == invoices(1, sum(SIZES))
    assert sorted(state["files"]) == [f"invoices/{n}.csv" for n in range(len(SIZES))]
