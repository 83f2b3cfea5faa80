"""Benchmark an incremental refresh after 1% new rows against a full rebuild, on TPC-H (SF1 default).

Run ``python bench/bench_incremental_refresh.py``; ``run()`` returns the rows for ``bench/run.py``.
``KEEL_BENCH_TPCH_SF`` and ``KEEL_BENCH_TPCH_ROUNDS`` as in ``bench_tpch_materialization``, whose
data, contracts and plans this reuses (GDP ``order_line`` = lineitem JOIN orders; KPI net revenue
per month of ship date by order status and ship mode).

Setup, once per scale factor (cached next to the TPC-H file):
- The Raw tables get the columns and bookkeeping ingestion writes (``_keel_batch_id`` on every row;
  ``raw._keel_tables`` and ``raw._keel_batches`` from ``keel.ingestion.raw``'s own DDL), one batch
  per table, landed in bulk SQL: ingestion itself is measured by ``bench_ingestion``.
- GDP and KPI are built in full (``materialize_gdp`` records which batches the build holds).
- 1% new business lands as one more batch per table: every hundredth order again under a new key,
  placed in the month after the data ends, with its lines (shipped 1-121 days later, as TPC-H ships).

Each round takes a fresh copy of that file and either refreshes it (``refresh_gdp`` with the KPI:
the new rows joined both ways, checked, appended; the KPI periods they touch recomputed) or rebuilds
GDP and KPI in full (``materialize_gdp`` + ``materialize_kpi``). Rounds alternate; medians compared;
both must end with the same GDP row count and the same KPI rows. Target: full / incremental >= 10.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:
    import keel  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import duckdb

from keel.ingestion.raw import _BOOKKEEPING
from keel.pipeline import DuckDBEngine, materialize_gdp, materialize_kpi
from keel.pipeline.refresh import refresh_gdp

try:
    import bench_tpch_materialization as tpch
except ImportError:  # run as a script: its sibling module is not on the path yet
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_tpch_materialization as tpch

TARGET = 10.0
SOURCE = "SRC-BENCH-TPCH"
KPI_ROWS = 'SELECT * FROM kpi."kpi_tpch_net_revenue__v1_0_0" ORDER BY ALL'


def prepared() -> Path:
    """The TPC-H file with batch bookkeeping, built in full, then 1% new business landed."""
    database = tpch.CACHE / "incremental.duckdb"
    if database.exists():
        return database
    partial = tpch.CACHE / "incremental.duckdb.partial"
    shutil.copyfile(tpch.loaded(), partial)
    con = duckdb.connect(str(partial))
    con.execute(_BOOKKEEPING)
    for name in ("lineitem", "orders"):
        con.execute(
            f"ALTER TABLE raw.tpch__{name} ADD COLUMN _keel_batch_id VARCHAR DEFAULT 'BAT-BASE-{name}'"
        )
        _book(con, name, f"BAT-BASE-{name}")
    con.close()
    gdp, dataset, mapping, kpi, kpi_plan = tpch.plans()
    engine = DuckDBEngine(partial)
    with engine.session():
        materialize_gdp(engine, gdp, dataset, mapping)
        materialize_kpi(engine, kpi, kpi_plan, gdp.version)
    con = duckdb.connect(str(partial))
    (top, end) = con.execute("SELECT max(o_orderkey), max(o_orderdate) FROM raw.tpch__orders").fetchone()
    first = f"DATE '{end.replace(day=1).isoformat()}' + INTERVAL 1 MONTH"
    con.execute(
        f"""CREATE TEMP TABLE picked AS
        SELECT o_orderkey AS old_key, o_orderkey + {top} AS new_key,
               CAST({first} + to_days(CAST(o_orderkey % 28 AS INTEGER)) AS DATE) AS new_date, o_orderdate
        FROM raw.tpch__orders WHERE o_orderkey % 100 = 0"""
    )
    con.execute(
        """INSERT INTO raw.tpch__orders BY NAME
        SELECT o.* EXCLUDE (o_orderkey, o_orderdate, _keel_batch_id), p.new_key AS o_orderkey,
               p.new_date AS o_orderdate, 'BAT-NEW-orders' AS _keel_batch_id
        FROM raw.tpch__orders AS o JOIN picked AS p ON p.old_key = o.o_orderkey"""
    )
    con.execute(
        """INSERT INTO raw.tpch__lineitem BY NAME
        SELECT l.* EXCLUDE (l_orderkey, l_shipdate, l_commitdate, l_receiptdate, _keel_batch_id),
               p.new_key AS l_orderkey,
               p.new_date + CAST(l.l_shipdate - p.o_orderdate AS INTEGER) AS l_shipdate,
               p.new_date + CAST(l.l_commitdate - p.o_orderdate AS INTEGER) AS l_commitdate,
               p.new_date + CAST(l.l_receiptdate - p.o_orderdate AS INTEGER) AS l_receiptdate,
               'BAT-NEW-lineitem' AS _keel_batch_id
        FROM raw.tpch__lineitem AS l JOIN picked AS p ON p.old_key = l.l_orderkey"""
    )
    for name in ("lineitem", "orders"):
        _book(con, name, f"BAT-NEW-{name}")
    con.execute("CHECKPOINT")
    con.close()
    partial.rename(database)
    return database


def _book(con, name: str, batch: str) -> None:
    """The bookkeeping rows ``RawStore.commit_batch`` writes with a batch."""
    rows = con.execute(f"SELECT count(*) FROM raw.tpch__{name} WHERE _keel_batch_id = ?", [batch]).fetchone()[
        0
    ]
    if not con.execute("SELECT 1 FROM raw._keel_tables WHERE table_name = ?", [f"tpch__{name}"]).fetchall():
        con.execute(
            "INSERT INTO raw._keel_tables VALUES (?, ?, 'tpch', ?, now())", [f"tpch__{name}", SOURCE, name]
        )
    con.execute(
        "INSERT INTO raw._keel_batches VALUES (?, ?, ?, NULL, 'sync', ?, 0, NULL, now())",
        [batch, SOURCE, name, rows],
    )


def incremental_round(database: Path, gdp, dataset, mapping, kpi, kpi_plan) -> tuple[float, int, list]:
    engine = DuckDBEngine(database)
    start = time.perf_counter()
    with engine.session():
        gdp_run, kpi_run = refresh_gdp(engine, gdp, dataset, mapping, kpis=[(kpi, kpi_plan)])
    elapsed = time.perf_counter() - start
    assert gdp_run.mode == kpi_run.mode == "incremental", (gdp_run.note, kpi_run.note)
    return elapsed, gdp_run.rows, engine.rows(KPI_ROWS)


def full_round(database: Path, gdp, dataset, mapping, kpi, kpi_plan) -> tuple[float, int, list]:
    engine = DuckDBEngine(database)
    start = time.perf_counter()
    with engine.session():
        gdp_run = materialize_gdp(engine, gdp, dataset, mapping)
        materialize_kpi(engine, kpi, kpi_plan, gdp.version)
    elapsed = time.perf_counter() - start
    return elapsed, gdp_run.rows, engine.rows(KPI_ROWS)


def run() -> list[dict]:
    source = prepared()
    plans = tpch.plans()
    with duckdb.connect(str(source), read_only=True) as con:
        (added,) = con.execute(
            "SELECT count(*) FROM raw.tpch__lineitem WHERE _keel_batch_id = 'BAT-NEW-lineitem'"
        ).fetchone()
    times: dict[str, list[float]] = {"incremental": [], "full": []}
    results = {}
    with tempfile.TemporaryDirectory(prefix="keel-bench-incremental-", dir=tpch.CACHE) as tmp:
        work = Path(tmp)
        for i in range(tpch.ROUNDS):
            order = list(times) if i % 2 == 0 else list(reversed(times))
            for who in order:
                contestant = incremental_round if who == "incremental" else full_round
                t, rows, kpi_rows = contestant(tpch.fresh(source, work, f"{who}.duckdb"), *plans)
                times[who].append(t)
                results[who] = (rows, kpi_rows)
                print(f"  round {i + 1} {who}: {t:.3f} s", file=sys.stderr, flush=True)
    assert results["incremental"] == results["full"], "the refresh and the rebuild disagree"
    inc, full = statistics.median(times["incremental"]), statistics.median(times["full"])
    rows = results["full"][0]
    return [
        {
            "name": f"TPC-H SF{tpch.SF}: incremental refresh after {added:,} new lines (1%, {rows:,} GDP "
            f"rows after) vs full GDP + KPI rebuild, median of {tpch.ROUNDS}",
            "value": round(inc, 3),
            "unit": "s",
            "baseline": round(full, 3),
            "ratio": round(full / inc, 2),
            "target": f"full/incremental >= {TARGET:g}",
            "pass": full / inc >= TARGET,
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
