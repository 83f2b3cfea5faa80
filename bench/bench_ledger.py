"""Benchmark durable evidence-ledger appends on the embedded SQLite store.

Run ``python bench/bench_ledger.py``: prints markdown table rows and one JSON line.
``run()`` returns the same results for the common bench runner (``bench/run.py``).

Keel: units of work (``keel.uow()``) of ``BATCH`` audit events each on a file-backed
SQLite store in WAL mode with ``synchronous=FULL`` (every commit is fsync'd), so each
commit assigns sequence numbers, encodes the events as RFC 8785 JSON, hashes the
leaves, extends the Merkle tree, inserts the rows and signs an Ed25519 tree head in
the same transaction: a signed head per commit, many per second.

Baseline, side by side in the same run and on the same disk: bare ``sqlite3`` inserts
of rows of the same sizes (the event JSON and leaf hashes Keel wrote) into a table
of the same shape, with the same pragmas, ``BEGIN IMMEDIATE`` and batch size; i.e.
the durable write alone, without encoding, hashing or signing. The two run
interleaved, round after round; medians of the rounds are compared.

Targets: Keel >= 2,000 events/s; the longest time between two signed tree heads
under this load (the slowest commit) <= 1 s. ratio = Keel / baseline (informational).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:
    from keel.bootstrap import build
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from keel.bootstrap import build

from keel.evidence.ledger import SIGNING_PURPOSE
from keel.evidence.signing import generate_signing_key, key_id, private_key_to_pem, public_key_pem
from keel.kernel.settings import Settings

BATCH = 100  # events per unit of work
BATCHES = 40  # units of work per round
ROUNDS = 5
TARGET_EVENTS_PER_S = 2000
HEAD_GAP_TARGET_MS = 1000
ACTOR = "USR-20261127-7KQ2MZ4P"
TENANT = "TEN-20261127-ACME0001"

BARE_SCHEMA = """
CREATE TABLE ledger_entries (
    seq BIGINT PRIMARY KEY, event_id VARCHAR(40) NOT NULL UNIQUE, event_type VARCHAR(80) NOT NULL,
    tenant_id VARCHAR(40), actor_id VARCHAR(40), event_json TEXT NOT NULL, leaf_hash BLOB NOT NULL,
    recorded_at DATETIME NOT NULL
);
CREATE INDEX ix_ledger_entries_tenant_type ON ledger_entries (tenant_id, event_type);
"""


def _payload(i: int) -> dict:
    """A typical audit payload: ids, a few figures and names (about 300 bytes of JSON per event)."""
    return {
        "kpi_id": f"KPI-20261127-{i % 997:08d}",
        "version": i % 7 + 1,
        "value": round(42.5 + i % 100 / 7, 4),
        "source_tables": ["raw_invoices", "gdp_ar"],
        "checks": {"not_null": True, "unique": True, "freshness_minutes": 15},
        "run_id": f"RUN-20261127-{i:08d}",
    }


def _deployed_keel(home: Path):
    """A Keel on a fresh embedded store with a ledger signing key, as after ``platform deploy``."""
    keel = build(Settings(home=home, seed_demo=False))
    key = generate_signing_key()
    with keel.uow() as uow:
        keel.keyring.store_platform_key(
            uow.conn, key_id(key.public_key()), SIGNING_PURPOSE, private_key_to_pem(key), public_key_pem(key)
        )
        uow.commit()
    return keel


def _keel_round(keel, batches: int, start: int) -> tuple[float, list[float]]:
    """Seconds for ``batches`` units of work of ``BATCH`` events, and each commit's latency."""
    payloads = [_payload(start + i) for i in range(batches * BATCH)]
    timer = time.perf_counter
    latencies = []
    began = timer()
    for b in range(batches):
        t0 = timer()
        with keel.uow() as uow:
            for payload in payloads[b * BATCH : (b + 1) * BATCH]:
                uow.record("kpi.published", actor_id=ACTOR, tenant_id=TENANT, **payload)
            uow.commit()
        latencies.append(timer() - t0)
    return timer() - began, latencies


def _bare_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT, as Keel's engine
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(BARE_SCHEMA)
    return conn


