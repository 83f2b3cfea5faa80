"""Story 05 (lineage): every build emits OpenLineage START/COMPLETE events with column lineage,
stored, readable through the API and sent to an OpenLineage endpoint; a run without lineage opens
an incident that the next run with lineage closes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract, write_raw

from keel.lineage import store
from keel.store.tables import incidents, lineage_events

API = "/api/v1"
ORDERS = [("O-1", "a@x.test", "120.50", "2026-01-05"), ("O-2", "b@x.test", "80.00", "2026-01-20")]


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


@pytest.fixture
def shop(world):
    publish_contract(world, raw_contract(fields={"order_id": "string", "customer_email": "string",
                                                 "amount": "decimal", "placed_at": "date"}))  # fmt: skip
    gdp = gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orders")
    gdp["schema"][0]["properties"][0]["primaryKey"] = True
    publish_contract(world, gdp)
    publish_contract(world, kpi_contract())
    columns = "order_id VARCHAR, customer_email VARCHAR, amount DECIMAL(38, 9), placed_at DATE"
    write_raw(world, "acme", "shop__orders", columns, ORDERS)
    return world


def _build(world):
    tenant = world.tenants["acme"]
    return _ok(world.post("acme:DE", f"{API}/tenants/{tenant}/builds", {"schema_id": "GDP-ORDER"}))


def test_a_build_yields_start_and_complete_events_with_column_lineage(shop):
    world, tenant = shop, shop.tenants["acme"]
    _build(world)
    records = _ok(world.get("AU", f"{API}/tenants/{tenant}/lineage", params={"limit": 500}))["items"]
    by_job = {}
    for r in records:
        by_job.setdefault(r["job"], []).append(r["event_type"])
    assert sorted(by_job) == ["gdp.order", "kpi.kpi_order_value"]
    assert all(sorted(v) == ["COMPLETE", "START"] for v in by_job.values())
    complete = next(r for r in records if r["job"] == "gdp.order" and r["event_type"] == "COMPLETE")
    fields = complete["event"]["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [(f["name"], f["field"]) for f in fields["amount"]["inputFields"]] == [
        ("raw.shop__orders", "amount")
    ]
    assert complete["event"]["job"]["namespace"] == f"keel://{tenant}"
    only = _ok(world.get("AU", f"{API}/tenants/{tenant}/lineage", params={"job": "gdp.order"}))["items"]
    assert {r["job"] for r in only} == {"gdp.order"}
    graph = _ok(world.get("AU", f"{API}/tenants/{tenant}/lineage/graph"))
    layers = {n["id"]: n["layer"] for n in graph["nodes"]}
    assert layers["raw.shop__orders"] == "raw" and layers["gdp.order"] == "gdp"
    assert layers["kpi.kpi_order_value"] == "kpi"
    assert {"from": "raw.shop__orders.amount", "to": "gdp.order.amount"} in graph["edges"]
    assert any(e["to"] == "kpi.kpi_order_value.value" for e in graph["edges"])
    assert world.get("globex:AN", f"{API}/tenants/{tenant}/lineage").status_code in (403, 404)


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_events_are_posted_to_the_openlineage_endpoint(shop):
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        shop.keel.settings.openlineage_url = f"http://127.0.0.1:{server.server_port}"
        _build(shop)
    finally:
        server.shutdown()
        shop.keel.settings.openlineage_url = None
    assert {path for path, _ in _Receiver.received} == {"/api/v1/lineage"}
    assert sorted(e["eventType"] for _, e in _Receiver.received) == ["COMPLETE", "COMPLETE", "START", "START"]
    with shop.keel.engine.connect() as conn:
        assert {r.sent for r in conn.execute(sa.select(lineage_events.c.sent))} == {"sent"}


def test_an_unreachable_endpoint_never_fails_the_build(shop):
    shop.keel.settings.openlineage_url = "http://127.0.0.1:9"
    try:
        _build(shop)
    finally:
        shop.keel.settings.openlineage_url = None
    with shop.keel.engine.connect() as conn:
        rows = list(conn.execute(sa.select(lineage_events.c.sent, lineage_events.c.send_error)))
    assert rows and {r.sent for r in rows} == {"failed"} and all(r.send_error for r in rows)


def test_a_run_without_lineage_opens_an_incident_closed_by_a_run_with_lineage(shop):
    world, tenant = shop, shop.tenants["acme"]
    _build(world)
    from keel.contracts.builds import last_run

    with world.keel.uow() as uow:
        run = last_run(uow.conn, tenant, "gdp", "order", "1.0.0")
        store.capture(uow, tenant, run, {})
        uow.commit()
    with world.keel.engine.connect() as conn:
        gap = conn.execute(sa.select(incidents).where(incidents.c.kind == "lineage_gap")).one()
    assert gap.status == "OPEN" and gap.details["job"] == "gdp.order"
    _build(world)  # remediated: the rebuild captures the job's lineage
    with world.keel.engine.connect() as conn:
        assert (
            conn.execute(sa.select(incidents.c.status).where(incidents.c.id == gap.id)).scalar() == "RESOLVED"
        )
