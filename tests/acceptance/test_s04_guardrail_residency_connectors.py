"""Story 04 step 3 (enforce in ingest): a residency guardrail refuses a connector deployed to a
region the tenant's data may not flow to, through the API.

The refusal names the guardrail, is evidenced (``policy.enforced``) even though the request
fails, and nothing is deployed; a connector in the tenant's own region is deployed as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from tests.support_onboarding import api

from keel.store.tables import connectors

API = "/api/v1"
RES_EU = {"guardrail_id": "RES-EU-01", "kind": "residency", "allowed_regions": ["local", "eu-west-1"]}


def _enable(world, body) -> None:
    assert world.post("SA", f"{API}/guardrails", json=body).status_code == 201
    assert world.post("PA", f"{API}/guardrails/{body['guardrail_id']}/enable").status_code == 200


def _deploy(world, name: str, **extra):
    body = {"template": "sql", "name": name, **extra}
    return world.post("PA", f"{api(world.tenants['acme'])}/connectors", json=body)


def _stored(world) -> list[str]:
    rows = world.rows(sa.select(connectors.c.name).where(connectors.c.tenant_id == world.tenants["acme"]))
    return sorted(r.name for r in rows)


def test_a_connector_defaults_to_the_tenants_region_and_is_deployed(world):
    _enable(world, RES_EU)

    answer = _deploy(world, "ERP")

    assert answer.status_code == 201, answer.text
    assert answer.json()["region"] == "local"  # the tenants of the test world live in "local"
    assert world.events("connector.deployed")[-1]["payload"]["region"] == "local"
    assert world.events("policy.enforced") == []


def test_a_connector_in_a_region_outside_the_guardrail_is_refused_and_nothing_is_deployed(world):
    _enable(world, RES_EU)

    answer = _deploy(world, "ERP-US", region="us-east-1")

    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["code"] == "guardrail_breached" and problem["guardrail_id"] == "RES-EU-01"
    assert "us-east-1" in problem["detail"]
    (enforced,) = world.events("policy.enforced")
    assert enforced["tenant_id"] == world.tenants["acme"]
    assert enforced["payload"]["guardrail_id"] == "RES-EU-01"
    assert enforced["payload"]["outcome"] == "blocked"
    assert world.events("connector.deployed") == []
    assert _stored(world) == []


def test_an_allowed_region_other_than_the_tenants_declared_one_is_refused(world):
    _enable(world, RES_EU)

    answer = _deploy(world, "ERP-EU", region="eu-west-1")

    assert answer.status_code == 409, answer.text
    assert "declared region local" in answer.json()["detail"]
    assert _stored(world) == []


def test_without_a_residency_guardrail_any_region_is_recorded(world):
    answer = _deploy(world, "ERP-US", region="us-east-1")

    assert answer.status_code == 201, answer.text
    assert answer.json()["region"] == "us-east-1"
    assert _stored(world) == ["ERP-US"]


def test_a_malformed_region_is_refused_naming_the_field(world):
    answer = _deploy(world, "ERP", region="EU West")

    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "region"
    assert _stored(world) == []
