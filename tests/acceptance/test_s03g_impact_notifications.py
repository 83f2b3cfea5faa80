"""Story 03g: impact analysis and notifications, through the REST API, with real mail and webhooks.

Raw → GDP → KPI contracts are published and a tenant registers a dashboard on the KPI. The
Schema Steward computes the blast radius of a change, the Platform Admin notifies everyone it
reaches — over a real SMTP server (aiosmtpd) and, when that is down, a real webhook receiver
(http.server), both on loopback — and sign-offs are recorded. An incomplete graph is flagged
for review; an incident after the change opens a ticket and informs the same people.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract

from keel.notify import build_notifier
from keel.store.tables import (
    contract_consumers,
    incidents,
    metric_samples,
    notification_deliveries,
    review_tickets,
    signoffs,
)

API = "/api/v1"
CHANGE = "SC-2025-09-29-01"


# -- a real SMTP server and a real webhook receiver on loopback -----------------------------------


class Inbox:
    """aiosmtpd handler keeping every accepted mail, parsed."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def to(self) -> list[str]:
        return sorted(address for rcpts, _ in self.mails for address in rcpts)


class _LoopbackController(Controller):
    """Binds port 0 and learns the port the OS chose before aiosmtpd's readiness probe connects."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = _LoopbackController(inbox, hostname="127.0.0.1", port=0, ready_timeout=5)
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/finance-team-7f3a", received
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _mail_to(world, port: int) -> None:
    """The world's notifier sends e-mail through the SMTP server on ``port`` (webhooks as built)."""
    settings = world.keel.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout_seconds": 5}
    )
    world.keel.notifier = build_notifier(settings)


@pytest.fixture
def inbox(world):
    with smtp_server() as (port, received):
        _mail_to(world, port)
        yield received


@pytest.fixture
def hook(world, monkeypatch):
    # The receiver runs on loopback, which Keel refuses by default (see the SSRF test below).
    monkeypatch.setattr(world.keel.settings, "webhook_allow_private_networks", True)
    with webhook_receiver() as receiver:
        yield receiver


# -- the chain and the people ---------------------------------------------------------------------


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def _uid(world, who: str) -> str:
    return world.actors[who].user_id


def _chain(world, *, webhook: str | None = None) -> dict:
    """RAW-SHOP → GDP-ORDER → KPI-ORDER-VALUE published; acme's dashboard on the KPI."""
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    publish_contract(world, kpi_contract())
    body = {
        "kind": "dashboard",
        "name": "finance_overview",
        "depends_on": ["KPI-ORDER-VALUE"],
        "recipients": [_uid(world, "acme:BO"), _uid(world, "acme:TA")],
    }
    if webhook:
        body["webhook_url"] = webhook
    return _ok(world.post("acme:TA", f"{API}/contract-consumers", body), 201)


def _everyone(world) -> list[str]:
    """The blast radius's people: acme's BO (dashboard) and TA, globex's TA, the Platform Admin."""
    return sorted(_uid(world, who) for who in ("acme:BO", "acme:TA", "globex:TA", "PA"))


def _notify(world, **extra):
    body = {"subject_id": CHANGE, "schema_id": "GDP-ORDER", "subject": "GDP-ORDER 1.1.0 on Saturday"}
    body |= {"body": "The order amount becomes DECIMAL(38, 9).", **extra}
    return world.post("PA", f"{API}/notices", body, headers={"Idempotency-Key": "notice-sc-01"})


