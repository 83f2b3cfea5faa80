"""Story 00b: connector deployment and maintenance, through the REST API.

Deploy from a template (PA only), endpoint and credentials from the tenant's Data
Engineer only, secret storage and scope checked by the Security Admin, preflight,
ACTIVE; upgrades and configuration changes are versioned and evidenced; bad
credentials fail preflight and are logged; an unreachable source raises an alert.
Sources are real: the sample CRM on loopback HTTP and the sample ERP in SQLite.
"""

from __future__ import annotations

import logging
import socket

import pytest
import sqlalchemy as sa
from tests.support_onboarding import (
    active_connector,
    api,
    configure,
    crm_config,
    deploy,
    step,
    write_erp,
)

from keel.samples.crm import serve_crm
from keel.store.tables import incidents, receipts, secrets


@pytest.fixture(scope="module")
def crm():
    with serve_crm() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Given template and valid credentials, when deployed, then preflight passes, ACTIVE --------
def test_template_and_valid_credentials_give_an_active_connector_with_its_receipt(world, crm):
    tenant = world.tenants["acme"]
    templates = world.get("acme:DE", "/api/v1/connector-templates").json()["items"]
    assert {"files", "sql", "http-json", "erp-sql", "crm-http"} <= {t["name"] for t in templates}

    done = active_connector(world, "acme", "crm-http", "CRM", crm_config(crm))

    assert done["status"] == "ACTIVE" and done["validated"] is True
    assert done["validated_by"] == world.actors["SA"].user_id
    assert done["config"]["auth"] == {"type": "bearer", "token": "***"}
    assert done["credentials"] == ["auth.token"]
    body = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "connector.activation"))[0].body
    assert body["connector"] == "CRM" and body["status"] == "ACTIVE" and body["validated"] is True
    assert body["validated_by"] == world.actors["SA"].user_id and body["timestamp"]
    types = [
        e["type"]
        for e in world.events()
        if e.get("tenant_id") == tenant and e["type"].startswith("connector.")
    ]
    assert types == [
        "connector.deployed",
        "connector.configured",
        "connector.validated",
        "connector.validated",
        "connector.activated",
    ]
    # The credential went to the encrypted store, never in clear: not in the row, not in the ledger.
    stored = world.rows(sa.select(secrets).where(secrets.c.tenant_id == tenant))
    assert [r.name for r in stored] == [f"connectors/{done['connector_id']}/auth.token"]
    assert crm.api_key.encode() not in stored[0].ciphertext
    assert crm.api_key not in str(world.events())


# Given bad credentials, when preflight runs, then fail, log ---------------------------------
def test_bad_credentials_fail_preflight_and_are_logged_without_an_alert(world, crm, caplog):
    connector = deploy(world, "acme", "crm-http", "CRM")
    cid = connector["connector_id"]
    assert configure(world, "acme", cid, crm_config(crm, token="wrong-key")).status_code == 200
    step(world, "SA", "acme", f"/connectors/{cid}/secret-validation")

    with caplog.at_level(logging.WARNING, logger="keel.onboarding"):
        done = step(world, "PA", "acme", f"/connectors/{cid}/preflight")

    assert done["status"] == "FAILED"
    assert done["last_error"]["failure"] == "auth"
    assert "401" in done["report"]["message"] or "credential" in done["report"]["message"].lower()
    assert any("preflight failed (auth)" in r.getMessage() for r in caplog.records)
    assert [e["payload"]["failure"] for e in world.events("connector.preflight.failed")] == ["auth"]
    assert world.rows(sa.select(incidents)) == []  # a tenant's typo pages nobody
    assert "wrong-key" not in caplog.text and "wrong-key" not in str(done)

    # Fixed credentials: a new configuration version, checked again, then ACTIVE.
    assert configure(world, "acme", cid, crm_config(crm)).status_code == 200
    step(world, "SA", "acme", f"/connectors/{cid}/secret-validation")
    assert step(world, "PA", "acme", f"/connectors/{cid}/preflight")["status"] == "ACTIVE"


def test_an_unreachable_source_fails_preflight_and_raises_an_alert(world):
    cid = deploy(world, "acme", "http-json", "Gone")["connector_id"]
    config = {"base_url": f"http://127.0.0.1:{_closed_port()}", "streams": [{"name": "x", "path": "/x"}]}
    assert configure(world, "acme", cid, config).status_code == 200
    step(world, "SA", "acme", f"/connectors/{cid}/secret-validation")

    done = step(world, "PA", "acme", f"/connectors/{cid}/preflight")

    assert done["status"] == "FAILED" and done["last_error"]["failure"] == "unreachable"
    [incident] = world.rows(sa.select(incidents))
    assert incident.kind == "connector_unreachable" and incident.tenant_id == world.tenants["acme"]
    assert [e["payload"]["incident_id"] for e in world.events("alert.fired")] == [incident.id]


