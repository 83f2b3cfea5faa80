"""Story 05b (steps 3, 5): daily spend caps and the tenant's spend, through the API.

Spend is compute (today's pipeline and ingestion runs, priced per compute hour) plus storage
(the tenant's data plane, priced per GB-day). Given COST-CAP-DAILY, when the spend passes the
cap, non-essential actions are blocked naming the guardrail (``cost.guardrail.enforced``), an
alert fires, and essential actions still run.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from keel.kernel.clock import utcnow
from keel.store.tables import ingestion_runs, metric_samples

API = "/api/v1"
COST_CAP_DAILY = {
    "guardrail_id": "COST-CAP-DAILY",
    "tenant_scope": "global",
    "daily_spend_cap_usd": 500,
    "on_breach": "block_non_essential_actions",
}


def _record_run(world, tenant_id, hours: float):
    """A real ingestion run row as the ingestion service writes it, lasting ``hours``."""
    finished = utcnow()
    with world.keel.engine.begin() as conn:
        conn.execute(
            ingestion_runs.insert().values(
                id=f"ING-T-{tenant_id[-6:]}", tenant_id=tenant_id, source_id="SRC-T", stream="invoices",
                kind="sync", status="SUCCEEDED", rows=10, batches=1, skipped=0, attempts=1,
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
