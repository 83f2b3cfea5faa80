"""Failure injection over real HTTP on loopback: an API that answers 503 or stalls past the timeout.

``FlakyApi`` serves the sample CRM's accounts, ten a page, from a real threaded
HTTP server and fails the requests its ``fault`` rule picks. The connector is
told not to retry (``max_retries: 0``), so every failure reaches the sync's own
retry policy, which resumes from the last committed page. Only ``sleep`` is
replaced (by a recorder), so back-off is observed without waiting.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest

from keel.connectors.http import HttpConnector
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import RetryPolicy, SyncResult, sync_stream
from keel.samples.crm import crm_data, serve_crm

SOURCE = "SRC-20261127-CRM00001"
PAGE = 10
ACCOUNTS = crm_data()["accounts"]  # 120: twelve pages
STALL_S = 1.0  # the server's pause; the client gives up after TIMEOUT_S
TIMEOUT_S = 0.25


class FlakyApi:
    """A real HTTP server; ``fault(request_number, page)`` returns None, '503' or 'stall'."""

    def __init__(self) -> None:
        self.fault: Callable[[int, int], str | None] = lambda number, page: None
        self.log: list[tuple[int, str]] = []  # (page, outcome) of every request
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
                with api.lock:
                    outcome = api.fault(len(api.log) + 1, page) or "ok"
                    api.log.append((page, outcome))
                if outcome == "stall":
                    time.sleep(STALL_S)
                status, body = 503, {"error": "unavailable", "detail": "try later"}
                if outcome != "503":
                    more = page * PAGE < len(ACCOUNTS)
                    status, body = (
                        200,
                        {
                            "data": ACCOUNTS[(page - 1) * PAGE : page * PAGE],
                            "next_page": page + 1 if more else None,
                        },
                    )
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: that was the point

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def config(self) -> dict[str, Any]:
        host, port = self.server.server_address[:2]
        stream = {
            "name": "accounts",
            "path": "/accounts",
            "pagination": {"type": "page"},
            "primary_key": ["id"],
        }
        return {
            "base_url": f"http://{host}:{port}",
            "streams": [stream],
            "max_retries": 0,
            "timeout_s": TIMEOUT_S,
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FlakyApi]:
    server = FlakyApi()
    yield server
    server.stop()


@pytest.fixture
def raw(tmp_path: Path) -> RawStore:
    return RawStore(TenantDataPlanes(tmp_path).provision("TEN-20261127-ACME0001"))


class Recorder(list):
    def __call__(self, *args: Any) -> None:
        self.append(args if len(args) > 1 else args[0])


def sync(config: dict[str, Any], raw: RawStore, stream: str = "accounts", **options: Any) -> SyncResult:
    """Sync ``stream``; discovered first, so the sync's own requests are all reads."""
    options.setdefault("sleep", Recorder())
    options.setdefault("stream", HttpConnector().discover(config).stream(stream))
    return sync_stream(
        HttpConnector(), config, stream, raw, source_id=SOURCE, source_key="crm", run_id="RUN-1",
        batch_size=PAGE, retry=RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=2.0), **options,
    )  # fmt: skip


def ids_in_raw(raw: RawStore, table: str = "crm__accounts") -> list[str]:
    with duckdb.connect(str(raw.path)) as con:
        return [row[0] for row in con.execute(f"SELECT id FROM raw.{table} ORDER BY id").fetchall()]


def test_an_api_that_answers_503_and_then_stalls_is_synced_exactly_once(api: FlakyApi, raw: RawStore) -> None:
    api.fault = lambda number, page: {4: "503", 7: "stall"}.get(number)  # request 1: discover
    sleeps, events = Recorder(), Recorder()
    result = sync(api.config, raw, sleep=sleeps, on_event=events)

    assert (result.error, result.attempts, result.rows, result.batches) == (None, 3, 120, 12)
    assert ids_in_raw(raw) == sorted(a["id"] for a in ACCOUNTS)
    # Each retry resumed at the page that failed, not at the first one.
    assert api.log[1:8] == [(1, "ok"), (2, "ok"), (3, "503"), (3, "ok"), (4, "ok"), (5, "stall"), (5, "ok")]
    assert [page for page, outcome in api.log[1:] if outcome == "ok"] == list(range(1, 13))
    retries = [details for kind, details in events if kind == "retry"]
    assert [(r["attempt"], r["failure"], r["batches"]) for r in retries] == [
        (1, "unreachable", 2),
        (2, "unreachable", 4),
    ]
    assert retries[1]["error"] == "stream 'accounts': GET /accounts timed out"
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_when_retries_run_out_the_committed_pages_stay_and_the_next_sync_finishes_exactly(
    api: FlakyApi, raw: RawStore
) -> None:
    api.fault = lambda number, page: "503" if page >= 4 else None
    failed = sync(api.config, raw)

    assert (failed.attempts, failed.rows, failed.failure, failed.transient) == (3, 30, "unreachable", True)
    assert failed.error == "stream 'accounts': GET /accounts answered 503: try later"
    assert failed.state == raw.last_state(SOURCE, "accounts") == {"next": 4}
    assert ids_in_raw(raw) == sorted(a["id"] for a in ACCOUNTS[:30])

    api.fault = lambda number, page: None
    api.log.clear()
    recovered = sync(api.config, raw)
    assert (recovered.error, recovered.rows) == (None, 90)
    assert api.log[1] == (4, "ok")  # after discover, resumed from the last committed checkpoint
    assert ids_in_raw(raw) == sorted(a["id"] for a in ACCOUNTS)


def test_records_an_api_delivers_again_are_not_landed_twice(raw: RawStore) -> None:
    # The real sample CRM: opportunities are filtered with updated_since >= the saved cursor, so the
    # newest one comes again with every incremental read; a full-refresh stream comes again whole.
    streams = [
        {"name": "accounts", "path": "/accounts", "pagination": {"type": "page"}},
        {"name": "opportunities", "path": "/opportunities",
         "incremental": {"param": "updated_since", "cursor_field": "updated_at"}},
    ]  # fmt: skip
    with serve_crm(api_key="k3y-for-dedupe", page_size=25) as crm:
        config = {
            "base_url": crm.url,
            "auth": {"type": "bearer", "token": "k3y-for-dedupe"},
            "streams": streams,
        }
        opportunities = crm.data["opportunities"]
        newest = max(o["updated_at"] for o in opportunities)
        first = [sync(config, raw, stream) for stream in ("accounts", "opportunities")]
        again = [sync(config, raw, stream) for stream in ("accounts", "opportunities")]

        assert [(r.rows, r.skipped) for r in first] == [(120, 0), (len(opportunities), 0)]
        assert [(r.rows, r.skipped) for r in again] == [
            (0, 120),
            (0, sum(o["updated_at"] == newest for o in opportunities)),
        ]
        assert ids_in_raw(raw, "crm__opportunities") == sorted(o["id"] for o in opportunities)
