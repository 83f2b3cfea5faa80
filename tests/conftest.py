"""Shared fixtures: every test gets a fresh Keel on the configured store.

With ``KEEL_DATABASE_URL`` set (CI's second run), each test gets its own
PostgreSQL schema, dropped afterwards; otherwise a SQLite file in ``tmp_path``.
``module_world`` is the same, once for a whole module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel.kernel.settings import Settings

PG_URL = os.environ.get("KEEL_DATABASE_URL")


def _pg_available(url: str) -> bool:
    try:
        with sa.create_engine(url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


@contextmanager
def _store_settings(home: Path) -> Iterator[Settings]:
    """Settings for a fresh store with KEEL_HOME under ``home``: a SQLite file there, or its own
    PostgreSQL schema (dropped afterwards) when ``KEEL_DATABASE_URL`` is set."""
    overrides: dict = {"home": home / "keel-home", "seed_demo": False}
    schema = None
    if PG_URL:
        schema = f"keel_t_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(PG_URL).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        overrides |= {"database_url": PG_URL, "database_schema": schema}
    try:
        yield Settings(**overrides)
    finally:
        if schema:
            engine = sa.create_engine(PG_URL)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()


@pytest.fixture
def settings(tmp_path):
    with _store_settings(tmp_path) as store_settings:
        yield store_settings


@pytest.fixture
def keel(settings):
    from tests.support import running_keel

    with running_keel(settings) as instance:
        yield instance


@pytest.fixture
def client(keel):
    from fastapi.testclient import TestClient

    from keel.api.app import create_app

    with TestClient(create_app(keel)) as test_client:
        yield test_client


@pytest.fixture
def world(keel, client):
    """A deployed platform with the RBAC baseline, tenant ``acme`` and a token per persona."""
    from tests.support import World

    return World.build(keel, client)


@pytest.fixture(scope="module")
def module_world(tmp_path_factory):
    """Like ``world``, but one for the whole module (building it is the slow part), on a store
    of its own; the module's tests must leave it fit for the next ones."""
    from tests.support import served_world

    home = tmp_path_factory.mktemp("module-world")
    with _store_settings(home) as store_settings, served_world(store_settings) as world:
        yield world


@pytest.fixture
def postgres_url():
    """The PostgreSQL server for tests that need one: skips with a reason when it is absent,
    except under ``KEEL_REQUIRE_POSTGRES=1`` (CI), where absence fails."""
    url = PG_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    if not _pg_available(url):
        if os.environ.get("KEEL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (KEEL_REQUIRE_POSTGRES=1) but {url} does not answer")
        pytest.skip(f"PostgreSQL at {url} does not answer; start it to run this test")
    return url