def _bare_round(conn: sqlite3.Connection, rows: list[tuple], batches: int, start: int) -> float:
    """Seconds for ``batches`` fsync'd transactions inserting ``BATCH`` rows of Keel's sizes."""
    insert = (
        "INSERT INTO ledger_entries (seq, event_id, event_type, tenant_id, actor_id, event_json,"
        " leaf_hash, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    timer = time.perf_counter
    began = timer()
    for b in range(batches):
        base = start + b * BATCH
        batch = [
            (base + i, f"EVT-20261127-{base + i:08d}", *rows[(base + i) % len(rows)]) for i in range(BATCH)
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, batch)
        conn.execute("COMMIT")
    return timer() - began


def run(batches: int = BATCHES, rounds: int = ROUNDS, directory: str | None = None) -> list[dict]:
    """Measure Keel and the bare baseline, interleaved; one result dict per measurement.

    ``directory`` (default ``$KEEL_BENCH_DIR`` or the system temp dir) must be on the disk
    whose durability is being measured: a tmpfs would make fsync free.
    """
    work = Path(
        tempfile.mkdtemp(prefix="keel-bench-ledger-", dir=directory or os.environ.get("KEEL_BENCH_DIR"))
    )
    keel = _deployed_keel(work / "keel-home")
    bare = _bare_connection(work / "bare.db")
    try:
        _keel_round(keel, 5, 0)  # warm up: imports, caches, the signing key
        with keel.engine.connect() as conn:
            rows = [
                tuple(r)
                for r in conn.exec_driver_sql(
                    "SELECT event_type, tenant_id, actor_id, event_json, leaf_hash, recorded_at"
                    f" FROM ledger_entries ORDER BY seq DESC LIMIT {BATCH}"
                )
            ]
        _bare_round(bare, rows, 5, 0)
        keel_rates, bare_rates, latencies = [], [], []
        for r in range(rounds):
            offset = (r + 1) * batches * BATCH
            elapsed, commit_latencies = _keel_round(keel, batches, offset)
            keel_rates.append(batches * BATCH / elapsed)
            latencies += commit_latencies
            bare_rates.append(batches * BATCH / _bare_round(bare, rows, batches, offset))
        with keel.engine.connect() as conn:
            report = keel.ledger.verify(conn, keel.public_key_pem(conn))
        if not report.ok:
            raise AssertionError(f"the benchmarked ledger does not verify: {report.reason}")
    finally:
        bare.close()
        keel.close()
        shutil.rmtree(work, ignore_errors=True)

    keel_rate = statistics.median(keel_rates)
    bare_rate = statistics.median(bare_rates)
    latencies.sort()
    p50_ms = latencies[len(latencies) // 2] * 1000
    worst_ms = latencies[-1] * 1000
    return [
        {
            "name": f"durable ledger appends (SQLite WAL, synchronous=FULL, {BATCH} events/commit, "
            "signed head per commit) vs bare SQLite inserts",
            "value": round(keel_rate),
            "unit": "events/s",
            "baseline": round(bare_rate),
            "ratio": round(keel_rate / bare_rate, 3),
            "target": f">= {TARGET_EVENTS_PER_S:,} events/s",
            "pass": keel_rate >= TARGET_EVENTS_PER_S,
        },
        {
            "name": f"commit of {BATCH} events with its signed tree head, p50 (informational)",
            "value": round(p50_ms, 2),
            "unit": "ms",
            "baseline": None,
            "ratio": None,
            "target": None,
            "pass": True,
        },
        {
            "name": "longest time between signed tree heads under load (slowest commit)",
            "value": round(worst_ms, 2),
            "unit": "ms",
            "baseline": HEAD_GAP_TARGET_MS,
            "ratio": round(worst_ms / HEAD_GAP_TARGET_MS, 4),
            "target": f"<= {HEAD_GAP_TARGET_MS} ms",
            "pass": worst_ms <= HEAD_GAP_TARGET_MS,
        },
    ]


if __name__ == "__main__":  # this benchmark alone, through the common runner (bench/run.py)
    from run import main as run_benches

    sys.exit(run_benches([Path(__file__).stem]))
