"""The Singer connector running a published tap: MeltanoLabs tap-postgres against the PostgreSQL server.

The tap pins its own SQLAlchemy, older than Keel's, so it gets a virtualenv of
its own, as Meltano gives every tap: built from PyPI on first use under
.venv/taps/ (ignored by git, removed by ``make clean`` with the rest of .venv)
and reused by later runs.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keel.connectors import ConnectorError, Message, RecordBatch, StateCheckpoint, Stream
from keel.connectors.singer import SingerConnector

TAP_POSTGRES = "meltanolabs-tap-postgres==0.10.0"
TAPS = Path(__file__).resolve().parents[2] / ".venv" / "taps"
PASSWORD = "never-shown-pw"
PADDING = "x" * 1000  # 200 orders of 1 kB fill the pipe, so the tap is still running after one batch

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="session")
def tap_bin() -> Path:
    """The bin directory of a virtualenv holding tap-postgres, installed on first use."""
    venv = TAPS / TAP_POSTGRES.replace("==", "-")
    TAPS.mkdir(parents=True, exist_ok=True)
    with (TAPS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers: one installs, the others wait
        if not (venv / "installed").exists():
            for step in (
                [sys.executable, "-m", "venv", "--clear", str(venv)],
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", TAP_POSTGRES],
            ):
                done = subprocess.run(step, capture_output=True, text=True, timeout=600)
                if done.returncode:
                    pytest.fail(f"installing {TAP_POSTGRES} failed: {done.stderr[-2000:]}")
            (venv / "installed").touch()
    return venv / "bin"


@pytest.fixture
def shop(postgres_url: str) -> Iterator[dict[str, Any]]:
    """A schema with orders (200, updated hourly) and customers; a connector config for it."""
    schema = f"keel_singer_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".orders (id integer PRIMARY KEY, amount numeric(10, 2) NOT NULL, '
                "updated_at timestamptz NOT NULL, note text NOT NULL)"
            )
        )
        conn.execute(sa.text(f'CREATE TABLE "{schema}".customers (id integer PRIMARY KEY, name text)'))
        add_orders(conn, schema, range(1, 201))
    url = sa.make_url(postgres_url)
    yield {
        "tap": "tap-postgres",
        "tap_config": {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "database": url.database,
            "filter_schemas": [schema],
        },
        "tap_secrets": {"password": PASSWORD},  # the server trusts loopback: any password does
        "metadata": {
            f"{schema}-orders": {"replication-method": "INCREMENTAL", "replication-key": "updated_at"}
        },
        "schema": schema,
    }
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def add_orders(conn: sa.Connection, schema: str, ids: range) -> None:
    conn.execute(
        sa.text(
            f'INSERT INTO "{schema}".orders SELECT i, i * 1.5, '
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', :note "
            "FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i"
        ),
        {"note": PADDING, "first": ids.start, "last": ids.stop - 1},
    )


def order(i: int) -> dict[str, Any]:
    hours = f"{i % 24:02d}"
    return {
        "id": i,
        "amount": i * 1.5,
        "updated_at": f"2024-01-{1 + i // 24:02d}T{hours}:00:00.000000+00:00",
        "note": PADDING,
    }


def config_of(shop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shop.items() if k != "schema"}


def read_through(messages: Iterator[Message]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records of a read that ends well, and the state of its last message, a checkpoint."""
    received = list(messages)
    assert isinstance(received[-1], StateCheckpoint)
    return [r for m in received if isinstance(m, RecordBatch) for r in m.records], received[-1].state


def running_tap() -> int:
    """The pid of the tap-postgres this process started (read from /proc, as ps would)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if name == "tap-postgres" and int(fields[1]) == os.getpid():
                return int(entry.name)
    raise AssertionError("no tap-postgres is running")


def test_check_and_discover_run_the_real_tap(tap_bin: Path, shop: dict[str, Any]) -> None:
    singer = SingerConnector(search_path=[tap_bin])
    config, schema = config_of(shop), shop["schema"]
    result = singer.check(config)
    assert (result.ok, result.message) == (True, "tap 'tap-postgres' offers 2 stream(s)")
    catalog = singer.discover(config)
    assert [(s.name, s.supported_sync_modes, s.cursor_field, s.primary_key) for s in catalog.streams] == [
        (f"{schema}-customers", frozenset({"full_refresh"}), None, ("id",)),
        (f"{schema}-orders", frozenset({"full_refresh", "incremental"}), "updated_at", ("id",)),
    ]
    assert catalog.stream(f"{schema}-customers") == Stream(
        name=f"{schema}-customers",
        json_schema={
            "type": "object",
            "properties": {"id": {"type": ["integer"]}, "name": {"type": ["string", "null"]}},
            "required": ["id"],
            "$schema": "https://json-schema.org/draft/2020-12/schema",
        },
        primary_key=("id",),
    )


def test_check_of_an_unreachable_database_quotes_the_tap_without_the_password(
    tap_bin: Path, shop: dict[str, Any]
) -> None:
    config = config_of(shop)
    config["tap_config"] = {**config["tap_config"], "port": 1}
    result = SingerConnector(search_path=[tap_bin]).check(config)
    assert (result.ok, result.failure) == (False, "unreachable")
    assert result.message.startswith("tap 'tap-postgres' (--discover) exited with code 1: ")
    assert "port 1 failed: Connection refused | Is the server running on that host" in result.message
    assert PASSWORD not in result.message


def test_a_killed_tap_loses_nothing_and_the_next_reads_resume_incrementally(
    tap_bin: Path, shop: dict[str, Any], postgres_url: str
) -> None:
    singer = SingerConnector(search_path=[tap_bin])
    config, stream = config_of(shop), f"{shop['schema']}-orders"

    # The tap dies (as under the OOM killer) after the first batch: its records are never checkpointed.
    messages = singer.read(config, stream, None, batch_size=10)
    assert next(messages) == RecordBatch(stream, [order(i) for i in range(1, 11)])
    os.kill(running_tap(), signal.SIGKILL)
    received = []
    with pytest.raises(ConnectorError) as caught:
        received.extend(messages)
    assert caught.value.detail.startswith(
        f"stream '{stream}': tap 'tap-postgres' (sync) was killed by signal 9"
    )
    assert not [m for m in received if isinstance(m, StateCheckpoint)]  # so none of it is committed

    # Read again from the last committed state (none): every order, once.
    records, state = read_through(singer.read(config, stream, None, batch_size=64))
    assert records == [order(i) for i in range(1, 201)]
    bookmark = {"replication_key": "updated_at", "replication_key_value": order(200)["updated_at"]}
    assert state == {"singer_state": {"bookmarks": {stream: bookmark}}}

    # New orders: the next read starts at the bookmark (the tap filters with >=, so order 200 comes
    # again, unchanged: Raw keeps one row per primary key).
    with sa.create_engine(postgres_url).begin() as conn:
        add_orders(conn, shop["schema"], range(201, 204))
    records, state = read_through(singer.read(config, stream, state))
    assert records == [order(i) for i in range(200, 204)]
    assert state["singer_state"]["bookmarks"][stream]["replication_key_value"] == order(203)["updated_at"]
