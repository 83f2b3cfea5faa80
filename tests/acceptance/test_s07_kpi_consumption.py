"""Story 07: KPI consumption through the REST API, on a tenant's real data plane.

A tenant runs RAW-SHOP → GDP-ORDER → KPI-ORDER-VALUE (per currency, visible to BO and AN),
published to it by the Platform Admin (06).
Raw rows are written straight into the tenant's DuckDB file, with the ``_keel_batch_id``
ingestion gives them (standing in for ingestion, stories 02/13); the KPI is built by the
real build route. Values are checked against an independent computation in plain Python.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support_contracts import (
    gdp_contract,
    kpi_contract,
    publish_contract,
    publish_kpi,
    raw_contract,
    write_raw,
)

from keel.evidence.merkle import verify_inclusion
from keel.store.tables import incidents, metric_samples, receipts

API = "/api/v1"
ORDERS = [  # order_id, email, amount, placed_at, currency, batch
    ("O-1", "a@x.test", "120.50", "2026-01-05", "EUR", "B-1"),
    ("O-2", "b@x.test", "80.00", "2026-01-20", "EUR", "B-1"),
    ("O-3", "c@x.test", "310.25", "2026-02-02", "EUR", "B-2"),
    ("O-4", "d@x.test", "45.75", "2026-02-14", "USD", "B-2"),
    ("O-5", "e@x.test", "20.00", "2026-02-20", "USD", "B-3"),
]
FIELDS = {
    "order_id": "string",
    "customer_email": "string",
    "amount": "decimal",
    "placed_at": "date",
    "currency": "string",
}
KPI_ID = "KPI-ORDER-VALUE"


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


@pytest.fixture
def shop(world):
    publish_contract(world, raw_contract(fields=FIELDS))
    gdp = gdp_contract(
        fields={"order_id": "string", "amount": "decimal", "placed_at": "date", "currency": "string"},
        mapping="SELECT order_id, amount, placed_at, currency FROM raw.shop__orders",
    )
    gdp["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, gdp)
    kpi = kpi_contract()
    kpi["kpi"]["dimensions"] = ["currency"]
    publish_contract(world, kpi)
    write_raw(
        world,
        "acme",
        "shop__orders",
        "order_id VARCHAR, customer_email VARCHAR, amount DECIMAL(38, 9), placed_at DATE, currency VARCHAR, "
        "_keel_batch_id VARCHAR",
        ORDERS,
    )
    tenant = world.tenants["acme"]
    _ok(world.post("acme:DE", f"{API}/tenants/{tenant}/builds", {"schema_id": "GDP-ORDER"}))
    publish_kpi(world, "acme", KPI_ID)  # consumption shows published KPIs only (06)
    return world


def _expected() -> dict[tuple[str, str], float]:
    """Independent computation: the sum of amounts per month and currency."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for _, _, amount, placed_at, currency, _ in ORDERS:
        sums[(placed_at[:7] + "-01", currency)] += Decimal(amount)
    return {k: float(v) for k, v in sums.items()}


def _count(world, name: str) -> float:
    # Summed here: the sample value column is JSON, which PostgreSQL does not SUM.
    return sum(
        float(r.value)
        for r in world.rows(sa.select(metric_samples.c.value).where(metric_samples.c.name == name))
    )


# Given a permitted user, when opening, then shown, logged -----------------------------------------
@pytest.mark.parametrize("who", ["acme:BO", "acme:AN"])
def test_a_permitted_user_sees_the_kpi_with_thresholds_and_the_view_is_logged(shop, who):
    world, tenant = shop, shop.tenants["acme"]
    listed = _ok(world.get(who, f"{API}/tenants/{tenant}/kpis"))["items"]
    (kpi,) = [k for k in listed if k["kpi_id"] == KPI_ID]
    assert kpi["thresholds"] == [{"name": "low", "op": "<", "limit": 100.0, "severity": "warning"}]
    assert kpi["period"] == "2026-02-01"
    current = {c["dimensions"]["currency"]: c for c in kpi["current"]}
    assert current["EUR"]["value"] == pytest.approx(310.25) and current["EUR"]["status"] == "ok"
    assert current["USD"]["value"] == pytest.approx(65.75) and current["USD"]["breached"] == ["low"]

    shown = _ok(world.get(who, f"{API}/tenants/{tenant}/kpis/{KPI_ID}"))
    assert shown["targets"] == {"default": 1000.0}
    got = {(r["period"], r["dimensions"]["currency"]): r["value"] for r in shown["history"]}
    assert got == pytest.approx(_expected())
    for row in shown["history"]:
        assert row["target"] == 1000.0
        assert (row["status"] == "breached") == (row["value"] < 100)

    viewed = [e for e in world.events("kpi.viewed") if e["actor_id"] == world.actors[who].user_id]
    assert {e["payload"]["view"] for e in viewed} == {"list", "detail"}
    assert all(e["payload"]["kpi_id"] == KPI_ID and e["tenant_id"] == tenant for e in viewed)
    assert world.events("kpi.consumed")
    assert _count(world, "kpi_view_count") == 2


