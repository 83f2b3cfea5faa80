"""Story 03f: safe rollout and rollback, through the REST API, on real tenant data planes.

A GDP contract version (with the KPI version re-based on it) is rolled out canary →
share → all. Each tenant's new build is measured against its last good build; a breach
of a rollback condition stops the rollout and returns every tenant it moved to its
previous version, with the previous KPI values exactly. Raw rows are written straight
into each tenant's DuckDB file: that stands in for ingestion (stories 02/13), which
these tests do not exercise.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract

from keel.store.tables import incidents, metric_samples, notifications, receipts, tenant_contracts

API = "/api/v1"
GOOD = "SELECT order_id, amount, placed_at FROM raw.shop__orders"
# Big orders are counted twice: invisible on small orders, a duplicate key as soon as one arrives.
BAD = GOOD + " UNION ALL SELECT order_id, amount, placed_at FROM raw.shop__orders WHERE amount > 1000"
ORDERS = [
    ("O-1", "a@x.test", "120.50", "2026-01-05"),
    ("O-2", "b@x.test", "80.00", "2026-01-20"),
    ("O-3", "c@x.test", "310.25", "2026-02-02"),
    ("O-4", "d@x.test", "45.75", "2026-02-14"),
]
CONDITIONS = [
    {"signal": "dq_failure_rate", "op": ">", "limit": 0.02},
    {"signal": "error_rate", "op": ">", "limit": 0.02},
]


def _raw(world, slug: str, rows) -> None:
    """Rows into the tenant's Raw table (standing in for an ingestion run)."""
    path = world.keel.dataplanes.database_path(world.tenants[slug])
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS raw.shop__orders "
            "(order_id VARCHAR, customer_email VARCHAR, amount DECIMAL(38, 9), placed_at DATE)"
        )
        con.executemany("INSERT INTO raw.shop__orders VALUES (?, ?, ?, ?)", rows)


def _kpi(world, slug: str) -> list[tuple]:
    path = world.keel.dataplanes.database_path(world.tenants[slug])
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute('SELECT period, value FROM kpi."kpi_order_value" ORDER BY period').fetchall()


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


@pytest.fixture
def shop(world):
    """Three tenants running GDP-ORDER 1.0.0 and KPI-ORDER-VALUE 1.0.0, built on their own Raw rows."""
    world.add_tenant("initech")
    publish_contract(
        world,
        raw_contract(
            fields={
                "order_id": "string",
                "customer_email": "string",
                "amount": "decimal",
                "placed_at": "date",
            }
        ),
    )
    gdp = gdp_contract(mapping=GOOD)
    gdp["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, gdp)
    publish_contract(world, kpi_contract())
    for slug in ("acme", "globex", "initech"):
        _raw(world, slug, ORDERS)
        built = _ok(
            world.post(
                f"{slug}:DE", f"{API}/tenants/{world.tenants[slug]}/builds", {"schema_id": "GDP-ORDER"}
            )
        )
        assert [r["table"] for r in built["runs"]] == ["gdp.order__v1_0_0", "kpi.kpi_order_value__v1_0_0"]
    return world


def _publish_v110(world, mapping: str) -> None:
    gdp = gdp_contract(version="1.1.0", mapping=mapping)
    gdp["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, gdp)
    publish_contract(world, kpi_contract(version="1.1.0", based_on="GDP-ORDER@1.1.0"))


def _plan(world, stages) -> dict:
    body = {"schema_id": "GDP-ORDER", "to_version": "1.1.0", "stages": stages, "rollback_on": CONDITIONS}
    return _ok(world.post("PA", f"{API}/rollouts", body), 201)


def _pins(world) -> dict:
    rows = world.rows(sa.select(tenant_contracts).where(tenant_contracts.c.contract_id == "GDP-ORDER"))
    return {r.tenant_id: r.version for r in rows}


# Given an approved change, when staged, then canaries pass, rollout completes, evidence kept -----
def test_a_healthy_version_passes_its_canary_and_widens_to_every_tenant(shop):
    world = shop
    _publish_v110(world, GOOD + " WHERE amount IS NOT NULL")
    acme, globex, initech = (world.tenants[s] for s in ("acme", "globex", "initech"))
    planned = _plan(
        world,
        [
            {"name": "canary", "tenants": [acme]},
            {"name": "25pct", "share": 0.5},
            {"name": "100pct", "share": 1.0},
        ],
    )
    # Artifact: change_id, stages=[canary, 25pct, 100pct], rollback_on=[...]
    assert [s["name"] for s in planned["stages"]] == ["canary", "25pct", "100pct"]
    assert [s["tenants"] for s in planned["stages"]] == [
        [acme],
        [sorted([globex, initech])[0]],
        [sorted([globex, initech])[1]],
    ]
    rid = planned["rollout_id"]

    assert world.post("PA", f"{API}/rollouts/{rid}/start").status_code == 409  # no readiness yet
    ready = _ok(world.post("SS2", f"{API}/rollouts/{rid}/readiness"))
    assert ready["readiness_by"] == world.actors["SS2"].user_id
    assert _kpi(world, "acme") == _kpi(world, "globex")  # the dry run activated nothing

    started = _ok(world.post("PA", f"{API}/rollouts/{rid}/start"))
    assert (started["status"], started["current_stage"]) == ("RUNNING", "canary")
    canary = started["measurements"][0]["tenants"][0]
    assert canary["signals"]["dq_failure_rate"] == 0 and canary["signals"]["latency_ratio"] > 0
    assert _pins(world) == {acme: "1.1.0", globex: "1.0.0", initech: "1.0.0"}
    _ok(world.post("PA", f"{API}/rollouts/{rid}/expand"))
    done = _ok(world.post("PA", f"{API}/rollouts/{rid}/expand"))

    assert done["status"] == "COMPLETED"
    assert _pins(world) == {acme: "1.1.0", globex: "1.1.0", initech: "1.1.0"}
    path = world.keel.dataplanes.database_path(acme)
    with duckdb.connect(str(path), read_only=True) as con:
        active = dict(con.execute("SELECT name, version FROM main.keel_active").fetchall())
    assert active == {"order": "1.1.0", "kpi_order_value": "1.1.0"}
    types = [e["type"] for e in world.events() if e["type"].startswith("rollout.")]
    assert types == [
        "rollout.planned",
        "rollout.dry_run",
        "rollout.started",
        "rollout.expanded",
        "rollout.expanded",
        "rollout.completed",
    ]
    body = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "schema.rollout"))[0].body
    assert body["stages"] == ["canary", "25pct", "100pct"] and body["status"] == "COMPLETED"
    assert body["rollback_on"] == ["dq_failure_rate>0.02", "error_rate>0.02"]


