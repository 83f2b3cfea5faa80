"""05b housekeeping core: policy rules, cold tiering with row accounting, legal holds, raw deletion."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from keel.housekeeping.execution import execute
from keel.housekeeping.policy import LegalHold, PolicyError, RetentionPolicy
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
        'CREATE TABLE raw."invoices" AS SELECT i AS id, '
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
    cold = tmp_path / "cold" / "acme" / "invoice__v1_0_0" / "2025-12-07.parquet"
    assert run.files == [str(cold)]
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


def test_failure_is_retried_then_failed(tmp_path):
    engine = _plane(tmp_path)
    policy = _policy(table="missing")
    policy.approve("co")
    run = execute(engine, "acme", policy, NOW, tmp_path / "cold")
    assert run.status == "FAILED" and run.attempts == 3


def test_run_due_uses_the_tenant_plane_and_keel_home(tmp_path):
    from types import SimpleNamespace

    from keel.housekeeping.execution import run_due

    engine = _plane(tmp_path)
    keel = SimpleNamespace(
        settings=SimpleNamespace(home=tmp_path),
        dataplanes=SimpleNamespace(database_path=lambda tenant_id: engine.path),
    )
    policy = _policy()
    policy.approve("co")
    (run,) = run_due(keel, NOW, [("acme", policy)])
    assert run.status == "SUCCEEDED"
    assert run.files[0].startswith(str(tmp_path / "cold" / "acme" / "invoice__v1_0_0"))