# Deploy from a template (PA only); credentials and endpoint from DE only --------------------
@pytest.mark.parametrize("who", ["acme:DE", "acme:TA", "SA", "SRE", "PO"])
def test_only_the_platform_admin_deploys_connectors(world, who):
    answer = world.post(
        who, f"{api(world.tenants['acme'])}/connectors", json={"template": "sql", "name": "X"}
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["action"] == "connector:Deploy"


@pytest.mark.parametrize("who", ["PA", "SA", "globex:DE", "acme:AN", "acme:BO"])
def test_only_the_tenants_data_engineer_or_admin_supplies_endpoint_and_credentials(world, tmp_path, who):
    cid = deploy(world, "acme", "erp-sql", "ERP")["connector_id"]
    url, _ = write_erp(tmp_path)
    answer = world.put(
        who, f"{api(world.tenants['acme'])}/connectors/{cid}/configuration", {"config": {"url": url}}
    )
    assert answer.status_code in (403, 404), answer.text
    assert (
        world.get("acme:DE", f"{api(world.tenants['acme'])}/connectors/{cid}").json()["status"] == "DEPLOYED"
    )


def test_the_connector_is_not_active_until_the_security_admin_validated_its_secrets(world, crm):
    cid = deploy(world, "acme", "crm-http", "CRM")["connector_id"]
    configure(world, "acme", cid, crm_config(crm))

    assert step(world, "PA", "acme", f"/connectors/{cid}/preflight")["status"] == "CONFIGURED"
    assert step(world, "SA", "acme", f"/connectors/{cid}/secret-validation")["status"] == "ACTIVE"


def test_the_security_admin_rejects_a_credential_stored_outside_the_connectors_scope(world, crm):
    cid = deploy(world, "acme", "crm-http", "CRM")["connector_id"]
    configure(world, "acme", cid, crm_config(crm))
    with world.keel.engine.begin() as conn:  # a credential that some other step wrote elsewhere
        from keel.store.tables import connectors

        conn.execute(
            connectors.update()
            .where(connectors.c.id == cid)
            .values(secret_refs={"auth.token": "shared/crm-key"})
        )

    done = step(world, "SA", "acme", f"/connectors/{cid}/secret-validation")

    assert done["status"] == "FAILED"
    assert done["secret_check"]["problems"] == [
        "credential 'auth.token' is stored outside this connector's scope"
    ]


# Apply upgrades and configuration fixes: versioned, evidenced --------------------------------
def test_a_configuration_change_is_a_new_version_that_needs_its_checks_again(world, crm):
    done = active_connector(world, "acme", "crm-http", "CRM", crm_config(crm))
    cid = done["connector_id"]
    config = {**done["config"], "timeout_s": 20}  # the stored token comes back as '***' and is kept

    changed = configure(world, "acme", cid, config).json()

    assert changed["status"] == "CONFIGURED" and changed["config_version"] == 2
    [updated] = world.events("connector.updated")
    assert updated["payload"]["config_version"] == 2 and updated["payload"]["credentials_changed"] == []
    versions = world.get("acme:DE", f"{api(world.tenants['acme'])}/connectors/{cid}/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    step(world, "SA", "acme", f"/connectors/{cid}/secret-validation")
    assert step(world, "PA", "acme", f"/connectors/{cid}/preflight")["status"] == "ACTIVE"


def test_an_upgrade_moves_the_connector_to_a_new_template_version(world, crm):
    published = world.post(
        "PA",
        "/api/v1/connector-templates",
        json={"name": "crm-http", "version": "9.0.0", "connector": "http", "description": "CRM, slower",
              "defaults": {"timeout_s": 30}},
    )  # fmt: skip
    assert published.status_code == 201, published.text
    cid = active_connector(world, "acme", "crm-http@" + _oldest(world, "crm-http"), "CRM", crm_config(crm))[
        "connector_id"
    ]

    upgraded = step(world, "PA", "acme", f"/connectors/{cid}/upgrade", {"template": "crm-http@9.0.0"})

    assert upgraded["template_id"] == published.json()["template_id"]
    assert upgraded["config"]["timeout_s"] == 30 and upgraded["status"] == "CONFIGURED"
    assert world.events("connector.updated")[-1]["payload"]["template"] == "crm-http@9.0.0"


def test_a_template_version_is_never_published_twice_and_presets_hold_no_credentials(world):
    body = {"name": "crm-http", "version": _oldest(world, "crm-http"), "connector": "http"}
    assert world.post("PA", "/api/v1/connector-templates", json=body).status_code == 409
    secret = {"name": "pg", "version": "1.0.0", "connector": "sql", "defaults": {"password": "x"}}
    answer = world.post("PA", "/api/v1/connector-templates", json=secret)
    assert answer.status_code == 422 and answer.json()["field"] == "defaults.password"
    assert (
        world.post("acme:DE", "/api/v1/connector-templates", json={**body, "version": "8.0.0"}).status_code
        == 403
    )


# Bad input: a clear error naming the field, nothing stored -----------------------------------
def test_an_invalid_configuration_is_refused_naming_the_field_and_nothing_is_stored(world):
    cid = deploy(world, "acme", "crm-http", "CRM")["connector_id"]

    answer = configure(
        world, "acme", cid, {"base_url": "http://x", "auth": {"type": "bearer"}, "timeout_s": "5"}
    )

    assert answer.status_code == 422
    assert answer.json()["field"] in ("config.timeout_s", "config.auth.token")
    assert (
        world.get("acme:DE", f"{api(world.tenants['acme'])}/connectors/{cid}").json()["config_version"] == 0
    )
    assert world.rows(sa.select(secrets).where(secrets.c.tenant_id == world.tenants["acme"])) == []


def test_another_tenants_connector_is_not_found(world, crm):
    cid = deploy(world, "acme", "crm-http", "CRM")["connector_id"]
    answer = world.get("globex:DE", f"{api(world.tenants['globex'])}/connectors/{cid}")
    assert answer.status_code == 404


def _oldest(world, name: str) -> str:
    items = world.get("PA", "/api/v1/connector-templates").json()["items"]
    return min(
        (t["version"] for t in items if t["name"] == name), key=lambda v: tuple(map(int, v.split(".")))
    )
