"""The Singer connector on small taps written by the tests.

``tap-items`` below is a real executable speaking the Singer protocol (a
Python script, as most taps are), so the connector's subprocess handling runs
for real; what it lets the tests do that a published tap cannot is crash,
hang or print garbage at a chosen point. The published tap is exercised in
tests/integration/test_connectors_singer_postgres.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from keel.connectors import (
    Catalog,
    ConnectorError,
    ConnectorRegistry,
    Message,
    RecordBatch,
    StateCheckpoint,
    Stream,
    redact,
)
from keel.connectors.singer import SingerConnector
from keel.kernel.errors import InvalidInput, NotFound

PASSWORD = "s3cret-Pa55word"

# A Singer tap over the integers of config["rows"]: stream "items" (incremental on "id", resuming
# after the bookmark of --state) and stream "other". Switches in its config make it misbehave.
TAP_ITEMS = """
import argparse, json, os, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--discover", action="store_true")
parser.add_argument("--catalog")
parser.add_argument("--properties", dest="catalog")  # what older taps call their catalog
parser.add_argument("--state")
args = parser.parse_args()
config = json.load(open(args.config))

def emit(message):
    print(message if isinstance(message, str) else json.dumps(message), flush=True)

def fail(text):
    sys.stderr.write("Traceback (most recent call last):\\n  ...\\n" + text + "\\n")
    sys.exit(1)

if args.discover:
    time.sleep(config.get("discover_sleep", 0))
    if config.get("discover_fails"):
        fail(f"RuntimeError: cannot log in as {config['user']} with password {config['password']}")
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    top = {"table-key-properties": ["id"], "valid-replication-keys": ["id"]}
    fields = [{"breadcrumb": ["properties", f], "metadata": {}} for f in ("id", "name")]
    emit(config.get("catalog") or {"streams": [
        {"tap_stream_id": "items", "stream": "items", "schema": schema, "key_properties": ["id"],
         "metadata": [{"breadcrumb": [], "metadata": top}, *fields]},
        {"tap_stream_id": "other", "stream": "other", "schema": schema, "metadata": fields},
    ]})
    sys.exit(0)

catalog = json.load(open(args.catalog))
state = json.load(open(args.state)) if args.state else {}
if config.get("inputs"):
    mode = lambda p: oct(os.stat(p).st_mode & 0o777)
    json.dump({"catalog": catalog, "state": state, "env": sorted(os.environ),
               "workspace": os.path.dirname(args.config), "pid": os.getpid(),
               "modes": [mode(os.path.dirname(args.config)), mode(args.config)]}, open(config["inputs"], "w"))
after = state.get("bookmarks", {}).get("items", {}).get("id", 0)
emit({"type": "SCHEMA", "stream": "items", "schema": catalog["streams"][0]["schema"]})
if config.get("noise"):
    emit("")
    emit({"type": "ACTIVATE_VERSION", "stream": "items", "version": 1})
    emit({"type": "RECORD", "stream": "other", "record": {"id": 0}})
sent = 0
for i in [r for r in config["rows"] if r > after]:
    if sent == config.get("crash_after"):
        fail(f"psycopg2.OperationalError: connection lost (password={config['password']})")
    if sent == config.get("hang_after"):
        time.sleep(60)
    if sent == config.get("garbage_after"):
        emit("connecting to the database...")
    emit({"type": "RECORD", "stream": "items", "record": {"id": i, "name": f"item {i}"}})
    sent += 1
    if sent % config.get("state_every", 1000) == 0:
        emit({"type": "STATE", "value": {"bookmarks": {"items": {"id": i}}}})
for line in config.get("extra", []):  # as latin-1 bytes, to test output that is not UTF-8
    sys.stdout.buffer.write(line.encode("latin-1") + b"\\n")
"""


@pytest.fixture
def taps(tmp_path: Path) -> Path:
    """A directory holding the test taps, the connector's search path."""
    directory = tmp_path / "bin"
    directory.mkdir()
    tap = directory / "tap-items"
    tap.write_text(f"#!{sys.executable}\n{TAP_ITEMS}")
    tap.chmod(0o755)
    return directory