def test_filters_keep_one_dimension_value_and_an_unknown_dimension_is_named(shop):
    world, tenant = shop, shop.tenants["acme"]
    usd = _ok(world.get("acme:BO", f"{API}/tenants/{tenant}/kpis/{KPI_ID}", params={"currency": "USD"}))
    assert [(r["period"], r["value"]) for r in usd["history"]] == [("2026-02-01", pytest.approx(65.75))]
    wrong = world.get("acme:BO", f"{API}/tenants/{tenant}/kpis/{KPI_ID}", params={"region": "EU"})
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["field"] == "region" and "currency" in wrong.json()["detail"]


# Given an unpermitted user, when opening, then hidden, incident -----------------------------------
def test_an_unpermitted_user_does_not_see_the_kpi_and_an_incident_is_opened(shop):
    world, tenant = shop, shop.tenants["acme"]
    listed = _ok(world.get("acme:DE", f"{API}/tenants/{tenant}/kpis"))["items"]
    assert KPI_ID not in {k["kpi_id"] for k in listed}
    for path in ("", "/drill?period=2026-02-01"):
        refused = world.get("acme:DE", f"{API}/tenants/{tenant}/kpis/{KPI_ID}{path}")
        assert refused.status_code == 404, refused.text
    refused = world.post("acme:DE", f"{API}/tenants/{tenant}/kpis/{KPI_ID}/snapshots", {"format": "csv"})
    assert refused.status_code == 404, refused.text
    opened = world.rows(sa.select(incidents).where(incidents.c.kind == "kpi_visibility_violation"))
    assert len(opened) == 3 and {r.tenant_id for r in opened} == {tenant}
    assert {e["payload"]["kind"] for e in world.events("incident.opened")} >= {"kpi_visibility_violation"}
    assert not [e for e in world.events("kpi.viewed") if e["actor_id"] == world.actors["acme:DE"].user_id]


def test_another_tenants_people_and_providers_cannot_read_the_kpi(shop):
    world, tenant = shop, shop.tenants["acme"]
    for who in ("globex:BO", "PA", "CO"):
        answer = world.get(who, f"{API}/tenants/{tenant}/kpis/{KPI_ID}")
        assert answer.status_code in (403, 404), (who, answer.text)


# Drill-through ------------------------------------------------------------------------------------
def test_drill_through_returns_the_gdp_rows_and_their_raw_records_with_batch_ids(shop):
    world, tenant = shop, shop.tenants["acme"]
    drilled = _ok(
        world.get(
            "acme:AN",
            f"{API}/tenants/{tenant}/kpis/{KPI_ID}/drill",
            params={"period": "2026-02-01", "currency": "USD"},
        )
    )
    assert drilled["value"]["value"] == pytest.approx(65.75)
    assert sorted(r["order_id"] for r in drilled["gdp_rows"]) == ["O-4", "O-5"]
    assert sum(r["amount"] for r in drilled["gdp_rows"]) == pytest.approx(drilled["value"]["value"])
    assert drilled["raw_source"] == {
        "table": "raw.shop__orders",
        "column": "order_id",
        "gdp_field": "order_id",
    }
    raw = {r["order_id"]: r["_keel_batch_id"] for r in drilled["raw_rows"]}
    assert raw == {"O-4": "B-2", "O-5": "B-3"}
    bad = world.get("acme:AN", f"{API}/tenants/{tenant}/kpis/{KPI_ID}/drill", params={"period": "Feb"})
    assert bad.status_code == 422