# Given an approved change, when analysed, then notified, sign-offs recorded ---------------------
def test_the_blast_radius_lists_the_datasets_dashboards_tenants_and_recipients_of_a_change(world):
    dashboard = _chain(world)

    impact = _ok(world.post("SS", f"{API}/contracts/GDP-ORDER/impact", {"subject_id": CHANGE}))

    # Artifact: impact_scope.datasets=[gdp_ar, kpi_dso], impact_scope.dashboards=[finance_overview]
    assert impact["impact_scope"] == {
        "contracts": ["GDP-ORDER", "KPI-ORDER-VALUE"],
        "datasets": ["gdp_order", "kpi_order_value"],
        "columns": [],
        "kpis": ["KPI-ORDER-VALUE"],
        "dashboards": ["finance_overview"],
        "kpi_views": [],
        "workflows": [],
        "reports": [],
        "exports": [],
        "tenants": sorted(world.tenants.values()),
    }
    assert [c["consumer_id"] for c in impact["consumers"]] == [dashboard["consumer_id"]]
    assert impact["recipients"] == _everyone(world)
    assert (impact["complete"], impact["gaps"], impact["risk"], impact["review_ticket_id"]) == (
        True,
        [],
        "medium",  # 1 KPI + 1 dashboard + 2 tenants
        None,
    )
    [event] = world.events("impact.analysis.completed")
    assert event["actor_id"] == _uid(world, "SS")
    assert event["payload"] == {
        "subject_id": CHANGE,
        "contract_id": "GDP-ORDER",
        "fields": None,
        "counts": {"contracts": 2, "datasets": 2, "kpis": 1, "consumers": 1, "tenants": 2, "recipients": 4},
        "complete": True,
        "gaps": 0,
        "risk": "medium",
        "review_ticket_id": None,
    }


def test_a_change_to_one_field_reaches_only_what_derives_from_it(world):
    _chain(world)

    amount = _ok(world.post("SS", f"{API}/contracts/GDP-ORDER/impact", {"fields": ["amount"]}))
    placed = _ok(world.post("SS", f"{API}/contracts/GDP-ORDER/impact", {"fields": ["order.placed_at"]}))

    assert amount["subject_id"] == "GDP-ORDER"  # no subject named: the contract is the subject
    assert amount["impact_scope"]["columns"] == ["gdp.order.amount", "kpi.KPI-ORDER-VALUE.value"]
    assert amount["impact_scope"]["dashboards"] == ["finance_overview"]
    assert placed["impact_scope"]["kpis"] == [] and placed["impact_scope"]["dashboards"] == []


def test_notifying_sends_one_mail_per_recipient_and_stores_every_delivery(world, inbox):
    _chain(world)

    notice = _ok(_notify(world), 201)

    # Artifact: change_id=SC-..., impact_scope..., recipients=[tenant_admin, platform_admin], status=sent
    assert (notice["subject_id"], notice["status"], notice["recipients"]) == (
        CHANGE,
        "sent",
        _everyone(world),
    )
    assert {"tenant_admin", "platform_admin"} <= set(notice["recipient_roles"])
    assert notice["impact_scope"]["datasets"] == ["gdp_order", "kpi_order_value"]
    assert notice["counts"] == {
        "recipients": 4,
        "reached": 4,
        "fallbacks": 0,
        "sent": 4,
        "failed": 0,
        "skipped": 0,
    }
    assert notice["coverage_of_notified_assets"] == 1.0
    assert sorted((d["recipient_id"], d["channel"], d["status"]) for d in notice["deliveries"]) == [
        (uid, "email", "sent") for uid in _everyone(world)
    ]
    assert inbox.to() == sorted(["bo@acme.test", "ta@acme.test", "ta@globex.test", "pa@provider.test"])
    assert {m["Subject"] for _, m in inbox.mails} == {"GDP-ORDER 1.1.0 on Saturday"}
    assert all(m["X-Keel-Event"] == "impact.notice" for _, m in inbox.mails)
    assert world.scalar(sa.select(sa.func.count()).select_from(notification_deliveries)) == 4

    # The ledger says how many, never to which address or what.
    [event] = world.events("notifications.sent")
    assert event["payload"] | {"message_id": None} == {
        "subject_id": CHANGE,
        "message_id": None,
        "event": "impact.notice",
        "incident_id": None,
        "coverage_of_notified_assets": 1.0,
        **notice["counts"],
    }
    assert "@" not in json.dumps(event) and "DECIMAL" not in json.dumps(world.events())
    covered = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "notified_asset_outcome")
    )
    assert [bool(r.value) for r in covered] == [True, True, True]  # the dashboard, acme, globex

    # A retry with the same key answers the first notice and sends nothing again.
    again = _notify(world)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["message_id"] == notice["message_id"] and len(inbox.mails) == 4