# When canaries exceed limits, then rolled back, reason logged -------------------------------------
def test_a_canary_breach_on_measured_signals_rolls_back_to_the_previous_version_and_kpi_values(shop):
    world = shop
    _publish_v110(world, BAD)
    acme = world.tenants["acme"]
    before = {slug: _kpi(world, slug) for slug in ("acme", "globex")}
    rid = _plan(world, [{"name": "canary", "tenants": [acme]}, {"name": "100pct", "share": 1.0}])[
        "rollout_id"
    ]
    _ok(world.post("SS2", f"{API}/rollouts/{rid}/readiness"))  # no big order yet: the dry run passes
    _raw(world, "acme", [("O-5", "e@x.test", "2500.00", "2026-02-20")])  # then one arrives

    rolled = _ok(world.post("PA", f"{API}/rollouts/{rid}/start"))

    assert rolled["status"] == "ROLLED_BACK"
    assert rolled["reason"].startswith(f"tenant {acme}: dq_failure_rate>0.02 (measured 0.")
    measured = rolled["measurements"][0]["tenants"][0]["signals"]
    assert measured["dq_failure_rate"] == pytest.approx(2 / 6)  # O-5 twice among 6 rows
    # The previous version and the previous KPI values, exactly: the canary never saw O-5 counted twice.
    assert _kpi(world, "acme") == before["acme"] and _kpi(world, "globex") == before["globex"]
    assert _pins(world) == {t: "1.0.0" for t in world.tenants.values()}
    path = world.keel.dataplanes.database_path(acme)
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        active = dict(con.execute("SELECT name, version FROM main.keel_active").fetchall())
    assert active == {"order": "1.0.0", "kpi_order_value": "1.0.0"}
    assert {"order__v1_1_0", "kpi_order_value__v1_1_0"} <= tables  # kept for forensics

    logged = world.events("rollout.rolled_back")[0]["payload"]
    assert logged["reason"] == rolled["reason"] and logged["rollback_time_seconds"] >= 0
    kinds = [r.kind for r in world.rows(sa.select(incidents.c.kind))]
    assert "rollout_breach" in kinds
    seconds = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "rollback_time_seconds")
    )
    assert len(seconds) == 1 and float(seconds[0].value) >= 0
    told = world.rows(sa.select(notifications.c.subject).where(notifications.c.tenant_id == acme))
    assert any("rolled back" in r.subject for r in told)
    assert (
        world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "schema.rollout"))[0].body["status"]
        == "ROLLED_BACK"
    )


def test_a_breach_in_a_later_stage_returns_the_canaries_too(shop):
    world = shop
    _publish_v110(world, BAD)
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    before = {slug: _kpi(world, slug) for slug in ("acme", "globex")}
    rid = _plan(world, [{"name": "canary", "tenants": [acme]}, {"name": "rest", "tenants": [globex]}])[
        "rollout_id"
    ]
    _ok(world.post("SS2", f"{API}/rollouts/{rid}/readiness"))
    assert _ok(world.post("PA", f"{API}/rollouts/{rid}/start"))["status"] == "RUNNING"
    assert _pins(world)[acme] == "1.1.0"
    _raw(world, "globex", [("O-9", "z@x.test", "9000.00", "2026-02-21")])

    rolled = _ok(world.post("PA", f"{API}/rollouts/{rid}/expand"))

    assert rolled["status"] == "ROLLED_BACK" and globex in rolled["reason"]
    assert _pins(world)[acme] == "1.0.0" and _pins(world)[globex] == "1.0.0"
    assert _kpi(world, "acme") == before["acme"] and _kpi(world, "globex") == before["globex"]


