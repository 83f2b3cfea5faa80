"""Story 13: connector failure and recovery, through the REST API.

A failed health check raises an alert; ingestion retries transient failures by
itself (recovered → receipt); exhausted retries hand the connector to the Platform
Admin with an incident and the tenant's admins notified; manual recovery resumes
from the last committed checkpoint and loses or duplicates no record.

The source is the sample CRM behind a real loopback gateway that fails on command
(503s, dropped connections): the failure is real HTTP, nothing is mocked.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_onboarding import FlakyGateway, active_connector, api, configure, ready_source, step

from keel.kernel.clock import set_clock, utcnow
from keel.onboarding import recovery
from keel.onboarding.monitor import HealthMonitor
from keel.samples.crm import serve_crm
from keel.store.tables import incidents, notifications, receipts, users

PAGE = 10  # the CRM's page size: accounts come in several pages, each its own checkpoint


@pytest.fixture
def crm():
    with serve_crm(page_size=PAGE, accounts=45) as server:
        yield server


@pytest.fixture
def gateway(crm):
    gateway = FlakyGateway(crm)
    yield gateway
    gateway.stop()


class Waits(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def source(world, gateway, crm):
    """A READY CRM source (accounts) read through the gateway; retries wait on a recorder, not the clock."""
    world.keel.sleep = Waits()
    config = {
        "base_url": gateway.url,
        "auth": {"type": "bearer", "token": crm.api_key},
        "max_retries": 0,
    }
    connector = active_connector(world, "acme", "crm-http", "CRM", config)
    ready = ready_source(world, "acme", connector["connector_id"], "CRM", ["accounts"])
    return {"source_id": ready["source_id"], "connector_id": connector["connector_id"]}


def _run(world, source, who="acme:IO"):
    answer = world.post(who, f"{api(world.tenants['acme'])}/sources/{source['source_id']}/runs", json={})
    assert answer.status_code == 201, answer.text
    return answer.json()["items"]


def _raw_ids(world) -> list[str]:
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    with duckdb.connect(str(path), read_only=True) as con:
        return [r[0] for r in con.execute('SELECT id FROM raw."crm__accounts" ORDER BY id').fetchall()]


def _connector(world, source) -> dict:
    return world.get("PA", f"{api(world.tenants['acme'])}/connectors/{source['connector_id']}").json()


# Given a failure, when retry runs, then recovered, receipt ----------------------------------
def test_a_transient_failure_is_retried_and_recovered_with_a_receipt(world, source, gateway, crm):
    gateway.fail_next(1)

    [run] = _run(world, source)

    assert run["status"] == "SUCCEEDED" and run["attempts"] == 2
    assert sorted(_raw_ids(world)) == sorted(a["id"] for a in crm.data["accounts"])
    assert len(world.keel.sleep) == 1  # one back-off, bounded by the policy
    assert 0 <= world.keel.sleep[0] <= world.keel.settings.ingestion_retry_base_seconds
    [receipt] = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "connector.recovery"))
    body = receipt.body
    assert (body["connector_id"], body["failure"], body["retries"], body["status"]) == (
        source["connector_id"],
        "unreachable",
        1,
        "recovered",
    )
    assert re.match(r"^\d{4}-\d\d-\d\dT", body["timestamp"])
    types = [
        e["type"]
        for e in world.events()
        if (e["type"].startswith("connector.") and "recovery" in e["type"])
        or e["type"] == "connector.failure.detected"
    ]
    assert types == [
        "connector.failure.detected",
        "connector.recovery.started",
        "connector.recovery.completed",
    ]
    assert _connector(world, source)["status"] == "ACTIVE"
    assert world.rows(sa.select(incidents)) == []


# Given exhausted retries, when PA intervenes, then recovered, incident ----------------------
def test_exhausted_retries_hand_over_to_the_platform_admin_who_recovers_without_loss(
    world, source, gateway, crm
):
    attempts = world.keel.settings.ingestion_max_attempts
    _first_page_then_down(gateway)  # the first page is read and committed, then the source goes down

    [run] = _run(world, source)

    assert run["status"] == "FAILED" and run["attempts"] == attempts
    assert run["error"]["failure"] == "unreachable"
    committed = _raw_ids(world)
    assert len(committed) == PAGE  # the first page is kept, with its checkpoint
    connector = _connector(world, source)
    assert connector["status"] == "FAILED" and connector["breaker"]["state"] == "open"
    [incident] = world.rows(sa.select(incidents))
    assert incident.kind == "connector_failure" and incident.status == "OPEN"
    assert connector["last_error"]["incident_id"] == incident.id
    ta = world.actors["acme:TA"].user_id
    told = world.get("acme:TA", f"{api(world.tenants['acme'])}/notifications").json()["items"]
    assert [n["subject"] for n in told] == ["Connector CRM failed"]
    assert told[0]["body"]["incident_id"] == incident.id
    assert [e["payload"]["recipients"] for e in world.events("tenant.notified")] == [[ta]]
    refused = world.post(
        "acme:IO", f"{api(world.tenants['acme'])}/sources/{source['source_id']}/runs", json={}
    )
    assert refused.status_code == 409  # nothing runs on a FAILED connector until it is recovered

    gateway.up()
    recovered = step(world, "PA", "acme", f"/connectors/{source['connector_id']}/recovery")

    assert recovered["status"] == "ACTIVE" and recovered["recovery"]["status"] == "recovered"
    ids = _raw_ids(world)
    assert sorted(ids) == sorted(a["id"] for a in crm.data["accounts"])  # nothing lost
    assert len(ids) == len(set(ids))  # nothing twice: resumed after the committed page
    assert world.scalar(sa.select(incidents.c.status)) == "RESOLVED"
    body = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "connector.recovery"))[-1].body
    assert (body["failure"], body["retries"], body["status"], body["mode"]) == (
        "unreachable",
        attempts - 1,
        "recovered",
        "manual",
    )
    assert body["incident_id"] == incident.id
    types = [e["type"] for e in world.events() if e["type"].startswith("connector.recovery")]
    assert types == ["connector.recovery.started", "connector.recovery.completed"]
    metrics = world.client.get("/metrics").text
    assert re.search(r"^keel_connector_failure_count 1\.0$", metrics, re.M)
    assert re.search(r"^keel_mean_time_to_recover \d", metrics, re.M)


def _first_page_then_down(gateway: FlakyGateway) -> None:
    """Arm the gateway: page 1 of accounts is answered, then the source goes down (503) for good."""
    handler = gateway.server.RequestHandlerClass
    original = handler.do_GET
    armed = [True]

    def down_from_page_two(self) -> None:
        if armed[0] and "page=" in self.path and "page=1" not in self.path:
            armed[0] = False
            gateway.down()
        original(self)

    handler.do_GET = down_from_page_two


def test_a_failed_recovery_keeps_the_connector_failed_with_a_failed_receipt(world, source, gateway):
    gateway.down()
    _run(world, source)

    answer = step(world, "PA", "acme", f"/connectors/{source['connector_id']}/recovery")

    assert answer["status"] == "FAILED" and answer["recovery"]["status"] == "failed"
    body = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "connector.recovery"))[-1].body
    assert body["status"] == "failed"
    assert world.scalar(sa.select(incidents.c.status)) == "OPEN"


def test_a_notice_nobody_can_receive_is_escalated(world, source, gateway):
    with world.keel.engine.begin() as conn:  # the tenant's only admin has left
        conn.execute(
            users.update().where(users.c.id == world.actors["acme:TA"].user_id).values(status="DISABLED")
        )
    gateway.down()

    _run(world, source)

    assert world.rows(sa.select(notifications)) == []
    assert world.scalar(sa.select(incidents.c.severity)) == "SEV1"
    assert [e["payload"]["reason"] for e in world.events("incident.escalated")] == [
        "no tenant admin could be notified"
    ]


# Alert on failed health check ------------------------------------------------------------------
def test_a_failed_health_check_raises_an_alert_and_counts_against_uptime(world, source, gateway):
    healthy = step(world, "SRE", "acme", f"/connectors/{source['connector_id']}/health-checks")
    gateway.down()
    sick = step(world, "SRE", "acme", f"/connectors/{source['connector_id']}/health-checks")

    assert healthy["healthy"] is True and sick["healthy"] is False
    [incident] = world.rows(sa.select(incidents))
    assert incident.kind == "connector_health"
    assert [e["payload"]["incident_id"] for e in world.events("alert.fired")] == [incident.id]
    assert [e["payload"]["source"] for e in world.events("connector.failure.detected")] == ["health_check"]
    assert re.search(r"^keel_connector_uptime 0\.5$", world.client.get("/metrics").text, re.M)


def test_consecutive_failed_health_checks_open_the_circuit_breaker(world, source, gateway):
    gateway.down()
    for _ in range(world.keel.settings.breaker_failure_threshold):
        last = step(world, "SRE", "acme", f"/connectors/{source['connector_id']}/health-checks")
    assert last["breaker"]["state"] == "open"
    [incident] = world.rows(sa.select(incidents))  # one incident and alert per outage, not per check
    assert len(world.events("alert.fired")) == 1 and last["incident_id"] == incident.id
    gateway.up()

    refused = world.post(
        "acme:IO", f"{api(world.tenants['acme'])}/sources/{source['source_id']}/runs", json={}
    )

    assert refused.status_code == 409 and "circuit breaker is open" in refused.json()["detail"]
    assert step(world, "SRE", "acme", f"/connectors/{source['connector_id']}/health-checks")["breaker"] == {
        "state": "closed",
        "failures": 0,
        "opened_at": None,
    }
    assert world.scalar(sa.select(incidents.c.status)) == "RESOLVED"  # healthy again: the outage is over
    assert _run(world, source)[0]["status"] == "SUCCEEDED"


def test_only_the_platform_admin_recovers_a_connector(world, source, gateway):
    gateway.down()
    _run(world, source)
    for who in ("acme:TA", "acme:DE", "acme:IO", "SRE", "SA"):
        answer = world.post(who, f"{api(world.tenants['acme'])}/connectors/{source['connector_id']}/recovery")
        assert answer.status_code == 403, (who, answer.text)


def test_the_servers_monitor_health_checks_every_active_connector_on_its_own(world, source, gateway):
    gateway.down()
    monitor = HealthMonitor(world.keel, interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not world.events("alert.fired") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        monitor.stop()

    checked = world.events("connector.health.checked")
    assert checked and {e["payload"]["connector_id"] for e in checked} == {source["connector_id"]}
    assert checked[0]["actor_id"] == "system" and checked[0]["payload"]["healthy"] is False
    assert world.rows(sa.select(incidents))[0].kind == "connector_health"


def test_credentials_revoked_at_the_source_hand_the_connector_over_without_retrying(world, source, gateway):
    gateway.deny()

    [run] = _run(world, source)

    assert run["status"] == "FAILED" and run["attempts"] == 1  # no retry fixes a revoked key
    assert run["error"]["failure"] == "auth"
    connector = _connector(world, source)
    assert connector["status"] == "FAILED" and connector["last_error"]["failure"] == "auth"
    assert world.scalar(sa.select(incidents.c.kind)) == "connector_failure"
    told = world.get("acme:TA", f"{api(world.tenants['acme'])}/notifications").json()["items"]
    assert told[0]["body"]["failure"] == "auth"
    # Recovery cannot succeed while the source refuses the key: the tenant configures a new one.
    recovery = step(world, "PA", "acme", f"/connectors/{source['connector_id']}/recovery")
    assert recovery["status"] == "FAILED" and recovery["recovery"]["status"] == "failed"


# Only the Platform Admin's recovery brings back a connector that failed while ingesting ---------
def _failed_by_ingestion(world, source, gateway) -> None:
    gateway.down()
    _run(world, source)
    assert _connector(world, source)["status"] == "FAILED"
    gateway.up()


@pytest.mark.parametrize(("who", "path"), [("SA", "secret-validation"), ("PA", "preflight")])
def test_checks_cannot_reactivate_a_connector_that_failed_while_ingesting(world, source, gateway, who, path):
    _failed_by_ingestion(world, source, gateway)

    answer = world.post(who, f"{api(world.tenants['acme'])}/connectors/{source['connector_id']}/{path}")

    assert answer.status_code == 409 and "recovers it" in answer.json()["detail"]
    assert _connector(world, source)["status"] == "FAILED"
    assert world.scalar(sa.select(incidents.c.status)) == "OPEN"


def test_a_recovery_does_not_activate_a_configuration_changed_meanwhile(world, source, gateway, monkeypatch):
    _failed_by_ingestion(world, source, gateway)
    real = recovery._ready_sources

    def reconfigured_during_recovery(keel, tenant_id, connector_id):  # the DE acts while recovery runs
        config = {"base_url": gateway.url, "auth": {"type": "bearer", "token": "new-unvalidated-key"}}
        assert configure(world, "acme", connector_id, config).status_code == 200
        return real(keel, tenant_id, connector_id)

    monkeypatch.setattr(recovery, "_ready_sources", reconfigured_during_recovery)
    answer = step(world, "PA", "acme", f"/connectors/{source['connector_id']}/recovery")

    assert answer["recovery"]["status"] == "failed"
    assert answer["status"] == "CONFIGURED" and answer["config_version"] == 2  # its own checks come next


def test_after_the_cool_down_one_trial_run_goes_through_and_closes_the_breaker(world, source, gateway):
    gateway.down()
    for _ in range(world.keel.settings.breaker_failure_threshold):
        step(world, "SRE", "acme", f"/connectors/{source['connector_id']}/health-checks")
    gateway.up()
    cooled = utcnow() + timedelta(seconds=world.keel.settings.breaker_cooldown_seconds + 1)
    set_clock(lambda: cooled)
    try:
        [trial] = _run(world, source)
    finally:
        set_clock(None)

    assert trial["status"] == "SUCCEEDED"
    assert _connector(world, source)["breaker"] == {"state": "closed", "failures": 0, "opened_at": None}