def test_each_tenant_sees_only_the_deliveries_to_its_own_people(world, inbox):
    _chain(world)
    _ok(_notify(world), 201)

    def recipients(who: str) -> list[str]:
        page = _ok(world.get(who, f"{API}/notices/deliveries", params={"subject_id": CHANGE, "limit": 1}))
        items, cursor = page["items"], page["next_cursor"]
        while cursor:
            page = _ok(
                world.get(who, f"{API}/notices/deliveries", params={"subject_id": CHANGE, "cursor": cursor})
            )
            items, cursor = items + page["items"], page["next_cursor"]
        return sorted(d["recipient_id"] for d in items)

    assert recipients("PA") == _everyone(world)
    assert recipients("acme:AN") == sorted([_uid(world, "acme:BO"), _uid(world, "acme:TA")])
    assert recipients("globex:TA") == [_uid(world, "globex:TA")]


def test_when_smtp_is_down_the_webhook_is_tried_next_and_both_attempts_are_recorded(world, hook):
    url, received = hook
    _chain(world, webhook=url)
    _mail_to(world, _closed_port())  # nothing listens there: connection refused

    notice = _ok(_notify(world), 201)

    attempts = sorted((d["recipient_id"], d["channel"], d["status"]) for d in notice["deliveries"])
    bo, ta = _uid(world, "acme:BO"), _uid(world, "acme:TA")
    assert attempts == sorted(
        [(bo, "email", "failed"), (bo, "webhook", "sent"), (ta, "email", "failed"), (ta, "webhook", "sent")]
        + [(_uid(world, who), "email", "failed") for who in ("globex:TA", "PA")]
    )
    failed = [d for d in notice["deliveries"] if d["status"] == "failed"]
    assert all("connection refused" in d["detail"] for d in failed)
    assert sorted(r["recipient_id"] for r in received) == sorted([bo, ta])
    assert {r["subject"] for r in received} == {"GDP-ORDER 1.1.0 on Saturday"}
    assert notice["status"] == "partial"
    assert notice["counts"] | {} == {
        "recipients": 4,
        "reached": 2,
        "fallbacks": 2,
        "sent": 2,
        "failed": 4,
        "skipped": 0,
    }
    assert notice["coverage_of_notified_assets"] == pytest.approx(2 / 3)  # globex's admin was not reached
    stored = world.rows(sa.select(notification_deliveries.c.channel, notification_deliveries.c.status))
    assert sorted(tuple(r) for r in stored) == sorted((c, s) for _, c, s in attempts)
    # The webhook's path (it holds a token) is never shown: only its origin.
    [consumer] = _ok(world.get("acme:TA", f"{API}/contract-consumers"))["items"]
    assert consumer["webhook"] == url.rsplit("/hooks", 1)[0]
    assert "finance-team-7f3a" not in json.dumps(
        [r.recipients for r in world.rows(sa.select(contract_consumers))]
    )
    assert "finance-team-7f3a" not in json.dumps(world.events())


