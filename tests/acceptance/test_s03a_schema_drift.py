"""Story 03a step 5, "Watch drift (OE)", through the REST API.

A source is linked to a published Raw contract; every ingestion run compares the
schema the source delivers with it before anything is written. Drift (an added,
removed, renamed-looking or retyped column) raises an alert for the Observability
Engineer and opens one review ticket; the contract's drift policy decides whether
the run lands as usual (alert), lands in a quarantine table (quarantine) or stops.

The sources are real: CSV files in a folder read by the ``files`` connector, and the
sample ERP in a SQLite file.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, publish_contract, raw_contract
from tests.support_onboarding import (
    ERP_STREAMS,
    INVOICES_CONTRACT,
    active_connector,
    api,
    erp_config,
    step,
    write_erp,
)

from keel.store.tables import incidents, metric_samples, review_tickets, tenant_contracts

ORDERS = {"order_id": "string", "customer_email": "string", "amount": "number", "placed_at": "date"}
HEADER = "order_id,customer_email,amount,placed_at"


@pytest.fixture
def shop(world, tmp_path):
    """A folder of order CSV files on an ACTIVE files connector; ``onboard(policy)`` publishes the
    Raw contract RAW-SHOP (dataset ``shop__orders``) with that drift policy and brings a source
    linked to it to READY."""
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "a.csv").write_text(
        f"{HEADER}\nA1,ann@shop.test,10.5,2026-01-05\nA2,bob@shop.test,20,2026-01-06\n"
    )
    config = {"path": str(folder), "pattern": "*.csv", "format": "csv", "stream": "orders"}
    connector_id = active_connector(world, "acme", "files", "Shop", config)["connector_id"]

    class Shop:
        def onboard(self, policy: str = "alert", fields: dict | None = None) -> str:
            publish_contract(
                world, raw_contract(table="shop__orders", fields=fields or ORDERS, drift_policy=policy)
            )
            self.source_id = _onboard(world, connector_id, "Shop", ["orders"], raw_contract="RAW-SHOP")
            return self.source_id

        def write(self, name: str, text: str) -> None:
            (folder / name).write_text(text)

        def sync(self) -> dict:
            return _run(world, self.source_id)

        def raw(self) -> dict:
            return world.get("acme:DE", f"{_tenant(world)}/sources/{self.source_id}/raw").json()

    shop = Shop()
    shop.folder, shop.connector_id = folder, connector_id
    return shop


def _tenant(world) -> str:
    return api(world.tenants["acme"])


def _onboard(world, connector_id: str, name: str, streams: list[str], **extra) -> str:
    """Request (DE, with ``extra``) → register (PA) → validate (SA) → preflight → handshake: READY."""
    body = {"name": name, "streams": streams, "justification": "orders for DSO", "connector_id": connector_id}
    sid = step(world, "acme:DE", "acme", "/sources", body | extra)["source_id"]
    step(world, "PA", "acme", f"/sources/{sid}/registration")
    step(world, "SA", "acme", f"/sources/{sid}/validation")
    assert step(world, "PA", "acme", f"/sources/{sid}/preflight")["status"] == "ACTIVE"
    done = step(world, "PA", "acme", f"/sources/{sid}/handshake")
    assert done["status"] == "READY", done["preflight"]
    return sid


def _run(world, source_id: str, **body) -> dict:
    answer = world.post("acme:IO", f"{_tenant(world)}/sources/{source_id}/runs", json=body)
    assert answer.status_code == 201, answer.text
    [run] = answer.json()["items"]
    return run


def _raw(world, sql: str) -> list[tuple]:
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _tables(world) -> set[str]:
    return {r[0] for r in _raw(world, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'")}


def _drift_count(world) -> int:
    values = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "drift_detection_count")
    )
    return sum(int(v.value) for v in values)


def _drift(added=(), removed=(), renamed=(), type_changed=(), *, dataset="shop__orders") -> dict:
    return {
        "dataset": dataset,
        "added": list(added),
        "removed": list(removed),
        "renamed": [{"from": old, "to": new} for old, new in renamed],
        "type_changed": [{"column": c, "expected": e, "found": f} for c, e, f in type_changed],
    }


def _without_summary(drift: dict) -> dict:
    return {k: v for k, v in drift.items() if k != "summary"}


# No drift: nothing to report --------------------------------------------------------------
def test_a_source_that_matches_its_raw_contract_is_ingested_without_ticket_or_alert(world, shop):
    shop.onboard()

    run = shop.sync()

    assert (run["status"], run["rows"], run["error"]) == ("SUCCEEDED", 2, None)
    assert world.rows(sa.select(review_tickets)) == [] and world.rows(sa.select(incidents)) == []
    assert world.events("schema.drift.detected") == [] and _drift_count(world) == 0
    source = world.get("acme:DE", f"{_tenant(world)}/sources/{shop.source_id}").json()
    assert source["raw_contract"] == "RAW-SHOP"


# Drift → alert, review ticket; the policy decides ------------------------------------------
def test_an_added_column_raises_an_alert_opens_a_ticket_and_policy_alert_ingests_the_data(world, shop):
    shop.onboard("alert")
    assert shop.sync()["rows"] == 2
    shop.write("b.csv", f"{HEADER},channel\nA3,cy@shop.test,30,2026-01-07,web\n")

    run = shop.sync()

    assert (run["status"], run["rows"]) == ("SUCCEEDED", 1)
    assert _raw(world, 'SELECT order_id, channel FROM raw."shop__orders" ORDER BY order_id') == [
        ("A1", None),
        ("A2", None),
        ("A3", "web"),
    ]
    [ticket] = world.rows(sa.select(review_tickets))
    assert (ticket.kind, ticket.status, ticket.tenant_id) == ("drift", "OPEN", world.tenants["acme"])
    assert _without_summary(ticket.details["drift"]) == _drift(added=["channel"])
    assert {k: ticket.details[k] for k in ("source_id", "stream", "schema_id", "version", "decision")} == {
        "source_id": shop.source_id,
        "stream": "orders",
        "schema_id": "RAW-SHOP",
        "version": "1.0.0",
        "decision": "continue",
    }
    [incident] = world.rows(sa.select(incidents))
    assert (incident.kind, incident.status) == ("schema_drift", "OPEN")
    assert incident.details["audience"] == "SRE" and incident.details["ticket_id"] == ticket.id
    [alert] = world.events("alert.fired")
    assert alert["payload"]["incident_id"] == incident.id
    [event] = world.events("schema.drift.detected")
    assert event["actor_id"] == world.actors["acme:IO"].user_id
    payload = event["payload"]
    assert _without_summary(payload["drift"]) == _drift(added=["channel"])
    assert {k: payload[k] for k in ("run_id", "schema_id", "policy", "decision", "ticket_id")} == {
        "run_id": run["run_id"],
        "schema_id": "RAW-SHOP",
        "policy": "alert",
        "decision": "continue",
        "ticket_id": ticket.id,
    }
    assert "cy@shop.test" not in str(event) and "web" not in str(payload)  # no record value in evidence
    assert _drift_count(world) == 1
    assert "keel_drift_detection_count 1.0" in world.client.get("/metrics").text


def test_a_renamed_looking_column_is_reported_as_one_rename(world, shop):
    shop.onboard("alert")
    shop.write("a.csv", "order_id,customer_mail,amount,placed_at\nA1,ann@shop.test,10.5,2026-01-05\n")

    run = shop.sync()

    assert run["status"] == "SUCCEEDED"
    [event] = world.events("schema.drift.detected")
    assert _without_summary(event["payload"]["drift"]) == _drift(
        renamed=[("customer_email", "customer_mail")]
    )
    assert "customer_email → customer_mail" in event["payload"]["drift"]["summary"]
    assert len(world.rows(sa.select(review_tickets))) == 1


def test_a_type_change_is_drift_but_a_type_that_widens_is_not(world, shop):
    # The contract declares amount a decimal and placed_at a timestamp: an integer and a date fit them.
    shop.write("a.csv", f"{HEADER}\nA1,ann@shop.test,10,2026-01-05\n")
    shop.onboard("alert", fields={**ORDERS, "amount": "decimal", "placed_at": "timestamp"})
    assert shop.sync()["status"] == "SUCCEEDED" and world.events("schema.drift.detected") == []
    shop.write("b.csv", f"{HEADER}\nA2,bob@shop.test,ten,2026-01-06\n")

    shop.sync()

    [event] = world.events("schema.drift.detected")
    assert _without_summary(event["payload"]["drift"]) == _drift(
        type_changed=[("amount", "decimal", "string")]
    )


def test_policy_stop_fails_the_run_naming_the_columns_and_writes_nothing(world, shop):
    shop.onboard("stop")
    assert shop.sync()["rows"] == 2
    before = shop.raw()["checkpoints"]
    shop.write("b.csv", f"{HEADER},channel,coupon\nA3,cy@shop.test,30,2026-01-07,web,X1\n")

    run = shop.sync()

    assert (run["status"], run["rows"], run["batches"]) == ("FAILED", 0, 0)
    assert run["error"]["failure"] == "drift"
    assert "added channel, coupon" in run["error"]["message"]
    assert _raw(world, 'SELECT order_id FROM raw."shop__orders" ORDER BY order_id') == [("A1",), ("A2",)]
    assert shop.raw()["checkpoints"] == before
    assert _raw(world, "SELECT column_name FROM duckdb_columns() WHERE column_name = 'channel'") == []
    [event] = world.events("schema.drift.detected")
    assert event["payload"]["decision"] == "stop"
    [incident] = world.rows(sa.select(incidents))
    assert incident.severity == "SEV2"
    connector = world.get("acme:DE", f"{_tenant(world)}/connectors/{shop.connector_id}").json()
    assert connector["status"] == "ACTIVE"  # drift is the data's problem, not the connector's

    # The source is fixed (the file is sent again without the new columns): the rerun resumes.
    shop.write("b.csv", f"{HEADER}\nA3,cy@shop.test,30,2026-01-07\n")
    rerun = _run(world, shop.source_id, kind="rerun", rerun_of=run["run_id"])

    assert (rerun["status"], rerun["rows"]) == ("SUCCEEDED", 1)
    assert _raw(world, 'SELECT count(*) FROM raw."shop__orders"') == [(3,)]


def test_policy_quarantine_lands_the_records_in_a_quarantine_table_and_none_in_raw(world, shop):
    shop.onboard("quarantine")
    rows = ["A1,ann@shop.test,10.5,2026-01-05,web", "A2,bob@shop.test,20,2026-01-06,shop"]
    shop.write("a.csv", "\n".join([f"{HEADER},channel", *rows, ""]))

    run = shop.sync()

    assert (run["status"], run["rows"], run["quarantined"]) == ("QUARANTINED", 2, 2)
    assert run["error"]["quarantine_table"] == "raw.shop__orders__quarantine"
    assert "shop__orders" not in _tables(world)
    assert _raw(world, 'SELECT order_id, channel FROM raw."shop__orders__quarantine" ORDER BY 1') == [
        ("A1", "web"),
        ("A2", "shop"),
    ]
    bookkeeping = _raw(
        world,
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'shop__orders__quarantine' "
        "AND column_name LIKE '\\_keel\\_%' ESCAPE '\\' ORDER BY column_index",
    )
    assert [c for (c,) in bookkeeping] == [
        "_keel_batch_id",
        "_keel_source",
        "_keel_ingested_at",
        "_keel_record_hash",
    ]
    [event] = world.events("ingestion.quarantined")
    assert event["payload"]["quarantine_table"] == "raw.shop__orders__quarantine"
    # The quarantined batch is kept: the checkpoint moved, and the next run adds nothing twice.
    again = shop.sync()
    assert (again["status"], again["rows"]) == ("QUARANTINED", 0)
    assert _raw(world, 'SELECT count(*) FROM raw."shop__orders__quarantine"') == [(2,)]


def test_the_same_drift_found_twice_opens_one_ticket_and_one_alert(world, shop):
    shop.onboard("stop")
    shop.write("a.csv", f"{HEADER},channel\nA1,ann@shop.test,10.5,2026-01-05,web\n")

    first = shop.sync()
    second = _run(world, shop.source_id, kind="rerun", rerun_of=first["run_id"])

    assert [first["status"], second["status"]] == ["FAILED", "FAILED"]
    [ticket] = world.rows(sa.select(review_tickets))
    assert first["error"]["ticket_id"] == second["error"]["ticket_id"] == ticket.id
    assert len(world.rows(sa.select(incidents))) == 1 and len(world.events("alert.fired")) == 1
    events = world.events("schema.drift.detected")
    assert [e["payload"]["new_ticket"] for e in events] == [True, False]
    assert _drift_count(world) == 2  # each run detected it

    # Another drift is another ticket.
    shop.write("a.csv", f"{HEADER},coupon\nA1,ann@shop.test,10.5,2026-01-05,X1\n")
    shop.sync()
    assert len(world.rows(sa.select(review_tickets))) == 2


def test_a_new_contract_version_ends_the_drift_once_the_tenant_runs_it(world, shop):
    shop.onboard("stop")
    shop.write("a.csv", f"{HEADER},channel\nA1,ann@shop.test,10.5,2026-01-05,web\n")
    failed = shop.sync()
    assert failed["status"] == "FAILED"

    publish_contract(
        world,
        raw_contract(
            version="1.1.0", table="shop__orders", fields={**ORDERS, "channel": "string"}, drift_policy="stop"
        ),
    )
    # Tenants keep running the version they run until a rollout (03f) moves them.
    pinned = _run(world, shop.source_id, kind="rerun", rerun_of=failed["run_id"])
    assert pinned["status"] == "FAILED" and pinned["error"]["version"] == "1.0.0"
    with world.keel.engine.begin() as conn:  # what a completed rollout leaves behind
        conn.execute(
            tenant_contracts.update()
            .where(tenant_contracts.c.tenant_id == world.tenants["acme"])
            .values(version="1.1.0", previous_version="1.0.0")
        )

    rerun = _run(world, shop.source_id, kind="rerun", rerun_of=pinned["run_id"])

    assert (rerun["status"], rerun["rows"]) == ("SUCCEEDED", 1)
    assert _raw(world, 'SELECT order_id, channel FROM raw."shop__orders"') == [("A1", "web")]
    assert len(world.events("schema.drift.detected")) == 2


# One stream drifts, the others run; a dataset named after the stream ------------------------
def test_on_the_sample_erp_only_the_drifted_stream_stops(world, tmp_path):
    url, counts = write_erp(tmp_path)
    connector_id = active_connector(world, "acme", "erp-sql", "ERP", erp_config(url))["connector_id"]
    contract = {k: v.replace("date-time", "timestamp") for k, v in INVOICES_CONTRACT.items()} | {
        "due_at": "date",
        "amount_tax": "decimal",
        "status": "string",
    }
    publish_contract(world, raw_contract("RAW-ERP", table="invoices", fields=contract, drift_policy="stop"))
    source_id = _onboard(world, connector_id, "ERP", ERP_STREAMS, raw_contract="RAW-ERP")
    with sa.create_engine(url).begin() as conn:  # the ERP team adds a column
        conn.execute(sa.text("ALTER TABLE invoices ADD COLUMN po_number TEXT"))

    answer = world.post("acme:DE", f"{_tenant(world)}/sources/{source_id}/runs", json={})

    runs = {r["stream"]: r for r in answer.json()["items"]}
    assert runs["invoices"]["status"] == "FAILED"
    assert "invoices drifted: added po_number;" in runs["invoices"]["error"]["message"]
    assert {s: r["rows"] for s, r in runs.items() if s != "invoices"} == {
        s: counts[s] for s in ERP_STREAMS if s != "invoices"
    }
    assert "erp__invoices" not in _tables(world)
    [event] = world.events("schema.drift.detected")
    assert event["payload"]["drift"]["dataset"] == "invoices"


# The handshake checks the schema against the linked contract (02b) ---------------------------
def test_the_handshake_checks_the_streams_against_the_linked_raw_contract(world, shop):
    publish_contract(world, raw_contract(table="shop__orders", fields={**ORDERS, "currency": "string"}))
    body = {"name": "Shop", "streams": ["orders"], "justification": "j", "connector_id": shop.connector_id,
            "raw_contract": "RAW-SHOP"}  # fmt: skip
    sid = step(world, "acme:DE", "acme", "/sources", body)["source_id"]
    for who, path in (("PA", "registration"), ("SA", "validation"), ("PA", "preflight")):
        step(world, who, "acme", f"/sources/{sid}/{path}")

    done = step(world, "PA", "acme", f"/sources/{sid}/handshake")

    assert done["status"] == "FAILED"
    assert done["preflight"]["schema"]["orders"]["missing"] == ["currency"]
    [incident] = world.rows(sa.select(incidents))
    assert incident.kind == "schema_mismatch"


# Linking: the contract must exist, be raw, be visible to the tenant and be published -------------
def test_linking_needs_a_published_raw_contract_of_the_tenant_or_a_global_one(world, shop):
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract())
    globex = world.tenants["globex"]
    drafted = world.post(
        "globex:DE", "/api/v1/contracts", {"document": raw_contract("RAW-GLOBEX"), "tenant_id": globex}
    )
    assert drafted.status_code == 201, drafted.text
    world.post("SS", "/api/v1/contracts", {"document": raw_contract("RAW-DRAFT", table="shop__orders")})
    publish_contract(world, raw_contract("RAW-OTHER", table="crm__contacts"))
    base = {"name": "Shop", "streams": ["orders"], "justification": "j", "connector_id": shop.connector_id}

    refused = {}
    for contract in ("RAW-NOPE", "GDP-ORDER", "RAW-GLOBEX", "RAW-DRAFT", "RAW-OTHER"):
        answer = world.post("acme:DE", f"{_tenant(world)}/sources", base | {"raw_contract": contract})
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "raw_contract"
        refused[contract] = answer.json()["detail"]

    assert refused["RAW-NOPE"].replace("RAW-NOPE", "X") == refused["RAW-GLOBEX"].replace("RAW-GLOBEX", "X")
    assert "gdp contract" in refused["GDP-ORDER"]
    assert "no published version" in refused["RAW-DRAFT"]
    assert "no dataset" in refused["RAW-OTHER"]
    assert world.get("acme:DE", f"{_tenant(world)}/sources").json()["items"] == []


def test_the_data_engineer_links_an_onboarded_source_later_and_the_next_run_watches(world, shop):
    sid = _onboard(world, shop.connector_id, "Shop", ["orders"])
    publish_contract(
        world, raw_contract(table="shop__orders", fields={"order_id": "string", "amount": "number"})
    )
    path = f"{_tenant(world)}/sources/{sid}/raw-contract"

    for who in ("acme:AN", "acme:IO", "PA", "SS"):
        assert world.put(who, path, {"raw_contract": "RAW-SHOP"}).status_code == 403, who
    missing = world.put("acme:TA", path, {"raw_contract": "RAW-NOPE"})
    assert missing.status_code == 422 and missing.json()["field"] == "raw_contract"
    linked = world.put("acme:DE", path, {"raw_contract": "RAW-SHOP"})

    assert linked.status_code == 200, linked.text
    assert (linked.json()["raw_contract"], linked.json()["status"]) == ("RAW-SHOP", "READY")
    [event] = world.events("source.raw_contract.linked")
    assert event["payload"]["raw_contract"] == "RAW-SHOP@1.0.0"
    run = _run(world, sid)
    assert run["status"] == "SUCCEEDED"
    [drift] = world.events("schema.drift.detected")
    assert _without_summary(drift["payload"]["drift"]) == _drift(added=["customer_email", "placed_at"])
