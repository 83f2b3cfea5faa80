"""Incremental refresh of GDP and KPI builds on a real tenant DuckDB file, checked against full
rebuilds and against sums done in plain Python.

Raw rows are landed by the real ingestion path (``RawStore.commit_batch``), so every row has its
batch id and the batch bookkeeping a refresh reads. After each refresh the table and the KPI must
hold exactly what a full rebuild computes from the same Raw data: new batches, late-arriving rows
for old periods, new rows on either side of a join, rows that repeat a key, quarantined rows.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_pipeline_materialize import (
    GOOD,
    RAW_ORDERS,
    SOURCE,
    TENANT,
    expected_kpi,
    gdp_version,
    kpi_version,
    land,
    orders,
    table_rows,
)

from keel.connectors.protocol import Stream
from keel.contracts.mapping import validate_mapping
from keel.contracts.model import Contract, Dataset, Field, Layer, Ref
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.raw import RawStore
from keel.pipeline import DuckDBEngine, activate, kpi_values, materialize_gdp, materialize_kpi
from keel.pipeline.builds import record
from keel.pipeline.refresh import NotIncremental, refresh_gdp
from keel.quality.errors import RuleBlocked
from keel.quality.model import validate as rule

KPI_V1 = kpi_version("1.0.0", "1.0.0")
CUSTOMERS = Stream(
    "customers", {"properties": {"customer": {"type": "string"}, "segment": {"type": "string"}}}
)
RAW_CUSTOMERS = Dataset("shop__customers", (Field("customer", "string"), Field("segment", "string")))
ORDER_BY_SEGMENT = Dataset(
    "order",
    (
        Field("order_id", "string", primary_key=True),
        Field("segment", "string", required=True),
        Field("amount", "decimal", required=True),
        Field("placed_at", "date", required=True),
    ),
)
JOINED = (
    "SELECT o.order_id, c.segment, o.amount, o.placed_at FROM raw.shop__orders AS o "
    "JOIN raw.shop__customers AS c ON c.customer = o.customer"
)


@pytest.fixture
def engine(tmp_path: Path) -> DuckDBEngine:
    path = TenantDataPlanes(tmp_path / "planes").provision(TENANT)
    land(path, orders())
    return DuckDBEngine(path)


def built(engine: DuckDBEngine, rules=()) -> None:
    """GDP-ORDER 1.0.0 and its KPI built in full and active."""
    materialize_gdp(engine, *gdp_version("1.0.0", GOOD), rules=rules)
    materialize_kpi(engine, *KPI_V1, "1.0.0")
    activate(engine, "gdp", "order", "1.0.0")
    activate(engine, "kpi", KPI_V1[0].id, "1.0.0")


def refresh(engine: DuckDBEngine, rules=(), mapping: str = GOOD):
    return refresh_gdp(engine, *gdp_version("1.0.0", mapping), rules=rules, kpis=[KPI_V1])


def full_rebuild(engine: DuckDBEngine, rules=()) -> tuple[list[tuple], list[dict]]:
    """What a full rebuild of the same versions holds (it replaces the refreshed tables)."""
    materialize_gdp(engine, *gdp_version("1.0.0", GOOD), rules=rules)
    materialize_kpi(engine, *KPI_V1, "1.0.0")
    return table_rows(engine, 'gdp."order__v1_0_0"'), kpi_values(engine, KPI_V1[0].id)


def test_a_refresh_adds_the_new_batch_and_recomputes_only_the_periods_it_touches(engine) -> None:
    built(engine)
    before = {row["period"]: row for row in kpi_values(engine, KPI_V1[0].id)}
    late = orders(30, seed=9, start=1000)  # new orders, some in months built earlier
    land(engine.path, late)

    gdp, kpi = refresh(engine)

    assert (gdp.mode, gdp.delta_rows, gdp.rows, len(gdp.batches)) == ("incremental", 30, 270, 1)
    touched = {date.fromisoformat(r["placed_at"]).replace(day=1) for r in late}
    assert kpi.mode == "incremental" and kpi.note == f"{len(touched)} period(s) recomputed"
    assert kpi_values(engine, KPI_V1[0].id) == expected_kpi(orders() + late)
    untouched = [p for p in before if p not in touched]
    after = {row["period"]: row for row in kpi_values(engine, KPI_V1[0].id)}
    assert all(after[p] == before[p] for p in untouched)
    refreshed = table_rows(engine, 'gdp."order__v1_0_0"')
    assert (refreshed, kpi_values(engine, KPI_V1[0].id)) == full_rebuild(engine)


def test_a_refresh_with_nothing_new_changes_nothing_and_says_so(engine) -> None:
    built(engine)
    values = kpi_values(engine, KPI_V1[0].id)

    gdp, kpi = refresh(engine)

    assert (gdp.delta_rows, gdp.rows, gdp.batches, kpi.delta_rows) == (0, 240, (), 0)
    assert kpi_values(engine, KPI_V1[0].id) == values


def test_refreshes_in_a_row_match_a_full_rebuild_after_each_batch(engine) -> None:
    built(engine)
    rng = random.Random(5)
    landed = orders()
    for step in range(4):
        batch = orders(rng.randrange(1, 40), seed=step, start=2000 + 100 * step)
        land(engine.path, batch)
        landed += batch
        refresh(engine)
        assert kpi_values(engine, KPI_V1[0].id) == expected_kpi(landed)
    refreshed = table_rows(engine, 'gdp."order__v1_0_0"')
    assert refreshed == full_rebuild(engine)[0]
    assert len(refreshed) == len(landed)


def test_a_key_repeated_by_a_new_batch_is_counted_like_a_rebuild_counts_it(engine) -> None:
    built(engine)
    again = [orders(1)[0] | {"amount": "1.00"}]  # o-0001 again: the primary key repeats
    land(engine.path, again)

    (gdp, _) = refresh(engine)

    assert gdp.dq_checks["primary_key:order_id"] == 1  # the added row repeats a key
    assert gdp.dq_failures == 1
    rebuilt = materialize_gdp(engine, *gdp_version("1.0.0", GOOD))
    assert rebuilt.dq_checks["primary_key:order_id"] == 2  # both copies, in the whole table


def test_a_join_refreshes_new_rows_on_either_side(tmp_path: Path) -> None:
    path = TenantDataPlanes(tmp_path / "planes").provision(TENANT)
    store = RawStore(path)
    first = orders(60)
    known = sorted({o["customer"] for o in first})[:10]  # half the customers are known at first
    store.commit_batch(SOURCE, "shop", CUSTOMERS, run_id=None, records=_segments(known), state=None)
    land(path, first)
    engine = DuckDBEngine(path)
    version = _joined("1.0.0")
    materialize_gdp(engine, *version)

    rest = sorted({o["customer"] for o in first} - set(known))
    store.commit_batch(SOURCE, "shop", CUSTOMERS, run_id=None, records=_segments(rest), state=None)
    land(path, orders(20, seed=4, start=500))
    (gdp,) = refresh_gdp(engine, *version)

    query = 'SELECT order_id, segment, amount, placed_at FROM gdp."order__v1_0_0" ORDER BY ALL'
    refreshed = engine.rows(query)
    materialize_gdp(engine, *version)
    assert refreshed == engine.rows(query)
    assert gdp.mode == "incremental" and len(gdp.batches) == 2
    assert gdp.delta_rows == len(refreshed) - sum(1 for o in first if o["customer"] in known)


def test_a_quarantine_rule_judges_the_added_rows_and_keeps_the_bad_ones_aside(engine) -> None:
    rules = [_not_null_amount("quarantine")]
    built(engine, rules)
    land(engine.path, [orders(1, start=3000)[0] | {"amount": None}, orders(1, start=3001)[0]])

    (gdp, _) = refresh(engine, rules)

    assert gdp.rule_results["GDP-ORDER-AMOUNT-NOT-NULL"]["failed"] == 1
    assert gdp.delta_rows == 1
    held = engine.rows('SELECT order_id FROM gdp."order__v1_0_0__quarantine"')
    assert held == [("o-3000",)]


def test_a_blocking_rule_that_fails_on_new_rows_leaves_everything_as_it_was(engine) -> None:
    rules = [_not_null_amount("block")]
    built(engine, rules)
    values = kpi_values(engine, KPI_V1[0].id)
    land(engine.path, [orders(1, start=4000)[0] | {"amount": None}])

    with pytest.raises(RuleBlocked):
        refresh(engine, rules)

    assert len(table_rows(engine, 'gdp."order__v1_0_0"')) == 240
    assert kpi_values(engine, KPI_V1[0].id) == values
    assert not engine.table_exists("gdp", "order__v1_0_0__delta")
    land(engine.path, orders(1, start=4001))  # the blocked batch stays new: the next refresh sees it
    with pytest.raises(RuleBlocked):
        refresh(engine, rules)


@pytest.mark.parametrize(
    ("mapping", "reason"),
    [
        ("SELECT o.order_id, o.customer, o.region, SUM(o.amount) AS amount, MIN(o.placed_at) AS placed_at "
         "FROM raw.shop__orders AS o GROUP BY o.order_id, o.customer, o.region", "GROUP BY"),
        ("SELECT DISTINCT o.order_id, o.customer, o.region, o.amount, o.placed_at FROM raw.shop__orders AS o",
         "DISTINCT"),
        ("SELECT o.order_id, o.customer, o.region, o.amount, o.placed_at FROM raw.shop__orders AS o "
         "WHERE o.placed_at < CURRENT_DATE", "its value depends on when it runs"),
    ],
)  # fmt: skip
def test_a_mapping_whose_old_rows_could_change_is_not_refreshed(engine, mapping, reason) -> None:
    materialize_gdp(engine, *gdp_version("1.0.0", mapping))
    land(engine.path, orders(3, start=5000))

    with pytest.raises(NotIncremental, match=reason):
        refresh_gdp(engine, *gdp_version("1.0.0", mapping))


def test_a_counting_unique_rule_judges_the_added_rows_against_the_whole_table(engine) -> None:
    rules = [_unique_order_id("alert")]
    built(engine, rules)
    again = orders(1)[0] | {"amount": "1.00"}  # o-0001 again, and o-5000 twice within the batch
    twice = orders(1, start=5000)[0]
    land(engine.path, [again, twice, twice | {"amount": "2.00"}, orders(1, start=5001)[0]])

    (gdp, _) = refresh(engine, rules)

    assert gdp.mode == "incremental" and gdp.delta_rows == 4
    assert gdp.rule_results["GDP-ORDER-ID-UNIQUE"] == {
        "version": 1, "on_fail": "alert", "checked": 4, "failed": 3, "passed": 1,
    }  # fmt: skip
    rebuilt = materialize_gdp(engine, *gdp_version("1.0.0", GOOD), rules=rules)
    # a rebuild counts every copy: the o-0001 built earlier too, so one more than the refresh
    assert rebuilt.rule_results["GDP-ORDER-ID-UNIQUE"]["failed"] == 4


def test_a_counting_unique_rule_that_blocks_stops_a_refresh_on_a_key_already_built(engine) -> None:
    rules = [_unique_order_id("block")]
    built(engine, rules)
    values = kpi_values(engine, KPI_V1[0].id)
    land(engine.path, [orders(1)[0] | {"amount": "1.00"}])

    with pytest.raises(RuleBlocked, match=r"gdp\.order__v1_0_0"):
        refresh(engine, rules)
    assert len(table_rows(engine, 'gdp."order__v1_0_0"')) == 240
    assert kpi_values(engine, KPI_V1[0].id) == values


def test_table_level_rules_judge_the_whole_table_once_the_new_rows_are_in(engine) -> None:
    cap = _spec("row_count", "block") | {"rule_id": "GDP-ORDER-AT-MOST-250", "params": {"max": 250}}
    steady = _spec("volume_change", "alert") | {"rule_id": "GDP-ORDER-STEADY", "params": {"max_percent": 3}}
    rules = [rule(**cap, enabled=True), rule(**steady, enabled=True)]
    built(engine, rules)
    land(engine.path, orders(8, start=7000))  # 248 rows: 3.3 % more than the 240 built

    (gdp, _) = refresh(engine, rules)

    assert gdp.mode == "incremental"
    cap, steady = gdp.rule_results["GDP-ORDER-AT-MOST-250"], gdp.rule_results["GDP-ORDER-STEADY"]
    assert (cap["level"], cap["failed"], cap["observed"]) == ("table", 0, "248")
    assert (steady["failed"], steady["previous_rows"], steady["observed"]) == (1, 240, "248")
    land(engine.path, orders(3, start=7100))  # 251 rows: the cap blocks, nothing changes
    with pytest.raises(RuleBlocked, match="GDP-ORDER-AT-MOST-250"):
        refresh(engine, rules)
    assert len(table_rows(engine, 'gdp."order__v1_0_0"')) == 248


def test_a_quarantining_unique_rule_takes_every_copy_out_as_a_rebuild_does(engine) -> None:
    rules = [_unique_order_id("quarantine")]
    built(engine, rules)
    twice = orders(1, start=5000)[0]
    again = orders(1)[0] | {"amount": "1.00", "placed_at": "2025-04-20"}  # o-0001 again, in April
    land(engine.path, [again, twice, twice | {"amount": "2.00"}, orders(1, start=5001)[0]])

    (gdp, kpi) = refresh(engine, rules)

    result = gdp.rule_results["GDP-ORDER-ID-UNIQUE"]
    assert (gdp.mode, gdp.delta_rows, gdp.rows) == ("incremental", 1, 240)  # +o-5001, -the old o-0001
    assert (result["failed"], result["moved_earlier_rows"]) == (3, 1)
    held = 'SELECT order_id, amount FROM gdp."order__v1_0_0__quarantine" ORDER BY ALL'
    refreshed = (
        table_rows(engine, 'gdp."order__v1_0_0"'),
        kpi_values(engine, KPI_V1[0].id),
        engine.rows(held),
    )
    assert len(refreshed[2]) == 4 and kpi.mode == "incremental"
    rows, values = full_rebuild(engine, rules)
    assert refreshed == (rows, values, engine.rows(held))


def test_a_referential_rule_refreshes_while_the_table_it_reads_is_unchanged(engine) -> None:
    _customers(engine, [f"c-{n:02d}" for n in range(15)])  # c-15 .. c-19 are unknown
    rules = [_references_customer()]
    built(engine, rules)
    land(
        engine.path,
        [orders(1, start=8000)[0] | {"customer": "c-99"}, orders(1, start=8001)[0] | {"customer": "c-01"}],
    )

    (gdp, _) = refresh(engine, rules)

    assert gdp.mode == "incremental"
    assert gdp.rule_results["GDP-ORDER-CUSTOMER-KNOWN"] | {"version": 1} == {
        "version": 1, "on_fail": "alert", "checked": 2, "failed": 1, "passed": 1,
    }  # fmt: skip
    _customers(engine, [f"c-{n:02d}" for n in range(20)], version="1.1.0")  # every customer now
    land(engine.path, orders(1, start=8002))
    with pytest.raises(NotIncremental, match="a table a referential rule reads"):
        refresh(engine, rules)  # earlier orders of c-15 .. c-19 would pass now: rebuild in full
    rebuilt = materialize_gdp(engine, *gdp_version("1.0.0", GOOD), rules=rules)
    assert rebuilt.rule_results["GDP-ORDER-CUSTOMER-KNOWN"]["failed"] == 1  # c-99 alone
    land(engine.path, orders(1, start=8003))
    (again, _) = refresh(engine, rules)  # the rebuild read the new customers: incremental again
    assert again.mode == "incremental"


def test_changed_rules_never_built_and_removed_batches_need_a_full_rebuild(engine) -> None:
    with pytest.raises(NotIncremental, match="no record of which batches"):
        refresh(engine)
    built(engine)
    with pytest.raises(NotIncremental, match="data-quality rules, or a table a referential rule reads"):
        refresh(engine, [_not_null_amount("alert")])
    RawStore(engine.path).drop_source(SOURCE, "shop")
    land(engine.path, orders(5, start=6000))
    with pytest.raises(NotIncremental, match="were removed"):
        refresh(engine)


def _joined(version: str):
    dataset = Dataset(ORDER_BY_SEGMENT.name, ORDER_BY_SEGMENT.fields, mapping_sql=JOINED)
    contract = Contract(
        "GDP-ORDER", "Orders", version, Layer.GDP, datasets=(dataset,), based_on=(Ref("RAW-SHOP", "1.0.0"),)
    )
    sources = {"raw.shop__orders": RAW_ORDERS, "raw.shop__customers": RAW_CUSTOMERS}
    return contract, dataset, validate_mapping(JOINED, dataset, sources, contract=contract.key)


def _segments(customers) -> list[dict[str, Any]]:
    return [{"customer": c, "segment": "smb" if int(c[2:]) % 2 else "enterprise"} for c in customers]


def _spec(check: str, on_fail: str) -> dict:
    return {
        "rule_id": "GDP-ORDER-AMOUNT-NOT-NULL", "layer": "gdp", "dataset": "order", "field": "amount",
        "check": check, "on_fail": on_fail,
    }  # fmt: skip


def _customers(engine: DuckDBEngine, ids: list[str], version: str = "1.0.0") -> None:
    """An active GDP customer table (``gdp."customer"``) holding ``ids``, recorded as a build."""
    built_as = f"customer__v{version.replace('.', '_')}"
    values = ", ".join(f"('{i}')" for i in ids)
    with engine.transaction():
        engine.execute(
            f'CREATE OR REPLACE TABLE gdp."{built_as}" AS SELECT * FROM (VALUES {values}) AS t(customer)'
        )
        record(engine, "gdp", "customer", version, built_as, f"GDP-CUSTOMER@{version}", (), len(ids))
        activate(engine, "gdp", "customer", version)


def _references_customer():
    spec = _spec("referential_integrity", "alert") | {
        "rule_id": "GDP-ORDER-CUSTOMER-KNOWN",
        "field": "customer",
    }
    return rule(**spec, params={"dataset": "customer", "field": "customer"}, enabled=True)


def _unique_order_id(on_fail: str):
    return rule(
        **_spec("unique", on_fail) | {"rule_id": "GDP-ORDER-ID-UNIQUE", "field": "order_id"}, enabled=True
    )


def _not_null_amount(on_fail: str):
    return rule(**_spec("not_null", on_fail), enabled=True)
