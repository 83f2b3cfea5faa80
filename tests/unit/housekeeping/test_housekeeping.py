"""05b housekeeping core: policy rules, cold tiering with row accounting, legal holds, raw deletion."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from keel.housekeeping.compaction import compact
from keel.housekeeping.execution import execute
from keel.housekeeping.policy import LegalHold, PolicyError, RetentionPolicy
from keel.housekeeping.protection import Protection
from keel.pipeline.engine import DuckDBEngine

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _plane(tmp_path):
    path = tmp_path / "acme" / "keel.duckdb"
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA gdp; CREATE SCHEMA raw")
    con.execute(
        'CREATE TABLE gdp."invoice__v1_0_0" AS SELECT i AS id, '
        "TIMESTAMPTZ '2026-12-07 00:00:00+00' - to_days(i * 30) AS issued_at FROM range(24) t(i)"
    )
    con.execute(
        "CREATE TABLE raw.\"invoices\" AS SELECT i AS id, 'B-' || i AS _keel_batch_id, "
        "TIMESTAMPTZ '2026-12-07 00:00:00+00' - to_days(i * 30) AS _keel_ingested_at FROM range(24) t(i)"
    )
    con.close()
    return DuckDBEngine(path)


def _policy(**kw):
    base = dict(
        policy_id="RET-12M",
        scope="gdp",
        retention_months=12,
        action_on_expiry="tier_to_cold",
        table="invoice__v1_0_0",
        time_column="issued_at",
        defined_by="pa",
    )
    return RetentionPolicy(**{**base, **kw})


def test_tiers_expired_rows_to_parquet_and_deletes_them(tmp_path):
    engine = _plane(tmp_path)
    policy = _policy()
    policy.approve("co")
    cutoff = "2025-12-07 12:00:00+00"
    expected = sorted(
        r[0]
        for r in duckdb.connect(str(engine.path), read_only=True)
        .execute(f"SELECT id FROM gdp.invoice__v1_0_0 WHERE issued_at < TIMESTAMPTZ '{cutoff}'")
        .fetchall()
    )
    run = execute(engine, "acme", policy, NOW, tmp_path / "cold")
    assert run.status == "SUCCEEDED" and run.attempts == 1
    assert run.rows_tiered == run.rows_deleted == len(expected) > 0
    (cold,) = run.files
    assert cold.startswith(str(tmp_path / "cold" / "gdp" / "invoice__v1_0_0" / "2025-12-07-"))
    assert sorted(r[0] for r in duckdb.connect().execute(f"SELECT id FROM '{cold}'").fetchall()) == expected
    left = engine.rows(f"SELECT count(*) FROM gdp.invoice__v1_0_0 WHERE issued_at < TIMESTAMPTZ '{cutoff}'")
    assert left == [(0,)]
    assert engine.rows("SELECT count(*) FROM gdp.invoice__v1_0_0") == [(24 - len(expected),)]


def test_legal_hold_blocks_and_nothing_moves(tmp_path):
    engine = _plane(tmp_path)
    policy = _policy()
    policy.approve("co")
    hold = LegalHold("LH-1", "acme", "sa", layer="gdp")
    run = execute(engine, "acme", policy, NOW, tmp_path / "cold", holds=[hold])
    assert run.status == "BLOCKED" and "LH-1" in run.reason
    assert engine.rows("SELECT count(*) FROM gdp.invoice__v1_0_0") == [(24,)]
    assert not (tmp_path / "cold").exists()
    hold.released = True
    assert execute(engine, "acme", policy, NOW, tmp_path / "cold", holds=[hold]).status == "SUCCEEDED"


def test_unapproved_policy_does_nothing_and_author_cannot_approve(tmp_path):
    engine = _plane(tmp_path)
    policy = _policy()
    assert execute(engine, "acme", policy, NOW, tmp_path / "cold").status == "SKIPPED"
    assert engine.rows("SELECT count(*) FROM gdp.invoice__v1_0_0") == [(24,)]
    with pytest.raises(PolicyError, match="author"):
        policy.approve("pa")


def test_raw_scope_deletes_and_validation(tmp_path):
    engine = _plane(tmp_path)
    policy = _policy(
        scope="raw", action_on_expiry="delete", table="invoices", time_column="_keel_ingested_at"
    )
    policy.approve("co")
    run = execute(engine, "acme", policy, NOW, tmp_path / "cold")
    assert run.status == "SUCCEEDED" and run.rows_deleted > 0 and run.files == []
    assert engine.rows("SELECT count(*) FROM raw.invoices") == [(24 - run.rows_deleted,)]
    with pytest.raises(PolicyError, match="not allowed"):
        _policy(scope="raw")
    with pytest.raises(PolicyError, match="retention_months"):
        _policy(retention_months=0)


def test_a_missing_table_is_skipped_and_a_failure_is_retried_then_failed(tmp_path):
    engine = _plane(tmp_path)
    policy = _policy(table="missing")
    policy.approve("co")
    run = execute(engine, "acme", policy, NOW, tmp_path / "cold")
    assert (run.status, run.attempts) == ("SKIPPED", 1) and "not in the tenant's data plane" in run.reason
    broken = _policy(time_column="no_such_column")
    broken.approve("co")
    run = execute(engine, "acme", broken, NOW, tmp_path / "cold")
    assert (run.status, run.attempts) == ("FAILED", 3) and "no_such_column" in run.reason
    assert engine.rows("SELECT count(*) FROM gdp.invoice__v1_0_0") == [(24,)]


def test_evidence_blocks_a_delete_but_not_tiering(tmp_path):
    engine = _plane(tmp_path)
    raw = _policy(scope="raw", action_on_expiry="delete", table="invoices", time_column="_keel_ingested_at")
    raw.approve("co")
    guarded = Protection(batches={"B-20": "receipt RCP-1 (ingestion.backfill)"})
    run = execute(engine, "acme", raw, NOW, tmp_path / "cold", protection=guarded)
    assert run.status == "BLOCKED" and "batch B-20 by receipt RCP-1" in run.reason
    assert engine.rows("SELECT count(*) FROM raw.invoices") == [(24,)]
    young = Protection(batches={"B-1": "pipeline run PLR-1"})  # a batch that has not expired
    assert execute(engine, "acme", raw, NOW, tmp_path / "cold", protection=young).status == "SUCCEEDED"

    published = Protection(tables={"gdp.invoice__v1_0_0": "publication KPB-1 of DSO names it"})
    delete = _policy(action_on_expiry="delete")
    delete.approve("co")
    run = execute(engine, "acme", delete, NOW, tmp_path / "cold", protection=published)
    assert run.status == "BLOCKED" and "KPB-1" in run.reason
    tier = _policy()
    tier.approve("co")
    assert execute(engine, "acme", tier, NOW, tmp_path / "cold", protection=published).status == "SUCCEEDED"


def test_a_hold_on_an_entity_covers_its_versions_and_side_tables():
    hold = LegalHold("LH-1", "acme", "sa", layer="gdp", table="invoice")
    assert hold.covers("acme", "gdp", "invoice__v1_0_0") and hold.covers("acme", "gdp", "invoice")
    assert not hold.covers("acme", "gdp", "invoices") and not hold.covers("globex", "gdp", "invoice")
    assert not hold.covers("acme", "raw", "invoice")


def test_compaction_keeps_every_row_and_merges_cold_files(tmp_path):
    engine = _plane(tmp_path)
    for months in (12, 6):
        policy = _policy(retention_months=months)
        policy.approve("co")
        assert execute(engine, "acme", policy, NOW, tmp_path / "cold").rows_tiered > 0
    folder = tmp_path / "cold" / "gdp" / "invoice__v1_0_0"
    assert len(list(folder.glob("*.parquet"))) == 2
    run = compact(engine, "acme", "gdp", "invoice__v1_0_0", tmp_path / "cold")
    assert run.status == "SUCCEEDED" and "merged 2 cold files" in run.reason
    (merged,) = folder.glob("*.parquet")
    hot = engine.rows("SELECT count(*) FROM gdp.invoice__v1_0_0")[0][0]
    cold = duckdb.connect().execute(f"SELECT count(*) FROM '{merged}'").fetchone()[0]
    assert hot + cold == 24
    missing = compact(engine, "acme", "gdp", "nothing_here", tmp_path / "cold")
    assert (missing.status, missing.attempts) == ("FAILED", 3)
