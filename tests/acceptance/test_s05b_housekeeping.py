"""Story 05b (steps 1, 2, 4, 5): retention, tiering, legal holds, evidence protection, compaction and
the scheduler, through the REST API on a tenant's real DuckDB data plane.

Given RET-12M (``scope=gdp, retention_months=12, action_on_expiry=tier_to_cold``), approved by a
Compliance Officer who did not write it, when rows pass 12 months they move to a cold Parquet file
(exactly the expired rows, the table keeps the rest) and ``housekeeping.executed`` evidences it. A
legal hold blocks any job on what it covers; evidence (a KPI publication, a pipeline run that
folded a Raw batch in) blocks a job that would delete what it names; compaction failures are
retried and logged; the scheduler runs each due job once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from tests.support import make_user
from tests.support_contracts import (
    gdp_contract,
    kpi_contract,
    publish_contract,
    publish_kpi,
    raw_contract,
    write_raw,
)

from keel.identity.personas import Persona
from keel.kernel.clock import set_clock, utcnow
from keel.scheduling import registry
from keel.store.tables import housekeeping_runs, metric_samples, pipeline_runs, scheduler_jobs

API = "/api/v1"
POLICIES = f"{API}/housekeeping/policies"
RET_12M = {
    "policy_id": "RET-12M",
    "scope": "gdp",
    "retention_months": 12,
    "action_on_expiry": "tier_to_cold",
    "table": "invoice",
    "time_column": "issued_at",
}
MONTHLY = 24  # invoices, one every 30 days back from now: 13..23 are older than 12 months
EXPIRED = list(range(13, MONTHLY))


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _plane(world, slug: str = "acme") -> Path:
    return world.keel.dataplanes.database_path(world.tenants[slug])


def _sql(world, sql: str, slug: str = "acme") -> list[tuple]:
    with duckdb.connect(str(_plane(world, slug))) as con:
        return con.execute(sql).fetchall()


def _invoices(world, slug: str = "acme", table: str = "invoice__v1_0_0") -> None:
    """A GDP table of invoices, one every 30 days back from now (the real clock)."""
    _sql(
        world,
        f'CREATE TABLE gdp."{table}" AS SELECT i AS invoice_id, i * 10.5 AS amount, '
        "now() - to_days(CAST(i * 30 AS INTEGER)) AS issued_at FROM range(24) t(i)",
        slug,
    )


def _approved(world, spec: dict, *, author: str = "PA", approver: str = "CO") -> dict:
    _ok(world.post(author, POLICIES, json=spec), 201)
    return _ok(world.post(approver, f"{POLICIES}/{spec['policy_id']}/approve"))


def _run(world, slug: str = "acme", who: str = "PA", **body) -> list[dict]:
    answer = world.post(who, f"{API}/tenants/{world.tenants[slug]}/housekeeping-runs", json=body)
    return _ok(answer, 201)["items"]


def test_given_ret_12m_rows_past_12_months_go_to_a_cold_parquet_file_with_an_event(world):
    acme = world.tenants["acme"]
    _invoices(world)
    defined = _ok(world.post("PA", POLICIES, json=RET_12M), 201)
    assert (defined["status"], defined["version"], defined["tenant_scope"]) == (
        "pending_approval",
        1,
        ["global"],
    )
    approved = _ok(world.post("CO", f"{POLICIES}/RET-12M/approve"))
    assert approved["status"] == "approved" and approved["approved_by"] == world.actors["CO"].user_id

    (run,) = _run(world)

    assert {k: run[k] for k in ("policy_id", "layer", "table", "status", "rows_tiered", "rows_deleted")} == {
        "policy_id": "RET-12M", "layer": "gdp", "table": "invoice__v1_0_0", "status": "SUCCEEDED",
        "rows_tiered": len(EXPIRED), "rows_deleted": len(EXPIRED),
    }  # fmt: skip
    (cold,) = run["files"]
    assert cold.startswith("cold/gdp/invoice__v1_0_0/") and cold.endswith(".parquet")
    cold_file = world.keel.dataplanes.directory(acme) / cold
    in_cold = duckdb.connect().execute(f"SELECT invoice_id FROM '{cold_file}' ORDER BY 1").fetchall()
    assert [r[0] for r in in_cold] == EXPIRED
    kept = _sql(world, 'SELECT invoice_id FROM gdp."invoice__v1_0_0" ORDER BY 1')
    assert [r[0] for r in kept] == list(range(13))
    (scheduled,) = world.events("housekeeping.scheduled")
    (executed,) = world.events("housekeeping.executed")
    assert scheduled["tenant_id"] == executed["tenant_id"] == acme
    assert scheduled["payload"]["policy_id"] == "RET-12M" and scheduled["payload"]["trigger"] == "manual"
    assert executed["payload"]["run_id"] == run["run_id"] and executed["payload"]["status"] == "SUCCEEDED"
    assert executed["payload"]["rows_tiered"] == len(EXPIRED) and executed["payload"]["files"] == [cold]
    listed = _ok(world.get("acme:TA", f"{API}/tenants/{acme}/housekeeping-runs"))["items"]
    assert [r["run_id"] for r in listed] == [run["run_id"]]

    again = _run(world)  # idempotent: nothing more has expired, no new file
    assert [(r["status"], r["rows_tiered"], r["files"]) for r in again] == [("SUCCEEDED", 0, [])]
    assert len(list(cold_file.parent.glob("*.parquet"))) == 1


def test_define_and_run_replay_under_the_same_idempotency_key(world):
    _invoices(world)
    key = {"Idempotency-Key": "ret-12m-once"}
    first = _ok(world.post("PA", POLICIES, json=RET_12M, headers=key), 201)
    second = _ok(world.post("PA", POLICIES, json=RET_12M, headers=key), 201)
    assert first == second and first["version"] == 1
    _ok(world.post("CO", f"{POLICIES}/RET-12M/approve"))
    assert _ok(world.post("CO", f"{POLICIES}/RET-12M/approve"))["version"] == 1  # approving again: no-op
    path = f"{API}/tenants/{world.tenants['acme']}/housekeeping-runs"
    run = _ok(world.post("PA", path, json={}, headers={"Idempotency-Key": "run-once"}), 201)
    replay = _ok(world.post("PA", path, json={}, headers={"Idempotency-Key": "run-once"}), 201)
    assert run == replay and run["items"][0]["rows_tiered"] == len(EXPIRED)
    assert world.scalar(sa.select(sa.func.count()).select_from(housekeeping_runs)) == 1
    assert len(world.events("housekeeping.executed")) == 1


def test_expired_raw_rows_are_deleted_for_the_tenants_the_policy_is_assigned_to(world):
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    rows = [(f"O-{i}", f"B-{i}", f"-{i * 100} days") for i in range(6)]  # 0, 100, ... 500 days old
    for slug in ("acme", "globex"):
        write_raw(world, slug, "shop__orders", "order_id VARCHAR, _keel_batch_id VARCHAR, age VARCHAR", rows)
        _sql(world, "ALTER TABLE raw.shop__orders ADD COLUMN _keel_ingested_at TIMESTAMPTZ", slug)
        _sql(world, "UPDATE raw.shop__orders SET _keel_ingested_at = now() + CAST(age AS INTERVAL)", slug)
    raw_policy = {"policy_id": "RET-RAW-12M", "scope": "raw", "retention_months": 12,
                  "action_on_expiry": "delete", "tenant_scope": acme}  # fmt: skip
    policy = _approved(world, raw_policy)
    assert (policy["table"], policy["time_column"]) == ("*", "_keel_ingested_at")

    (run,) = _run(world)

    assert (run["table"], run["status"], run["rows_deleted"], run["rows_tiered"]) == (
        "shop__orders",
        "SUCCEEDED",
        2,
        0,
    )
    assert run["files"] == []
    assert _sql(world, "SELECT order_id FROM raw.shop__orders ORDER BY 1") == [
        ("O-0",),
        ("O-1",),
        ("O-2",),
        ("O-3",),
    ]
    assert _run(world, "globex") == []  # not assigned to globex: nothing ran there
    assert len(_sql(world, "SELECT * FROM raw.shop__orders", "globex")) == 6
    assert _ok(world.get("globex:TA", POLICIES))["items"] == []  # another tenant's policy is not listed
    assert _ok(world.get("acme:TA", POLICIES))["items"][0]["tenant_scope"] == [acme]
    assert world.get("globex:TA", f"{POLICIES}/RET-RAW-12M").status_code == 404
    assert (
        world.post("PA", f"{POLICIES}/RET-RAW-12M/assignments", json={"tenant_scope": globex}).status_code
        == 200
    )
    (globex_run,) = _run(world, "globex")
    assert globex_run["rows_deleted"] == 2


def test_a_legal_hold_blocks_the_job_and_nothing_moves_until_it_is_released(world):
    acme = world.tenants["acme"]
    _invoices(world)
    _approved(world, RET_12M)
    holds = f"{API}/tenants/{acme}/legal-holds"
    body = {"layer": "gdp", "table": "invoice", "reason": "Case 2026-17: invoices under dispute"}
    assert world.post("acme:TA", holds, json=body).status_code == 403  # SA places holds
    assert world.post("PA", holds, json=body).status_code == 403
    hold = _ok(world.post("SA", holds, json=body), 201)
    assert hold["status"] == "active" and hold["hold_id"].startswith("LH-")
    events = len(world.events("housekeeping.hold.placed"))

    (run,) = _run(world)

    assert run["status"] == "BLOCKED" and hold["hold_id"] in run["reason"]
    assert (run["rows_tiered"], run["rows_deleted"], run["files"]) == (0, 0, [])
    assert len(_sql(world, 'SELECT * FROM gdp."invoice__v1_0_0"')) == MONTHLY
    assert not (world.keel.dataplanes.directory(acme) / "cold").exists()
    (executed,) = world.events("housekeeping.executed")
    assert executed["payload"]["status"] == "BLOCKED" and hold["hold_id"] in executed["payload"]["reason"]
    assert events == 1
    compacted = _ok(
        world.post(
            "SRE", f"{API}/tenants/{acme}/compactions", json={"layer": "gdp", "table": "invoice__v1_0_0"}
        ),
        201,
    )
    assert compacted["status"] == "BLOCKED"  # a held table is not even rewritten

    release = f"{holds}/{hold['hold_id']}/release"
    released = _ok(world.post("SA", release, json={"reason": "Case closed"}))
    assert released["status"] == "released" and released["released_by"] == world.actors["SA"].user_id
    assert _ok(world.get("AU", holds, params={"active": "true"}))["items"] == []
    (after,) = _run(world)
    assert after["status"] == "SUCCEEDED" and after["rows_tiered"] == len(EXPIRED)


def test_an_unapproved_policy_is_skipped_and_its_author_cannot_approve_it(world):
    _invoices(world)
    both = world.add("PA+CO", make_user(world.keel, Persona.PA, also=(Persona.CO,)))
    assert both.roles == {"PA", "CO"}
    _ok(world.post("PA+CO", POLICIES, json=RET_12M), 201)

    (run,) = _run(world)
    assert run["status"] == "SKIPPED" and "not approved" in run["reason"]
    assert len(_sql(world, 'SELECT * FROM gdp."invoice__v1_0_0"')) == MONTHLY

    refused = world.post("PA+CO", f"{POLICIES}/RET-12M/approve")
    assert refused.status_code == 403, refused.text
    assert world.post("PA", f"{POLICIES}/RET-12M/approve").status_code == 403  # PA approves nothing
    assert _ok(world.get("CO", f"{POLICIES}/RET-12M"))["status"] == "pending_approval"
    assert _ok(world.post("CO", f"{POLICIES}/RET-12M/approve"))["status"] == "approved"

    tighter = _ok(world.post("PA", POLICIES, json={**RET_12M, "retention_months": 6}), 201)
    assert (tighter["version"], tighter["status"]) == (2, "pending_approval")
    (run,) = _run(world)  # the approved version 1 stays in effect until version 2 is approved
    assert (run["policy_version"], run["rows_tiered"]) == (1, len(EXPIRED))


def test_bad_input_names_the_field_and_writes_nothing(world):
    for body, field in (
        ({**RET_12M, "policy_id": "ret 12"}, "policy_id"),
        ({**RET_12M, "scope": "kpi"}, "scope"),
        ({**RET_12M, "action_on_expiry": "shred"}, "action_on_expiry"),
        ({**RET_12M, "retention_months": 0}, "retention_months"),
        ({**RET_12M, "table": "invoice; DROP TABLE x"}, "table"),
        ({**RET_12M, "time_column": None}, "time_column"),
        ({**RET_12M, "tenant_scope": "TEN-NOPE"}, "tenant_scope"),
        (
            {
                "policy_id": "RET-RAW",
                "scope": "raw",
                "retention_months": 12,
                "action_on_expiry": "tier_to_cold",
            },
            "action_on_expiry",
        ),
    ):
        answer = world.post("PA", POLICIES, json={k: v for k, v in body.items() if v is not None})
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["field"] == field, answer.text
    assert _ok(world.get("PA", POLICIES))["items"] == []
    hold = world.post(
        "SA", f"{API}/tenants/{world.tenants['acme']}/legal-holds", json={"layer": "silver", "reason": "x"}
    )
    assert hold.status_code == 422 and hold.json()["field"] == "layer"


ORDERS = [  # order_id, amount, placed_at, currency, batch
    ("O-1", "120.50", "2024-01-05", "EUR", "B-1"),
    ("O-2", "80.00", "2024-01-20", "EUR", "B-1"),
    ("O-3", "310.25", "2026-02-02", "EUR", "B-2"),
]


def _published_shop(world) -> None:
    """RAW-SHOP → GDP-ORDER → KPI-ORDER-VALUE built by the real build route and published (06)."""
    fields = {"order_id": "string", "amount": "decimal", "placed_at": "date", "currency": "string"}
    publish_contract(world, raw_contract(fields=fields))
    publish_contract(
        world,
        gdp_contract(
            fields=fields, mapping="SELECT order_id, amount, placed_at, currency FROM raw.shop__orders"
        ),
    )
    kpi = kpi_contract()
    kpi["kpi"]["dimensions"] = ["currency"]
    publish_contract(world, kpi)
    columns = (
        "order_id VARCHAR, amount DECIMAL(38, 9), placed_at DATE, currency VARCHAR, _keel_batch_id VARCHAR"
    )
    write_raw(world, "acme", "shop__orders", columns, ORDERS)
    _ok(world.post("acme:DE", f"{API}/tenants/{world.tenants['acme']}/builds", {"schema_id": "GDP-ORDER"}))
    publish_kpi(world, "acme", "KPI-ORDER-VALUE")


def test_deleting_a_build_table_a_kpi_publication_names_is_blocked(world):
    _published_shop(world)
    before = _sql(world, 'SELECT count(*) FROM gdp."order__v1_0_0"')
    spec = {"policy_id": "RET-GDP-DELETE", "scope": "gdp", "retention_months": 12,
            "action_on_expiry": "delete", "table": "order", "time_column": "placed_at"}  # fmt: skip
    _approved(world, spec)

    (run,) = _run(world)

    assert run["status"] == "BLOCKED", run
    assert "gdp.order__v1_0_0 is protected" in run["reason"] and "KPI-ORDER-VALUE" in run["reason"]
    assert run["rows_deleted"] == 0
    assert _sql(world, 'SELECT count(*) FROM gdp."order__v1_0_0"') == before
    (executed,) = world.events("housekeeping.executed")
    assert executed["payload"]["status"] == "BLOCKED"

    tier = {**spec, "policy_id": "RET-GDP-TIER", "action_on_expiry": "tier_to_cold"}
    _approved(world, tier)  # tiering keeps the data (readable from the Parquet): allowed
    (tiered,) = _run(world, policy_id="RET-GDP-TIER")
    assert (tiered["status"], tiered["rows_tiered"]) == ("SUCCEEDED", 2)


def test_deleting_raw_rows_of_a_batch_a_pipeline_run_folded_in_is_blocked(world):
    acme = world.tenants["acme"]
    rows = [(f"O-{i}", f"B-{i}", f"-{i * 200} days") for i in range(4)]  # B-2 and B-3 are expired
    write_raw(world, "acme", "shop__orders", "order_id VARCHAR, _keel_batch_id VARCHAR, age VARCHAR", rows)
    _sql(world, "ALTER TABLE raw.shop__orders ADD COLUMN _keel_ingested_at TIMESTAMPTZ")
    _sql(world, "UPDATE raw.shop__orders SET _keel_ingested_at = now() + CAST(age AS INTERVAL)")
    with world.keel.engine.begin() as conn:  # the record an incremental build leaves (pipeline_runs.batches)
        conn.execute(
            pipeline_runs.insert().values(
                id="PLR-20260101-FOLDED01", tenant_id=acme, layer="gdp", name="order",
                contract="GDP-ORDER@1.0.0", version="1.0.0", table_name="gdp.order__v1_0_0",
                inputs=["raw.shop__orders"], rows=1,
                error_rows=0, dq_failures=0, duration_seconds=0.1, purpose="build", run_by="test",
                started_at=utcnow(), finished_at=utcnow(), mode="incremental", delta_rows=1, batches=["B-3"],
            )
        )  # fmt: skip
    _approved(
        world,
        {"policy_id": "RET-RAW-12M", "scope": "raw", "retention_months": 12, "action_on_expiry": "delete"},
    )

    (run,) = _run(world)

    assert (
        run["status"] == "BLOCKED"
        and "batch B-3" in run["reason"]
        and "PLR-20260101-FOLDED01" in run["reason"]
    )
    assert len(_sql(world, "SELECT * FROM raw.shop__orders")) == 4  # not even the unprotected B-2 row went


def test_a_failing_compaction_is_retried_logged_and_leaves_the_files_as_they_were(world, caplog):
    acme = world.tenants["acme"]
    _invoices(world)
    _approved(world, RET_12M)
    _run(world)  # one cold file
    folder = world.keel.dataplanes.directory(acme) / "cold" / "gdp" / "invoice__v1_0_0"
    broken = folder / "0000-broken.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    files = sorted(p.name for p in folder.iterdir())
    for n in range(5):  # many small appends: a fragmented table
        _sql(world, f'INSERT INTO gdp."invoice__v1_0_0" VALUES ({100 + n}, 1.0, now())')
    compactions = f"{API}/tenants/{acme}/compactions"
    body = {"layer": "gdp", "table": "invoice__v1_0_0"}

    with caplog.at_level(logging.WARNING, logger="keel.housekeeping"):
        failed = _ok(world.post("SRE", compactions, json=body), 201)

    assert (failed["kind"], failed["status"], failed["attempts"]) == ("compaction", "FAILED", 3)
    assert "parquet" in failed["reason"].lower()
    attempts = [r for r in caplog.records if "compaction attempt" in r.getMessage()]
    assert len(attempts) == 3 and any("failed after 3 attempts" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in folder.iterdir()) == files  # nothing merged, nothing lost
    executed = world.events("housekeeping.executed")[-1]
    assert executed["payload"]["status"] == "FAILED" and executed["payload"]["attempts"] == 3

    broken.unlink()
    _run(world)  # nothing new expired: still one file; add a second by tiering fresh expired rows
    _sql(world, 'INSERT INTO gdp."invoice__v1_0_0" VALUES (900, 1.0, now() - INTERVAL 500 DAY)')
    _run(world)
    assert len(list(folder.glob("*.parquet"))) == 2
    done = _ok(world.post("PA", compactions, json=body), 201)
    assert done["status"] == "SUCCEEDED" and done["attempts"] == 1, done
    (merged,) = folder.glob("*.parquet")
    assert done["files"] == [str(merged.relative_to(world.keel.dataplanes.directory(acme)))]
    ids = [r[0] for r in duckdb.connect().execute(f"SELECT invoice_id FROM '{merged}' ORDER BY 1").fetchall()]
    assert ids == [*EXPIRED, 900]
    assert len(_sql(world, 'SELECT * FROM gdp."invoice__v1_0_0"')) == 13 + 5
    assert world.post("acme:TA", compactions, json=body).status_code == 403


@pytest.fixture
def counted_job():
    calls = []
    registry.register(
        "test.counted", timedelta(hours=1), lambda keel, now: calls.append(now) or {"n": len(calls)}
    )
    flaky = []

    def fail_twice(keel, now):
        flaky.append(now)
        if len(flaky) % 3:
            raise RuntimeError(f"flaky attempt {len(flaky)}")
        return "ok"

    registry.register("test.flaky", timedelta(hours=1), fail_twice)
    registry.register("test.broken", timedelta(hours=1), lambda keel, now: 1 / 0, attempts=2)
    yield calls, flaky
    for name in ("test.counted", "test.flaky", "test.broken"):
        registry.unregister(name)


def test_a_scheduler_tick_runs_each_due_job_once_with_retries(world, counted_job, caplog):
    calls, flaky = counted_job
    start = utcnow()
    set_clock(lambda: start)
    assert world.post("acme:TA", f"{API}/scheduler/tick", json={}).status_code == 403

    with caplog.at_level(logging.WARNING, logger="keel.scheduling"):
        ran = {j["name"]: j for j in _ok(world.post("SRE", f"{API}/scheduler/tick", json={}))["items"]}

    assert {"test.counted", "test.flaky", "test.broken", "housekeeping.retention", "housekeeping.compaction",
            "housekeeping.footprint"} <= set(ran)  # fmt: skip
    assert len(calls) == 1 and ran["test.counted"]["last_status"] == "SUCCEEDED"
    assert (ran["test.flaky"]["last_status"], ran["test.flaky"]["last_attempts"], len(flaky)) == (
        "SUCCEEDED",
        3,
        3,
    )
    broken = ran["test.broken"]
    assert (broken["last_status"], broken["last_attempts"]) == ("FAILED", 2)
    assert "ZeroDivisionError" in broken["last_error"]
    assert any("test.broken failed after 2 attempts" in r.getMessage() for r in caplog.records)
    assert ran["housekeeping.footprint"]["last_status"] == "SUCCEEDED"
    names = {
        r.name
        for r in world.rows(
            sa.select(metric_samples.c.name).where(metric_samples.c.tenant_id == world.tenants["acme"])
        )
    }
    assert {"storage_footprint_gb", "compute_hours"} <= names
    scheduled = [e["payload"]["job"] for e in world.events("housekeeping.scheduled")]
    assert sorted(scheduled) == [
        "housekeeping.compaction",
        "housekeeping.footprint",
        "housekeeping.retention",
    ]

    assert _ok(world.post("SRE", f"{API}/scheduler/tick", json={}))["items"] == []  # nothing is due again
    assert len(calls) == 1
    set_clock(lambda: start + timedelta(hours=1, seconds=1))
    again = [j["name"] for j in _ok(world.post("PA", f"{API}/scheduler/tick", json={}))["items"]]
    assert "test.counted" in again and "housekeeping.retention" not in again  # daily, not hourly
    assert len(calls) == 2

    changed = _ok(world.put("SRE", f"{API}/scheduler/jobs/test.counted", json={"enabled": False}))
    assert changed["enabled"] is False
    set_clock(lambda: start + timedelta(hours=5))
    assert "test.counted" not in [
        j["name"] for j in _ok(world.post("PA", f"{API}/scheduler/tick", json={}))["items"]
    ]
    jobs = {
        j["name"]: j for j in _ok(world.get("AU", f"{API}/scheduler/jobs", params={"limit": 500}))["items"]
    }
    assert jobs["test.counted"]["runs"] == 2 and jobs["housekeeping.retention"]["every_seconds"] == 24 * 3600
    bad = world.put("SRE", f"{API}/scheduler/jobs/test.counted", json={"every_seconds": 5})
    assert bad.status_code == 422 and bad.json()["field"] == "every_seconds"
    assert (
        world.put("acme:TA", f"{API}/scheduler/jobs/test.counted", json={"enabled": True}).status_code == 403
    )
    row = world.rows(sa.select(scheduler_jobs).where(scheduler_jobs.c.name == "test.counted"))[0]
    assert (row.enabled, row.runs, row.updated_by) == (False, 2, world.actors["SRE"].user_id)
