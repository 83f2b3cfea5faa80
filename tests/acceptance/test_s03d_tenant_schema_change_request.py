"""Story 03d: a tenant's schema change request, through the REST API.

The Tenant Admin files a justified request; a Schema Steward validates it, attaching
the version that carries it, the impact analysis and a risk rating; the Tenant
Approver signs it off; the Platform Admin books a safe window (the consumers are told)
and rolls it out under monitoring (03f). An incomplete request goes back for
clarification; high risk without a rollback plan is refused with a recommendation;
a failed rollout rolls back by itself and opens an incident.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, publish_contract, raw_contract, write_raw

from keel.kernel.clock import utcnow
from keel.store.tables import incidents, metric_samples

API = "/api/v1"
RAW_COLUMNS = "order_id VARCHAR, customer_email VARCHAR, amount DECIMAL(38, 9), placed_at DATE"
FIELDS = {"order_id": "string", "customer_email": "string", "amount": "decimal", "placed_at": "date"}
V1 = "SELECT order_id, amount, placed_at FROM raw.shop__orders"
V11 = "SELECT order_id, amount, placed_at, 30 AS payment_terms FROM raw.shop__orders"
# Counts big orders twice: harmless until a big order arrives.
BAD = V11 + " UNION ALL SELECT order_id, amount, placed_at, 30 FROM raw.shop__orders WHERE amount > 1000"


@pytest.fixture
def shop(world):
    publish_contract(world, raw_contract(fields=FIELDS))
    v1 = gdp_contract(mapping=V1)
    v1["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, v1)
    for slug in ("acme", "globex"):
        write_raw(world, slug, "shop__orders", RAW_COLUMNS, [("O-1", "a@x.test", "10.00", "2026-01-05")])
        answer = world.post(
            f"{slug}:DE", f"{API}/tenants/{world.tenants[slug]}/builds", {"schema_id": "GDP-ORDER"}
        )
        assert answer.status_code == 200, answer.text
    return world


def _v11(world, mapping: str = V11) -> None:
    document = gdp_contract(
        version="1.1.0",
        mapping=mapping,
        fields={"order_id": "string", "amount": "decimal", "placed_at": "date", "payment_terms": "integer"},
    )
    document["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, document)


def _changes(world) -> str:
    return f"{API}/tenants/{world.tenants['acme']}/schema-changes"


def _request(world, rollback_plan: str = "roll back to GDP-ORDER 1.0.0; its builds stay") -> dict:
    body = {
        "schema_id": "GDP-ORDER",
        "change": "add field payment_terms",
        "justification": "collections needs the agreed payment terms per order",
        "rollback_plan": rollback_plan,
    }
    answer = world.post("acme:TA", _changes(world), body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _ok(answer) -> dict:
    assert answer.status_code == 200, answer.text
    return answer.json()


def _to_approved(world, risk: str = "medium") -> str:
    change = _request(world)
    cid = change["change_id"]
    _ok(world.post("SS", f"{_changes(world)}/{cid}/validation", {"proposed_version": "1.1.0", "risk": risk}))
    _ok(world.post("acme:TP", f"{_changes(world)}/{cid}/decision", {"approve": True}))
    return cid


def _window(minutes_from: int = -1, minutes_to: int = 60) -> dict:
    now = utcnow()
    return {
        "window_start": (now + timedelta(minutes=minutes_from)).isoformat(),
        "window_end": (now + timedelta(minutes=minutes_to)).isoformat(),
    }


def _roll_out(world, cid: str) -> dict:
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    plan = {
        "schema_id": "GDP-ORDER",
        "to_version": "1.1.0",
        "change_id": cid,
        "stages": [{"name": "canary", "tenants": [acme]}, {"name": "100pct", "tenants": [globex]}],
        "rollback_on": [{"signal": "dq_failure_rate", "op": ">", "limit": 0.02}],
    }
    answer = world.post("PA", f"{API}/rollouts", plan)
    assert answer.status_code == 201, answer.text
    rid = answer.json()["rollout_id"]
    _ok(world.post("SS2", f"{API}/rollouts/{rid}/readiness"))
    result = _ok(world.post("PA", f"{API}/rollouts/{rid}/start"))
    if result["status"] == "RUNNING":
        result = _ok(world.post("PA", f"{API}/rollouts/{rid}/expand"))
    return result


# Given a request, when approved, then scheduled, executed, evidenced ----------------------------
def test_an_approved_request_is_scheduled_rolled_out_and_evidenced(shop):
    world = shop
    _v11(world)
    cid = _to_approved(world)
    approved = _ok(world.get("acme:TA", f"{_changes(world)}/{cid}"))
    # Artifact: tenant_id=TEN-001, schema=GDP-AR, change=add field payment_terms, risk=medium, status=APPROVED
    assert {k: approved[k] for k in ("tenant_id", "schema", "change", "risk", "status")} == {
        "tenant_id": world.tenants["acme"],
        "schema": "GDP-ORDER",
        "change": "add field payment_terms",
        "risk": "medium",
        "status": "APPROVED",
    }
    assert approved["impact"]["contract_id"] == "GDP-ORDER"
    assert approved["impact"]["impact_scope"]["tenants"] == [world.tenants["acme"]]  # not globex: isolation

    scheduled = _ok(world.post("PA", f"{_changes(world)}/{cid}/schedule", _window()))
    assert scheduled["status"] == "SCHEDULED" and scheduled["notice"]["subject_id"] == cid
    result = _roll_out(world, cid)

    assert result["status"] == "COMPLETED"
    deployed = _ok(world.get("acme:TA", f"{_changes(world)}/{cid}"))
    assert deployed["status"] == "DEPLOYED" and deployed["rollout_id"] == result["rollout_id"]
    types = [e["type"] for e in world.events() if e["payload"].get("change_id") == cid]
    assert types[:1] == ["schema.change.requested"]
    assert {
        "schema.change.validated",
        "schema.change.approved",
        "schema.change.scheduled",
        "schema.change.deployed",
    } <= set(types)
    outcomes = world.rows(sa.select(metric_samples.c.value).where(metric_samples.c.name == "change_outcome"))
    assert [bool(r.value) for r in outcomes] == [True]


# When high risk and no rollback plan, then rejected with a recommendation -------------------------
def test_a_high_risk_change_without_a_rollback_plan_is_rejected_with_a_recommendation(shop):
    world = shop
    _v11(world)
    cid = _request(world, rollback_plan="")["change_id"]
    rejected = _ok(
        world.post("SS", f"{_changes(world)}/{cid}/validation", {"proposed_version": "1.1.0", "risk": "high"})
    )
    assert rejected["status"] == "REJECTED"
    assert "rollback plan" in rejected["recommendation"]
    assert (
        world.events("schema.change.rejected")[0]["payload"]["reason"] == "high risk without a rollback plan"
    )
    assert world.post("acme:TP", f"{_changes(world)}/{cid}/decision", {"approve": True}).status_code == 409


# Incomplete -> back for clarification -----------------------------------------------------------
def test_an_incomplete_request_goes_back_for_clarification_and_returns_amended(shop):
    world = shop
    _v11(world)
    cid = _request(world, rollback_plan="")["change_id"]
    asked = _ok(
        world.post(
            "SS", f"{_changes(world)}/{cid}/clarification", {"question": "which terms: net days or a code?"}
        )
    )
    assert asked["status"] == "NEEDS_CLARIFICATION" and asked["clarification"].startswith("which terms")
    assert (
        world.post(
            "SS", f"{_changes(world)}/{cid}/validation", {"proposed_version": "1.1.0", "risk": "low"}
        ).status_code
        == 409
    )
    assert (
        world.post("acme:DE", f"{_changes(world)}/{cid}/amendment", {"justification": "x"}).status_code == 409
    )
    amended = _ok(
        world.post(
            "acme:TA",
            f"{_changes(world)}/{cid}/amendment",
            {"justification": "net days, integer", "rollback_plan": "back to 1.0.0"},
        )
    )
    assert amended["status"] == "REQUESTED" and amended["rollback_plan"] == "back to 1.0.0"
    assert "which terms" not in str(
        world.events()
    )  # people's words stay in the request, hashed in the ledger


def test_a_request_missing_its_justification_or_naming_no_running_contract_is_refused(shop):
    world = shop
    body = {"schema_id": "GDP-ORDER", "change": "add x", "justification": "  "}
    assert world.post("acme:TA", _changes(world), body).status_code == 422
    body = {"schema_id": "GDP-NOTHING", "change": "add x", "justification": "why"}
    answer = world.post("acme:TA", _changes(world), body)
    assert answer.status_code == 422 and answer.json()["field"] == "schema_id"


# Rollout fails -> auto rollback, incident -------------------------------------------------------
def test_a_failing_rollout_rolls_the_change_back_by_itself_and_opens_an_incident(shop):
    world = shop
    _v11(world, BAD)
    cid = _to_approved(world)
    _ok(world.post("PA", f"{_changes(world)}/{cid}/schedule", _window()))
    # The canary has no big order, so its dry run and its stage pass; globex's big order breaks it.
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    plan = {
        "schema_id": "GDP-ORDER",
        "to_version": "1.1.0",
        "change_id": cid,
        "stages": [{"name": "canary", "tenants": [acme]}, {"name": "all", "tenants": [globex]}],
        "rollback_on": [{"signal": "dq_failure_rate", "op": ">", "limit": 0.02}],
    }
    rid = world.post("PA", f"{API}/rollouts", plan).json()["rollout_id"]
    _ok(world.post("SS2", f"{API}/rollouts/{rid}/readiness"))
    assert _ok(world.post("PA", f"{API}/rollouts/{rid}/start"))["status"] == "RUNNING"
    write_raw(world, "globex", "shop__orders", RAW_COLUMNS, [("O-3", "c@x.test", "5000.00", "2026-01-07")])

    result = _ok(world.post("PA", f"{API}/rollouts/{rid}/expand"))

    assert result["status"] == "ROLLED_BACK"
    change = _ok(world.get("acme:TA", f"{_changes(world)}/{cid}"))
    assert change["status"] == "ROLLED_BACK"
    assert "rollout_breach" in [r.kind for r in world.rows(sa.select(incidents.c.kind))]
    assert world.events("schema.change.rolled_back")[0]["payload"]["rollout_id"] == rid
    outcomes = world.rows(sa.select(metric_samples.c.value).where(metric_samples.c.name == "change_outcome"))
    assert [bool(r.value) for r in outcomes] == [False]
    assert (
        sum(
            float(r.value)
            for r in world.rows(
                sa.select(metric_samples.c.value).where(metric_samples.c.name == "rollback_count")
            )
        )
        == 1
    )


# Safe window and who does what -----------------------------------------------------------------
def test_a_change_rolls_out_only_inside_its_window(shop):
    world = shop
    _v11(world)
    cid = _to_approved(world)
    assert (
        world.post("PA", f"{_changes(world)}/{cid}/schedule", _window(-120, -60)).json()["field"]
        == "window_end"
    )
    too_long = _window(10, 60 * 30)
    assert world.post("PA", f"{_changes(world)}/{cid}/schedule", too_long).status_code == 422
    _ok(world.post("PA", f"{_changes(world)}/{cid}/schedule", _window(60, 120)))
    plan = {
        "schema_id": "GDP-ORDER",
        "to_version": "1.1.0",
        "change_id": cid,
        "stages": [{"name": "all", "share": 1.0}],
        "rollback_on": [{"signal": "error_rate", "op": ">", "limit": 0.02}],
    }
    early = world.post("PA", f"{API}/rollouts", plan)
    assert early.status_code == 409 and "may roll out between" in early.json()["detail"]


def test_the_requester_cannot_approve_and_only_the_tenant_approver_signs_off(shop):
    world = shop
    _v11(world)
    cid = _request(world)["change_id"]
    _ok(world.post("SS", f"{_changes(world)}/{cid}/validation", {"proposed_version": "1.1.0", "risk": "low"}))
    for who in ("acme:TA", "acme:BO", "SS", "PA", "globex:TP"):
        assert world.post(who, f"{_changes(world)}/{cid}/decision", {"approve": True}).status_code in (
            403,
            404,
        ), who
    assert (
        _ok(world.post("acme:TP", f"{_changes(world)}/{cid}/decision", {"approve": True}))["status"]
        == "APPROVED"
    )
