"""Benchmark GDP + KPI materialization on TPC-H lineitem and orders (SF1 by default).

Run ``python bench/bench_tpch_materialization.py``; ``run()`` returns the rows for the common
bench runner (``bench/run.py``). ``KEEL_BENCH_TPCH_SF=10`` selects scale factor 10;
``KEEL_BENCH_TPCH_ROUNDS`` the number of interleaved rounds (default 3).

Data: ``tpchgen-cli`` (``pip install -e '.[bench]'``) writes lineitem and orders as Parquet
into ``/tmp/keel-bench-tpch/sf<N>/`` (reused between runs); they are loaded once into a DuckDB
file as ``raw.tpch__lineitem`` and ``raw.tpch__orders``. The Raw, GDP and KPI contracts are
YAML under ``bench/contracts/``, parsed with ``keel.contracts.documents`` and checked with
``validate_mapping`` / ``validate_kpi`` to get the plans.

Keel: ``materialize_gdp`` + ``materialize_kpi`` + ``activate`` (GDP and KPI) through
``keel.pipeline.DuckDBEngine`` on a fresh copy of the loaded file.
Baselines, side by side: on another fresh copy of the same file, a bare ``duckdb.connect``
running the mapping's SELECT (the plan's SQL) and the KPI query (the plan's SQL) as
``CREATE TABLE ... AS SELECT`` ("raw"), and the same plus the constraint-check query Keel runs
for the dataset's declared primary key and required fields ("raw+checks"). Rounds alternate;
medians are compared. Target: Keel / baseline <= 1.2. The first ratio is everything Keel adds;
the second is what lineage, evidence and orchestration add on top of the declared checks.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import keel  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import duckdb

from keel.contracts.documents import parse, read_contract
from keel.contracts.kpi_sql import validate_kpi
from keel.contracts.mapping import validate_mapping
from keel.pipeline import DuckDBEngine, activate, materialize_gdp, materialize_kpi
from keel.pipeline.checks import constraint_checks, quality_query
from keel.pipeline.statements import render, table

HERE = Path(__file__).parent
CONTRACTS = HERE / "contracts"
SF = os.environ.get("KEEL_BENCH_TPCH_SF", "1")
ROUNDS = int(os.environ.get("KEEL_BENCH_TPCH_ROUNDS", "3"))
CACHE = Path(os.environ.get("KEEL_BENCH_TPCH_CACHE", "/tmp/keel-bench-tpch")) / f"sf{SF}"
TARGET = 1.2


def tpchgen() -> str:
    found = shutil.which("tpchgen-cli") or str(Path(sys.executable).with_name("tpchgen-cli"))
    if not Path(found).exists():
        raise SystemExit("tpchgen-cli is missing: pip install -e '.[bench]'")
    return found


def parquet() -> Path:
    """lineitem.parquet and orders.parquet at scale factor SF, generated once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if not all((CACHE / f"{t}.parquet").exists() for t in ("lineitem", "orders")):
        subprocess.run(
            [tpchgen(), "parquet", "-s", SF, "--tables=lineitem,orders", f"--output-dir={CACHE}"],
            check=True,
        )
    return CACHE


def loaded() -> Path:
    """A DuckDB file holding raw.tpch__lineitem and raw.tpch__orders (built once, then copied)."""
    src = parquet()
    database = CACHE / "tpch.duckdb"
    if not database.exists():
        partial = CACHE / "tpch.duckdb.partial"
        partial.unlink(missing_ok=True)
        con = duckdb.connect(str(partial))
        con.execute("CREATE SCHEMA raw")
        for t in ("lineitem", "orders"):
            con.execute(f"CREATE TABLE raw.tpch__{t} AS SELECT * FROM read_parquet('{src / t}.parquet')")
        con.execute("CHECKPOINT")
        con.close()
        partial.rename(database)
    return database