def test_sign_offs_are_recorded_once_per_person_by_those_the_notice_reached(world, inbox):
    _chain(world)
    _ok(_notify(world), 201)

    by_ta = _ok(
        world.post(
            "acme:TA",
            f"{API}/signoffs",
            {"subject_id": CHANGE, "approve": True, "note": "fine for the month-end close"},
        ),
        201,
    )
    _ok(world.post("SRE", f"{API}/signoffs", {"subject_id": CHANGE, "approve": True}), 201)
    _ok(world.post("globex:TA", f"{API}/signoffs", {"subject_id": CHANGE, "approve": False}), 201)

    assert {k: by_ta[k] for k in ("subject_id", "user_id", "roles", "decision")} == {
        "subject_id": CHANGE,
        "user_id": _uid(world, "acme:TA"),
        "roles": ["TA"],
        "decision": "approve",
    }
    twice = world.post("acme:TA", f"{API}/signoffs", {"subject_id": CHANGE, "approve": False})
    assert twice.status_code == 409
    unknown = world.post("acme:TA", f"{API}/signoffs", {"subject_id": "SC-NEVER-ANNOUNCED", "approve": True})
    assert unknown.status_code == 404
    seen = _ok(world.get("acme:AN", f"{API}/signoffs", params={"subject_id": CHANGE}))["items"]
    assert sorted(s["user_id"] for s in seen) == sorted([_uid(world, "acme:TA"), _uid(world, "SRE")])
    all_of_them = _ok(world.get("PA", f"{API}/signoffs", params={"subject_id": CHANGE}))["items"]
    assert sorted(s["decision"] for s in all_of_them) == ["approve", "approve", "reject"]
    assert world.scalar(sa.select(sa.func.count()).select_from(signoffs)) == 3
    events = world.events("signoffs.recorded")
    assert [e["payload"]["decision"] for e in events] == ["approve", "approve", "reject"]
    assert "month-end" not in json.dumps(world.events())  # only the note's hash is evidence


# Graph incomplete -> flag for review ------------------------------------------------------------
def test_a_consumer_on_an_unknown_contract_makes_the_analysis_incomplete_and_opens_a_review_ticket(world):
    _chain(world)
    orphan = {"kind": "report", "name": "legacy_ar_report", "depends_on": ["KPI-ORDER-VALUE", "GDP-NOT-YET"]}
    consumer = _ok(world.post("acme:DE", f"{API}/contract-consumers", orphan), 201)

    impact = _ok(world.post("SS", f"{API}/contracts/GDP-ORDER/impact", {"subject_id": CHANGE}))

    assert impact["complete"] is False
    assert impact["gaps"] == [
        f"consumer {consumer['consumer_id']} (report 'legacy_ar_report') depends on 'GDP-NOT-YET', "
        "which no contract describes"
    ]
    assert impact["risk"] == "high"  # medium by size, one step up: the graph cannot be trusted whole
    assert impact["impact_scope"]["reports"] == ["legacy_ar_report"]
    [ticket] = world.rows(sa.select(review_tickets))
    assert (ticket.id, ticket.kind, ticket.subject, ticket.status) == (
        impact["review_ticket_id"],
        "impact_graph",
        CHANGE,
        "OPEN",
    )
    assert ticket.details == {"contract_id": "GDP-ORDER", "gaps": impact["gaps"]}
    assert world.events("review_ticket.opened")[0]["payload"]["ticket_id"] == ticket.id
    # The same findings again: the open ticket is reused, not duplicated.
    again = _ok(world.post("SS", f"{API}/contracts/GDP-ORDER/impact", {"subject_id": CHANGE}))
    assert again["review_ticket_id"] == ticket.id
    assert world.scalar(sa.select(sa.func.count()).select_from(review_tickets)) == 1


