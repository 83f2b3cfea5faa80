"""Story 06: KPI publishing through the REST API, on a tenant's real data plane.

A tenant runs RAW-SHOP → GDP-ORDER → KPI-ORDER-VALUE (the sum of order amounts per month,
visible to BO and AN). Raw rows are written straight into the tenant's DuckDB file (standing in
for ingestion); builds go through the real build route, which records the pipeline runs,
their lineage and data-quality outcomes that publishing checks. Values are compared with an
independent computation in plain Python over the same rows.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from decimal import Decimal

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract, write_raw

from keel.evidence.canonical import canonical_json
from keel.evidence.merkle import verify_inclusion
from keel.store.tables import (
    incidents,
    kpi_publications,
    lineage_events,
    metric_samples,
    pipeline_runs,
    receipts,
)

API = "/api/v1"
KPI_ID = "KPI-ORDER-VALUE"
ORDERS = [  # order_id, email, amount, placed_at, batch
    ("O-1", "a@x.test", "120.50", "2026-01-05", "B-1"),
    ("O-2", "b@x.test", "80.00", "2026-01-20", "B-1"),
    ("O-3", "c@x.test", "310.25", "2026-02-02", "B-2"),
    ("O-4", "d@x.test", "45.75", "2026-02-14", "B-2"),
]
COLUMNS = (
    "order_id VARCHAR, customer_email VARCHAR, amount DECIMAL(38, 9), placed_at DATE, _keel_batch_id VARCHAR"
)


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _kpi_path(world, suffix: str = "", slug: str = "acme") -> str:
    return f"{API}/tenants/{world.tenants[slug]}/kpis/{KPI_ID}{suffix}"


def _build(world) -> dict:
    return _ok(
        world.post("acme:DE", f"{API}/tenants/{world.tenants['acme']}/builds", {"schema_id": "GDP-ORDER"})
    )


def _publish(world, body: dict | None = None, who: str = "PA", **kw):
    return world.post(who, _kpi_path(world, "/publication"), body or {}, **kw)


def _expected(rows, aggregate=sum) -> dict[str, float]:
    """Independent computation: the amounts of each month, aggregated."""
    months: dict[str, list[Decimal]] = defaultdict(list)
    for _, _, amount, placed_at, _ in rows:
        months[placed_at[:7] + "-01"].append(Decimal(amount))
    return {month: float(aggregate(values)) for month, values in months.items()}


def _history(world, who: str = "acme:BO") -> dict[str, float]:
    shown = _ok(world.get(who, _kpi_path(world)))
    return {r["period"]: r["value"] for r in shown["history"]}


def _outcomes(world, name: str) -> list[bool]:
    rows = world.rows(sa.select(metric_samples.c.value).where(metric_samples.c.name == name))
    return [bool(r.value) for r in rows]


@pytest.fixture
def shop(world):
    """The contracts published, acme's Raw rows written; nothing built yet."""
    publish_contract(world, raw_contract())
    gdp = gdp_contract()
    gdp["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, gdp)
    publish_contract(world, kpi_contract())
    write_raw(world, "acme", "shop__orders", COLUMNS, ORDERS)
    return world


@pytest.fixture
def built(shop):
    _build(shop)
    return shop


# Given validation, when published, then visible, logged ----------------------------------------
def test_a_built_kpi_is_invisible_until_published_then_shown_with_its_evidence_and_logged(built):
    world = built
    assert KPI_ID not in {
        k["kpi_id"] for k in _ok(world.get("acme:BO", _kpi_path(world)[: -len(KPI_ID) - 1]))["items"]
    }
    assert world.get("acme:BO", _kpi_path(world)).status_code == 404

    published = _ok(_publish(world), 201)

    assert (published["kpi_id"], published["version"], published["status"]) == (KPI_ID, "1.0.0", "PUBLISHED")
    assert published["published_by"] == world.actors["PA"].user_id
    listed = _ok(world.get("acme:BO", f"{API}/tenants/{world.tenants['acme']}/kpis"))["items"]
    (item,) = [k for k in listed if k["kpi_id"] == KPI_ID]
    assert (item["publication_id"], item["version"]) == (published["publication_id"], "1.0.0")
    assert _history(world) == pytest.approx(_expected(ORDERS))
    # The evidence it was published on: the build in pipeline_runs, its lineage, its DQ outcome.
    evidence = published["evidence"]
    (run,) = world.rows(sa.select(pipeline_runs).where(pipeline_runs.c.id == evidence["pipeline_run_id"]))
    assert (run.layer, run.version, run.table_name, run.error) == (
        "kpi",
        "1.0.0",
        "kpi.kpi_order_value__v1_0_0",
        None,
    )
    assert evidence["build_table"] == run.table_name
    lineage = world.rows(
        sa.select(lineage_events).where(lineage_events.c.id.in_(evidence["lineage_record_ids"]))
    )
    assert sorted(r.event_type for r in lineage) == ["COMPLETE", "START"]
    assert {(r.table_name, r.contract) for r in lineage} == {(run.table_name, run.contract)}
    (gdp_input,) = evidence["dq_outcome"]["inputs"]
    assert evidence["dq_outcome"]["status"] == "passed"
    assert (gdp_input["table"], gdp_input["blocked"]) == ("gdp.order__v1_0_0", False)
    # Logged: kpi.published naming its receipt, counted as a successful publication.
    (event,) = world.events("kpi.published")
    assert event["actor_id"] == world.actors["PA"].user_id and event["tenant_id"] == world.tenants["acme"]
    assert event["payload"]["receipt_id"] == published["receipt_id"]
    assert event["payload"]["pipeline_run_id"] == run.id
    assert _outcomes(world, "kpi_publish_outcome") == [True]
    history = _ok(world.get("CO", _kpi_path(world, "/publications")))  # CO checks the evidence
    assert [(p["publication_id"], p["status"]) for p in history["items"]] == [
        (published["publication_id"], "PUBLISHED")
    ]


def test_the_publication_receipt_is_in_the_signed_ledger_and_matches_its_event(built):
    world = built
    published = _ok(_publish(world), 201)

    (receipt,) = world.rows(sa.select(receipts).where(receipts.c.id == published["receipt_id"]))
    assert receipt.kind == "kpi.publication" and receipt.tenant_id == world.tenants["acme"]
    assert {k: receipt.body[k] for k in ("kpi_id", "version", "status", "by")} == {
        "kpi_id": KPI_ID,
        "version": "1.0.0",
        "status": "published",
        "by": world.actors["PA"].user_id,
    }
    (event,) = world.events("kpi.published")
    assert event["payload"]["receipt_sha256"] == hashlib.sha256(canonical_json(receipt.body)).hexdigest()
    proof = published["proof"]
    assert proof["leafIdx"] == published["ledger_seq"]
    assert verify_inclusion(
        proof["leafIdx"],
        proof["treeSize"],
        base64.b64decode(proof["leafHash"]),
        [base64.b64decode(p) for p in proof["proof"]],
        base64.b64decode(proof["root"]),
    )


# When evidence is missing, then blocked, logged -------------------------------------------------
def _assert_blocked(world, answer, missing: list[str]) -> dict:
    problem = _ok(answer, 409)
    assert problem["code"] == "publication_blocked"
    assert [m["evidence"] for m in problem["missing"]] == missing
    (event,) = world.events("kpi.publish.blocked")
    assert (
        event["payload"]["missing"] == missing and event["payload"]["incident_id"] == problem["incident_id"]
    )
    (incident,) = world.rows(sa.select(incidents).where(incidents.c.id == problem["incident_id"]))
    assert (incident.kind, incident.status, incident.tenant_id) == (
        "kpi_publication_blocked",
        "OPEN",
        world.tenants["acme"],
    )
    alerts = [e for e in world.events("alert.fired") if e["payload"]["incident_id"] == problem["incident_id"]]
    assert len(alerts) == 1
    assert world.events("kpi.published") == []
    assert world.rows(sa.select(kpi_publications)) == []
    assert world.get("acme:BO", _kpi_path(world)).status_code == 404  # publish error -> invisible
    assert _outcomes(world, "kpi_publish_outcome") == [False]
    return problem


def test_publishing_without_a_build_is_blocked_and_logged(shop):
    problem = _assert_blocked(shop, _publish(shop), ["build"])
    assert "no successful build of KPI-ORDER-VALUE@1.0.0" in problem["detail"]


def test_publishing_a_build_without_lineage_records_is_blocked_and_logged(built):
    world = built
    with world.keel.engine.begin() as conn:
        conn.execute(lineage_events.delete().where(lineage_events.c.layer == "kpi"))
    problem = _assert_blocked(world, _publish(world), ["lineage"])
    assert "has no COMPLETE lineage record" in problem["detail"]


def test_publishing_over_data_a_quality_rule_blocked_is_blocked_and_logged(built):
    world = built
    rule = {"rule_id": "GDP-ORDER-AMT-NOT-NULL", "layer": "gdp", "dataset": "order", "field": "amount",
            "check": "not_null", "on_fail": "block"}  # fmt: skip
    _ok(world.post("SS", f"{API}/quality-rules", rule), 201)
    _ok(world.post("PA", f"{API}/quality-rules/GDP-ORDER-AMT-NOT-NULL/enable"))
    write_raw(world, "acme", "shop__orders", COLUMNS, [("O-9", "z@x.test", None, "2026-02-28", "B-9")])
    refused = world.post(
        "acme:DE", f"{API}/tenants/{world.tenants['acme']}/builds", {"schema_id": "GDP-ORDER"}
    )
    assert refused.status_code == 409, refused.text

    problem = _assert_blocked(world, _publish(world), ["dq_blocked"])
    assert "GDP-ORDER-AMT-NOT-NULL" in problem["detail"] and "gdp.order__v1_0_0" in problem["detail"]


# Reversible: unpublish, rollback --------------------------------------------------------------
def test_unpublishing_makes_the_kpi_invisible_again_and_is_logged(built):
    world = built
    published = _ok(_publish(world), 201)

    withdrawn = _ok(world.delete("PA", _kpi_path(world, "/publication")))

    assert (withdrawn["publication_id"], withdrawn["status"]) == (published["publication_id"], "UNPUBLISHED")
    assert withdrawn["ended_by"] == world.actors["PA"].user_id
    assert world.get("acme:BO", _kpi_path(world)).status_code == 404
    listed = _ok(world.get("acme:AN", f"{API}/tenants/{world.tenants['acme']}/kpis"))["items"]
    assert KPI_ID not in {k["kpi_id"] for k in listed}
    (event,) = world.events("kpi.unpublished")
    assert event["payload"]["receipt_id"] == withdrawn["ended_receipt_id"]
    assert world.delete("PA", _kpi_path(world, "/publication")).status_code == 404
    assert _ok(_publish(world), 201)["status"] == "PUBLISHED"  # and it can be published again
    assert _history(world) == pytest.approx(_expected(ORDERS))


def test_rollback_returns_to_the_previous_definition_and_its_values(built):
    world = built
    first = _ok(_publish(world), 201)
    v2 = kpi_contract(version="2.0.0", formula="MAX(amount)")
    v2["kpi"]["thresholds"] = [{"name": "high", "op": ">", "limit": 300, "severity": "critical"}]
    publish_contract(world, v2)
    _build(world)  # builds KPI 2.0.0 next to 1.0.0
    # A new KPI contract version is not shown before it is published.
    assert _history(world) == pytest.approx(_expected(ORDERS))

    second = _ok(_publish(world, {"version": "2.0.0"}), 201)
    assert second["previous_id"] == first["publication_id"]
    shown = _ok(world.get("acme:BO", _kpi_path(world)))
    assert shown["version"] == "2.0.0" and [t["name"] for t in shown["thresholds"]] == ["high"]
    assert _history(world) == pytest.approx(_expected(ORDERS, max))

    back = _ok(world.post("PA", _kpi_path(world, "/publication/rollback")), 200)

    assert (back["version"], back["status"], back["rolled_back_from"]) == (
        "1.0.0",
        "PUBLISHED",
        second["publication_id"],
    )
    shown = _ok(world.get("acme:BO", _kpi_path(world)))
    assert shown["version"] == "1.0.0" and [t["name"] for t in shown["thresholds"]] == ["low"]
    assert _history(world) == pytest.approx(_expected(ORDERS))
    statuses = [
        (p["version"], p["status"]) for p in _ok(world.get("AU", _kpi_path(world, "/publications")))["items"]
    ]
    assert statuses == [("1.0.0", "PUBLISHED"), ("2.0.0", "ROLLED_BACK"), ("1.0.0", "SUPERSEDED")]
    (rolled,) = world.events("kpi.publication.rolled_back")
    assert rolled["payload"]["back_to"] == first["publication_id"]
    again = world.post("PA", _kpi_path(world, "/publication/rollback"))
    assert again.status_code == 409 and "no previous publication" in again.json()["detail"]


def test_rollback_needs_the_previous_versions_build(built):
    world = built
    _ok(_publish(world), 201)
    publish_contract(world, kpi_contract(version="2.0.0", formula="MAX(amount)"))
    _build(world)
    _ok(_publish(world, {"version": "2.0.0"}), 201)
    with duckdb.connect(str(world.keel.dataplanes.database_path(world.tenants["acme"]))) as con:
        con.execute('DROP TABLE kpi."kpi_order_value__v1_0_0"')

    refused = world.post("PA", _kpi_path(world, "/publication/rollback"))

    problem = _ok(refused, 409)
    assert [m["evidence"] for m in problem["missing"]] == ["build_table"]
    assert _ok(world.get("acme:BO", _kpi_path(world)))["version"] == "2.0.0"  # nothing changed
    assert [e["payload"]["step"] for e in world.events("kpi.publish.blocked")] == ["rollback"]


def test_a_rebuild_of_the_published_version_updates_its_values_without_republishing(built):
    world = built
    published = _ok(_publish(world), 201)
    more = [("O-5", "e@x.test", "99.99", "2026-03-03", "B-3")]
    write_raw(world, "acme", "shop__orders", COLUMNS, more)

    _build(world)

    shown = _ok(world.get("acme:AN", _kpi_path(world)))
    assert (shown["publication_id"], shown["version"]) == (published["publication_id"], "1.0.0")
    assert _history(world, "acme:AN") == pytest.approx(_expected(ORDERS + more))
    assert [
        p["publication_id"] for p in _ok(world.get("PA", _kpi_path(world, "/publications")))["items"]
    ] == [published["publication_id"]]


# Role visibility --------------------------------------------------------------------------------
def test_a_published_kpi_is_shown_only_to_the_personas_in_its_visible_to(shop):
    world = shop
    # KPI-ORDER-VALUE is visible to BO and AN; a second KPI only to BO.
    only_bo = kpi_contract("KPI-ORDER-MAX", formula="MAX(amount)")
    only_bo["kpi"]["visibleTo"] = ["BO"]
    publish_contract(world, only_bo)
    _build(world)
    for kpi_id in (KPI_ID, "KPI-ORDER-MAX"):
        _ok(world.post("PA", f"{API}/tenants/{world.tenants['acme']}/kpis/{kpi_id}/publication"), 201)
    kpis = f"{API}/tenants/{world.tenants['acme']}/kpis"

    seen = {
        who: {k["kpi_id"] for k in _ok(world.get(who, kpis))["items"]}
        for who in ("acme:BO", "acme:AN", "acme:DE")
    }

    assert seen == {"acme:BO": {KPI_ID, "KPI-ORDER-MAX"}, "acme:AN": {KPI_ID}, "acme:DE": set()}
    assert world.get("acme:AN", f"{kpis}/KPI-ORDER-MAX").status_code == 404
    opened = world.rows(sa.select(incidents).where(incidents.c.kind == "kpi_visibility_violation"))
    assert [(r.tenant_id, r.details["kpi_id"]) for r in opened] == [(world.tenants["acme"], "KPI-ORDER-MAX")]
    assert _ok(world.get("acme:BO", f"{kpis}/KPI-ORDER-MAX"))["history"][0]["value"] == pytest.approx(
        _expected(ORDERS, max)["2026-01-01"]
    )
    # kpi_consumption_rate: the served reads and the one refused
    assert _outcomes(world, "kpi_consumption_outcome").count(False) == 1


# Authorization, isolation, bad input, idempotency -------------------------------------------------
def test_only_the_platform_admin_publishes_unpublishes_and_rolls_back(built):
    world = built
    for who in ("SS", "KA", "SRE", "CO", "PO", "acme:TA", "acme:BO", "acme:DE", "acme:TP"):
        refused = _publish(world, who=who)
        assert refused.status_code == 403, (who, refused.text)
        assert refused.json()["action"] == "kpi:Publish"
    _ok(_publish(world), 201)
    for who in ("SS", "acme:TA", "acme:BO"):
        assert world.delete(who, _kpi_path(world, "/publication")).status_code == 403
        assert world.post(who, _kpi_path(world, "/publication/rollback")).status_code == 403
    assert world.rows(sa.select(kpi_publications.c.status)) == [("PUBLISHED",)]


def test_another_tenants_people_neither_publish_nor_read_its_publications(built):
    world = built
    _ok(_publish(world), 201)
    for who in ("globex:TA", "globex:BO", "globex:AN"):
        assert world.get(who, _kpi_path(world, "/publications")).status_code == 403
        assert _publish(world, who=who).status_code == 403
    # globex has no publication of its own: its people see nothing of acme's
    globex_list = _ok(world.get("globex:BO", f"{API}/tenants/{world.tenants['globex']}/kpis"))["items"]
    assert globex_list == []
    assert _ok(world.get("globex:AN", _kpi_path(world, "/publications", slug="globex")))["items"] == []


def test_a_post_with_an_idempotency_key_publishes_once(built):
    world = built
    first = _publish(world, headers={"Idempotency-Key": "publish-once"})
    replay = _publish(world, headers={"Idempotency-Key": "publish-once"})

    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["publication_id"] == first.json()["publication_id"]
    assert len(world.events("kpi.published")) == 1
    again = _publish(world)  # the same version once more, without a key
    assert again.status_code == 409 and again.json()["reason"] == "already_published"
    assert len(world.rows(sa.select(kpi_publications))) == 1


def test_a_version_that_is_no_version_or_no_kpi_is_refused_naming_it(built):
    world = built
    bad = _publish(world, {"version": "one"})
    assert bad.status_code == 422 and bad.json()["field"] == "version"
    missing = _publish(world, {"version": "9.9.9"})
    assert missing.status_code == 404 and "KPI-ORDER-VALUE@9.9.9" in missing.json()["detail"]
    unknown = world.post("PA", f"{API}/tenants/{world.tenants['acme']}/kpis/GDP-ORDER/publication", {})
    assert unknown.status_code == 404
    extra = _publish(world, {"versio": "1.0.0"})
    assert extra.status_code == 422 and extra.json()["field"] == "versio"
    assert world.rows(sa.select(kpi_publications)) == []