# Snapshot / evidence export -----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_snapshot_file_matches_its_receipt_and_the_export_is_logged(shop, fmt):
    world, tenant = shop, shop.tenants["acme"]
    done = _ok(world.post("acme:BO", f"{API}/tenants/{tenant}/kpis/{KPI_ID}/snapshots", {"format": fmt}), 201)
    path = Path(done["path"])
    assert path.is_relative_to(world.keel.dataplanes.directory(tenant)) and path.suffix == f".{fmt}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == done["sha256"]
    (receipt,) = world.rows(sa.select(receipts).where(receipts.c.id == done["receipt_id"]))
    assert receipt.body["sha256"] == done["sha256"] and receipt.tenant_id == tenant
    proof = done["proof"]  # the kpi.exported event (naming the receipt) is in the signed ledger
    assert proof["leafIdx"] == done["ledger_seq"]
    assert verify_inclusion(
        proof["leafIdx"],
        proof["treeSize"],
        base64.b64decode(proof["leafHash"]),
        [base64.b64decode(p) for p in proof["proof"]],
        base64.b64decode(proof["root"]),
    )
    (exported,) = world.events("kpi.exported")
    assert exported["payload"]["receipt_id"] == done["receipt_id"]
    assert _count(world, "export_count") == 1
    import duckdb

    with duckdb.connect() as con:
        reader = "read_csv_auto" if fmt == "csv" else "read_parquet"
        rows = con.execute(
            f"SELECT CAST(period AS VARCHAR), currency, value FROM {reader}(?)", [str(path)]
        ).fetchall()
    assert {(p, c): float(v) for p, c, v in rows} == pytest.approx(_expected())
    bad = world.post("acme:BO", f"{API}/tenants/{tenant}/kpis/{KPI_ID}/snapshots", {"format": "xlsx"})
    assert bad.status_code == 422


# Export guardrails (04 step 1/3: export limits and residency enforced at the export) -------------
def _enable(world, rail: dict) -> None:
    _ok(world.post("SA", f"{API}/guardrails", rail), 201)
    _ok(world.post("PA", f"{API}/guardrails/{rail['guardrail_id']}/enable"))


def test_an_export_past_its_limits_or_bound_elsewhere_is_refused_and_leaves_nothing(shop):
    world, tenant = shop, shop.tenants["acme"]
    _enable(world, {"guardrail_id": "EXP-KPI-01", "kind": "export_limit", "max_rows_per_day": 4})
    _enable(
        world, {"guardrail_id": "RES-KPI-01", "kind": "residency", "allowed_regions": ["local", "eu-west-1"]}
    )
    snapshots = f"{API}/tenants/{tenant}/kpis/{KPI_ID}/snapshots"
    folder = world.keel.dataplanes.directory(tenant) / "snapshots"

    abroad = world.post("acme:BO", snapshots, {"format": "parquet", "region": "eu-west-1"})
    assert abroad.status_code == 409 and abroad.json()["guardrail_id"] == "RES-KPI-01"
    assert "declared region local" in abroad.json()["detail"]
    malformed = world.post("acme:BO", snapshots, {"format": "csv", "region": "EU West"})
    assert malformed.status_code == 422 and malformed.json()["field"] == "region"

    first = _ok(world.post("acme:BO", snapshots, {"format": "csv"}), 201)  # 3 rows of 4 today
    assert len(_expected()) == 3
    again = world.post("acme:BO", snapshots, {"format": "csv"})  # 3 more would be 6
    assert again.status_code == 409, again.text
    assert again.json()["guardrail_id"] == "EXP-KPI-01" and "max_rows_per_day" in again.json()["detail"]
    one = _ok(world.post("acme:BO", snapshots, {"format": "csv", "filters": {"currency": "USD"}}), 201)
    assert one["receipt"]["filters"] == {"currency": "USD"}  # 1 row: exactly the day's 4

    # Nothing of a refused export remains: two files, two receipts, two kpi.exported events.
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(d["path"]).name for d in (first, one))
    assert [e["payload"]["receipt_id"] for e in world.events("kpi.exported")] == [
        first["receipt_id"],
        one["receipt_id"],
    ]
    assert (
        world.scalar(
            sa.select(sa.func.count()).select_from(receipts).where(receipts.c.kind == "kpi.snapshot")
        )
        == 2
    )
    refusals = [e["payload"] for e in world.events("policy.enforced")]
    assert [(r["guardrail_id"], r["action"], r["outcome"]) for r in refusals] == [
        ("RES-KPI-01", "kpi:Export", "blocked"),
        ("EXP-KPI-01", "kpi:Export", "blocked"),
    ]