# Given a deployed change, when an incident follows, then ticket, inform --------------------------
def test_an_incident_after_the_change_opens_an_incident_and_a_ticket_and_informs_the_recipients(world, inbox):
    _chain(world)
    _ok(_notify(world), 201)

    answer = _ok(
        world.post(
            "SRE",
            f"{API}/post-change-incidents",
            {"subject_id": CHANGE, "summary": "KPI-ORDER-VALUE doubled after the change", "severity": "SEV1"},
        ),
        201,
    )

    [incident] = world.rows(sa.select(incidents))
    assert (incident.id, incident.kind, incident.severity, incident.status) == (
        answer["incident_id"],
        "schema.post_change",
        "SEV1",
        "OPEN",
    )
    [ticket] = world.rows(sa.select(review_tickets))
    assert (ticket.id, ticket.kind, ticket.subject) == (answer["ticket_id"], "post_change_incident", CHANGE)
    assert ticket.details["incident_id"] == incident.id
    informed = answer["notice"]
    assert (informed["status"], informed["recipients"]) == ("sent", _everyone(world))
    incident_mails = [to for to, m in inbox.mails if m["Subject"] == f"Incident after change {CHANGE} (SEV1)"]
    assert sorted(a for to in incident_mails for a in to) == sorted({a for to, _ in inbox.mails for a in to})
    assert len(inbox.mails) == 8  # four notices of the change, four of the incident
    types = [e["type"] for e in world.events()]
    assert {"incident.opened", "alert.fired", "review_ticket.opened"} <= set(types)
    assert world.events("notifications.sent")[-1]["payload"]["incident_id"] == incident.id
    rate = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "post_change_incident_rate")
    )
    assert [r.value for r in rate] == [0.0, 1.0, 1.0]  # notice, incident, informing: 1 change of 1
    metrics_text = world.client.get("/metrics").text
    assert "keel_post_change_incident_rate 1.0" in metrics_text
    assert "keel_coverage_of_notified_assets 1.0" in metrics_text


# Who may do what -------------------------------------------------------------------------------
def test_each_step_is_taken_by_the_persona_the_story_names(world):
    _chain(world)
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    dashboard = {"kind": "dashboard", "name": "x", "depends_on": ["KPI-ORDER-VALUE"]}
    notice = {"subject_id": CHANGE, "schema_id": "GDP-ORDER"}

    refused = {
        "TA analyses": world.post("acme:TA", f"{API}/contracts/GDP-ORDER/impact", {}),
        "PA analyses": world.post("PA", f"{API}/contracts/GDP-ORDER/impact", {}),
        "SS notifies": world.post("SS", f"{API}/notices", notice),
        "TA notifies": world.post("acme:TA", f"{API}/notices", notice),
        "PA registers acme's consumer": world.post(
            "PA", f"{API}/contract-consumers", dashboard | {"tenant_id": acme}
        ),
        "acme registers globex's": world.post(
            "acme:TA", f"{API}/contract-consumers", dashboard | {"tenant_id": globex}
        ),
        "SS registers a platform one": world.post("SS", f"{API}/contract-consumers", dashboard),
        "AN registers": world.post("acme:AN", f"{API}/contract-consumers", dashboard),
        "SS reports an incident": world.post(
            "SS", f"{API}/post-change-incidents", {"subject_id": CHANGE, "summary": "x"}
        ),
        "acme lists globex's": world.get(
            "acme:TA", f"{API}/contract-consumers", params={"tenant_id": globex}
        ),
    }

    assert {why: a.status_code for why, a in refused.items()} == {why: 403 for why in refused}
    platform = _ok(
        world.post("PA", f"{API}/contract-consumers", {**dashboard, "recipients": [_uid(world, "PA")]}), 201
    )
    assert platform["tenant_id"] is None
    outsider = world.post(
        "acme:TA", f"{API}/contract-consumers", dashboard | {"recipients": [_uid(world, "globex:TA")]}
    )
    assert outsider.status_code == 422 and outsider.json()["field"] == "recipients"
    assert [c["name"] for c in _ok(world.get("globex:TA", f"{API}/contract-consumers"))["items"]] == []


def test_the_cli_analyses_and_lists_with_the_same_verbs(world, settings):
    from tests.cli.cli_harness import Cli

    _chain(world)
    cli = Cli(settings)

    impact = cli.json(
        "impact", "analyse", "GDP-ORDER", "--subject", CHANGE, "--field", "amount", token=world.tokens["SS"]
    )
    consumers = cli.json("impact", "consumers", token=world.tokens["acme:TA"])

    assert impact["impact_scope"]["dashboards"] == ["finance_overview"]
    assert [c["name"] for c in consumers] == ["finance_overview"]
    refused = cli("impact", "notify", CHANGE, "GDP-ORDER", token=world.tokens["acme:TA"])
    assert refused.exit_code == 3 and "'notice:Send' is forbidden" in refused.output
