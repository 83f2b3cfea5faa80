"""Story 02: data source onboarding, through the REST API.

The Data Engineer asks, the Platform Admin registers the source on a connector,
the Security Admin checks its credentials and scope, preflight reads test records
(keeping none), and the source is ACTIVE with its receipt. Bad credentials fail and
are logged; an unreachable source raises an alert; a compliance refusal blocks it.
The source is the sample ERP in a real SQLite file.
"""

from __future__ import annotations

import duckdb
import sqlalchemy as sa
from tests.support_onboarding import (
    ERP_STREAMS,
    FlakyGateway,
    active_connector,
    api,
    configure,
    erp_config,
    step,
    write_erp,
)

from keel.samples.crm import serve_crm
from keel.store.tables import connectors, incidents, receipts


def _request(world, connector_id: str | None, name: str = "ERP", **extra) -> dict:
    body = {"name": name, "streams": ERP_STREAMS, "justification": "DSO needs invoices", **extra}
    if connector_id:
        body["connector_id"] = connector_id
    return step(world, "acme:DE", "acme", "/sources", body)


def _erp_connector(world, tmp_path) -> str:
    url, _ = write_erp(tmp_path)
    return active_connector(world, "acme", "erp-sql", "ERP", erp_config(url))["connector_id"]


# Given tenant and connector, when registered and SA-validated, then ACTIVE -------------------
def test_a_registered_and_validated_source_passes_preflight_and_is_active(world, tmp_path):
    cid = _erp_connector(world, tmp_path)
    sid = _request(world, None)["source_id"]

    assert (
        step(world, "PA", "acme", f"/sources/{sid}/registration", {"connector_id": cid})["status"]
        == "REGISTERED"
    )
    assert step(world, "SA", "acme", f"/sources/{sid}/validation")["status"] == "VALIDATED"
    done = step(world, "PA", "acme", f"/sources/{sid}/preflight")

    assert done["status"] == "ACTIVE"
    assert done["preflight"]["test_records"] == {"customers": 5, "invoices": 5, "payments": 5, "vendors": 4}
    [receipt] = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "source.onboarding"))
    body = receipt.body
    assert (body["source"], body["status"]) == ("ERP", "ACTIVE")
    assert body["onboarded_by"] == world.actors["PA"].user_id
    assert body["validated_by"] == world.actors["SA"].user_id and body["timestamp"]
    assert [e["type"] for e in world.events() if e["type"].startswith("source.")] == [
        "source.requested",
        "source.registered",
        "source.validated",
        "source.onboarded",
    ]
    # Test records are read, never kept: the tenant's Raw layer holds no table yet.

    with duckdb.connect(
        str(world.keel.dataplanes.database_path(world.tenants["acme"])), read_only=True
    ) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='raw'"
        ).fetchall()
    assert [t for t in tables if not t[0].startswith("_keel")] == []
    assert _metric(world, "onboarding_success_rate") == 1.0
    assert _metric(world, "connection_test_latency") > 0


# Given a tenant, when credentials are bad, then fail, log -----------------------------------
def test_bad_credentials_fail_the_security_admins_validation_and_are_logged(world, tmp_path, postgres_url):
    # PostgreSQL checks passwords (SQLite has none): a reader with the wrong password.
    connector = step(world, "PA", "acme", "/connectors", {"template": "sql", "name": "PG"})
    cid = connector["connector_id"]
    url = postgres_url.replace("postgresql+psycopg://postgres@", "postgresql+psycopg://keel_no_such_user@")
    assert configure(world, "acme", cid, {"url": url, "password": "wrong-password"}).status_code == 200
    # Mark the connector ACTIVE as it was before its password was rotated at the source.
    with world.keel.engine.begin() as conn:
        conn.execute(connectors.update().where(connectors.c.id == cid).values(status="ACTIVE"))
    sid = _request(world, cid, name="Ledger DB", streams=["x"])["source_id"]
    step(world, "PA", "acme", f"/sources/{sid}/registration")

    done = step(world, "SA", "acme", f"/sources/{sid}/validation")

    assert done["status"] == "FAILED" and done["last_error"]["failure"] == "auth"
    assert [e["payload"]["failure"] for e in world.events("source.validation.failed")] == ["auth"]
    assert "wrong-password" not in str(done) and "wrong-password" not in str(world.events())
    assert world.rows(sa.select(incidents)) == []


def test_an_unreachable_source_fails_preflight_with_an_alert(world):
    with serve_crm() as crm:
        gateway = FlakyGateway(crm)  # a real loopback hop that can go down
        try:
            config = {
                "base_url": gateway.url,
                "auth": {"type": "bearer", "token": crm.api_key},
                "max_retries": 0,
            }
            cid = active_connector(world, "acme", "crm-http", "CRM", config)["connector_id"]
            body = {"name": "CRM", "streams": ["accounts"], "justification": "pipeline", "connector_id": cid}
            sid = step(world, "acme:DE", "acme", "/sources", body)["source_id"]
            step(world, "PA", "acme", f"/sources/{sid}/registration")
            step(world, "SA", "acme", f"/sources/{sid}/validation")
            gateway.down()

            done = step(world, "PA", "acme", f"/sources/{sid}/preflight")
        finally:
            gateway.stop()

    assert done["status"] == "FAILED" and done["last_error"]["failure"] == "unreachable"
    [incident] = world.rows(sa.select(incidents))
    assert incident.kind == "connector_unreachable"
    assert [e["payload"]["incident_id"] for e in world.events("alert.fired")] == [incident.id]
    assert [e["payload"]["failure"] for e in world.events("source.preflight.failed")] == ["unreachable"]