@pytest.fixture
def singer(taps: Path) -> SingerConnector:
    return SingerConnector(search_path=[taps])


def items_config(rows: Iterable[int] = range(1, 6), **tap_config: Any) -> dict[str, Any]:
    return {
        "tap": "tap-items",
        "tap_config": {"rows": list(rows), "user": "keel", **tap_config},
        "tap_secrets": {"password": PASSWORD},
    }


def items(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"item {i}"} for i in ids]


def bookmark(last_id: int) -> dict[str, Any]:
    return {"singer_state": {"bookmarks": {"items": {"id": last_id}}}}


def committed(
    messages: Iterable[Message],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, Exception | None]:
    """What a caller that commits batches only together with their checkpoint keeps:
    (records committed, last state committed, the error that stopped the read)."""
    records: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    state = None
    try:
        for message in messages:
            if isinstance(message, RecordBatch):
                pending += message.records
            else:
                records, pending, state = records + pending, [], message.state
    except ConnectorError as exc:
        return records, state, exc
    return records, state, None


# --- check ---------------------------------------------------------------------


def test_the_registry_finds_the_singer_connector_through_its_entry_point() -> None:
    assert ConnectorRegistry().get("singer") is SingerConnector


def test_check_runs_the_taps_discovery(singer: SingerConnector) -> None:
    result = singer.check(items_config())
    assert (result.ok, result.message, result.failure) == (True, "tap 'tap-items' offers 2 stream(s)", None)


def test_check_names_a_tap_that_is_not_installed(singer: SingerConnector) -> None:
    result = singer.check({**items_config(), "tap": "tap-nowhere"})
    assert (result.ok, result.failure, result.message) == (
        False,
        "config",
        "config.tap: tap 'tap-nowhere' is not installed (no such executable on the path)",
    )


def test_only_executables_named_like_taps_can_be_run(singer: SingerConnector) -> None:
    result = singer.check({**items_config(), "tap": "/bin/sh"})
    assert (result.ok, result.failure) == (False, "config")
    assert result.message.startswith("config.tap: '/bin/sh' does not match")


def test_check_quotes_the_end_of_a_failed_discovery_without_the_secrets(singer: SingerConnector) -> None:
    result = singer.check(items_config(discover_fails=True))
    assert (result.ok, result.failure, result.message) == (
        False,
        "unreachable",
        "tap 'tap-items' (--discover) exited with code 1: Traceback (most recent call last): | ... | "
        "RuntimeError: cannot log in as keel with password ***",
    )


def test_check_gives_up_on_a_tap_that_hangs_at_discovery(singer: SingerConnector) -> None:
    started = time.perf_counter()
    result = singer.check({**items_config(discover_sleep=30), "timeout_s": 0.5})
    assert (result.ok, result.failure, result.message) == (
        False,
        "unreachable",
        "tap 'tap-items' --discover did not finish within 0.5 s",
    )
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("printed", "message"),
    [
        ("not a catalog", "tap 'tap-items' --discover printed no JSON catalog"),
        ({"tables": []}, "tap 'tap-items' printed a catalog without a list of streams"),
        (
            {"streams": [{"tap_stream_id": "x"}]},
            "tap 'tap-items' printed a catalog whose stream 0 has no schema object",
        ),
    ],
)
def test_check_reports_a_tap_that_prints_no_catalog(
    singer: SingerConnector, printed: Any, message: str
) -> None:
    result = singer.check(items_config(catalog=printed))
    assert (result.ok, result.failure, result.message) == (False, "config", message)


def test_the_secrets_are_hidden_by_redact(singer: SingerConnector) -> None:
    assert redact(singer.spec(), items_config())["tap_secrets"] == "***"


# --- discover --------------------------------------------------------------------


def test_discover_maps_the_singer_catalog_to_streams(singer: SingerConnector) -> None:
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    assert singer.discover(items_config()) == Catalog(
        streams=(
            Stream(
                name="items",
                json_schema=schema,
                supported_sync_modes=frozenset({"full_refresh", "incremental"}),
                cursor_field="id",
                primary_key=("id",),
            ),
            Stream(name="other", json_schema=schema),
        )
    )


