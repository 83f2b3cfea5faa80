"""The SQL connector against real database servers: PostgreSQL and MariaDB, holding the sample ERP."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from keel.connectors import ConnectorError, RecordBatch, StateCheckpoint
from keel.connectors.protocol import jsonable
from keel.connectors.sql import SqlConnector, read_only_connection
from keel.samples.erp import TABLES, ErpSpec, generate, write

SQL = SqlConnector()
SPEC = ErpSpec(seed=11, months=2, customers=9, vendors=5, invoices_per_month=60, dirty_share=0.1)
PKS = {"customers": "customer_id", "vendors": "vendor_id", "invoices": "row_id", "payments": "payment_id"}
MARIADB_URL = os.environ.get("KEEL_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def expected(table: str, *, zone: bool) -> list[dict[str, Any]]:
    """Generated rows as the connector returns them; ``zone=False`` for servers that drop the zone."""

    def value(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            v = v.astimezone(dt.UTC) if zone else v.astimezone(dt.UTC).replace(tzinfo=None)
        return jsonable(v)

    rows = [{k: value(v) for k, v in row.items()} for row in generate(SPEC)[table]]
    return sorted(rows, key=lambda row: row[PKS[table]])


def records_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [r for m in messages if isinstance(m, RecordBatch) for r in m.records]


def run(url: str, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


# --- PostgreSQL --------------------------------------------------------------


@pytest.fixture
def pg_erp(postgres_url: str) -> Iterator[dict[str, Any]]:
    """The sample ERP in a fresh schema; the connector's config for it. The schema is dropped afterwards."""
    schema = f"keel_sql_{uuid.uuid4().hex[:12]}"
    write(SPEC, postgres_url, schema)
    yield {"url": postgres_url, "schema": schema}
    run(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgresql_check_connects_in_a_read_only_session(pg_erp: dict[str, Any]) -> None:
    result = SQL.check(pg_erp)
    where = sa.make_url(pg_erp["url"]).render_as_string(hide_password=True)
    assert (result.ok, result.message, result.failure) == (
        True,
        f"{where} (schema '{pg_erp['schema']}') answers SELECT 1; the session is read-only",
        None,
    )
    with read_only_connection(pg_erp) as conn, pytest.raises(sa.exc.InternalError, match="read-only"):
        conn.execute(sa.text(f'UPDATE "{pg_erp["schema"]}".vendors SET critical = true'))


@pytest.mark.postgres
def test_postgresql_tables_are_read_back_exactly_as_generated(pg_erp: dict[str, Any]) -> None:
    catalog = SQL.discover(pg_erp)
    assert [(s.name, s.primary_key) for s in catalog.streams] == [(t, (PKS[t],)) for t in sorted(TABLES)]
    for table in TABLES:
        messages = list(SQL.read(pg_erp, table, None, batch_size=50))
        assert records_of(messages) == expected(table, zone=True), table


@pytest.mark.postgres
def test_postgresql_incremental_read_picks_up_a_later_update(pg_erp: dict[str, Any]) -> None:
    cfg = {**pg_erp, "cursor_fields": {"payments": "updated_at"}}
    first = list(SQL.read(cfg, "payments", None, batch_size=40))
    state = first[-1].state
    payments = f'"{pg_erp["schema"]}".payments'
    run(
        pg_erp["url"],
        f"UPDATE {payments} SET updated_at = (SELECT max(updated_at) FROM {payments}) + interval '1 day' "
        f"WHERE payment_id = (SELECT min(payment_id) FROM {payments})",
    )
    again = list(SQL.read(cfg, "payments", state))
    first_id = expected("payments", zone=True)[0]["payment_id"]
    assert [r["payment_id"] for r in records_of(again)] == [first_id]
    assert again[-1].state["last_pk"] == [first_id]


@pytest.mark.postgres
def test_postgresql_connection_killed_mid_read_raises_after_the_completed_checkpoints(
    pg_erp: dict[str, Any], postgres_url: str
) -> None:
    reader = SQL.read(pg_erp, "invoices", None, batch_size=10)
    seen = [next(reader), next(reader)]
    # Another session ends the connector's backend, as a server restart or a network cut would.
    # Its backend is the one session holding a lock on this test's own table.
    ended = run(
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = CAST(:t AS regclass) "
        "AND pid != pg_backend_pid()",
        t=f'"{pg_erp["schema"]}".invoices',
    )
    assert ended == [(True,)]
    with pytest.raises(ConnectorError) as raised:
        seen.extend(reader)
    # A cursor fails at its next fetch; COPY first delivers the rows the server sent before it
    # ended, in whole batches. Either way each batch is followed by its checkpoint, the one that
    # ends the read never comes, and reading on from the last checkpoint gives exactly the rest.
    rows = expected("invoices", zone=True)
    delivered = records_of(seen)
    assert seen[:2] == [
        RecordBatch("invoices", rows[:10]),
        StateCheckpoint("invoices", {"mode": "full_refresh", "last_pk": [10]}),
    ]
    assert delivered == rows[: len(delivered)]
    assert seen[-1] == StateCheckpoint(
        "invoices", {"mode": "full_refresh", "last_pk": [delivered[-1]["row_id"]]}
    )
    assert (raised.value.fields["reason"], raised.value.fields["stream"]) == ("unreachable", "invoices")
    rest = records_of(list(SQL.read(pg_erp, "invoices", seen[-1].state)))
    assert delivered + rest == rows


@pytest.mark.postgres
def test_postgresql_table_without_select_privilege_is_a_permission_error(pg_erp: dict[str, Any]) -> None:
    role = f"keel_reader_{uuid.uuid4().hex[:10]}"
    schema = pg_erp["schema"]
    run(pg_erp["url"], f'CREATE ROLE "{role}" LOGIN; GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    try:
        url = sa.make_url(pg_erp["url"]).set(username=role).render_as_string(hide_password=False)
        with pytest.raises(ConnectorError) as raised:
            list(SQL.read({"url": url, "schema": schema}, "vendors", None))
        assert raised.value.fields["reason"] == "permission"
    finally:
        run(pg_erp["url"], f'REVOKE ALL ON SCHEMA "{schema}" FROM "{role}"; DROP ROLE "{role}"')


@pytest.mark.postgres
def test_postgresql_unknown_database_and_schema_are_config_failures(postgres_url: str) -> None:
    # The test server trusts local connections, so a wrong password cannot be shown to fail here;
    # MariaDB below checks passwords and covers the auth failure.
    unknown_db = sa.make_url(postgres_url).set(database=f"nope_{uuid.uuid4().hex[:8]}")
    db = SQL.check({"url": unknown_db.render_as_string(hide_password=False), "password": "s3cr3t-pw"})
    schema = SQL.check({"url": postgres_url, "schema": "no_such_schema"})
    assert (db.ok, db.failure) == (False, "config")
    assert "s3cr3t-pw" not in db.message
    assert (schema.ok, schema.failure, schema.message) == (
        False,
        "config",
        "schema 'no_such_schema' does not exist",
    )


def test_postgresql_on_a_closed_port_is_unreachable() -> None:
    result = SQL.check({"url": "postgresql+psycopg://postgres@127.0.0.1:1/test", "password": "pw-x"})
    assert (result.ok, result.failure) == (False, "unreachable")
    assert "pw-x" not in result.message


# --- MariaDB -----------------------------------------------------------------


def _mariadb_answers(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh database ``keel_test_<random>`` on the MariaDB server, dropped afterwards.

    Skips with the reason when the server does not answer, except under
    ``KEEL_REQUIRE_MARIADB=1`` (CI), where its absence fails.
    """
    if not _mariadb_answers(MARIADB_URL):
        if os.environ.get("KEEL_REQUIRE_MARIADB") == "1":
            pytest.fail(f"MariaDB is required (KEEL_REQUIRE_MARIADB=1) but {MARIADB_URL} does not answer")
        pytest.skip(f"MariaDB at {MARIADB_URL} does not answer; start it to run this test")
    database = f"keel_test_{uuid.uuid4().hex[:12]}"
    run(MARIADB_URL, f"CREATE DATABASE `{database}`")
    try:
        yield sa.make_url(MARIADB_URL).set(database=database).render_as_string(hide_password=False)
    finally:
        run(MARIADB_URL, f"DROP DATABASE IF EXISTS `{database}`")


def test_mariadb_tables_are_read_back_exactly_in_a_read_only_session(mariadb_url: str) -> None:
    write(SPEC, mariadb_url)
    cfg = {"url": mariadb_url}

    result = SQL.check(cfg)
    catalog = SQL.discover(cfg)

    assert (result.ok, result.message) == (True, f"{mariadb_url} answers SELECT 1; the session is read-only")
    assert catalog.stream("vendors").json_schema["properties"]["critical"] == {"type": ["boolean"]}
    assert [(s.name, s.primary_key) for s in catalog.streams] == [(t, (PKS[t],)) for t in sorted(TABLES)]
    for table in TABLES:
        # MariaDB's DATETIME keeps no zone: timestamps come back as naive UTC.
        assert records_of(list(SQL.read(cfg, table, None, batch_size=50))) == expected(table, zone=False)
    with read_only_connection(cfg) as conn, pytest.raises(sa.exc.OperationalError, match="READ ONLY"):
        conn.execute(sa.text("UPDATE vendors SET critical = 1"))


def test_mariadb_resume_and_incremental_read(mariadb_url: str) -> None:
    write(SPEC, mariadb_url)
    cfg = {"url": mariadb_url, "cursor_fields": {"invoices": "updated_at"}}
    by_cursor = sorted(expected("invoices", zone=False), key=lambda r: (r["updated_at"], r["row_id"]))
    first = list(SQL.read(cfg, "invoices", None, batch_size=30))[:2]  # one batch and its checkpoint
    rest = list(SQL.read(cfg, "invoices", first[1].state, batch_size=30))
    assert records_of(first) + records_of(rest) == by_cursor

    later = dt.datetime.fromisoformat(rest[-1].state["cursor"]) + dt.timedelta(hours=1)
    run(mariadb_url, "UPDATE invoices SET status = 'void', updated_at = :at WHERE row_id = 7", at=later)
    again = list(SQL.read(cfg, "invoices", rest[-1].state))
    assert [(r["row_id"], r["status"]) for r in records_of(again)] == [(7, "void")]
    assert again[-1].state == {"mode": "incremental", "cursor": later.isoformat(), "last_pk": [7]}


def test_mariadb_wrong_password_is_an_auth_failure_that_never_shows_it(mariadb_url: str) -> None:
    result = SQL.check({"url": mariadb_url, "password": "wr0ng-Secret"})
    with pytest.raises(ConnectorError) as raised:
        SQL.discover({"url": mariadb_url, "password": "wr0ng-Secret"})
    assert (result.ok, result.failure) == (False, "auth")
    assert raised.value.fields["reason"] == "auth"
    assert "wr0ng-Secret" not in result.message + str(raised.value)


def test_mariadb_unknown_database_is_a_config_failure(mariadb_url: str) -> None:
    url = sa.make_url(mariadb_url).set(database=f"nope_{uuid.uuid4().hex[:8]}")
    result = SQL.check({"url": url.render_as_string(hide_password=False)})
    assert (result.ok, result.failure) == (False, "config")