# Monitoring gap -> incident -------------------------------------------------------------------------
def test_a_signal_that_cannot_be_measured_stops_the_rollout_as_a_monitoring_gap(shop):
    world = shop
    _publish_v110(world, GOOD)
    acme = world.tenants["acme"]
    body = {
        "schema_id": "GDP-ORDER",
        "to_version": "1.1.0",
        "stages": [{"name": "canary", "tenants": [acme]}],
        "rollback_on": [{"signal": "latency_ratio", "op": ">", "limit": 50}],
    }
    rid = _ok(world.post("PA", f"{API}/rollouts", body), 201)["rollout_id"]
    with world.keel.engine.begin() as conn:  # the canary's baseline measurement is lost
        from keel.store.tables import pipeline_runs

        conn.execute(pipeline_runs.update().values(duration_seconds=0))
    refused = world.post("SS2", f"{API}/rollouts/{rid}/readiness")
    assert refused.status_code == 409 and "latency_ratio could not be measured" in refused.json()["detail"]
    assert [r.kind for r in world.rows(sa.select(incidents.c.kind))] == ["monitoring_gap"]
    assert world.get("PA", f"{API}/rollouts/{rid}").json()["readiness_by"] is None


# Bad plans ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stages", "conditions", "field"),
    [
        ([], CONDITIONS, "stages"),
        ([{"name": "canary", "share": 0.5}], [], "rollback_on"),
        ([{"name": "canary", "tenants": ["TEN-20260101-NOWHERE0"]}], CONDITIONS, "stages[0].tenants"),
        ([{"name": "a", "share": 1.0}, {"name": "b", "share": 1.0}], CONDITIONS, "stages[1]"),
    ],
)
def test_a_rollout_plan_without_stages_or_conditions_or_with_unknown_tenants_is_refused(
    shop, stages, conditions, field
):
    world = shop
    _publish_v110(world, GOOD)
    body = {"schema_id": "GDP-ORDER", "to_version": "1.1.0", "stages": stages, "rollback_on": conditions}
    answer = world.post("PA", f"{API}/rollouts", body)
    assert answer.status_code == 422 and answer.json()["field"] == field
    assert world.get("PA", f"{API}/rollouts").json()["items"] == []


def test_only_the_platform_admin_stages_a_rollout_and_tenants_see_only_themselves(shop):
    world = shop
    _publish_v110(world, GOOD)
    acme = world.tenants["acme"]
    body = {
        "schema_id": "GDP-ORDER",
        "to_version": "1.1.0",
        "stages": [{"name": "all", "share": 1.0}],
        "rollback_on": CONDITIONS,
    }
    for who in ("SS", "SRE", "acme:TA"):
        assert world.post(who, f"{API}/rollouts", body).status_code == 403, who
    rid = _ok(world.post("PA", f"{API}/rollouts", body), 201)["rollout_id"]
    seen = _ok(world.get("acme:TA", f"{API}/rollouts/{rid}"))
    assert seen["stages"][0]["tenants"] == [acme]


# A Raw contract version is judged by how the tenants' Raw tables fit it ----------------------------
def test_a_raw_contract_version_rolls_out_where_the_raw_tables_fit_it_and_rolls_back_where_they_drift(shop):
    world = shop
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    fields = {"order_id": "string", "customer_email": "string", "amount": "decimal", "placed_at": "date"}
    publish_contract(world, raw_contract(version="1.1.0", fields=fields | {"channel": "string"}))
    path = world.keel.dataplanes.database_path(acme)
    with duckdb.connect(str(path)) as con:  # acme's source already delivers the new column
        con.execute("ALTER TABLE raw.shop__orders ADD COLUMN channel VARCHAR")
    body = {
        "schema_id": "RAW-SHOP",
        "to_version": "1.1.0",
        "stages": [{"name": "canary", "tenants": [acme]}, {"name": "rest", "tenants": [globex]}],
        "rollback_on": [{"signal": "error_rate", "op": ">", "limit": 0.0}],
    }
    rid = _ok(world.post("PA", f"{API}/rollouts", body), 201)["rollout_id"]
    _ok(world.post("SS2", f"{API}/rollouts/{rid}/readiness"))
    started = _ok(world.post("PA", f"{API}/rollouts/{rid}/start"))
    assert started["status"] == "RUNNING"

    rolled = _ok(world.post("PA", f"{API}/rollouts/{rid}/expand"))  # globex has no channel column

    assert rolled["status"] == "ROLLED_BACK" and "drift in shop__orders" in rolled["reason"]
    pins = world.rows(sa.select(tenant_contracts).where(tenant_contracts.c.contract_id == "RAW-SHOP"))
    assert {r.tenant_id: r.version for r in pins} == {t: "1.0.0" for t in world.tenants.values()}
