"""Versioned GDP and KPI builds behind an atomic pointer, on a real tenant DuckDB file (story 03f).

Raw orders are landed by the real ingestion path; GDP and KPI contracts are built with the
contract model and checked by ``validate_mapping`` / ``validate_kpi``. Version 1 is good; version
2's mapping nulls a required field and duplicates keys. Its signals show the damage; activating it
and rolling back restores version 1's GDP rows and KPI values exactly (compared with sums done in
plain Python), and version 2's tables stay for forensics. Builds that fail -- an SQL error, an
error injected before the commit, a process killed mid-build -- leave what readers see as it was.
"""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.support import killed_when_paused

from keel.connectors.protocol import Stream
from keel.contracts.kpi_sql import KpiPlan, validate_kpi
from keel.contracts.mapping import MappingPlan, validate_mapping
from keel.contracts.model import Contract, Dataset, Field, KpiSpec, Layer, Ref
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.raw import RawStore
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.pipeline import (
    DataPlaneBusy,
    DuckDBEngine,
    EngineError,
    MaterializationFailed,
    activate,
    active,
    builds,
    kpi_values,
    materialize_gdp,
    materialize_kpi,
    previous,
    rollback,
    signals,
)

TENANT = "TEN-20260101-SHOP0001"
SOURCE = "SRC-20260101-SHOP0001"
REGIONS = ("north", "south", "east", None)
STREAM = Stream(
    "orders",
    {
        "properties": {
            "order_id": {"type": "string"},
            "customer": {"type": "string"},
            "region": {"type": ["string", "null"]},
            "amount": {"type": "string", "format": "decimal"},
            "placed_at": {"type": "string", "format": "date"},
        }
    },
)
RAW_ORDERS = Dataset(
    "shop__orders",
    (
        Field("order_id", "string"),
        Field("customer", "string"),
        Field("region", "string"),
        Field("amount", "decimal"),
        Field("placed_at", "date"),
    ),
)
ORDER = Dataset(
    "order",
    (
        Field("order_id", "string", primary_key=True),
        Field("customer", "string", required=True),
        Field("region", "string"),
        Field("amount", "decimal", required=True),
        Field("placed_at", "date", required=True),
    ),
)
GOOD = "SELECT o.order_id, o.customer, o.region, o.amount, o.placed_at FROM raw.shop__orders AS o"
BAD = (  # north loses its amounts; south's orders come twice
    "SELECT o.order_id, o.customer, o.region, CASE WHEN o.region = 'north' THEN NULL ELSE o.amount END "
    "AS amount, o.placed_at FROM raw.shop__orders AS o "
    "UNION ALL SELECT s.order_id, s.customer, s.region, s.amount, s.placed_at FROM raw.shop__orders AS s "
    "WHERE s.region = 'south'"
)
FAILS_AT_RUN_TIME = (  # valid to the contract, but 'o-0001' is no integer
    "SELECT CAST(CAST(o.order_id AS INTEGER) AS VARCHAR) AS order_id, o.customer, o.region, o.amount, "
    "o.placed_at FROM raw.shop__orders AS o"
)
KPI = KpiSpec("SUM(amount)", "month", "placed_at", "EUR", dimensions=("region",))
KPI_ID = "KPI-ORDER-VALUE"


def orders(count: int = 240, seed: int = 3, start: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "order_id": f"o-{n:04d}",
            "customer": f"c-{rng.randrange(20):02d}",
            "region": rng.choice(REGIONS),
            "amount": f"{Decimal(rng.randrange(100, 100_000)) / 100}",
            "placed_at": (date(2025, 1, 1) + timedelta(days=rng.randrange(120))).isoformat(),
        }
        for n in range(start, start + count)
    ]


def gdp_version(version: str, mapping: str) -> tuple[Contract, Dataset, MappingPlan]:
    dataset = Dataset(ORDER.name, ORDER.fields, mapping_sql=mapping)
    contract = Contract(
        "GDP-ORDER", "Orders", version, Layer.GDP, datasets=(dataset,), based_on=(Ref("RAW-SHOP", "1.0.0"),)
    )
    plan = validate_mapping(mapping, dataset, {"raw.shop__orders": RAW_ORDERS}, contract=contract.key)
    return contract, dataset, plan