def plans():
    read = {p.stem: read_contract(parse(p.read_text())) for p in CONTRACTS.glob("*.yaml")}
    raw, gdp, kpi = read["raw-tpch"], read["gdp-order-line"], read["kpi-net-revenue"]
    sources = {f"raw.{d.name}": d for d in raw.datasets}
    (dataset,) = gdp.datasets
    mapping = validate_mapping(dataset.mapping_sql, dataset, sources, contract=gdp.key)
    kpi_plan = validate_kpi(kpi.kpi, {f"gdp.{dataset.name}": dataset}, contract=kpi.key)
    return gdp, dataset, mapping, kpi, kpi_plan


def keel_round(database: Path, gdp, dataset, mapping, kpi, kpi_plan) -> tuple[float, int]:
    engine = DuckDBEngine(database)
    start = time.perf_counter()
    with engine.session():  # one connection for the tenant's build, as ``build_tenant`` holds it
        result = materialize_gdp(engine, gdp, dataset, mapping)
        materialize_kpi(engine, kpi, kpi_plan, gdp.version)
        activate(engine, "gdp", dataset.name, gdp.version)
        activate(engine, "kpi", kpi.id, kpi.version)
    elapsed = time.perf_counter() - start
    return elapsed, result.rows


def raw_round(database: Path, mapping, kpi_plan, checks_sql: str | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    con = duckdb.connect(str(database))
    con.execute("CREATE SCHEMA gdp")
    con.execute(f"CREATE TABLE gdp.order_line AS {mapping.sql}")
    if checks_sql:
        con.execute(checks_sql).fetchall()
    con.execute("CREATE SCHEMA kpi")
    con.execute(f"CREATE TABLE kpi.net_revenue AS {kpi_plan.sql}")
    con.close()
    elapsed = time.perf_counter() - start
    (rows,) = (
        duckdb.connect(str(database), read_only=True)
        .execute("SELECT count(*) FROM gdp.order_line")
        .fetchone()
    )
    return elapsed, rows


def fresh(source: Path, work: Path, name: str) -> Path:
    target = work / name
    for suffix in ("", ".wal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def run() -> list[dict]:
    source = loaded()
    gdp, dataset, mapping, kpi, kpi_plan = plans()
    # The declared key and NOT NULL checks Keel runs on every build, as bare SQL over the raw table.
    checks_sql = render(quality_query(table("gdp", "order_line"), constraint_checks(dataset)), "duckdb")
    times: dict[str, list[float]] = {"keel": [], "raw": [], "raw+checks": []}
    with tempfile.TemporaryDirectory(prefix="keel-bench-tpch-", dir=CACHE) as tmp:
        work = Path(tmp)
        for i in range(ROUNDS):
            order = list(times) if i % 2 == 0 else list(reversed(times))
            for who in order:
                if who == "keel":
                    t, keel_rows = keel_round(
                        fresh(source, work, "keel.duckdb"), gdp, dataset, mapping, kpi, kpi_plan
                    )
                else:
                    t, raw_rows = raw_round(
                        fresh(source, work, "baseline.duckdb"),
                        mapping,
                        kpi_plan,
                        checks_sql if who == "raw+checks" else None,
                    )
                times[who].append(t)
                print(f"  round {i + 1} {who}: {t:.2f} s", file=sys.stderr, flush=True)
    assert keel_rows == raw_rows, (keel_rows, raw_rows)
    keel_m = statistics.median(times["keel"])
    rows = []
    for baseline, what in (
        ("raw", "the same SQL as CREATE TABLE AS in bare DuckDB"),
        ("raw+checks", "the same SQL plus the same constraint-check query in bare DuckDB"),
    ):
        base_m = statistics.median(times[baseline])
        rows.append(
            {
                "name": f"TPC-H SF{SF}: materialize_gdp + materialize_kpi + activate ({keel_rows:,} GDP "
                f"rows) vs {what}, median of {ROUNDS}",
                "value": round(keel_m, 3),
                "unit": "s",
                "baseline": round(base_m, 3),
                "ratio": round(keel_m / base_m, 3),
                "target": f"keel/{baseline} <= {TARGET}",
                "pass": keel_m / base_m <= TARGET,
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
