"""Pipeline runs through the REST API (issue 5, "Pipeline"): incremental where the data allows, full
on demand, each run recorded with its inputs, outputs, row counts, duration and contract version.

acme runs RAW-SHOP → GDP-ORDER (a plain projection of Raw orders) → KPI-ORDER-VALUE (SUM(amount)
per month). Raw batches land through the Raw store ingestion writes with (``RawStore.commit_batch``:
rows, batch ids and batch bookkeeping in one transaction), standing in for a connector sync. KPI
values are read from the tenant's data plane and compared with sums done in plain Python.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract

from keel.connectors.protocol import Stream
from keel.ingestion.raw import RawStore
from keel.pipeline import DuckDBEngine, kpi_values

API = "/api/v1"
SOURCE = "SRC-20260101-SHOP0001"
STREAM = Stream(
    "orders",
    {
        "properties": {
            "order_id": {"type": "string"},
            "customer_email": {"type": "string"},
            "amount": {"type": "string", "format": "decimal"},
            "placed_at": {"type": "string", "format": "date"},
        }
    },
)
FIRST = [
    {"order_id": "O-1", "customer_email": "a@x.test", "amount": "120.50", "placed_at": "2026-01-05"},
    {"order_id": "O-2", "customer_email": "b@x.test", "amount": "80.00", "placed_at": "2026-01-20"},
    {"order_id": "O-3", "customer_email": "c@x.test", "amount": "310.25", "placed_at": "2026-02-02"},
]
LATE = [  # one new month, and one order for January that arrives late
    {"order_id": "O-4", "customer_email": "d@x.test", "amount": "45.75", "placed_at": "2026-03-14"},
    {"order_id": "O-5", "customer_email": "e@x.test", "amount": "20.00", "placed_at": "2026-01-28"},
]


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _land(world, rows) -> None:
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    RawStore(path).commit_batch(SOURCE, "shop", STREAM, run_id=None, records=rows, state=None)


def _run(world, mode: str = "incremental", who: str = "acme:DE", **kw):
    body = {"schema_id": "GDP-ORDER", "mode": mode}
    return world.post(who, f"{API}/tenants/{world.tenants['acme']}/pipeline-runs", body, **kw)


def _values(world) -> dict[date, Decimal]:
    engine = DuckDBEngine(world.keel.dataplanes.database_path(world.tenants["acme"]))
    return {row["period"]: row["value"] for row in kpi_values(engine, "KPI-ORDER-VALUE")}


def _expected(rows) -> dict[date, Decimal]:
    sums: dict[date, Decimal] = defaultdict(Decimal)
    for row in rows:
        sums[date.fromisoformat(row["placed_at"]).replace(day=1)] += Decimal(row["amount"])
    return dict(sums)


@pytest.fixture
def shop(world):
    publish_contract(world, raw_contract())
    gdp = gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orders")
    gdp["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, gdp)
    publish_contract(world, kpi_contract())
    _land(world, FIRST)
    return world


def test_the_first_run_builds_in_full_and_says_why(shop) -> None:
    answer = _ok(_run(shop), 201)

    gdp, kpi = answer["runs"]
    assert answer["mode"] == "incremental"
    assert (gdp["mode"], gdp["rows"], gdp["delta_rows"]) == ("full", 3, 3)
    assert gdp["note"] == "no record of which batches gdp.order 1.0.0 holds"
    assert kpi["layer"] == "kpi" and kpi["mode"] == "full"
    assert _values(shop) == _expected(FIRST)


def test_an_incremental_run_adds_new_batches_and_late_rows_and_is_recorded(shop) -> None:
    _ok(_run(shop), 201)
    _land(shop, LATE)

    answer = _ok(_run(shop), 201)

    gdp, kpi = answer["runs"]
    assert (gdp["mode"], gdp["rows"], gdp["delta_rows"], gdp["batches"]) == ("incremental", 5, 2, 1)
    assert (kpi["mode"], kpi["note"]) == ("incremental", "2 period(s) recomputed")  # January, March
    assert _values(shop) == _expected(FIRST + LATE)
    recorded = _ok(shop.get("acme:DE", f"{API}/tenants/{shop.tenants['acme']}/pipeline-runs/{gdp['id']}"))
    assert recorded["mode"] == "incremental" and recorded["delta_rows"] == 2
    assert recorded["contract"] == "GDP-ORDER@1.0.0" and recorded["inputs"] == ["raw.shop__orders"]
    assert len(recorded["batches"]) == 1 and recorded["duration_seconds"] >= 0
    event = shop.events("pipeline.run.completed")[-1]["payload"]
    assert event["mode"] == "incremental" and event["run_ids"] == [gdp["id"], kpi["id"]]


def test_a_table_with_unique_and_row_count_rules_still_runs_incrementally(shop) -> None:
    base = {"layer": "gdp", "dataset": "order", "field": "order_id"}
    rules = [
        base | {"rule_id": "GDP-ORDER-ID-UNIQUE", "check": "unique", "on_fail": "block"},
        base
        | {"rule_id": "GDP-ORDER-ENOUGH", "check": "row_count", "params": {"min": 4}, "on_fail": "alert"},
    ]
    for rule in rules:
        _ok(shop.post("SS", f"{API}/quality-rules", rule), 201)
        _ok(shop.post("PA", f"{API}/quality-rules/{rule['rule_id']}/enable"))
    _ok(_run(shop), 201)
    _land(shop, LATE)

    gdp, _ = _ok(_run(shop), 201)["runs"]

    assert (gdp["mode"], gdp["delta_rows"], gdp["rows"]) == ("incremental", 2, 5)
    applied = {e["payload"]["rule_id"]: e["payload"] for e in shop.events("rule.applied")[-2:]}
    assert (applied["GDP-ORDER-ID-UNIQUE"]["checked"], applied["GDP-ORDER-ID-UNIQUE"]["failed"]) == (2, 0)
    assert (applied["GDP-ORDER-ENOUGH"]["failed"], applied["GDP-ORDER-ENOUGH"]["observed"]) == (0, "5")
    _land(shop, [FIRST[0] | {"amount": "1.00"}])  # O-1 again: the unique rule blocks the run
    blocked = _run(shop)
    assert blocked.status_code == 409 and "GDP-ORDER-ID-UNIQUE" in blocked.json()["detail"]
    assert _values(shop) == _expected(FIRST + LATE)


def test_a_quarantining_unique_rule_runs_incrementally_and_takes_every_copy_out(shop) -> None:
    rule = {"rule_id": "GDP-ORDER-ID-ONCE", "layer": "gdp", "dataset": "order", "field": "order_id",
            "check": "unique", "on_fail": "quarantine"}  # fmt: skip
    _ok(shop.post("SS", f"{API}/quality-rules", rule), 201)
    _ok(shop.post("PA", f"{API}/quality-rules/{rule['rule_id']}/enable"))
    _ok(_run(shop), 201)
    _land(shop, [*LATE, FIRST[0] | {"amount": "9.99"}])  # O-1 again

    gdp, kpi = _ok(_run(shop), 201)["runs"]

    assert (gdp["mode"], gdp["rows"], kpi["mode"]) == ("incremental", 4, "incremental")
    held = _ok(shop.get("acme:DE", f"{API}/tenants/{shop.tenants['acme']}/quarantine/order"))["items"]
    copies = sorted((i["row"]["order_id"], Decimal(i["row"]["amount"])) for i in held)
    assert copies == [("O-1", Decimal("9.99")), ("O-1", Decimal("120.50"))]
    assert _values(shop) == _expected(FIRST[1:] + LATE)  # January without O-1


def test_a_full_run_on_demand_recomputes_the_same_figures(shop) -> None:
    _ok(_run(shop), 201)
    _land(shop, LATE)
    _ok(_run(shop), 201)
    refreshed = _values(shop)

    gdp, _ = _ok(_run(shop, "full"), 201)["runs"]

    assert (gdp["mode"], gdp["delta_rows"]) == ("full", 5)
    assert _values(shop) == refreshed == _expected(FIRST + LATE)


def test_runs_are_listed_page_by_page_and_filtered(shop) -> None:
    for _ in range(3):
        _ok(_run(shop), 201)
    path = f"{API}/tenants/{shop.tenants['acme']}/pipeline-runs"

    first = _ok(shop.get("acme:DE", path, params={"limit": 4}))
    rest = _ok(shop.get("acme:DE", path, params={"limit": 4, "cursor": first["next_cursor"]}))
    gdp = _ok(shop.get("acme:DE", path, params={"layer": "gdp"}))

    assert len(first["items"]) == 4 and len(rest["items"]) == 2 and rest["next_cursor"] is None
    assert [r["mode"] for r in gdp["items"]] == ["full", "incremental", "incremental"]


def test_an_idempotency_key_runs_the_pipeline_once(shop) -> None:
    key = {"Idempotency-Key": "run-2026-12-07"}
    first = _ok(_run(shop, headers=key), 201)
    again = _ok(_run(shop, headers=key), 201)

    assert again == first
    assert len(shop.events("pipeline.run.completed")) == 1


def test_bad_input_is_refused_naming_the_field(shop) -> None:
    mode = _run(shop, "sometimes")
    unknown = shop.post(
        "acme:DE", f"{API}/tenants/{shop.tenants['acme']}/pipeline-runs", {"schema_id": "GDP-NONE"}
    )
    missing = shop.get("acme:DE", f"{API}/tenants/{shop.tenants['acme']}/pipeline-runs/PLR-NOPE")

    assert mode.status_code == 422 and "mode" in mode.text
    assert unknown.status_code == 422 and "schema_id" in unknown.text
    assert missing.status_code == 404
    assert _ok(shop.get("acme:DE", f"{API}/tenants/{shop.tenants['acme']}/pipeline-runs"))["items"] == []


def test_another_tenants_people_neither_run_nor_read_acmes_pipeline(shop) -> None:
    gdp, _ = _ok(_run(shop), 201)["runs"]
    path = f"{API}/tenants/{shop.tenants['acme']}/pipeline-runs"

    assert _run(shop, who="globex:DE").status_code in (403, 404)
    assert shop.get("globex:DE", path).status_code in (403, 404)
    assert shop.get("globex:DE", f"{path}/{gdp['id']}").status_code in (403, 404)


def test_the_scheduled_refresh_adds_new_batches_until_a_spend_cap_blocks_it(shop) -> None:
    from keel.scheduling import registry
    from keel.scheduling.service import tick

    registry.load()
    _ok(_run(shop, "full"), 201)
    _land(shop, LATE)

    (job,) = tick(shop.keel, only="pipeline.refresh")

    acme = shop.tenants["acme"]
    assert job["result"]["refreshed"] == [{"target": f"{acme}/GDP-ORDER", "added_rows": 2}]
    assert _values(shop) == _expected(FIRST + LATE)
    runs = _ok(shop.get("acme:DE", f"{API}/tenants/{acme}/pipeline-runs", params={"layer": "gdp"}))["items"]
    assert [(r["mode"], r["run_by"]) for r in runs][-1] == ("incremental", "system")

    cap = {"guardrail_id": "COST-CAP-DAILY", "tenant_scope": "global", "daily_spend_cap_usd": 0.000001,
           "on_breach": "block_non_essential_actions"}  # fmt: skip
    assert shop.post("SA", f"{API}/guardrails", json=cap).status_code == 201
    assert shop.post("PA", f"{API}/guardrails/COST-CAP-DAILY/enable").status_code == 200
    _land(
        shop, [{"order_id": "O-6", "customer_email": "f@x.test", "amount": "1.00", "placed_at": "2026-03-01"}]
    )
    blocked = tick(shop.keel, now=_later(), only="pipeline.refresh")

    assert blocked[0]["result"]["refused"] == [
        {"target": f"{acme}/GDP-ORDER", "guardrail_id": "COST-CAP-DAILY"}
    ]
    assert _values(shop) == _expected(FIRST + LATE)  # nothing ran
    assert shop.events("cost.guardrail.enforced")[-1]["payload"]["outcome"] == "blocked"
    assert _ok(_run(shop), 201)["runs"][0]["delta_rows"] == 1  # a run asked for is essential: it runs


def _later():
    from datetime import timedelta

    from keel.kernel.clock import utcnow

    return utcnow() + timedelta(hours=2)  # the hourly job is due again