def test_configured_metadata_makes_a_stream_incremental(singer: SingerConnector) -> None:
    config = {
        **items_config(),
        "metadata": {"other": {"replication-method": "INCREMENTAL", "replication-key": "id"}},
    }
    other = singer.discover(config).stream("other")
    assert (other.supported_sync_modes, other.cursor_field) == (
        frozenset({"full_refresh", "incremental"}),
        "id",
    )


def test_metadata_for_a_stream_the_tap_does_not_offer_is_refused(singer: SingerConnector) -> None:
    with pytest.raises(InvalidInput) as caught:
        singer.discover({**items_config(), "metadata": {"orders": {"replication-key": "id"}}})
    assert caught.value.fields["field"] == "config.metadata.orders"
    assert caught.value.detail.endswith("the tap offers no such stream (offered: items, other)")


def test_discover_refuses_a_catalog_with_a_stream_twice(singer: SingerConnector) -> None:
    entry = {"tap_stream_id": "items", "schema": {}}
    with pytest.raises(ConnectorError) as caught:
        singer.discover(items_config(catalog={"streams": [entry, entry]}))
    assert (caught.value.detail, caught.value.fields["reason"]) == (
        "tap 'tap-items' printed a catalog with stream 'items' twice",
        "malformed",
    )


# --- read ------------------------------------------------------------------------


