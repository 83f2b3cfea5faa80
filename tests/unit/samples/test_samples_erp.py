"""The sample ERP generator: deterministic, with the promised dirty rows, written to SQLite."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Annotated

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from keel.cli import samples as samples_cli
from keel.cli.client import State
from keel.cli.main import KeelGroup
from keel.kernel.errors import Conflict, InvalidInput
from keel.samples.erp import (
    CURRENCIES,
    DIRTY_KINDS,
    LATE_AFTER,
    ErpSpec,
    dirty_rows,
    erp_metadata,
    generate,
    is_late,
    write,
)

SMALL = ErpSpec(seed=3, months=3, customers=10, vendors=5, invoices_per_month=100, dirty_share=0.08)


def digest(data) -> str:
    return hashlib.sha256(json.dumps(data, default=str, sort_keys=True).encode()).hexdigest()


def read_back(url: str, schema: str | None = None) -> dict[str, list[dict]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    dict(row._mapping) for row in conn.execute(sa.select(table).order_by(*table.primary_key))
                ]
                for table in erp_metadata(schema).sorted_tables
            }
    finally:
        engine.dispose()


def test_the_same_seed_gives_byte_identical_data_and_another_seed_other_data():
    first, again = generate(ErpSpec()), generate(ErpSpec())
    other = generate(ErpSpec(seed=43))

    assert digest(first) == digest(again)
    assert first == again
    assert digest(first) != digest(other)
    assert first["invoices"][:5] != other["invoices"][:5]


def test_the_default_spec_makes_six_months_of_history_for_fifty_customers():
    data = generate(ErpSpec())

    counts = {name: len(rows) for name, rows in data.items()}
    months = Counter(row["issued_at"].replace(day=1) for row in data["invoices"])

    assert counts["customers"] == 50
    assert counts["vendors"] == 20
    assert counts["invoices"] == 6 * 200 + 15  # plus the duplicated rows
    assert sorted(months) == [date(2026, m, 1) for m in range(1, 7)]
    assert [row["row_id"] for row in data["invoices"]] == list(range(1, counts["invoices"] + 1))


@pytest.mark.parametrize("dirty_share", [0.0, 0.05, 0.2])
def test_each_dirty_kind_is_its_documented_share_of_the_invoices(dirty_share):
    spec = ErpSpec(seed=11, months=4, invoices_per_month=250, dirty_share=dirty_share)
    base = spec.months * spec.invoices_per_month

    found = dirty_rows(generate(spec)["invoices"])

    assert found == spec.dirty_counts()
    for kind in DIRTY_KINDS:
        assert found[kind] == pytest.approx(base * dirty_share / 4, abs=1)
    assert sum(found.values()) / base == pytest.approx(dirty_share, abs=0.005)


def test_duplicate_invoice_ids_are_second_rows_with_the_same_invoice():
    invoices = generate(SMALL)["invoices"]
    by_id: dict[str, list[dict]] = {}
    for row in invoices:
        by_id.setdefault(row["invoice_id"], []).append(row)

    duplicated = {key: rows for key, rows in by_id.items() if len(rows) > 1}

    assert len(duplicated) == SMALL.dirty_counts()["duplicate_invoice_id"] == 6
    for first, second in duplicated.values():
        assert first["row_id"] + 1 == second["row_id"]
        assert second["updated_at"] > first["updated_at"]
        skip = {"row_id", "updated_at"}
        assert {k: v for k, v in first.items() if k not in skip} == {
            k: v for k, v in second.items() if k not in skip
        }


def test_late_arriving_rows_are_updated_long_after_their_month_and_clean_rows_are_not():
    invoices = generate(SMALL)["invoices"]

    late = [row for row in invoices if is_late(row)]
    clean_gap = max(
        (row["updated_at"].date() - row["issued_at"]).days for row in invoices if not is_late(row)
    )

    assert len(late) == SMALL.dirty_counts()["late_arriving"]
    for row in late:
        month_end = date(
            row["issued_at"].year + row["issued_at"].month // 12, row["issued_at"].month % 12 + 1, 1
        )
        assert (row["updated_at"].date() - month_end) > LATE_AFTER
    assert clean_gap < LATE_AFTER.days


def test_bad_currencies_and_null_amounts_are_the_only_broken_values():
    invoices = generate(SMALL)["invoices"]

    bad = Counter(row["currency"] for row in invoices if row["currency"] not in CURRENCIES)
    nulls = [row for row in invoices if row["amount_net"] is None]

    assert sum(bad.values()) == SMALL.dirty_counts()["bad_currency"]
    assert set(bad) <= {"XXX", "usd ", "", "EURO"}
    assert all(row["amount_tax"] is None for row in nulls)
    assert all(row["amount_net"] >= Decimal("50.00") for row in invoices if row["amount_net"] is not None)


def test_payments_reference_existing_invoices_and_customers_exist():
    data = generate(SMALL)
    invoice_ids = {row["invoice_id"] for row in data["invoices"]}
    customer_ids = {row["customer_id"] for row in data["customers"]}
    paid = {row["invoice_id"] for row in data["invoices"] if row["status"] == "paid"}

    assert data["payments"]
    assert {row["invoice_id"] for row in data["payments"]} <= invoice_ids
    assert {row["invoice_id"] for row in data["payments"]} == paid
    assert {row["customer_id"] for row in data["invoices"]} <= customer_ids
    assert len({row["payment_id"] for row in data["payments"]}) == len(data["payments"])
    assert {row["currency"] for row in data["payments"]} <= CURRENCIES  # payments keep the clean currency


def test_paid_invoices_are_paid_in_full():
    data = generate(SMALL)
    paid: Counter = Counter()
    for payment in data["payments"]:
        paid[payment["invoice_id"]] += payment["amount"]

    for row in data["invoices"]:
        if row["status"] == "paid" and row["amount_net"] is not None:
            assert paid[row["invoice_id"]] == row["amount_net"] + row["amount_tax"]


def test_a_spec_out_of_range_is_refused_with_the_field_named():
    with pytest.raises(InvalidInput) as error:
        ErpSpec(dirty_share=1.5)
    assert error.value.fields == {"field": "dirty_share"}
    with pytest.raises(InvalidInput) as error:
        ErpSpec(months=0)
    assert error.value.fields == {"field": "months"}


def test_writing_to_sqlite_round_trips_every_row(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.db'}"

    counts = write(SMALL, url)
    stored = read_back(url)
    expected = generate(SMALL)

    assert counts == {name: len(rows) for name, rows in expected.items()}
    assert {name: len(rows) for name, rows in stored.items()} == counts
    assert dirty_rows(stored["invoices"]) == SMALL.dirty_counts()
    assert stored["customers"][0] | {"created_at": None} == expected["customers"][0] | {"created_at": None}
    assert stored["invoices"][0]["amount_net"] == expected["invoices"][0]["amount_net"]


def test_writing_over_tables_with_rows_is_refused_unless_replace(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    write(SMALL, url)

    with pytest.raises(Conflict) as error:
        write(ErpSpec(seed=99, months=1), url)
    unchanged = read_back(url)
    counts = write(ErpSpec(seed=99, months=1), url, replace=True)
    replaced = read_back(url)

    assert "table customers already holds 10 rows" in error.value.detail
    assert error.value.fields == {"table": "customers", "rows": 10}
    assert len(unchanged["invoices"]) == len(generate(SMALL)["invoices"])
    assert counts["invoices"] == len(replaced["invoices"]) == 200 + 2  # 2.5 duplicates round to 2
    assert len(replaced["customers"]) == 50


def test_a_schema_is_refused_on_sqlite(tmp_path):
    with pytest.raises(InvalidInput) as error:
        write(SMALL, f"sqlite:///{tmp_path / 'erp.db'}", schema="erp")
    assert error.value.fields == {"field": "schema"}


def cli_app() -> typer.Typer:
    """``keel``'s global ``--json`` plus the ``sample`` group, as main.py will mount it."""
    app = typer.Typer(cls=KeelGroup)

    @app.callback()
    def main(ctx: typer.Context, json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
        ctx.obj = State(json=json_output)

    app.add_typer(samples_cli.app, name="sample")
    return app


def test_keel_sample_erp_writes_a_sqlite_file_and_reports_rows_and_dirty_counts(tmp_path):
    runner = CliRunner()
    out = tmp_path / "nested" / "erp.db"
    argv = ["sample", "erp", "--out", str(out), "--seed", "5", "--months", "2", "--dirty-share", "0.1"]

    result = runner.invoke(cli_app(), ["--json", *argv])
    again = runner.invoke(cli_app(), argv)
    replaced = runner.invoke(cli_app(), [*argv, "--replace"])

    spec = ErpSpec(seed=5, months=2, dirty_share=0.1)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "target": f"sqlite:///{out}",
        "schema": None,
        "seed": 5,
        "rows": {name: len(rows) for name, rows in generate(spec).items()},
        "dirty": {"null_amount": 10, "duplicate_invoice_id": 10, "bad_currency": 10, "late_arriving": 10},
    }
    assert dirty_rows(read_back(f"sqlite:///{out}")["invoices"]) == spec.dirty_counts()
    assert again.exit_code == 5
    assert "error: table customers already holds 50 rows" in again.stderr
    assert replaced.exit_code == 0, replaced.output
    assert "invoices" in replaced.stdout and "late_arriving" in replaced.stdout
