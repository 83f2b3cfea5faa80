"""The Alembic migrations build exactly the declared tables, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keel.store.engine import create_store_engine, migrate
from keel.store.tables import ledger_head, metadata


def _drift(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def _check(engine) -> None:
    migrate(engine)
    migrate(engine)  # idempotent: a restart runs it again
    assert _drift(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(ledger_head.c.id, ledger_head.c.size)).all() == [(1, 0)]


def test_migrations_match_the_declared_tables_on_sqlite(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'keel.db'}")
    try:
        _check(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: every commit fsync'd
    finally:
        engine.dispose()


def test_migrations_match_the_declared_tables_on_postgresql(postgres_url):
    schema = f"keel_m_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = create_store_engine(postgres_url, schema)
    try:
        _check(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
