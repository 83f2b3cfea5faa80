"""The SQL connector on a real SQLite file holding the sample ERP."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keel.connectors import ConnectorError, RecordBatch, StateCheckpoint, Stream, redact
from keel.connectors.protocol import jsonable
from keel.connectors.sql import SqlConnector, read_only_connection
from keel.kernel.errors import InvalidInput, NotFound
from keel.samples.erp import TABLES, ErpSpec, generate, write

SQL = SqlConnector()
SPEC = ErpSpec(seed=5, months=2, customers=7, vendors=4, invoices_per_month=30, dirty_share=0.2)
PKS = {"customers": "customer_id", "vendors": "vendor_id", "invoices": "row_id", "payments": "payment_id"}


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    path = tmp_path / "erp.db"
    write(SPEC, f"sqlite:///{path}")
    return path


def config(path: Path, **extra: Any) -> dict[str, Any]:
    return {"url": f"sqlite:///{path}", **extra}


def expected(table: str) -> list[dict[str, Any]]:
    """The generated rows as the connector must return them: SQLite gives timestamps back without zone."""

    def naive(value: Any) -> Any:
        return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value

    rows = [{k: jsonable(naive(v)) for k, v in row.items()} for row in generate(SPEC)[table]]
    return sorted(rows, key=lambda row: row[PKS[table]])


def read_all(
    cfg: dict[str, Any], stream: str, state: dict[str, Any] | None = None, *, batch_size: int = 1000
):
    """(records, messages, last state) of one complete read."""
    messages = list(SQL.read(cfg, stream, state, batch_size=batch_size))
    records = [r for m in messages if isinstance(m, RecordBatch) for r in m.records]
    states = [m.state for m in messages if isinstance(m, StateCheckpoint)]
    return records, messages, states[-1] if states else None


def execute(path: Path, statement: str, **params: Any) -> None:
    """Run a statement on the file; datetimes are stored in SQLAlchemy's text format, as the ERP's are
    (SQLite compares timestamps as text, so the format has to match)."""
    stored = {
        k: v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime) else v for k, v in params.items()
    }
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text(statement), stored)
    engine.dispose()


# --- check -------------------------------------------------------------------


def test_check_passes_and_reports_a_read_only_session(erp: Path) -> None:
    result = SQL.check(config(erp))
    assert (result.ok, result.message, result.failure) == (
        True,
        f"sqlite database '{erp}' answers SELECT 1; the session is read-only",
        None,
    )
    assert result.latency_ms > 0


def test_the_connectors_session_refuses_to_write(erp: Path) -> None:
    with read_only_connection(config(erp)) as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
        conn.execute(sa.text("UPDATE vendors SET critical = 1"))


def test_reading_leaves_the_database_file_untouched(erp: Path) -> None:
    before = erp.read_bytes()
    for table in TABLES:
        read_all(config(erp), table)
    assert erp.read_bytes() == before


def test_check_reports_a_missing_database_file_as_a_config_error(tmp_path: Path) -> None:
    result = SQL.check(config(tmp_path / "gone.db"))
    assert (result.ok, result.failure, result.message) == (False, "config", "unable to open database file")


def test_check_reports_an_unknown_table_as_a_config_error(erp: Path) -> None:
    result = SQL.check(config(erp, tables=["invoices", "ledger"]))
    assert (result.ok, result.failure, result.message) == (False, "config", "table(s) not found: ledger")


def test_check_reports_a_malformed_url_as_a_config_error() -> None:
    result = SQL.check({"url": "not a url"})
    assert (result.ok, result.failure, result.message) == (
        False,
        "config",
        "config.url: is not a SQLAlchemy URL (dialect+driver://user@host/db)",
    )


def test_a_password_inside_the_url_is_refused_without_being_repeated() -> None:
    result = SQL.check({"url": "postgresql+psycopg://reader:hunter2@127.0.0.1:1/erp"})
    assert (result.ok, result.failure) == (False, "config")
    assert "hunter2" not in result.message


def test_the_password_never_appears_in_errors_or_the_redacted_config(tmp_path: Path) -> None:
    secret = "Pa55-never-shown"
    # The server is unreachable, so the driver's error is about the attempt with the password.
    cfg = {"url": "postgresql+psycopg://reader@127.0.0.1:1/erp", "password": secret, "connect_timeout": 2}
    result = SQL.check(cfg)
    with pytest.raises(ConnectorError) as raised:
        SQL.discover(cfg)
    with pytest.raises(ConnectorError) as raised_read:
        list(SQL.read(cfg, "invoices", None))
    assert (result.ok, result.failure) == (False, "unreachable")
    assert raised.value.fields["reason"] == raised_read.value.fields["reason"] == "unreachable"
    for text in (result.message, str(raised.value), repr(raised.value.fields), str(raised_read.value)):
        assert secret not in text
    assert redact(SQL.spec(), cfg) == {**cfg, "password": "***"}


# --- discover ----------------------------------------------------------------


def test_discover_offers_every_table_with_its_primary_key_and_a_suggested_cursor(erp: Path) -> None:
    catalog = SQL.discover(config(erp))
    assert [(s.name, s.primary_key, s.cursor_field, s.supported_sync_modes) for s in catalog.streams] == [
        ("customers", ("customer_id",), None, frozenset({"full_refresh"})),
        ("invoices", ("row_id",), "updated_at", frozenset({"full_refresh", "incremental"})),
        ("payments", ("payment_id",), "updated_at", frozenset({"full_refresh", "incremental"})),
        ("vendors", ("vendor_id",), None, frozenset({"full_refresh"})),
    ]


def test_discover_types_columns_as_json_schema_with_nullability(erp: Path) -> None:
    catalog = SQL.discover(config(erp, tables=["invoices", "vendors"]))
    assert catalog.streams == (
        Stream(
            name="invoices",
            json_schema={
                "type": "object",
                "properties": {
                    "row_id": {"type": ["integer"]},
                    "invoice_id": {"type": ["string"]},
                    "customer_id": {"type": ["string"]},
                    "issued_at": {"type": ["string"], "format": "date"},
                    "due_at": {"type": ["string"], "format": "date"},
                    "currency": {"type": ["string", "null"]},
                    "amount_net": {"type": ["string", "null"], "format": "decimal"},
                    "amount_tax": {"type": ["string", "null"], "format": "decimal"},
                    "status": {"type": ["string"]},
                    "updated_at": {"type": ["string"], "format": "date-time"},
                },
            },
            supported_sync_modes=frozenset({"full_refresh", "incremental"}),
            cursor_field="updated_at",
            primary_key=("row_id",),
        ),
        Stream(
            name="vendors",
            json_schema={
                "type": "object",
                "properties": {
                    "vendor_id": {"type": ["string"]},
                    "name": {"type": ["string"]},
                    "country": {"type": ["string"]},
                    "critical": {"type": ["boolean"]},
                    "payment_terms_days": {"type": ["integer"]},
                },
            },
            supported_sync_modes=frozenset({"full_refresh"}),
            primary_key=("vendor_id",),
        ),
    )


def test_discover_uses_the_configured_cursor_and_lists_views_without_a_key(erp: Path) -> None:
    execute(erp, "CREATE VIEW open_invoices AS SELECT row_id, status FROM invoices WHERE status != 'paid'")
    catalog = SQL.discover(config(erp, cursor_fields={"customers": "created_at"}))
    assert catalog.stream("customers").cursor_field == "created_at"
    assert catalog.stream("customers").supported_sync_modes == frozenset({"full_refresh", "incremental"})
    view = catalog.stream("open_invoices")
    assert (view.primary_key, view.cursor_field, view.supported_sync_modes) == ((), None, {"full_refresh"})


def test_discover_of_an_unknown_table_is_not_found(erp: Path) -> None:
    with pytest.raises(NotFound) as raised:
        SQL.discover(config(erp, tables=["ledger"]))
    assert raised.value.fields == {"kind": "stream", "id": "ledger"}


def test_a_cursor_column_the_table_lacks_is_invalid(erp: Path) -> None:
    with pytest.raises(InvalidInput) as raised:
        SQL.discover(config(erp, cursor_fields={"vendors": "updated_at"}))
    assert raised.value.fields["field"] == "config.cursor_fields.vendors"


# --- full refresh ------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_a_full_read_returns_every_source_row_exactly(erp: Path, table: str) -> None:
    records, _, state = read_all(config(erp), table, batch_size=7)
    assert records == expected(table)
    assert state == {"mode": "full_refresh", "last_pk": [expected(table)[-1][PKS[table]]], "done": True}


def test_each_batch_is_followed_by_the_checkpoint_of_its_last_key(erp: Path) -> None:
    _, messages, _ = read_all(config(erp), "customers", batch_size=3)
    ids = [row["customer_id"] for row in expected("customers")]
    assert messages == [
        RecordBatch("customers", expected("customers")[0:3]),
        StateCheckpoint("customers", {"mode": "full_refresh", "last_pk": [ids[2]]}),
        RecordBatch("customers", expected("customers")[3:6]),
        StateCheckpoint("customers", {"mode": "full_refresh", "last_pk": [ids[5]]}),
        RecordBatch("customers", expected("customers")[6:7]),
        StateCheckpoint("customers", {"mode": "full_refresh", "last_pk": [ids[6]]}),
        StateCheckpoint("customers", {"mode": "full_refresh", "last_pk": [ids[6]], "done": True}),
    ]


def test_a_read_resumed_from_a_mid_table_checkpoint_yields_exactly_the_rest(erp: Path) -> None:
    first = SQL.read(config(erp), "invoices", None, batch_size=10)
    committed: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    state = None
    for message in first:  # crash after the second checkpoint, with a batch read but not committed
        if isinstance(message, RecordBatch):
            pending = message.records
        else:
            committed, pending, state = committed + pending, [], message.state
            if len(committed) == 20:
                next(first)
                break
    first.close()

    rest, _, _ = read_all(config(erp), "invoices", state, batch_size=10)

    assert state == {"mode": "full_refresh", "last_pk": [20]}
    assert committed + rest == expected("invoices")


def test_a_finished_full_refresh_starts_again_from_the_first_row(erp: Path) -> None:
    _, _, done = read_all(config(erp), "vendors")
    again, _, _ = read_all(config(erp), "vendors", done)
    assert again == expected("vendors")


def test_a_table_without_primary_key_is_checkpointed_only_at_the_end(erp: Path) -> None:
    execute(erp, "CREATE TABLE rates (currency TEXT, rate NUMERIC(10, 4))")
    execute(erp, "INSERT INTO rates VALUES ('EUR', 1), ('GBP', 1.1675), ('USD', 0.9123)")
    _, messages, _ = read_all(config(erp), "rates", batch_size=2)
    assert messages == [
        RecordBatch("rates", [{"currency": "EUR", "rate": "1.0000"}, {"currency": "GBP", "rate": "1.1675"}]),
        RecordBatch("rates", [{"currency": "USD", "rate": "0.9123"}]),
        StateCheckpoint("rates", {"mode": "full_refresh", "done": True}),
    ]


def test_the_configured_batch_size_wins_over_the_callers(erp: Path) -> None:
    _, messages, _ = read_all(config(erp, batch_size=4), "vendors", batch_size=1000)
    assert [len(m.records) for m in messages if isinstance(m, RecordBatch)] == [4]


def test_reading_an_unknown_table_is_not_found(erp: Path) -> None:
    with pytest.raises(NotFound) as raised:
        list(SQL.read(config(erp), "ledger", None))
    assert raised.value.fields == {"kind": "stream", "id": "ledger"}


def test_reading_a_table_outside_the_configured_ones_is_not_found(erp: Path) -> None:
    with pytest.raises(NotFound):
        SQL.read(config(erp, tables=["vendors"]), "invoices", None)


# --- incremental -------------------------------------------------------------


def by_cursor(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (row["updated_at"], row["row_id"]))


def test_incremental_reads_in_cursor_order_and_checkpoints_cursor_and_key(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    records, _, state = read_all(cfg, "invoices", batch_size=25)
    last = by_cursor(expected("invoices"))[-1]
    assert records == by_cursor(expected("invoices"))
    assert state == {"mode": "incremental", "cursor": last["updated_at"], "last_pk": [last["row_id"]]}


def test_incremental_picks_up_only_updated_and_late_arriving_rows(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    _, _, state = read_all(cfg, "invoices")
    assert state is not None
    newest = dt.datetime.fromisoformat(state["cursor"])
    later = newest + dt.timedelta(days=3)
    execute(erp, "UPDATE invoices SET status = 'disputed', updated_at = :at WHERE row_id = 5", at=later)
    execute(
        erp,
        "INSERT INTO invoices VALUES (1000, 'INV-LATE-1', 'CUS-0001', '2026-01-15', '2026-02-14', 'EUR', "
        "'10.00', '1.90', 'open', :at)",
        at=newest,  # same cursor value as the last row read: only the key tells it is new
    )

    records, _, after = read_all(cfg, "invoices", state)

    assert [(r["row_id"], r["status"], r["updated_at"]) for r in records] == [
        (1000, "open", newest.isoformat()),
        (5, "disputed", later.isoformat()),
    ]
    assert after == {"mode": "incremental", "cursor": later.isoformat(), "last_pk": [5]}
    nothing, messages, _ = read_all(cfg, "invoices", after)
    assert (nothing, messages) == ([], [StateCheckpoint("invoices", after)])


def test_incremental_resumes_inside_a_run_of_equal_cursor_values(erp: Path) -> None:
    execute(erp, "UPDATE invoices SET updated_at = '2026-09-01 00:00:00.000000'")
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    first = list(SQL.read(cfg, "invoices", None, batch_size=10))[:2]
    rest, _, _ = read_all(cfg, "invoices", first[1].state)
    assert first[1].state == {"mode": "incremental", "cursor": "2026-09-01T00:00:00", "last_pk": [10]}
    assert [r["row_id"] for r in first[0].records + rest] == [r["row_id"] for r in expected("invoices")]


def test_a_state_of_the_other_mode_is_refused(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    with pytest.raises(InvalidInput) as raised:
        list(SQL.read(cfg, "invoices", {"mode": "full_refresh", "last_pk": [3]}))
    assert raised.value.fields["field"] == "state.mode"


def test_incremental_on_a_table_without_primary_key_is_refused(erp: Path) -> None:
    execute(erp, "CREATE TABLE events (at TIMESTAMP, what TEXT)")
    with pytest.raises(InvalidInput) as raised:
        list(SQL.read(config(erp, cursor_fields={"events": "at"}), "events", None))
    assert raised.value.fields["field"] == "config.cursor_fields.events"


# --- windows (replay and backfill) -------------------------------------------


def test_a_window_state_reads_from_its_start_inclusive_and_stops_before_its_end(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    rows = by_cursor(expected("invoices"))
    start, end = rows[10]["updated_at"], rows[30]["updated_at"]
    state = SQL.window_state(cfg, "invoices", start, end)
    records, messages, last = read_all(cfg, "invoices", state, batch_size=7)

    in_window = [r for r in rows if start <= r["updated_at"] < end]
    assert state == {"mode": "incremental", "cursor": start, "last_pk": None, "inclusive": True, "until": end}
    assert records == in_window and in_window[0] == rows[10]
    assert all(m.state["until"] == end for m in messages if isinstance(m, StateCheckpoint))
    assert last == {"mode": "incremental", "cursor": in_window[-1]["updated_at"],
                    "last_pk": [in_window[-1]["row_id"]], "until": end}  # fmt: skip


def test_a_window_read_resumed_from_its_checkpoint_yields_exactly_the_rest(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    rows = by_cursor(expected("invoices"))
    state = SQL.window_state(cfg, "invoices", rows[5]["updated_at"], rows[40]["updated_at"])
    first = list(SQL.read(cfg, "invoices", state, batch_size=10))[:2]
    rest, _, _ = read_all(cfg, "invoices", first[1].state)
    assert first[0].records + rest == rows[5:40]


def test_a_window_start_with_an_offset_is_compared_in_utc_on_a_column_without_zone(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    rows = by_cursor(expected("invoices"))
    start = dt.datetime.fromisoformat(rows[20]["updated_at"]).replace(tzinfo=dt.UTC)
    in_paris = start.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
    records, _, _ = read_all(cfg, "invoices", SQL.window_state(cfg, "invoices", in_paris))
    assert records == rows[20:]


def test_a_stream_read_in_full_has_no_window(erp: Path) -> None:
    with pytest.raises(InvalidInput) as raised:
        SQL.window_state(config(erp), "invoices", "2026-01-01")
    assert raised.value.to_dict()["detail"] == (
        "window: stream 'invoices' is read in full; set config.cursor_fields.invoices to read windows"
    )


def test_a_window_start_that_is_not_a_value_of_the_cursor_column_is_invalid(erp: Path) -> None:
    cfg = config(erp, cursor_fields={"invoices": "updated_at"})
    with pytest.raises(InvalidInput) as raised:
        list(SQL.read(cfg, "invoices", SQL.window_state(cfg, "invoices", "last tuesday")))
    assert (
        raised.value.detail == "state.cursor: 'last tuesday' is not a valid datetime for column 'updated_at'"
    )
