"""Story 04 (steps 1, 3, 4): quotas, residency and export limits, through the API.

The Security Admin defines ACT-QUOTA-01 (5 high-risk actions per tenant per day), the Platform
Admin enables it; the sixth action of the day is refused naming the guardrail, with
``policy.enforced`` in the ledger and an alert, even though the request fails.
"""

from __future__ import annotations

import sqlalchemy as sa

from keel.store.tables import guardrail_usage, incidents

API = "/api/v1"
ACT_QUOTA_01 = {
    "policy_id": "ACT-QUOTA-01",
    "description": "Limit high-risk actions per tenant per day",
    "scope": "tenant",
    "quota_per_day": 5,
    "enforcement": "block",
}


def _define_and_enable(world, body):
    defined = world.post("SA", f"{API}/guardrails", json=body)
    assert defined.status_code == 201, defined.text
    gid = defined.json()["guardrail_id"]
    enabled = world.post("PA", f"{API}/guardrails/{gid}/enable")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"] == "enabled"
    return enabled.json()


def _evaluate(world, who, tenant_id, **body):
    return world.post(who, f"{API}/tenants/{tenant_id}/guardrail-evaluations", json=body)


def test_the_sixth_high_risk_action_of_the_day_is_blocked_naming_act_quota_01(world):
    rail = _define_and_enable(world, ACT_QUOTA_01)
    assert (rail["guardrail_id"], rail["kind"], rail["quota_per_day"], rail["version"]) == (
        "ACT-QUOTA-01", "action_quota", 5, 1,
    )  # fmt: skip
    assert [e["payload"]["guardrail_id"] for e in world.events("policy.defined")] == ["ACT-QUOTA-01"]
    assert len(world.events("policy.enabled")) == 1
    acme = world.tenants["acme"]

    for _ in range(5):
        allowed = _evaluate(world, "acme:TA", acme, action="workflow:Execute")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["allowed"] is True
    sixth = _evaluate(world, "acme:TA", acme, action="workflow:Execute")

    assert sixth.status_code == 409, sixth.text
    assert sixth.headers["content-type"].startswith("application/problem+json")
    problem = sixth.json()
    assert problem["code"] == "guardrail_breached" and problem["guardrail_id"] == "ACT-QUOTA-01"
    (enforced,) = world.events("policy.enforced")
    assert enforced["payload"]["guardrail_id"] == "ACT-QUOTA-01" and enforced["tenant_id"] == acme
    assert enforced["payload"]["outcome"] == "blocked"
    assert world.events("alert.fired")
    assert (
        world.scalar(sa.select(sa.func.count()).select_from(incidents).where(incidents.c.tenant_id == acme))
        == 1
    )
    uses = world.scalar(sa.select(guardrail_usage.c.uses).where(guardrail_usage.c.tenant_id == acme))
    assert uses == 5  # the refused one is not counted

    # The quota is counted per tenant: globex still has its five.
    globex = world.tenants["globex"]
    assert _evaluate(world, "globex:TA", globex, action="workflow:Execute").json()["allowed"] is True


def test_a_redefinition_is_a_new_version_enforced_once_enabled(world):
    _define_and_enable(world, ACT_QUOTA_01)
    again = world.post("SA", f"{API}/guardrails", json={**ACT_QUOTA_01, "quota_per_day": 1})
    assert again.status_code == 201, again.text
    assert (again.json()["version"], again.json()["status"]) == (2, "disabled")
    acme = world.tenants["acme"]
    for _ in range(2):  # version 1 (5 a day) is still enforced, and counts
        assert _evaluate(world, "acme:TA", acme, action="workflow:Execute").json()["allowed"] is True
    assert world.post("PA", f"{API}/guardrails/ACT-QUOTA-01/enable").json()["version"] == 2
    assert _evaluate(world, "acme:TA", acme, action="workflow:Execute").status_code == 409


def test_only_the_security_admin_defines_and_only_the_platform_admin_enables(world):
    assert world.post("PA", f"{API}/guardrails", json=ACT_QUOTA_01).status_code == 403
    assert world.post("acme:TA", f"{API}/guardrails", json=ACT_QUOTA_01).status_code == 403
    assert world.post("SA", f"{API}/guardrails", json=ACT_QUOTA_01).status_code == 201
    assert world.post("SA", f"{API}/guardrails/ACT-QUOTA-01/enable").status_code == 403
    assert world.get("AU", f"{API}/guardrails/ACT-QUOTA-01").status_code == 200


def test_a_bad_definition_is_refused_naming_the_field(world):
    answer = world.post("SA", f"{API}/guardrails", json={**ACT_QUOTA_01, "enforcement": "maybe"})
    assert answer.status_code == 422 and answer.json()["field"] == "enforcement"
    answer = world.post("SA", f"{API}/guardrails", json={"guardrail_id": "RES-01", "kind": "residency"})
    assert answer.status_code == 422 and answer.json()["field"] == "allowed_regions"


def test_residency_refuses_another_region(world):
    _define_and_enable(
        world, {"guardrail_id": "RES-EU-01", "kind": "residency", "allowed_regions": ["local", "eu-west-1"]}
    )
    acme = world.tenants["acme"]
    assert _evaluate(world, "acme:DE", acme, action="data:Replicate", region="local").status_code == 200
    other = _evaluate(world, "acme:DE", acme, action="data:Replicate", region="eu-west-1")
    assert other.status_code == 409 and other.json()["guardrail_id"] == "RES-EU-01"
    outside = _evaluate(world, "acme:DE", acme, action="data:Replicate", region="us-east-1")
    assert outside.status_code == 409 and "not allowed" in outside.json()["detail"]
    assert len(world.events("policy.enforced")) == 2


def test_export_limits_per_export_and_per_day(world):
    _define_and_enable(
        world, {"guardrail_id": "EXP-LIMIT-01", "kind": "export_limit", "max_rows_per_export": 100,
                "max_rows_per_day": 150},
    )  # fmt: skip
    acme = world.tenants["acme"]
    assert _evaluate(world, "acme:TA", acme, action="kpi:Export", rows=101).status_code == 409
    assert _evaluate(world, "acme:TA", acme, action="kpi:Export", rows=100).status_code == 200
    refused = _evaluate(world, "acme:TA", acme, action="kpi:Export", rows=60)
    assert refused.status_code == 409 and "max_rows_per_day" in refused.json()["detail"]
