"""Story 02b: connector handshake and preflight, through the REST API.

The Platform Admin opens the handshake on an ACTIVE source: connection, credential
use and the discovered schema against the Raw contract; READY only if all pass.
Schema mismatch → FAILED with an incident ticket; credential misuse → fail, log;
connectivity → fail, alert. The source is the sample ERP in a real SQLite file.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from tests.support_onboarding import (
    ERP_STREAMS,
    INVOICES_CONTRACT,
    active_connector,
    api,
    erp_config,
    step,
    write_erp,
)

from keel.store.tables import connectors, incidents, receipts


@pytest.fixture
def active_source(world, tmp_path):
    """An ACTIVE (onboarded) ERP source whose handshake has not run; returns a function taking a contract."""
    url, _ = write_erp(tmp_path)
    cid = active_connector(world, "acme", "erp-sql", "ERP", erp_config(url))["connector_id"]

    def make(expected: dict) -> str:
        body = {"name": "ERP", "streams": ERP_STREAMS, "justification": "DSO", "connector_id": cid,
                "expected_schemas": expected}  # fmt: skip
        sid = step(world, "acme:DE", "acme", "/sources", body)["source_id"]
        step(world, "PA", "acme", f"/sources/{sid}/registration")
        step(world, "SA", "acme", f"/sources/{sid}/validation")
        assert step(world, "PA", "acme", f"/sources/{sid}/preflight")["status"] == "ACTIVE"
        return sid

    make.connector_id = cid
    make.path = tmp_path / "erp.db"
    return make


# Given source and connector, when handshake runs, then schema passes, READY ------------------
def test_the_handshake_checks_the_schema_and_sets_ready_with_its_receipt(world, active_source):
    sid = active_source({"invoices": INVOICES_CONTRACT})

    done = step(world, "PA", "acme", f"/sources/{sid}/handshake")

    assert done["status"] == "READY"
    assert done["preflight"]["schema"]["invoices"]["passed"] is True
    [row] = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "connector.handshake"))
    body = dict(row.body)
    assert re.match(r"^\d{4}-\d\d-\d\dT", body.pop("timestamp"))
    assert body == {
        "connector": "ERP",
        "connector_id": active_source.connector_id,
        "source": "ERP",
        "source_id": sid,
        "handshake": "complete",
        "schema_check": "PASS",
        "validated_by": world.actors["SA"].user_id,
        "run_by": world.actors["PA"].user_id,
        "status": "READY",
    }
    [handshake] = world.events("connector.handshake")
    assert handshake["payload"]["status"] == "READY" and handshake["payload"]["schema_check"] == "PASS"
    assert [e["payload"]["check"] for e in world.events("connector.validated")][-1] == "handshake"
    metrics = world.client.get("/metrics").text
    assert "keel_handshake_success_rate 1.0" in metrics
    assert "keel_schema_validation_pass_rate 1.0" in metrics


# Given a source, when schema mismatches, then FAILED, ticket ---------------------------------
def test_a_schema_mismatch_fails_the_handshake_and_opens_a_ticket(world, active_source):
    contract = {**INVOICES_CONTRACT, "amount_gross": "decimal", "issued_at": "date-time"}
    sid = active_source({"invoices": contract})

    done = step(world, "PA", "acme", f"/sources/{sid}/handshake")

    assert done["status"] == "FAILED" and done["last_error"]["failure"] == "schema"
    result = done["preflight"]["schema"]["invoices"]
    assert result["missing"] == ["amount_gross"]
    assert result["type_mismatches"] == [{"column": "issued_at", "expected": "date-time", "found": "date"}]
    [ticket] = world.rows(sa.select(incidents))
    assert ticket.kind == "schema_mismatch" and ticket.tenant_id == world.tenants["acme"]
    assert "amount_gross" in ticket.summary
    assert world.events("connector.handshake")[0]["payload"]["schema_check"] == "FAIL"
    assert (
        world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "connector.handshake"))[0].body[
            "status"
        ]
        == "FAILED"
    )
    assert "keel_schema_validation_pass_rate 0.0" in world.client.get("/metrics").text
    # Ingestion waits for READY.
    answer = world.post("acme:DE", f"{api(world.tenants['acme'])}/sources/{sid}/runs", json={})
    assert answer.status_code == 409


def test_connectivity_lost_fails_the_handshake_with_an_alert(world, active_source):
    sid = active_source({})
    active_source.path.rename(active_source.path.with_name("gone.db"))
    active_source.path.parent.joinpath("erp.db").mkdir()  # a directory where the database was

    done = step(world, "PA", "acme", f"/sources/{sid}/handshake")

    assert done["status"] == "FAILED"
    assert world.events("connector.handshake")[0]["payload"]["handshake"] == "failed"


def test_credential_misuse_fails_the_handshake_and_is_logged(world, active_source):
    sid = active_source({})
    with world.keel.engine.begin() as conn:  # the connector now points at another connector's secret
        conn.execute(
            connectors.update()
            .where(connectors.c.id == active_source.connector_id)
            .values(secret_refs={"password": "connectors/CON-other/password"})
        )

    done = step(world, "PA", "acme", f"/sources/{sid}/handshake")

    assert done["status"] == "FAILED" and done["last_error"]["failure"] == "credential_use"
    assert [e["payload"]["failure"] for e in world.events("connector.handshake.failed")] == ["credential_use"]


def test_only_the_platform_admin_opens_the_handshake(world, active_source):
    sid = active_source({})
    for who in ("acme:DE", "acme:TA", "SA", "SRE"):
        answer = world.post(who, f"{api(world.tenants['acme'])}/sources/{sid}/handshake")
        assert answer.status_code == 403, (who, answer.text)
