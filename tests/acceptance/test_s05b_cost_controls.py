"""Story 05b (steps 3, 5): daily spend caps and the tenant's spend, through the API.

Spend is compute (today's pipeline and ingestion runs, priced per compute hour) plus storage
(the tenant's data plane, priced per GB-day). Given COST-CAP-DAILY, when the spend passes the
cap, non-essential actions are blocked naming the guardrail (``cost.guardrail.enforced``), an
alert fires, and essential actions still run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from keel.guardrails.service import spend_today
from keel.kernel.clock import set_clock, utcnow
from keel.store.tables import ingestion_runs, metric_samples, pipeline_runs

API = "/api/v1"
COST_CAP_DAILY = {
    "guardrail_id": "COST-CAP-DAILY",
    "tenant_scope": "global",
    "daily_spend_cap_usd": 500,
    "on_breach": "block_non_essential_actions",
}


@pytest.fixture(autouse=True)
def _midday():
    """Today's spend counts what ran since midnight: the clock runs from noon (UTC) of today, so
    a run that lasted an hour up to "now" is inside today whenever the suite runs. Autouse, so
    it is set before ``world`` issues tokens."""
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    began = time.monotonic()
    set_clock(lambda: noon + timedelta(seconds=time.monotonic() - began))
    yield
    set_clock(None)


def _record_run(world, tenant_id, hours: float, *, finished: datetime | None = None, suffix: str = ""):
    """A real ingestion run row as the ingestion service writes it, lasting ``hours``."""
    finished = finished or utcnow()
    with world.keel.engine.begin() as conn:
        conn.execute(
            ingestion_runs.insert().values(
                id=f"ING-T-{tenant_id[-6:]}{suffix}", tenant_id=tenant_id, source_id="SRC-T",
                stream="invoices", kind="sync", status="SUCCEEDED", rows=10, batches=1, skipped=0, attempts=1,
                started_by="test", started_at=finished - timedelta(hours=hours), finished_at=finished,
            )
        )  # fmt: skip


def _evaluate(world, who, tenant_id, **body):
    return world.post(who, f"{API}/tenants/{tenant_id}/guardrail-evaluations", json=body)


def test_past_the_daily_cap_non_essential_actions_are_blocked_and_essential_ones_run(world):
    acme = world.tenants["acme"]
    _record_run(world, acme, hours=1.0)  # 1 compute hour at the default 0.40 USD
    defined = world.post("SA", f"{API}/guardrails", json=COST_CAP_DAILY)
    assert defined.status_code == 201, defined.text
    assert (defined.json()["kind"], defined.json()["tenant_scope"]) == ("spend_cap", "global")
    assert world.post("PA", f"{API}/guardrails/COST-CAP-DAILY/enable").status_code == 200
    assert _evaluate(world, "acme:TA", acme, action="workflow:Execute").status_code == 200  # under 500 USD

    tiny = world.post("SA", f"{API}/guardrails", json={**COST_CAP_DAILY, "daily_spend_cap_usd": 0.1})
    assert tiny.json()["version"] == 2
    assert world.post("PA", f"{API}/guardrails/COST-CAP-DAILY/enable").json()["daily_spend_cap_usd"] == 0.1

    blocked = _evaluate(world, "acme:TA", acme, action="workflow:Execute")
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["guardrail_id"] == "COST-CAP-DAILY" and blocked.json()["kind"] == "spend_cap"
    essential = _evaluate(world, "acme:TA", acme, action="connector:Recover", essential=True)
    assert essential.status_code == 200 and essential.json()["allowed"] is True
    assert essential.json()["alerted"] == ["COST-CAP-DAILY"]

    enforced = world.events("cost.guardrail.enforced")
    assert [e["payload"]["outcome"] for e in enforced] == ["blocked", "alerted"]
    assert all(e["tenant_id"] == acme for e in enforced)
    assert len(world.events("alert.fired")) == 1  # the day's first breach alerts once
    assert not world.events("policy.enforced")
    # globex spent nothing today: not blocked by the global cap
    assert (
        _evaluate(world, "globex:TA", world.tenants["globex"], action="workflow:Execute").status_code == 200
    )


def test_the_spend_of_today_shows_compute_storage_and_the_ratio_to_the_cap(world):
    acme = world.tenants["acme"]
    _record_run(world, acme, hours=0.5)
    world.post("SA", f"{API}/guardrails", json={**COST_CAP_DAILY, "daily_spend_cap_usd": 1})
    world.post("PA", f"{API}/guardrails/COST-CAP-DAILY/enable")

    answer = world.get("SRE", f"{API}/tenants/{acme}/spend")

    assert answer.status_code == 200, answer.text
    spend = answer.json()
    assert abs(spend["compute_hours"] - 0.5) < 0.01
    assert spend["storage_footprint_gb"] > 0  # the tenant's data plane exists
    assert abs(spend["spend_usd"] - spend["compute_usd"] - spend["storage_usd"]) < 1e-9
    (cap,) = spend["caps"]
    assert cap["guardrail_id"] == "COST-CAP-DAILY" and not cap["breached"]
    assert abs(cap["spend_to_budget_ratio"] - spend["spend_usd"]) < 1e-9
    names = {
        r.name for r in world.rows(sa.select(metric_samples.c.name).where(metric_samples.c.tenant_id == acme))
    }
    assert {"compute_hours", "storage_footprint_gb", "spend_to_budget_ratio"} <= names
    assert world.get("acme:TA", f"{API}/tenants/{acme}/spend").status_code == 200
    assert world.get("globex:TA", f"{API}/tenants/{acme}/spend").status_code in (403, 404)


def test_a_run_across_midnight_counts_only_its_part_inside_today(world):
    acme = world.tenants["acme"]
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    _record_run(world, acme, hours=2.0, finished=midnight + timedelta(minutes=30))  # 1.5 h yesterday
    _record_run(world, acme, hours=1.0, finished=midnight - timedelta(hours=3), suffix="-Y")  # yesterday's
    with world.keel.engine.begin() as conn:  # a pipeline run of 20 minutes ending 10 minutes past
        conn.execute(
            pipeline_runs.insert().values(
                id="PLR-T-MIDNIGHT", tenant_id=acme, layer="gdp", name="invoice",
                contract="GDP-INVOICE@1.0.0", version="1.0.0", table_name="gdp.invoice__v1_0_0", inputs=[],
                rows=1, error_rows=0,
                dq_failures=0, duration_seconds=1200.0, purpose="build", run_by="test", mode="full",
                batches=[], started_at=midnight - timedelta(minutes=10),
                finished_at=midnight + timedelta(minutes=10),
            )
        )  # fmt: skip

    with world.keel.engine.begin() as conn:
        early = spend_today(world.keel, conn, acme, now=midnight + timedelta(minutes=20))
        later = spend_today(world.keel, conn, acme, now=midnight + timedelta(hours=6))
        before = spend_today(world.keel, conn, acme, now=midnight - timedelta(minutes=1))

    assert abs(early["compute_hours"] - (20 + 10) / 60) < 1e-6  # 20 min of the first, 10 of the second
    assert abs(later["compute_hours"] - (30 + 10) / 60) < 1e-6
    # at 23:59 the day before: 89 min of the first (from 22:30), the hour at 20:00, 9 min of the last
    assert abs(before["compute_hours"] - (89 + 60 + 9) / 60) < 1e-6
