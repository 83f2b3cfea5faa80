"""Regressions from the review of issue 4: tenant contracts stay the tenant's, refusals tell
nothing, webhooks cannot be redirected or aimed inward, and a rollout stage is run once."""

from __future__ import annotations

import sqlalchemy as sa
from tests.support_contracts import BASE, gdp_contract, publish_contract, raw_contract, with_field, write_raw

from keel.contracts import consumers
from keel.store.tables import rollouts, tenant_contracts

API = "/api/v1"


def test_a_tenants_own_contracts_are_raw_contracts(world):
    answer = world.post("acme:DE", BASE, {"document": gdp_contract(), "tenant_id": world.tenants["acme"]})
    assert answer.status_code == 422 and answer.json()["field"] == "tenant_id"


def test_an_id_another_tenant_holds_is_refused_without_naming_the_tenant(world):
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    assert (
        world.post("acme:DE", BASE, {"document": raw_contract("RAW-PRIVATE"), "tenant_id": acme}).status_code
        == 201
    )
    for version in ("1.0.0", "2.0.0"):
        clash = world.post(
            "globex:DE", BASE, {"document": raw_contract("RAW-PRIVATE", version), "tenant_id": globex}
        )
        assert (
            clash.status_code == 409 and acme not in clash.text and "not available" in clash.json()["detail"]
        )


def test_a_tenants_own_contract_is_pinned_and_rolled_out_for_that_tenant_alone(world):
    acme = world.tenants["acme"]
    publish_contract(world, raw_contract("RAW-ACME-OWN"), author="acme:DE", tenant_id=acme)
    publish_contract(
        world,
        with_field(raw_contract("RAW-ACME-OWN", "1.1.0"), "note", "string"),
        author="acme:DE",
        tenant_id=acme,
    )
    pins = world.rows(
        sa.select(tenant_contracts.c.tenant_id).where(tenant_contracts.c.contract_id == "RAW-ACME-OWN")
    )
    assert [r.tenant_id for r in pins] == [acme]
    plan = {
        "schema_id": "RAW-ACME-OWN",
        "to_version": "1.1.0",
        "stages": [{"name": "all", "share": 1.0}],
        "rollback_on": [{"signal": "error_rate", "limit": 0.02}],
    }
    planned = world.post("PA", f"{API}/rollouts", plan)
    assert planned.status_code == 201, planned.text
    assert planned.json()["stages"][0]["tenants"] == [acme]
    rid = planned.json()["rollout_id"]
    assert world.get("globex:AN", f"{API}/rollouts/{rid}").status_code == 404
    assert rid not in {r["rollout_id"] for r in world.get("globex:AN", f"{API}/rollouts").json()["items"]}
    assert world.get("acme:AN", f"{API}/rollouts/{rid}").status_code == 200


def test_a_contracts_usage_shows_a_tenant_only_itself(world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    publish_contract(world, gdp_contract(version="1.1.0"))  # pins every tenant to 1.0.0
    seen = world.get("globex:AN", f"{BASE}/GDP-ORDER").json()["usage"]["tenants"]
    assert seen == [world.tenants["globex"]]
    assert len(world.get("PA", f"{BASE}/GDP-ORDER").json()["usage"]["tenants"]) == 2


def test_another_tenants_change_request_is_refused_like_a_missing_one(world):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    acme = world.tenants["acme"]
    body = {"schema_id": "GDP-ORDER", "change": "add x", "justification": "why"}
    change = world.post("acme:TA", f"{API}/tenants/{acme}/schema-changes", body).json()["change_id"]
    real = world.get("globex:TA", f"{API}/tenants/{acme}/schema-changes/{change}")
    missing = world.get("globex:TA", f"{API}/tenants/{acme}/schema-changes/SC-20260101-ZZZZZZZZ")
    assert real.status_code == missing.status_code
    assert real.json()["detail"] == missing.json()["detail"]


def test_a_tenants_consumer_cannot_redirect_a_provider_users_notices_to_its_webhook(world, monkeypatch):
    monkeypatch.setattr(world.keel.settings, "webhook_allow_private_networks", True)
    pa = world.actors["PA"].user_id
    body = {
        "kind": "dashboard",
        "name": "x",
        "depends_on": ["GDP-ORDER"],
        "recipients": [pa],
        "webhook_url": "http://127.0.0.1:9/steal",
    }
    assert world.post("acme:TA", f"{API}/contract-consumers", body).status_code == 201
    with world.keel.engine.connect() as conn:
        assert pa not in consumers._webhooks(world.keel, conn)


def test_a_webhook_aimed_at_keels_own_networks_is_refused(world):
    for url in (
        "http://127.0.0.1:8000/x",
        "http://10.0.0.7/x",
        "http://169.254.169.254/latest",
        "http://localhost/x",
    ):
        body = {"kind": "dashboard", "name": "x", "depends_on": ["GDP-ORDER"], "webhook_url": url}
        answer = world.post("acme:TA", f"{API}/contract-consumers", body)
        assert answer.status_code == 422 and answer.json()["field"] == "webhook_url", url


def test_a_stage_being_run_is_not_run_again_by_a_second_caller(world):
    publish_contract(
        world, raw_contract(fields={"order_id": "string", "amount": "decimal", "placed_at": "date"})
    )
    publish_contract(world, gdp_contract())
    for slug in ("acme", "globex"):
        write_raw(
            world,
            slug,
            "shop__orders",
            "order_id VARCHAR, amount DECIMAL(38, 9), placed_at DATE",
            [("O-1", "1.00", "2026-01-01")],
        )
        assert (
            world.post(
                f"{slug}:DE", f"{API}/tenants/{world.tenants[slug]}/builds", {"schema_id": "GDP-ORDER"}
            ).status_code
            == 200
        )
    publish_contract(world, gdp_contract(version="1.1.0"))
    plan = {
        "schema_id": "GDP-ORDER",
        "to_version": "1.1.0",
        "stages": [{"name": "canary", "tenants": [world.tenants["acme"]]}, {"name": "rest", "share": 1.0}],
        "rollback_on": [{"signal": "error_rate", "limit": 0.02}],
    }
    rid = world.post("PA", f"{API}/rollouts", plan).json()["rollout_id"]
    assert world.post("SS2", f"{API}/rollouts/{rid}/readiness").status_code == 200
    assert world.post("PA", f"{API}/rollouts/{rid}/start").json()["status"] == "RUNNING"
    with world.keel.engine.begin() as conn:  # another PA's expand holds the next stage right now
        conn.execute(rollouts.update().where(rollouts.c.id == rid).values(status="ADVANCING"))
    second = world.post("PA", f"{API}/rollouts/{rid}/expand")
    assert second.status_code == 409
    assert [s["name"] for s in world.get("PA", f"{API}/rollouts/{rid}").json()["measurements"]] == ["canary"]
