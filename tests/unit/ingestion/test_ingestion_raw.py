"""The Raw layer in a real tenant DuckDB file: typed tables, metadata, one transaction per batch."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keel.connectors import ConnectorError, Stream
from keel.dataplane.duckdb_store import TenantDataPlanes
from keel.ingestion.hashing import record_hash
from keel.ingestion.raw import RawBusy, RawStore, quarantine_table, side_table, table_name
from keel.kernel.errors import Conflict, InvalidInput, NotFound

SOURCE = "SRC-20261127-ERP00001"
ORDERS = Stream(
    "Orders",
    {
        "type": "object",
        "properties": {
            "id": {"type": ["integer"]},
            "amount": {"type": ["string", "null"], "format": "decimal"},
            "placed_at": {"type": ["string"], "format": "date-time"},
            "day": {"type": ["string", "null"], "format": "date"},
            "paid": {"type": ["boolean", "null"]},
            "rate": {"type": ["number", "null"]},
            "note": {"type": ["string", "null"]},
            "lines": {"type": ["array", "null"]},
        },
    },
    primary_key=("id",),
)


@pytest.fixture
def raw(tmp_path: Path) -> RawStore:
    return RawStore(TenantDataPlanes(tmp_path).provision("TEN-20261127-ACME0001"))


def order(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": n,
        "amount": f"{n}.50",
        "placed_at": f"2026-01-0{n % 9 + 1}T10:00:00+02:00",
        "day": f"2026-02-0{n % 9 + 1}",
        "paid": n % 2 == 0,
        "rate": n / 8,
        "note": f'note "{n}"',
        "lines": [{"sku": f"S{n}", "qty": n}],
        **changes,
    }


def commit(raw: RawStore, records: list[dict[str, Any]], state: Any = None, **options: Any):
    return raw.commit_batch(
        SOURCE, "erp", options.pop("stream", ORDERS), run_id="RUN-1", records=records, state=state, **options
    )


def query(raw: RawStore, sql: str) -> list[tuple]:
    with duckdb.connect(str(raw.path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()


def test_a_batch_lands_in_a_typed_table_with_ingestion_metadata(raw: RawStore) -> None:
    records = [order(1), order(2, amount=None, note=None, lines=None)]
    result = commit(raw, records, {"cursor": 2})

    assert (result.rows, result.skipped) == (2, 0)
    assert query(
        raw, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'erp__orders'"
    ) == [
        ("_keel_batch_id", "VARCHAR"),
        ("_keel_source", "VARCHAR"),
        ("_keel_ingested_at", "TIMESTAMP WITH TIME ZONE"),
        ("_keel_record_hash", "VARCHAR"),
        ("id", "BIGINT"),
        ("amount", "DECIMAL(38,9)"),
        ("placed_at", "TIMESTAMP WITH TIME ZONE"),
        ("day", "DATE"),
        ("paid", "BOOLEAN"),
        ("rate", "DOUBLE"),
        ("note", "VARCHAR"),
        ("lines", "JSON"),
    ]
    rows = query(
        raw,
        "SELECT _keel_batch_id, _keel_source, _keel_record_hash, id, amount, placed_at, day, paid, rate,"
        " note, CAST(lines AS VARCHAR) FROM raw.erp__orders ORDER BY id",
    )
    utc = dt.UTC
    assert [row[1:] for row in rows] == [
        (SOURCE, record_hash(records[0]), 1, Decimal("1.5"), dt.datetime(2026, 1, 2, 8, tzinfo=utc),
         dt.date(2026, 2, 2), False, 0.125, 'note "1"', '[{"sku":"S1","qty":1}]'),
        (SOURCE, record_hash(records[1]), 2, None, dt.datetime(2026, 1, 3, 8, tzinfo=utc),
         dt.date(2026, 2, 3), True, 0.25, None, None),
    ]  # fmt: skip
    assert {row[0] for row in rows} == {result.batch_id}


def test_the_batch_and_the_state_are_recorded_with_it(raw: RawStore) -> None:
    first = commit(raw, [order(1)], {"cursor": 1})
    second = commit(raw, [order(2), order(3)], {"cursor": 3}, kind="sync")

    assert raw.last_state(SOURCE, "Orders") == {"cursor": 3}
    assert raw.row_count(SOURCE, "erp", "Orders") == 3
    listed = raw.batches(SOURCE)
    assert [(b["batch_id"], b["rows"], b["skipped_duplicates"], b["state"], b["kind"]) for b in listed] == [
        (second.batch_id, 2, 0, {"cursor": 3}, "sync"),
        (first.batch_id, 1, 0, {"cursor": 1}, "sync"),
    ]
    assert raw.batches(SOURCE, "Orders", limit=1)[0]["batch_id"] == second.batch_id
    assert raw.batches(SOURCE, "Other") == []
    assert [(t["table"], t["stream"], t["rows"]) for t in raw.tables(SOURCE)] == [
        ("raw.erp__orders", "Orders", 3)
    ]


def test_state_stays_where_it_was_when_a_batch_does_not_advance_it(raw: RawStore) -> None:
    commit(raw, [order(1)], {"cursor": 1})
    commit(raw, [order(7)], {"cursor": 7}, kind="replay", advance_state=False)
    assert raw.last_state(SOURCE, "Orders") == {"cursor": 1}
    assert raw.row_count(SOURCE, "erp", "Orders") == 2


def test_before_the_first_batch_there_is_no_state_no_rows_and_no_table(raw: RawStore) -> None:
    assert raw.last_state(SOURCE, "Orders") is None
    assert raw.row_count(SOURCE, "erp", "Orders") == 0
    assert (raw.batches(SOURCE), raw.tables()) == ([], [])


def test_a_field_the_schema_gains_later_becomes_a_new_column(raw: RawStore) -> None:
    commit(raw, [order(1)])
    grown = Stream(
        "Orders",
        {"type": "object", "properties": {**ORDERS.json_schema["properties"], "channel": {"type": "string"}}},
    )
    commit(raw, [order(2, channel="web")], stream=grown)
    assert query(raw, "SELECT id, channel FROM raw.erp__orders ORDER BY id") == [(1, None), (2, "web")]


def test_a_field_the_schema_lacks_lands_in_a_json_column_that_keeps_its_json_type(raw: RawStore) -> None:
    commit(raw, [order(1, extra=12), order(2, extra="12"), order(3)])
    assert query(raw, "SELECT data_type FROM duckdb_columns() WHERE column_name = 'extra'") == [("JSON",)]
    assert query(raw, "SELECT id, CAST(extra AS VARCHAR) FROM raw.erp__orders ORDER BY id") == [
        (1, "12"),
        (2, '"12"'),
        (3, None),
    ]


def test_a_value_of_the_wrong_type_names_field_row_and_type_and_commits_nothing(raw: RawStore) -> None:
    commit(raw, [order(1)], {"cursor": 1})
    with pytest.raises(ConnectorError) as raised:
        commit(raw, [order(2), order(3), order(4, id="four")], {"cursor": 4})
    assert raised.value.to_dict() == {
        "code": "connector_error",
        "title": "Connector error",
        "detail": "stream 'Orders', row 3: field 'id' must be an integer (BIGINT), but holds a string",
        "stream": "Orders",
        "file": None,
        "row": 3,
        "reason": "type",
        "field": "id",
        "expected": "BIGINT",
    }
    assert (raw.row_count(SOURCE, "erp", "Orders"), raw.last_state(SOURCE, "Orders")) == (1, {"cursor": 1})
    assert len(raw.batches(SOURCE)) == 1


@pytest.mark.parametrize(
    ("bad", "field", "expected"),
    [
        ({"placed_at": "yesterday"}, "placed_at", "TIMESTAMP WITH TIME ZONE"),
        ({"day": "2026-02-30"}, "day", "DATE"),
        ({"amount": "0.1234567891"}, "amount", "DECIMAL(38,9)"),
    ],
)
def test_a_date_or_decimal_that_cannot_be_read_exactly_is_a_type_error(
    raw: RawStore, bad: dict[str, Any], field: str, expected: str
) -> None:
    with pytest.raises(ConnectorError) as raised:
        commit(raw, [order(1), order(2, **bad)], {"cursor": 2})
    fields = raised.value.fields
    assert (fields["row"], fields["field"], fields["expected"], fields["reason"]) == (
        2,
        field,
        expected,
        "type",
    )
    assert raw.tables() == []  # the first batch's table is not created either
    assert raw.last_state(SOURCE, "Orders") is None


def test_dedupe_skips_records_raw_holds_already_or_earlier_in_the_batch(raw: RawStore) -> None:
    commit(raw, [order(1), order(2)])
    result = commit(raw, [order(2), order(3), order(3), order(1, note="changed")], dedupe=True)
    assert (result.rows, result.skipped) == (2, 2)
    assert query(raw, "SELECT id, note FROM raw.erp__orders ORDER BY id, note") == [
        (1, "changed"),
        (1, 'note "1"'),
        (2, 'note "2"'),
        (3, 'note "3"'),
    ]
    assert raw.batches(SOURCE)[0]["skipped_duplicates"] == 2


def test_without_dedupe_identical_records_are_all_kept(raw: RawStore) -> None:
    # A table without a key may hold identical rows; a plain sync keeps each of them.
    assert commit(raw, [order(1), order(1)]).rows == 2


def test_an_empty_batch_still_moves_the_state(raw: RawStore) -> None:
    result = commit(raw, [], {"mode": "full_refresh", "done": True})
    assert (result.rows, raw.last_state(SOURCE, "Orders")) == (0, {"mode": "full_refresh", "done": True})


@pytest.mark.parametrize(
    ("key", "stream", "expected"),
    [
        ("erp", "Orders", "erp__orders"),
        ("Acme-ERP", "order lines (2026)", "acme_erp__order_lines_2026"),
        ("crm__eu", "__contacts__", "crm_eu__contacts"),
    ],
)
def test_table_names_are_reduced_to_lowercase_letters_digits_and_underscores(
    key: str, stream: str, expected: str
) -> None:
    assert table_name(key, stream) == expected


@pytest.mark.parametrize(
    ("key", "stream", "field"), [("--", "orders", "source_key"), ("erp", "äöü", "stream")]
)
def test_a_name_with_nothing_left_after_reduction_is_invalid(key: str, stream: str, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        table_name(key, stream)
    assert raised.value.fields["field"] == field


def test_a_table_of_another_source_is_never_written(raw: RawStore) -> None:
    commit(raw, [order(1)])
    with pytest.raises(Conflict, match=f"holds stream 'Orders' of source {SOURCE}"):
        raw.commit_batch("SRC-OTHER", "erp", ORDERS, run_id=None, records=[order(2)], state=None)


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        ({"id": 1, "_keel_batch_id": "x"}, "field '_keel_batch_id' uses the prefix '_keel_' reserved"),
        ({"id": 1, "ID": 2}, "fields 'id' and 'ID' differ only in case"),
    ],
)
def test_fields_that_would_clash_with_columns_are_schema_errors(
    raw: RawStore, record: dict[str, Any], detail: str
) -> None:
    with pytest.raises(ConnectorError, match=detail) as raised:
        commit(raw, [record])
    assert raised.value.fields["reason"] == "schema"


def test_dropping_a_source_removes_its_tables_and_bookkeeping_only(raw: RawStore) -> None:
    commit(raw, [order(1)], {"cursor": 1})
    raw.commit_batch("SRC-CRM", "crm", ORDERS, run_id=None, records=[order(1)], state={"c": 1})

    assert raw.drop_source(SOURCE, "erp") == ["erp__orders"]
    assert (raw.last_state(SOURCE, "Orders"), raw.batches(SOURCE)) == (None, [])
    assert [t["table"] for t in raw.tables()] == ["raw.crm__orders"]
    assert raw.last_state("SRC-CRM", "Orders") == {"c": 1}


def test_dropping_a_source_drops_the_rows_its_data_quality_rules_quarantined_too(raw: RawStore) -> None:
    from keel.quality.model import validate

    rule = validate(rule_id="RAW-ORDER-ID-SMALL", layer="raw", dataset="erp__orders", field="id",
                    check="range", params={"max": 1}, on_fail="quarantine", enabled=True)  # fmt: skip
    landed = commit(raw, [order(1), order(2)], rules=[rule])
    assert landed.quarantined == 1 and query(raw, "SELECT id FROM raw.erp__orders__dq_quarantine") == [(2,)]

    assert raw.drop_source(SOURCE, "erp") == ["erp__orders", "erp__orders__dq_quarantine"]
    assert query(raw, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' "
                      "AND NOT starts_with(table_name, '_keel')") == []  # fmt: skip


def test_a_batch_lands_in_a_side_table_with_the_raw_columns_hashes_bookkeeping_and_state(
    raw: RawStore,
) -> None:
    side = quarantine_table("erp", "Orders")
    records = [order(1), order(2)]
    first = commit(raw, records, {"cursor": 2}, table=side)
    again = commit(raw, [order(2), order(3)], {"cursor": 3}, table=side, dedupe=True)

    assert (side, side_table("erp", "Orders", "Quarantine")) == ("erp__orders__quarantine",) * 2
    assert ((first.rows, first.skipped), (again.rows, again.skipped)) == ((2, 0), (1, 1))
    assert [t["table"] for t in raw.tables()] == ["raw.erp__orders__quarantine"]  # none in raw.erp__orders
    assert query(raw, f"SELECT _keel_source, _keel_record_hash, id FROM raw.{side} ORDER BY id") == [
        (SOURCE, record_hash(record), n) for n, record in enumerate([*records, order(3)], 1)
    ]
    columns = query(raw, f"SELECT column_name FROM duckdb_columns() WHERE table_name = '{side}'")
    keel = ["_keel_batch_id", "_keel_source", "_keel_ingested_at", "_keel_record_hash"]
    assert [c for (c,) in columns] == keel + list(ORDERS.json_schema["properties"])
    assert raw.last_state(SOURCE, "Orders") == {"cursor": 3}
    assert [b["batch_id"] for b in raw.batches(SOURCE, "Orders")] == [again.batch_id, first.batch_id]
    assert raw.drop_source(SOURCE, "erp") == [side]


def test_a_value_of_the_wrong_type_in_a_side_table_commits_nothing_of_the_batch(raw: RawStore) -> None:
    side = quarantine_table("erp", "Orders")
    with pytest.raises(ConnectorError) as raised:
        commit(raw, [order(1), order(2, id="two")], {"cursor": 2}, table=side)

    assert (raised.value.fields["field"], raised.value.fields["row"]) == ("id", 2)
    assert (raw.tables(), raw.batches(SOURCE), raw.last_state(SOURCE, "Orders")) == ([], [], None)


@pytest.mark.parametrize(
    "table", ["crm__orders__quarantine", "erp__orders_quarantine", "erp__orders__", "erp__orders__Quarantine",
              "erp__orders____x", "_keel_batches", "erp__lines"],
)  # fmt: skip
def test_a_table_that_is_neither_the_streams_nor_one_of_its_side_tables_is_invalid(
    raw: RawStore, table: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        commit(raw, [order(1)], table=table)
    assert raised.value.fields["field"] == "table"
    assert raw.tables() == []


def test_a_tenant_without_a_data_plane_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        RawStore(tmp_path / "TEN-GONE" / "data.duckdb").last_state(SOURCE, "Orders")


def test_a_file_another_process_holds_is_reported_busy(raw: RawStore) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({str(raw.path)!r}); "
         "print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(RawBusy) as raised:
            raw.last_state(SOURCE, "Orders")
        assert raised.value.detail == "the tenant's Raw layer is open in another process; try again shortly"
    finally:
        holder.kill()
        holder.wait()


def test_a_session_keeps_one_connection_for_several_batches(raw: RawStore) -> None:
    with raw.session() as session:
        commit(session, [order(1)], {"cursor": 1})
        commit(session, [order(2)], {"cursor": 2})
        assert session.last_state(SOURCE, "Orders") == {"cursor": 2}
    assert raw.row_count(SOURCE, "erp", "Orders") == 2
