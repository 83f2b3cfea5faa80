"""Story 04 step 5, "dashboard policy events (OE)": the Observability Engineer reads what the
guardrails and data-quality rules did over a window (``GET /api/v1/policy-events``), counted from
the evidence ledger itself; a tenant's people see their tenant's events and nobody else's.
"""

from __future__ import annotations

from datetime import timedelta

from tests.acceptance.test_s04_data_quality_rules import NOT_NULL, _build, _rule
from tests.acceptance.test_s04_data_quality_rules import invoices as invoices  # the fixture
from tests.acceptance.test_s04_guardrails import _define_and_enable, _evaluate

from keel.kernel.clock import utcnow

API = "/api/v1"
EVENTS = f"{API}/policy-events"


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def test_the_observability_engineer_sees_enforcements_and_rule_outcomes(invoices):
    world = invoices
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    _define_and_enable(world, {"guardrail_id": "ACT-QUOTA-09", "quota_per_day": 1})
    assert _evaluate(world, "acme:TA", acme, action="workflow:Execute").status_code == 200
    for _ in range(2):
        assert _evaluate(world, "acme:TA", acme, action="workflow:Execute").status_code == 409
    assert _evaluate(world, "globex:TA", globex, action="workflow:Execute").status_code == 200
    _rule(world, NOT_NULL)  # quarantines acme's two invoices without an amount
    _ok(_build(world))

    board = _ok(world.get("SRE", EVENTS))

    assert board["by_type"]["policy.enforced"] == 2 and board["by_type"]["rule.applied"] == 1
    assert board["by_type"]["policy.defined"] == 1 and board["by_type"]["rule.enabled"] == 1
    assert board["enforcements"] == [
        {"guardrail_id": "ACT-QUOTA-09", "outcome": "blocked", "tenant_id": acme, "count": 2}
    ]
    (rule,) = board["rules"]
    assert rule == {"rule_id": "GDP-INVOICE-AMT-NOT-NULL", "applied": 1, "failed": 1, "blocked": 0,
                    "rows_failed": 2, "pass_rate": 0.0}  # fmt: skip
    newest = board["recent_enforcements"]
    assert len(newest) == 2 and newest[0]["seq"] > newest[1]["seq"]
    assert newest[0]["action"] == "workflow:Execute" and "quota" in newest[0]["reason"]
    assert board["truncated"] is False

    mine = _ok(world.get("acme:TA", EVENTS))  # acme's own: the global definitions are not acme's
    assert mine["tenant_id"] == acme and mine["enforcements"] == board["enforcements"]
    assert "policy.defined" not in mine["by_type"]
    theirs = _ok(world.get("globex:TA", EVENTS))
    assert theirs["enforcements"] == [] and theirs["rules"] == []
    assert world.get("globex:TA", f"{EVENTS}?tenant_id={acme}").status_code in (403, 404)


def test_the_window_bounds_what_is_counted_and_bad_windows_are_refused(world):
    acme = world.tenants["acme"]
    _define_and_enable(world, {"guardrail_id": "ACT-QUOTA-10", "quota_per_day": 1})
    _evaluate(world, "acme:TA", acme, action="workflow:Execute")
    _evaluate(world, "acme:TA", acme, action="workflow:Execute")
    now = utcnow()
    before = {
        "since": (now - timedelta(hours=2)).isoformat(),
        "until": (now - timedelta(hours=1)).isoformat(),
    }
    later = (now + timedelta(minutes=1)).isoformat()

    empty = _ok(world.get("SRE", EVENTS, params=before))
    assert empty["events"] == 0 and empty["enforcements"] == []
    counted = _ok(world.get("SRE", EVENTS, params={"until": later}))
    assert counted["enforcements"][0]["count"] == 1
    backwards = world.get("SRE", EVENTS, params={"since": later, "until": utcnow().isoformat()})
    assert backwards.status_code == 422 and "since" in backwards.text
    too_long = world.get("SRE", EVENTS, params={"since": (utcnow() - timedelta(days=40)).isoformat()})
    assert too_long.status_code == 422 and "31 days" in too_long.text
    assert world.client.get(EVENTS).status_code == 401  # nobody unauthenticated
