"""Ingestion into Raw (issue 3, after 02/02b): a READY source lands in the tenant's own DuckDB
file, exactly once, with its ingestion metadata; the Integration Operator replays and
backfills windows under guardrails, with evidence.

The source is the sample ERP in a real SQLite file, changed between runs with SQL.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_onboarding import (
    ERP_STREAMS,
    active_connector,
    api,
    erp_ready,
    ready_source,
)

from keel.evidence.canonical import canonical_json
from keel.kernel.clock import utcnow
from keel.store.tables import incidents, ingestion_runs, receipts


@pytest.fixture
def erp(world, tmp_path):
    url, counts, source = erp_ready(world, "acme", tmp_path)
    return {"url": url, "counts": counts, "source_id": source["source_id"]}


def _runs(world, erp, who="acme:IO", **body):
    return world.post(who, f"{api(world.tenants['acme'])}/sources/{erp['source_id']}/runs", json=body)


def _raw(world, sql: str) -> list[tuple]:
    with duckdb.connect(
        str(world.keel.dataplanes.database_path(world.tenants["acme"])), read_only=True
    ) as con:
        return con.execute(sql).fetchall()


def test_a_sync_lands_every_record_once_with_its_ingestion_metadata(world, erp):
    answer = _runs(world, erp)

    assert answer.status_code == 201, answer.text
    runs = answer.json()["items"]
    assert {r["stream"]: r["rows"] for r in runs} == erp["counts"]
    assert all(r["status"] == "SUCCEEDED" and r["attempts"] == 1 for r in runs)
    for table, count in erp["counts"].items():
        assert _raw(world, f'SELECT count(*) FROM raw."erp__{table}"') == [(count,)]
    batch, source, at, digest, row_id = _raw(
        world,
        "SELECT _keel_batch_id, _keel_source, _keel_ingested_at, _keel_record_hash, row_id "
        'FROM raw."erp__invoices" ORDER BY row_id LIMIT 1',
    )[0]
    assert source == erp["source_id"] and batch and isinstance(at, dt.datetime)
    with sa.create_engine(erp["url"]).connect() as conn:  # the hash is of the record as the source gave it
        first = (
            conn.execute(sa.text("SELECT * FROM invoices WHERE row_id = :r"), {"r": row_id}).mappings().one()
        )
    assert len(digest) == 64 and digest != canonical_json({})  # a SHA-256, not a placeholder
    # The dirty rows arrive as they are: Raw keeps what the source holds (null amounts included).
    nulls = _raw(world, 'SELECT count(*) FROM raw."erp__invoices" WHERE amount_net IS NULL')[0][0]
    assert nulls >= 1 and first["row_id"] == row_id
    assert [e["payload"]["rows"] for e in world.events("ingestion.completed")] == [r["rows"] for r in runs]


def test_running_again_adds_nothing_and_new_source_rows_arrive_once(world, erp):
    _runs(world, erp)
    again = _runs(world, erp).json()["items"]
    assert {r["stream"]: r["rows"] for r in again if r["stream"] in ("invoices", "payments")} == {
        "invoices": 0,
        "payments": 0,
    }
    with sa.create_engine(erp["url"]).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO payments (payment_id, invoice_id, paid_at, amount, currency, updated_at) "
                "VALUES ('PAY-NEW-1', 'INV-X', '2026-12-01 10:00:00', 10.50, 'EUR', '2026-12-01 10:00:00')"
            )
        )

    third = {r["stream"]: r["rows"] for r in _runs(world, erp, stream="payments").json()["items"]}

    assert third == {"payments": 1}
    ids = [r[0] for r in _raw(world, 'SELECT payment_id FROM raw."erp__payments"')]
    assert len(ids) == len(set(ids)) == erp["counts"]["payments"] + 1


def test_the_integration_operator_replays_a_window_without_duplicates_or_moving_the_checkpoint(world, erp):
    _runs(world, erp)
    before = _raw(world, 'SELECT count(*) FROM raw."erp__invoices"')[0][0]
    window = {"cursor_field": "updated_at", "start": "2026-01-01T00:00:00", "end": "2026-02-01T00:00:00"}

    [run] = _runs(world, erp, kind="replay", stream="invoices", window=window).json()["items"]

    assert run["kind"] == "replay" and run["status"] == "SUCCEEDED"
    assert run["rows"] == 0 and run["skipped_duplicates"] > 0  # everything in the window is in Raw already
    assert _raw(world, 'SELECT count(*) FROM raw."erp__invoices"')[0][0] == before
    [event] = world.events("ingestion.replayed")
    assert event["actor_id"] == world.actors["acme:IO"].user_id and event["payload"]["window"] == window
    [receipt] = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "ingestion.replay"))
    assert receipt.body["run_by"] == world.actors["acme:IO"].user_id and receipt.body["window"] == window
    assert (receipt.body["status"], receipt.body["rows"]) == ("SUCCEEDED", 0)
    # The regular checkpoint did not move: the next sync finds nothing new.
    [sync] = _runs(world, erp, stream="invoices").json()["items"]
    assert sync["rows"] == 0


def test_a_backfill_adds_rows_that_arrived_in_an_old_window(world, erp):
    _runs(world, erp, stream="invoices")
    path = world.keel.dataplanes.database_path(world.tenants["acme"])
    with duckdb.connect(str(path)) as con:  # Raw lost January (e.g. restored from an old backup)
        con.execute("""DELETE FROM raw."erp__invoices" WHERE updated_at < TIMESTAMP '2026-02-01'""")
    window = {"cursor_field": "updated_at", "start": "2026-01-01", "end": "2026-02-01"}

    [run] = _runs(world, erp, kind="backfill", stream="invoices", window=window).json()["items"]

    assert run["status"] == "SUCCEEDED" and run["rows"] > 0
    assert _raw(world, 'SELECT count(*) FROM raw."erp__invoices"')[0][0] == erp["counts"]["invoices"]
    assert [e["type"] for e in world.events("ingestion.backfilled")] == ["ingestion.backfilled"]


def test_replay_guardrails_refuse_wide_windows_full_refresh_streams_and_other_personas(world, erp):
    wide = {"cursor_field": "updated_at", "start": "2020-01-01", "end": "2026-01-01"}
    answer = _runs(world, erp, kind="replay", stream="invoices", window=wide)
    assert answer.status_code == 409 and answer.json()["guardrail"] == "replay_max_days"

    window = {"cursor_field": "updated_at", "start": "2026-01-01", "end": "2026-02-01"}
    full = _runs(world, erp, kind="replay", stream="customers", window=window)
    assert full.status_code == 422, full.text[:600]
    assert "read in full" in full.json()["detail"]

    wrong_field = _runs(
        world, erp, kind="replay", stream="invoices", window={**window, "cursor_field": "due_at"}
    )
    assert wrong_field.status_code == 422 and wrong_field.json()["field"] == "window.cursor_field"

    for who in ("acme:AN", "acme:BO", "PA", "SRE"):
        assert _runs(world, erp, who=who, kind="replay", stream="invoices", window=window).status_code == 403

    no_window = _runs(world, erp, kind="backfill", stream="invoices")
    assert no_window.status_code == 422 and no_window.json()["field"] == "window"
    running = world.rows(sa.select(ingestion_runs).where(ingestion_runs.c.status == "RUNNING"))
    assert running == []  # refused runs are never left RUNNING


def test_a_tenant_blocked_by_its_compliance_review_ingests_nothing(world, erp):
    review = world.post(
        "CO",
        f"{api(world.tenants['acme'])}/compliance-review",
        json={"approve": False, "findings": ["evidence gap"]},
    )
    assert review.status_code == 200, review.text

    answer = _runs(world, erp)
    health = world.post("SRE", f"{api(world.tenants['acme'])}/sources/{erp['source_id']}/runs", json={})

    assert answer.status_code == 401 and "not active" in answer.json()["detail"]  # its members are locked out
    assert health.status_code == 403  # and no provider runs tenant ingestion
    assert world.rows(sa.select(ingestion_runs)) == []


def test_the_source_shows_its_raw_tables_checkpoints_and_batches(world, erp):
    runs = _runs(world, erp).json()["items"]

    answer = world.get("acme:DE", f"{api(world.tenants['acme'])}/sources/{erp['source_id']}/raw")

    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert {t["stream"]: t["rows"] for t in status["tables"]} == erp["counts"]
    assert {t["table"] for t in status["tables"]} == {f"raw.erp__{s}" for s in ERP_STREAMS}
    assert status["checkpoints"]["invoices"]["mode"] == "incremental"
    assert {b["run_id"] for b in status["recent_batches"]} <= {r["run_id"] for r in runs}
    assert "amount_net" not in answer.text  # metadata only: no record leaves the data plane


# Bad input: a clear error on the run, nothing already ingested lost or duplicated ----------------
@pytest.fixture
def drop_folder(world, tmp_path):
    """A READY files source over a real folder of CSV files."""
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.csv").write_text("id,amount\n1,10\n2,20\n3,30\n")
    config = {"path": str(folder), "pattern": "*.csv", "format": "csv", "stream": "payments"}
    connector = active_connector(world, "acme", "files", "Drop", config)
    source = ready_source(world, "acme", connector["connector_id"], "Drop", ["payments"])
    return {"folder": folder, "source_id": source["source_id"]}


def test_a_malformed_file_fails_the_run_naming_file_and_row_and_keeps_what_was_ingested(world, drop_folder):
    assert _runs(world, drop_folder).json()["items"][0]["rows"] == 3
    (drop_folder["folder"] / "b.csv").write_text("id,amount\n4,40\n5,50,surplus\n")

    [failed] = _runs(world, drop_folder).json()["items"]

    assert failed["status"] == "FAILED" and failed["error"]["failure"] == "malformed"
    message = failed["error"]["message"]
    assert "b.csv" in message and "row" in message, message
    assert _raw(world, 'SELECT id FROM raw."drop__payments" ORDER BY id') == [(1,), (2,), (3,)]
    connector = world.get(
        "acme:DE", f"{api(world.tenants['acme'])}/sources/{drop_folder['source_id']}"
    ).json()
    assert connector["status"] == "READY"  # bad data fails its run; the connector is not broken
    assert world.rows(sa.select(incidents)) == [] and world.events("connector.failure.detected") == []

    (drop_folder["folder"] / "b.csv").write_text("id,amount\n4,40\n5,50\n")
    [rerun] = _runs(world, drop_folder, kind="rerun", rerun_of=failed["run_id"]).json()["items"]

    assert rerun["status"] == "SUCCEEDED" and rerun["rows"] == 2
    assert _raw(world, 'SELECT id FROM raw."drop__payments" ORDER BY id') == [(1,), (2,), (3,), (4,), (5,)]


def test_a_value_of_the_wrong_type_fails_the_run_naming_the_field(world, drop_folder):
    _runs(world, drop_folder)
    (drop_folder["folder"] / "c.csv").write_text("id,amount\n6,sixty\n")

    [failed] = _runs(world, drop_folder).json()["items"]

    assert failed["status"] == "FAILED"
    assert "amount" in failed["error"]["message"]
    assert _raw(world, 'SELECT count(*) FROM raw."drop__payments"') == [(3,)]


def test_a_run_whose_worker_died_is_marked_interrupted_and_the_next_run_resumes(world, erp):
    def crashed_run(run_id: str, minutes_ago: int) -> None:  # a worker killed after claiming its run
        with world.keel.engine.begin() as conn:
            conn.execute(
                ingestion_runs.insert().values(
                    id=run_id,
                    tenant_id=world.tenants["acme"],
                    source_id=erp["source_id"],
                    stream="invoices",
                    kind="sync",
                    status="RUNNING",
                    rows=0,
                    batches=0,
                    skipped=0,
                    attempts=1,
                    started_by=world.actors["acme:IO"].user_id,
                    started_at=utcnow() - dt.timedelta(minutes=minutes_ago),
                )
            )

    crashed_run("RUN-20260101-FRESH001", minutes_ago=1)
    busy = _runs(world, erp, stream="invoices")
    assert busy.status_code == 409 and busy.json()["run_id"] == "RUN-20260101-FRESH001"

    with world.keel.engine.begin() as conn:
        conn.execute(ingestion_runs.delete().where(ingestion_runs.c.id == "RUN-20260101-FRESH001"))
    crashed_run("RUN-20260101-STALE001", minutes_ago=world.keel.settings.ingestion_lease_minutes + 1)
    [run] = _runs(world, erp, stream="invoices").json()["items"]

    assert run["status"] == "SUCCEEDED" and run["rows"] == erp["counts"]["invoices"]
    stale = world.rows(sa.select(ingestion_runs).where(ingestion_runs.c.id == "RUN-20260101-STALE001"))[0]
    assert stale.status == "INTERRUPTED"
    assert [e["payload"]["run_id"] for e in world.events("ingestion.interrupted")] == [
        "RUN-20260101-STALE001"
    ]


def test_a_replay_refused_for_one_stream_leaves_no_run_running(world, erp):
    window = {"cursor_field": "updated_at", "start": "2026-01-01", "end": "2026-01-20"}

    answer = _runs(world, erp, kind="replay", window=window)  # every stream; customers is read in full

    assert answer.status_code == 422
    runs = world.rows(sa.select(ingestion_runs.c.stream, ingestion_runs.c.status))
    assert runs and all(r.status != "RUNNING" for r in runs)


def test_providers_see_that_a_checkpoint_exists_not_its_values(world, erp):
    _runs(world, erp)
    path = f"{api(world.tenants['acme'])}/sources/{erp['source_id']}/raw"

    for who in ("PA", "AU", "SRE"):
        status = world.get(who, path).json()
        assert status["checkpoints"]["invoices"] == {"committed": True}, who
        assert all(c in (None, {"committed": True}) for c in status["checkpoints"].values()), who
        assert all("state" not in b for b in status["recent_batches"])
    assert "cursor" in world.get("acme:DE", path).json()["checkpoints"]["invoices"]


def test_past_the_daily_spend_cap_a_backfill_is_refused_and_a_sync_still_runs(world, erp):
    """05b "cap exceeded → block non-essential actions": replay and backfill re-read history and
    are non-essential; the regular sync is essential and runs past the cap, alerting."""
    _runs(world, erp, stream="invoices")  # today's compute: this run's seconds
    cap = {"guardrail_id": "COST-CAP-DAILY", "tenant_scope": "global", "daily_spend_cap_usd": 0.000000001,
           "on_breach": "block_non_essential_actions"}  # fmt: skip
    assert world.post("SA", "/api/v1/guardrails", json=cap).status_code == 201
    assert world.post("PA", "/api/v1/guardrails/COST-CAP-DAILY/enable").status_code == 200
    window = {"cursor_field": "updated_at", "start": "2026-01-01", "end": "2026-02-01"}
    runs_before = world.rows(sa.select(ingestion_runs.c.id))

    for kind in ("backfill", "replay"):
        refused = _runs(world, erp, kind=kind, stream="invoices", window=window)
        assert refused.status_code == 409, refused.text
        assert (refused.json()["guardrail_id"], refused.json()["kind"]) == ("COST-CAP-DAILY", "spend_cap")
    assert world.rows(sa.select(ingestion_runs.c.id)) == runs_before  # no run was claimed
    blocked = [e["payload"] for e in world.events("cost.guardrail.enforced")]
    assert [(b["action"], b["outcome"], b["essential"]) for b in blocked] == [
        ("ingestion:Backfill", "blocked", False),
        ("ingestion:Replay", "blocked", False),
    ]
    [sync] = _runs(world, erp, stream="invoices").json()["items"]
    assert sync["status"] == "SUCCEEDED"