def kpi_version(version: str, gdp: str) -> tuple[Contract, KpiPlan]:
    contract = Contract(KPI_ID, "Order value", version, Layer.KPI, based_on=(Ref("GDP-ORDER", gdp),), kpi=KPI)
    return contract, validate_kpi(KPI, {"gdp.order": ORDER}, contract=contract.key)


def expected_kpi(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SUM(amount) per month and region, as the KPI contract defines it, in plain Python."""
    sums: dict[tuple[date, str | None], Decimal | None] = {}
    for row in rows:
        key = (date.fromisoformat(row["placed_at"]).replace(day=1), row["region"])
        sums.setdefault(key, None)  # a month and region whose amounts are all NULL sums to NULL
        if row["amount"] is not None:
            sums[key] = (sums[key] or Decimal(0)) + Decimal(row["amount"])
    ordered = sorted(sums.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or ""))
    return [{"period": p, "region": r, "value": v} for (p, r), v in ordered]


def bad_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the BAD mapping makes of ``rows``."""
    nulled = [r | {"amount": None} if r["region"] == "north" else r for r in rows]
    return nulled + [r for r in rows if r["region"] == "south"]


def land(database: Path, rows: list[dict[str, Any]]) -> None:
    RawStore(database).commit_batch(SOURCE, "shop", STREAM, run_id=None, records=rows, state=None)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = TenantDataPlanes(tmp_path / "planes").provision(TENANT)
    land(path, orders())
    return path


@pytest.fixture
def engine(database: Path) -> DuckDBEngine:
    return DuckDBEngine(database)


def table_rows(engine: DuckDBEngine, relation: str) -> list[tuple]:
    return engine.rows(f"SELECT order_id, customer, region, amount, placed_at FROM {relation} ORDER BY ALL")


def good_v1(engine: DuckDBEngine) -> None:
    """GDP and KPI version 1 built and active."""
    materialize_gdp(engine, *gdp_version("1.0.0", GOOD))
    materialize_kpi(engine, *kpi_version("1.0.0", "1.0.0"), "1.0.0")
    activate(engine, "gdp", "order", "1.0.0")
    activate(engine, "kpi", KPI_ID, "1.0.0")


class Delegating:
    """An engine that passes every call on; subclasses inject failures."""

    def __init__(self, inner: DuckDBEngine) -> None:
        self.inner = inner
        self.dialect = inner.dialect

    def execute(self, sql: str) -> None:
        self.inner.execute(sql)

    def rows(self, sql: str) -> list[tuple]:
        return self.inner.rows(sql)

    def dicts(self, sql: str) -> list[dict[str, Any]]:
        return self.inner.dicts(sql)

    def describe(self, sql: str) -> list[tuple[str, str]]:
        return self.inner.describe(sql)

    def transaction(self):
        return self.inner.transaction()

    def table_exists(self, schema: str, name: str) -> bool:
        return self.inner.table_exists(schema, name)

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        return self.inner.columns(schema, name)


class FailingQualityCheck(Delegating):
    """Fails the quality query, which runs after the new table is built but before the commit."""

    def dicts(self, sql: str) -> list[dict[str, Any]]:
        if '"failing_rows"' in sql:
            raise EngineError("injected failure after the build, before the commit", cause="Injected")
        return super().dicts(sql)


# --- building and activating --------------------------------------------------------------------------


def test_an_activated_first_version_serves_kpi_values_equal_to_plain_python_sums(
    engine: DuckDBEngine,
) -> None:
    gdp = materialize_gdp(engine, *gdp_version("1.0.0", GOOD))
    kpi = materialize_kpi(engine, *kpi_version("1.0.0", "1.0.0"), "1.0.0")
    activate(engine, "gdp", "order", "1.0.0")
    activate(engine, "kpi", KPI_ID, "1.0.0")

    expected = expected_kpi(orders())
    assert kpi_values(engine, KPI_ID) == expected
    assert kpi_values(engine, "kpi_order_value", "1.0.0") == expected
    assert (gdp.table, gdp.rows, gdp.error_rows, gdp.dq_failures, gdp.inputs) == (
        "gdp.order__v1_0_0", 240, 0, 0, ("raw.shop__orders",),
    )  # fmt: skip
    assert gdp.dq_checks == {
        "not_null:order_id": 0,
        "not_null:customer": 0,
        "not_null:amount": 0,
        "not_null:placed_at": 0,
        "primary_key:order_id": 0,
    }
    assert (kpi.table, kpi.rows, kpi.inputs, kpi.contract) == (
        "kpi.kpi_order_value__v1_0_0", len(expected), ("gdp.order__v1_0_0",), "KPI-ORDER-VALUE@1.0.0",
    )  # fmt: skip
    assert gdp.started_at <= gdp.finished_at and gdp.duration_seconds > 0
    assert table_rows(engine, 'gdp."order"') == table_rows(engine, 'gdp."order__v1_0_0"')
    assert [name for name, _ in engine.columns("gdp", "order")] == [f.name for f in ORDER.fields]
    assert (active(engine, "gdp", "order"), previous(engine, "gdp", "order")) == ("1.0.0", None)


def test_a_bad_mapping_shows_its_nulled_required_field_and_duplicated_keys_in_its_signals(
    engine: DuckDBEngine,
) -> None:
    baseline = materialize_gdp(engine, *gdp_version("1.0.0", GOOD))

    bad = materialize_gdp(engine, *gdp_version("2.0.0", BAD))

    north = sum(r["region"] == "north" for r in orders())
    south = sum(r["region"] == "south" for r in orders())
    assert (bad.rows, bad.error_rows, bad.dq_failures) == (240 + south, 0, north + 2 * south)
    assert bad.dq_checks == {
        "not_null:order_id": 0,
        "not_null:customer": 0,
        "not_null:amount": north,
        "not_null:placed_at": 0,
        "primary_key:order_id": 2 * south,
    }
    health = signals(bad, baseline)
    assert (health["error_rate"], health["dq_failure_rate"]) == (0.0, (north + 2 * south) / (240 + south))
    assert health["latency_ratio"] == bad.duration_seconds / baseline.duration_seconds
    assert active(engine, "gdp", "order") is None  # built is not activated


def test_rolling_back_a_bad_version_restores_the_data_and_kpi_values_exactly_and_keeps_it_for_forensics(
    engine: DuckDBEngine,
) -> None:
    good_v1(engine)
    v1_kpi, v1_rows = kpi_values(engine, KPI_ID), table_rows(engine, 'gdp."order"')
    materialize_gdp(engine, *gdp_version("2.0.0", BAD))
    materialize_kpi(engine, *kpi_version("2.0.0", "2.0.0"), "2.0.0")
    activate(engine, "gdp", "order", "2.0.0")
    activate(engine, "kpi", KPI_ID, "2.0.0")
    assert kpi_values(engine, KPI_ID) == expected_kpi(bad_rows(orders())) != v1_kpi

    assert (rollback(engine, "gdp", "order"), rollback(engine, "kpi", KPI_ID)) == ("1.0.0", "1.0.0")

    assert kpi_values(engine, KPI_ID) == v1_kpi == expected_kpi(orders())
    assert table_rows(engine, 'gdp."order"') == v1_rows == table_rows(engine, 'gdp."order__v1_0_0"')
    assert kpi_values(engine, KPI_ID, "2.0.0") == expected_kpi(bad_rows(orders()))  # kept for forensics
    assert len(table_rows(engine, 'gdp."order__v2_0_0"')) == len(bad_rows(orders()))
    for layer, name in [("gdp", "order"), ("kpi", KPI_ID)]:
        assert (active(engine, layer, name), previous(engine, layer, name)) == ("1.0.0", "2.0.0")
    assert [(b["version"], b["inputs"]) for b in builds(engine, "kpi", "kpi_order_value")] == [
        ("1.0.0", ("gdp.order__v1_0_0",)), ("2.0.0", ("gdp.order__v2_0_0",)),
    ]  # fmt: skip


def test_a_kpi_reads_the_gdp_build_it_is_given_and_stays_bound_to_it(engine: DuckDBEngine) -> None:
    good_v1(engine)
    materialize_gdp(engine, *gdp_version("2.0.0", BAD))

    materialize_kpi(engine, *kpi_version("2.0.0", "2.0.0"), "2.0.0")
    with pytest.raises(Conflict) as caught:  # version 1's values would change behind its active view
        materialize_kpi(engine, *kpi_version("1.0.0", "2.0.0"), "2.0.0")

    assert kpi_values(engine, KPI_ID, "2.0.0") == expected_kpi(bad_rows(orders()))  # not the active GDP
    assert kpi_values(engine, KPI_ID) == expected_kpi(orders())
    assert caught.value.fields["built_from"] == ["gdp.order__v1_0_0"]


def test_rebuilding_a_version_refreshes_that_version_only(engine: DuckDBEngine, database: Path) -> None:
    good_v1(engine)
    materialize_gdp(engine, *gdp_version("2.0.0", GOOD))
    land(database, orders(count=10, seed=4, start=1000))

    refreshed = materialize_gdp(engine, *gdp_version("1.0.0", GOOD))
    materialize_kpi(engine, *kpi_version("1.0.0", "1.0.0"), "1.0.0")

    assert (refreshed.rows, len(table_rows(engine, 'gdp."order__v2_0_0"'))) == (250, 240)
    assert kpi_values(engine, KPI_ID) == expected_kpi(orders() + orders(count=10, seed=4, start=1000))


def test_raw_values_that_do_not_convert_to_the_contract_type_are_counted_as_error_rows(
    engine: DuckDBEngine, database: Path
) -> None:
    # The Raw table was landed with amount as free text, while its contract says decimal (drift).
    legacy = Stream(
        "legacy", {"properties": {k: {"type": "string"} for k in ("order_id", "customer", "amount")}}
    )
    rows = [
        {"order_id": f"l-{n}", "customer": "c-1", "amount": "n/a" if n % 4 == 0 else f"{n}.50"}
        for n in range(12)
    ]
    RawStore(database).commit_batch(SOURCE, "shop", legacy, run_id=None, records=rows, state=None)
    raw = Dataset(
        "shop__legacy", (Field("order_id", "string"), Field("customer", "string"), Field("amount", "decimal"))
    )
    target = Dataset("legacy_order", (*raw.fields[:2], Field("amount", "decimal", required=True)))
    mapping = "SELECT l.order_id, l.customer, l.amount FROM raw.shop__legacy AS l"
    contract = Contract("GDP-LEGACY", "Legacy orders", "1.0.0", Layer.GDP, datasets=(target,))

    result = materialize_gdp(
        engine, contract, target, validate_mapping(mapping, target, {"raw.shop__legacy": raw})
    )

    assert (result.rows, result.error_rows, result.dq_checks) == (12, 3, {"not_null:amount": 3})
    assert signals(result)["error_rate"] == 0.25
    assert engine.columns("gdp", "legacy_order__v1_0_0")[2] == ("amount", "DECIMAL(38,9)")
    assert engine.rows('SELECT count(*) FROM gdp."legacy_order__v1_0_0" WHERE "_keel_type_error"') == [(3,)]


# --- builds that fail ----------------------------------------------------------------------------------


def test_a_mapping_failing_at_run_time_changes_nothing_readers_see(engine: DuckDBEngine) -> None:
    good_v1(engine)
    v1_kpi, v1_rows = kpi_values(engine, KPI_ID), table_rows(engine, 'gdp."order"')

    with pytest.raises(MaterializationFailed) as caught:
        materialize_gdp(engine, *gdp_version("3.0.0", FAILS_AT_RUN_TIME))

    failed = caught.value.result
    assert (failed.ok, failed.table, caught.value.fields["cause"]) == (
        False,
        "gdp.order__v3_0_0",
        "ConversionException",
    )
    assert "o-0" in failed.error
    assert signals(failed)["error_rate"] == 1.0
    assert not engine.table_exists("gdp", "order__v3_0_0")
    assert [b["version"] for b in builds(engine, "gdp", "order")] == ["1.0.0"]
    assert (active(engine, "gdp", "order"), kpi_values(engine, KPI_ID)) == ("1.0.0", v1_kpi)
    assert table_rows(engine, 'gdp."order"') == v1_rows


def test_a_rebuild_that_fails_before_its_commit_keeps_the_earlier_build_of_that_version(
    engine: DuckDBEngine, database: Path
) -> None:
    good_v1(engine)
    before, record = table_rows(engine, 'gdp."order__v1_0_0"'), builds(engine, "gdp", "order")
    land(database, orders(count=10, seed=4, start=1000))  # so a rebuild that went through would differ

    with pytest.raises(MaterializationFailed):
        materialize_gdp(FailingQualityCheck(engine), *gdp_version("1.0.0", GOOD))

    assert table_rows(engine, 'gdp."order__v1_0_0"') == before
    assert builds(engine, "gdp", "order") == record


CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import test_pipeline_materialize as t
from keel.pipeline import DuckDBEngine, materialize_gdp

class Pausing(t.Delegating):
    def dicts(self, sql):
        if '"failing_rows"' in sql:  # the new table is built, the transaction is open
            Path(sys.argv[2]).write_text("built, not committed")
            time.sleep(600)
        return super().dicts(sql)

materialize_gdp(Pausing(DuckDBEngine(sys.argv[1])), *t.gdp_version("2.0.0", t.BAD))
"""


def test_a_process_killed_mid_build_leaves_the_active_version_and_its_tables_as_they_were(
    engine: DuckDBEngine, database: Path, tmp_path: Path
) -> None:
    good_v1(engine)
    v1_kpi, v1_rows = kpi_values(engine, KPI_ID), table_rows(engine, 'gdp."order"')
    marker = tmp_path / "paused"

    killed_when_paused(
        [sys.executable, "-c", CHILD, str(database), str(marker), str(Path(__file__).parent)],
        marker,
        "mid-build",
    )

    assert not engine.table_exists("gdp", "order__v2_0_0")
    assert (active(engine, "gdp", "order"), kpi_values(engine, KPI_ID)) == ("1.0.0", v1_kpi)
    assert table_rows(engine, 'gdp."order"') == v1_rows == table_rows(engine, 'gdp."order__v1_0_0"')


# --- refusals ----------------------------------------------------------------------------------------


def test_a_version_never_built_cannot_be_activated_and_a_first_version_cannot_be_rolled_back(
    engine: DuckDBEngine,
) -> None:
    good_v1(engine)

    with pytest.raises(NotFound):
        activate(engine, "gdp", "order", "9.0.0")
    with pytest.raises(Conflict):
        rollback(engine, "gdp", "order")
    with pytest.raises(NotFound):
        materialize_kpi(engine, *kpi_version("2.0.0", "2.0.0"), "2.0.0")  # no GDP build 2.0.0
    assert active(engine, "gdp", "order") == "1.0.0"


def test_unsafe_names_are_refused_before_any_sql_runs(engine: DuckDBEngine) -> None:
    contract, _, plan = gdp_version("1.0.0", GOOD)
    unsafe = Dataset('order"; DROP TABLE raw.shop__orders; --', ORDER.fields)
    unsafe_contract = Contract(contract.id, contract.name, "1.0.0", Layer.GDP, datasets=(unsafe,))

    with pytest.raises(InvalidInput):
        materialize_gdp(engine, unsafe_contract, unsafe, plan)
    with pytest.raises(InvalidInput):
        kpi_values(engine, "kpi; DROP TABLE x")
    with pytest.raises(InvalidInput):
        activate(engine, "raw", "shop__orders", "1.0.0")

    assert engine.rows("SELECT count(*) FROM raw.shop__orders") == [(240,)]


HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(600)
"""


def test_a_data_plane_held_by_another_process_is_reported_busy(engine: DuckDBEngine, database: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()
        with pytest.raises(DataPlaneBusy):
            active(engine, "gdp", "order")
    finally:
        holder.kill()
        holder.wait()

    assert active(engine, "gdp", "order") is None  # free again once the other process is gone