def test_read_batches_records_and_turns_each_state_into_a_checkpoint(
    singer: SingerConnector, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs.json"
    config = items_config(state_every=3, inputs=str(inputs), noise=True)
    messages = list(singer.read(config, "items", None, batch_size=2))
    assert messages == [
        RecordBatch("items", items(1, 2)),
        RecordBatch("items", items(3)),
        StateCheckpoint("items", bookmark(3)),
        RecordBatch("items", items(4, 5)),
        StateCheckpoint("items", bookmark(3)),  # the tap finished: its last state covers 4 and 5
    ]
    seen = json.loads(inputs.read_text())
    selection = {
        entry["tap_stream_id"]: {
            tuple(m["breadcrumb"]): m["metadata"].get("selected") for m in entry["metadata"]
        }
        for entry in seen["catalog"]["streams"]
    }
    assert selection == {
        "items": {(): True, ("properties", "id"): True, ("properties", "name"): True},
        "other": {(): False, ("properties", "id"): None, ("properties", "name"): None},
    }
    top = seen["catalog"]["streams"][0]["metadata"][0]["metadata"]
    assert (top["replication-method"], top["replication-key"]) == ("INCREMENTAL", "id")
    assert seen["state"] == {}
    assert seen["modes"] == ["0o700", "0o600"]  # the config file with the password is private
    assert not Path(seen["workspace"]).exists()  # and removed after the run


def test_older_taps_get_their_catalog_as_properties_with_the_selection_in_the_schema(
    singer: SingerConnector, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs.json"
    config = {**items_config(rows=[1], inputs=str(inputs)), "catalog_option": "properties"}
    assert list(singer.read(config, "items", None)) == [
        RecordBatch("items", items(1)),
        StateCheckpoint("items", {}),
    ]
    streams = json.loads(inputs.read_text())["catalog"]["streams"]
    assert [(s["tap_stream_id"], s["schema"]["selected"]) for s in streams] == [
        ("items", True),
        ("other", False),
    ]


def test_read_resumes_after_the_state_it_is_given(singer: SingerConnector, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.json"
    messages = list(singer.read(items_config(inputs=str(inputs)), "items", bookmark(3)))
    assert messages == [RecordBatch("items", items(4, 5)), StateCheckpoint("items", bookmark(3))]
    assert json.loads(inputs.read_text())["state"] == bookmark(3)["singer_state"]


def test_a_tap_without_state_messages_ends_with_one_checkpoint(singer: SingerConnector) -> None:
    assert list(singer.read(items_config(rows=[1, 2]), "items", None)) == [
        RecordBatch("items", items(1, 2)),
        StateCheckpoint("items", {}),
    ]


def test_a_crash_mid_stream_loses_and_duplicates_nothing(singer: SingerConnector) -> None:
    rows = range(1, 11)
    records, state, error = committed(
        singer.read(items_config(rows, state_every=3, crash_after=7), "items", None, batch_size=2)
    )
    assert (records, state) == (items(1, 2, 3, 4, 5, 6), bookmark(6))  # 7 came after the last state
    assert isinstance(error, ConnectorError)
    assert error.fields == {
        "stream": "items",
        "file": None,
        "row": None,
        "reason": "tap_failed",
        "tap": "tap-items",
        "exit_code": 1,
    }
    assert error.detail == (
        "stream 'items': tap 'tap-items' (sync) exited with code 1: "
        "Traceback (most recent call last): | ... | psycopg2.OperationalError: connection lost (password=***)"
    )
    resumed, final, error = committed(singer.read(items_config(rows, state_every=3), "items", state))
    assert (records + resumed, final, error) == (items(*rows), bookmark(9), None)


def test_a_line_that_is_no_singer_message_stops_the_read_at_that_line(singer: SingerConnector) -> None:
    records, state, error = committed(
        singer.read(items_config(state_every=2, garbage_after=3), "items", None)
    )
    assert (records, state) == (items(1, 2), bookmark(2))
    assert isinstance(error, ConnectorError)
    assert (error.detail, error.fields["row"], error.fields["reason"]) == (
        "stream 'items', row 6: line 6 of tap 'tap-items' output is not a JSON message: "
        "'connecting to the database...'",
        6,
        "malformed",
    )


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ('{"type": "RECORD", "stream": "items", "record": [1]}', "a RECORD message without a record object"),
        ('{"type": "STATE", "value": 3}', "a STATE message without a value object"),
        ('{"type": "BATCH", "stream": "items"}', "BATCH messages are not supported (turn batching off)"),
        ('{"type": "NOTE"}', "unknown message type 'NOTE'"),
        ("[1, 2]", "a JSON value without a message type"),
        (f'{{"type": "LOG", "text": "{PASSWORD}"', 'not a JSON message: \'{"type": "LOG", "text": "***"\''),
        ("caf\u00e9", "not a JSON message: 'caf\ufffd'"),  # written in latin-1, not UTF-8
    ],
)
def test_malformed_messages_are_named(singer: SingerConnector, line: str, what: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        list(singer.read(items_config(rows=[1], extra=[line]), "items", None))
    assert caught.value.detail == f"stream 'items', row 3: line 3 of tap 'tap-items' output is {what}"


def test_closing_a_read_early_kills_the_tap_and_removes_its_files(
    singer: SingerConnector, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs.json"
    started = time.perf_counter()
    messages = singer.read(items_config(inputs=str(inputs), hang_after=1), "items", None, batch_size=1)
    assert next(messages) == RecordBatch("items", items(1))
    messages.close()
    seen = json.loads(inputs.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)
    assert not Path(seen["workspace"]).exists()
    assert time.perf_counter() - started < 5


def test_keel_settings_are_not_passed_to_the_tap(
    singer: SingerConnector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_MASTER_KEY", "do-not-leak")
    monkeypatch.setenv("TAP_ITEMS_LOG_LEVEL", "info")
    inputs = tmp_path / "inputs.json"
    list(singer.read(items_config(inputs=str(inputs)), "items", None))
    env = json.loads(inputs.read_text())["env"]
    assert "TAP_ITEMS_LOG_LEVEL" in env
    assert [name for name in env if name.startswith("KEEL_")] == []


def test_reading_a_stream_the_tap_does_not_offer_is_not_found(singer: SingerConnector) -> None:
    with pytest.raises(NotFound):
        singer.read(items_config(), "orders", None)


def test_a_state_that_is_not_a_singer_state_is_refused(singer: SingerConnector) -> None:
    with pytest.raises(InvalidInput) as caught:
        singer.read(items_config(), "items", {"singer_state": "yesterday"})
    assert caught.value.fields["field"] == "state.singer_state"