def test_a_source_whose_database_went_away_fails_preflight_naming_why(world, tmp_path):
    cid = _erp_connector(world, tmp_path)
    sid = _request(world, cid)["source_id"]
    step(world, "PA", "acme", f"/sources/{sid}/registration")
    step(world, "SA", "acme", f"/sources/{sid}/validation")
    (tmp_path / "erp.db").rename(tmp_path / "moved.db")

    done = step(world, "PA", "acme", f"/sources/{sid}/preflight")

    assert done["status"] == "FAILED"
    assert done["last_error"]["failure"] == "config"  # its path no longer opens a database
    assert "unable to open database file" in done["last_error"]["message"]


def test_a_compliance_refusal_blocks_the_source(world, tmp_path):
    cid = _erp_connector(world, tmp_path)
    sid = _request(world, cid)["source_id"]
    step(world, "PA", "acme", f"/sources/{sid}/registration")

    done = step(world, "SA", "acme", f"/sources/{sid}/validation",
                {"compliant": False, "reason": "personal data leaves the EU"})  # fmt: skip

    assert done["status"] == "BLOCKED"
    assert world.post("PA", f"{api(world.tenants['acme'])}/sources/{sid}/preflight").status_code == 409
    assert [e["type"] for e in world.events("source.blocked")] == ["source.blocked"]


# Who does which step ----------------------------------------------------------------------------
def test_each_step_belongs_to_its_persona(world, tmp_path):
    cid = _erp_connector(world, tmp_path)
    base = api(world.tenants["acme"])
    assert (
        world.post(
            "PA", f"{base}/sources", json={"name": "X", "streams": ["a"], "justification": "j"}
        ).status_code
        == 403
    )
    sid = _request(world, cid)["source_id"]
    assert world.post("acme:DE", f"{base}/sources/{sid}/registration").status_code == 403
    step(world, "PA", "acme", f"/sources/{sid}/registration")
    assert world.post("PA", f"{base}/sources/{sid}/validation").status_code == 403
    assert world.post("acme:TA", f"{base}/sources/{sid}/validation").status_code == 403
    assert world.get("globex:DE", f"{base}/sources/{sid}").status_code == 403
    assert world.get("globex:DE", f"{api(world.tenants['globex'])}/sources/{sid}").status_code == 404


def test_steps_out_of_order_are_refused_naming_the_state(world, tmp_path):
    cid = _erp_connector(world, tmp_path)
    sid = _request(world, cid)["source_id"]
    answer = world.post("PA", f"{api(world.tenants['acme'])}/sources/{sid}/preflight")
    assert answer.status_code == 409 and "REQUESTED" in answer.json()["detail"]


def test_bad_requests_name_the_field_and_store_nothing(world, tmp_path):
    base = api(world.tenants["acme"])
    cases = [
        ({"name": "ERP", "streams": [], "justification": "j"}, "streams"),
        ({"name": "ERP", "streams": ["a", "a"], "justification": "j"}, "streams"),
        ({"name": "9lives", "streams": ["a"], "justification": "j"}, "name"),
        ({"name": "ERP", "streams": ["a"], "justification": "j", "expected_schemas": {"b": {"c": "string"}}},
         "expected_schemas.b"),
        ({"name": "ERP", "streams": ["a"], "justification": "j", "expected_schemas": {"a": {"c": "text"}}},
         "expected_schemas.a.c"),
        ({"name": "ERP", "streams": ["a"], "justification": "j", "connector_id": "CON-nope"}, None),
    ]  # fmt: skip
    for body, field in cases:
        answer = world.post("acme:DE", f"{base}/sources", json=body)
        assert answer.status_code in (404, 422), (body, answer.text)
        if field:
            assert answer.json()["field"] == field, answer.text
    assert world.get("acme:DE", f"{base}/sources").json()["items"] == []


def _metric(world, name: str) -> float:
    import re

    found = re.search(rf"^keel_{name} (\S+)$", world.client.get("/metrics").text, re.M)
    assert found, f"metric {name} is not exposed"
    return float(found.group(1))


def test_a_failed_validation_withdraws_the_earlier_one_and_preflight_waits_for_a_passing_one(world):
    with serve_crm() as crm:
        gateway = FlakyGateway(crm)
        try:
            auth = {"type": "bearer", "token": crm.api_key}
            config = {"base_url": gateway.url, "auth": auth, "max_retries": 0}
            cid = active_connector(world, "acme", "crm-http", "CRM", config)["connector_id"]
            body = {"name": "CRM", "streams": ["accounts"], "justification": "pipeline", "connector_id": cid}
            sid = step(world, "acme:DE", "acme", "/sources", body)["source_id"]
            step(world, "PA", "acme", f"/sources/{sid}/registration")
            gateway.down()
            failed = step(world, "SA", "acme", f"/sources/{sid}/validation")
            gateway.up()

            refused = world.post("PA", f"{api(world.tenants['acme'])}/sources/{sid}/preflight")
            again = step(world, "SA", "acme", f"/sources/{sid}/validation")
        finally:
            gateway.stop()

    assert failed["status"] == "FAILED" and failed["validated_by"] is None
    assert refused.status_code == 409 and "Security Admin" in refused.json()["detail"]
    assert again["status"] == "VALIDATED" and again["validated_by"] == world.actors["SA"].user_id
