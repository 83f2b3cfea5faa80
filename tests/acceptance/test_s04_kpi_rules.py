"""Story 04 "register versioned raw/GDP/KPI rules; enforce in … KPI calc", for the KPI layer.

acme runs RAW-SHOP → GDP-ORDER → KPI-ORDER-VALUE (SUM(amount) per month). A Schema Steward
registers rules on the KPI's computed rows (``layer=kpi``, dataset = the KPI's name
``kpi_order_value``, field = one of its columns); every pipeline run that computes the KPI applies
them: ``quarantine`` withholds the failing periods from the KPI readers see (reviewable, and
releasable as false positives only: a computed value is never edited), ``block`` stops the run
with nothing published, ``alert`` only counts. Raw batches land through the Raw store, as in
``test_pipeline_runs.py``; KPI values are compared with sums done in plain Python.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from tests.acceptance.test_pipeline_runs import FIRST, LATE, _land, _run, _values
from tests.acceptance.test_pipeline_runs import _expected as _monthly
from tests.acceptance.test_pipeline_runs import shop as shop  # the fixture: acme's shop pipeline

from keel.pipeline import DuckDBEngine
from keel.store.tables import incidents

API = "/api/v1"
RULES = f"{API}/quality-rules"
PLAUSIBLE = {  # a month's order value above 300 EUR is implausible for this shop
    "rule_id": "KPI-ORDER-VALUE-PLAUSIBLE",
    "layer": "kpi",
    "dataset": "kpi_order_value",
    "field": "value",
    "check": "range",
    "params": {"min": 0, "max": 300},
    "on_fail": "quarantine",
}


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _rule(world, body: dict) -> dict:
    _ok(world.post("SS", RULES, body), 201)
    return _ok(world.post("PA", f"{RULES}/{body['rule_id']}/enable"))


def _quarantine(world) -> list[dict]:
    path = f"{API}/tenants/{world.tenants['acme']}/quarantine/kpi_order_value?layer=kpi"
    return _ok(world.get("acme:DE", path))["items"]


# Given a quarantine rule on a KPI, when a period's value breaks it, then it is withheld, alerted --
def test_a_kpi_period_failing_a_quarantine_rule_is_withheld_reviewed_and_released(shop):
    world = shop
    assert _rule(world, PLAUSIBLE)["layer"] == "kpi"
    _ok(_run(world, "full"), 201)

    expected = _monthly(FIRST)  # January 200.50, February 310.25 (implausible)
    assert _values(world) == {date(2026, 1, 1): expected[date(2026, 1, 1)]}
    (held,) = _quarantine(world)
    assert held["rule_id"] == "KPI-ORDER-VALUE-PLAUSIBLE" and "range" in held["reason"]
    assert Decimal(str(held["row"]["value"])) == expected[date(2026, 2, 1)]
    applied = [e["payload"] for e in world.events("rule.applied")]
    assert [(a["table"], a["checked"], a["failed"]) for a in applied] == [
        ("kpi.kpi_order_value__v1_0_0", 2, 1)
    ]
    fired = world.events("alert.fired")[-1]
    alert = {**fired, **fired["payload"]}
    assert alert["kind"] == "data_quality" and alert["tenant_id"] == world.tenants["acme"]
    summary = world.scalar(sa.select(incidents.c.summary).where(incidents.c.id == alert["incident_id"]))
    assert "KPI-ORDER-VALUE-PLAUSIBLE" in summary

    release = f"{API}/tenants/{world.tenants['acme']}/quarantine/kpi_order_value/release"
    qid = held["quarantine_id"]
    edited = world.post(
        "acme:DE", release, {"layer": "kpi", "quarantine_ids": [qid], "fixes": {qid: {"value": 1}}}
    )
    assert edited.status_code == 422 and "false positives" in edited.json()["detail"]
    assert _values(world) == {date(2026, 1, 1): expected[date(2026, 1, 1)]}  # nothing moved

    released = _ok(
        world.post("acme:DE", release, {"layer": "kpi", "quarantine_ids": [qid], "false_positive": True})
    )
    assert (released["table"], released["released"]) == ("kpi.kpi_order_value__v1_0_0", 1)
    assert _values(world) == expected and _quarantine(world) == []
    assert world.events("quarantine.released")[-1]["payload"]["layer"] == "kpi"

    # the next runs compute February again: released, it stays in the KPI, with no new alert
    alerts = len(world.events("alert.fired"))
    _ok(_run(world, "full"), 201)
    _land(world, LATE)
    _ok(_run(world), 201)
    assert _values(world) == _monthly(FIRST + LATE) and _quarantine(world) == []
    assert world.events("rule.applied")[-1]["payload"]["waived"] == 1
    assert len(world.events("alert.fired")) == alerts


# Incremental runs: a KPI with rules is recomputed whole and checked again ------------------------
def test_an_incremental_run_rechecks_every_period_of_a_kpi_with_rules(shop):
    world = shop
    _rule(world, PLAUSIBLE)
    _ok(_run(world, "full"), 201)
    _land(world, LATE)  # January grows to 220.50, March arrives with 45.75

    gdp, kpi = _ok(_run(world), 201)["runs"]
    assert (gdp["mode"], gdp["delta_rows"]) == ("incremental", 2)
    assert kpi["mode"] == "incremental" and "data-quality rules" in kpi["note"]
    expected = _monthly(FIRST + LATE)
    assert _values(world) == {p: v for p, v in expected.items() if v <= 300}
    assert [Decimal(str(r["row"]["value"])) for r in _quarantine(world)] == [expected[date(2026, 2, 1)]]


# Given a block rule on a KPI, when it fails, then the run stops and nothing is published --------
def test_a_failing_block_rule_on_a_kpi_stops_the_run_with_nothing_published(shop):
    world = shop
    _ok(_run(world, "full"), 201)
    before = _values(world)
    _rule(world, PLAUSIBLE | {"rule_id": "KPI-ORDER-VALUE-CAP", "on_fail": "block"})
    _land(world, LATE)

    blocked = _run(world)
    assert blocked.status_code == 409, blocked.text
    assert (
        "KPI-ORDER-VALUE-CAP" in blocked.json()["detail"]
        and "nothing was published" in blocked.json()["detail"]
    )
    assert _values(world) == before  # neither the KPI nor the GDP rows under it moved
    engine = DuckDBEngine(world.keel.dataplanes.database_path(world.tenants["acme"]))
    (count,) = engine.rows('SELECT count(*) FROM gdp."order"')[0]
    assert count == len(FIRST)
    (applied,) = [e["payload"] for e in world.events("rule.applied")]
    assert (applied["rule_id"], applied["blocked"]) == ("KPI-ORDER-VALUE-CAP", True)


def test_a_kpi_rule_on_a_column_the_kpi_does_not_have_is_refused_by_name(shop):
    world = shop
    _rule(world, PLAUSIBLE | {"rule_id": "KPI-ORDER-VALUE-REGION", "field": "region"})

    refused = _run(world, "full")
    assert refused.status_code == 422, refused.text
    assert "KPI-ORDER-VALUE-REGION" in refused.text and "region" in refused.text


def test_a_table_level_alert_rule_on_a_kpi_judges_all_its_periods_and_withholds_nothing(shop):
    world = shop
    _rule(world, PLAUSIBLE | {"rule_id": "KPI-ORDER-VALUE-MONTHS", "field": "period", "check": "row_count",
                              "params": {"min": 3}, "on_fail": "alert"})  # fmt: skip
    _ok(_run(world, "full"), 201)

    assert _values(world) == _monthly(FIRST)  # two months: the rule fails, the KPI is whole
    (applied,) = [e["payload"] for e in world.events("rule.applied")]
    assert (applied["level"], applied["failed"], applied["observed"]) == ("table", 1, "2")
    _land(world, LATE)
    _ok(_run(world), 201)
    applied = world.events("rule.applied")[-1]["payload"]
    assert (applied["failed"], applied["observed"]) == (0, "3")
