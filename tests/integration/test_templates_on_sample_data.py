"""The shipped templates on real ingested sample data: the demo's ERP and CRM are seeded into a Keel
of their own (SQLite, or PostgreSQL with KEEL_DATABASE_URL), each GDP mapping builds its entity in
the tenant's DuckDB file, each KPI's compiled SQL runs there, and the KPI values equal an
independent computation in plain Python from the sample ERP's generated rows.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date
from decimal import Decimal

import duckdb
import pytest
from argon2 import PasswordHasher
from tests.conftest import _store_settings
from tests.support import running_keel

from keel.contracts import documents, rules
from keel.contracts.kpi_sql import validate_kpi
from keel.contracts.mapping import validate_mapping
from keel.contracts.model import Layer
from keel.contracts.templates import load_templates
from keel.identity import credentials
from keel.samples import erp
from keel.samples.crm import serve_crm
from keel.seed import seed

CONTRACTS = [documents.read_contract(document) for _, document in load_templates()]
CONTEXT = rules.Context({c.key: c for c in CONTRACTS})
BY_ID = {c.id: c for c in CONTRACTS}
# The Keel type of each DuckDB column type ingestion makes (ingestion/columns.py).
KEEL_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "integer",
    "DOUBLE": "number",
    "DECIMAL(38,9)": "decimal",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """The demo tenant's DuckDB file after seeding, with every GDP template's entity built in it."""
    home = tmp_path_factory.mktemp("templates-on-samples")
    with (
        pytest.MonkeyPatch.context() as patch,
        _store_settings(home) as settings,
        running_keel(settings) as keel,
        serve_crm() as crm,
    ):
        # The seeded users never sign in here: hash their passwords cheaply (argon2 is slow by design).
        patch.setattr(credentials, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        seeded = seed(keel, crm=crm)
        path = keel.dataplanes.database_path(seeded.tenant_id)
    con = duckdb.connect(str(path))
    for contract in (c for c in CONTRACTS if c.layer is Layer.GDP):
        for dataset in contract.datasets:
            plan = validate_mapping(dataset.mapping_sql, dataset, rules.source_tables(contract, CONTEXT))
            # The seed built the pipeline's views already; this oracle builds the plain SQL in their place.
            con.execute(f'DROP VIEW IF EXISTS gdp."{dataset.name}"')
            con.execute(f'CREATE TABLE gdp."{dataset.name}" AS {plan.sql}')
    try:
        yield con
    finally:
        con.close()


def kpi_rows(con, kpi_id: str) -> list[tuple]:
    contract = BY_ID[kpi_id]
    plan = validate_kpi(contract.kpi, rules.gdp_tables(contract, CONTEXT))
    return con.execute(plan.sql).fetchall()


def test_raw_templates_describe_exactly_the_columns_and_types_ingestion_made(lake):
    for contract in (c for c in CONTRACTS if c.layer is Layer.RAW):
        for dataset in contract.datasets:
            described = lake.execute(f'DESCRIBE raw."{dataset.name}"').fetchall()
            found = [
                (name, KEEL_TYPES[kind]) for name, kind, *_ in described if not name.startswith("_keel_")
            ]
            assert found == [(f.name, f.type) for f in dataset.fields], dataset.name


def test_required_fields_hold_no_nulls_and_keys_are_unique_in_raw_and_gdp(lake):
    for contract in (c for c in CONTRACTS if c.layer in (Layer.RAW, Layer.GDP)):
        for dataset in contract.datasets:
            table = f'{contract.layer.value}."{dataset.name}"'
            for f in dataset.fields:
                if f.required:
                    nulls = lake.execute(f"SELECT count(*) FROM {table} WHERE {f.name} IS NULL").fetchone()[0]
                    assert nulls == 0, f"{table}.{f.name}"
            keys = [[f.name] for f in dataset.fields if f.unique]
            keys.append([f.name for f in dataset.fields if f.primary_key])
            for key in keys:
                columns = ", ".join(key)
                total, distinct = lake.execute(
                    f"SELECT count(*), count(DISTINCT ({columns})) FROM {table}"
                ).fetchone()
                assert total == distinct, f"{table} ({columns})"


def test_the_invoice_entity_holds_each_invoice_once_and_judges_overdue_as_the_erp_did(lake):
    invoices = len({row["invoice_id"] for row in SAMPLE["invoices"]})
    twice = erp.dirty_rows(SAMPLE["invoices"])["duplicate_invoice_id"]
    copies = lake.execute("SELECT source_rows, count(*) FROM gdp.invoice GROUP BY ALL ORDER BY 1").fetchall()
    assert copies == [(1, invoices - twice), (2, twice)]
    # The ERP judged its invoices on the first day after the generated months; so does the entity.
    assert lake.execute("SELECT DISTINCT as_of FROM gdp.invoice").fetchall() == [(date(2026, 7, 1),)]
    judged = lake.execute(
        "SELECT DISTINCT status, is_overdue FROM gdp.invoice WHERE amount_open IS NOT NULL ORDER BY 1"
    ).fetchall()
    assert judged == [("open", False), ("overdue", True), ("paid", False)]


# --- the KPIs, computed again in plain Python from the generated rows ----------------------------

SAMPLE = erp.generate(erp.ErpSpec())  # the rows the seed wrote to the demo ERP


def invoices_of_the_sample() -> list[dict]:
    """The GDP invoices, from the generated rows: the newest export of each invoice, with its gross
    amount, its payments and when it was settled."""
    newest: dict[str, dict] = {}
    for row in SAMPLE["invoices"]:
        kept = newest.get(row["invoice_id"])
        if kept is None or (row["updated_at"], row["row_id"]) > (kept["updated_at"], kept["row_id"]):
            newest[row["invoice_id"]] = row
    paid: dict[str, list[dict]] = defaultdict(list)
    for payment in SAMPLE["payments"]:
        paid[payment["invoice_id"]].append(payment)
    out = []
    for row in newest.values():
        gross = None if row["amount_net"] is None else row["amount_net"] + row["amount_tax"]
        payments = paid[row["invoice_id"]]
        settled = gross is not None and gross <= sum(p["amount"] for p in payments)
        paid_on = max(p["paid_at"] for p in payments).date() if settled else None
        out.append({**row, "gross": gross, "payments": payments, "paid_on": paid_on})
    return out


def month(day: date) -> date:
    return day.replace(day=1)


def month_end(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def by_month_and_currency(rows: list[tuple]) -> dict[tuple[date, str], object]:
    """KPI result rows (period, currency, value) keyed by (period, currency)."""
    assert all(isinstance(period, date) and period.day == 1 for period, *_ in rows)
    return {(period, currency): value for period, currency, value in rows}


def rounded(values: dict) -> dict:
    """Ratios compared to 6 decimals: DuckDB divides decimals in floating point."""
    return {key: None if value is None else round(float(value), 6) for key, value in values.items()}


def test_dso_per_month_and_currency_is_month_end_receivables_over_the_months_sales_times_its_days(lake):
    invoices = invoices_of_the_sample()
    expected = {}
    for first in sorted({month(i["issued_at"]) for i in invoices}):
        last = month_end(first)
        receivables: dict[str, Decimal] = defaultdict(Decimal)
        sales: dict[str, Decimal] = defaultdict(Decimal)
        for invoice in invoices:
            if invoice["gross"] is None or invoice["issued_at"] > last:
                continue
            received = sum(p["amount"] for p in invoice["payments"] if p["paid_at"].date() <= last)
            receivables[invoice["currency"]] += max(invoice["gross"] - received, Decimal(0))
            if invoice["issued_at"] >= first:
                sales[invoice["currency"]] += invoice["gross"]
        for currency in receivables.keys() | sales.keys():
            if sales[currency] or receivables[currency]:  # an invoice of the month, or one still open
                dso = receivables[currency] / sales[currency] * last.day if sales[currency] else None
                expected[(first, currency)] = dso

    found = by_month_and_currency(kpi_rows(lake, "KPI-DSO"))
    assert rounded(found) == rounded(expected)
    assert round(found[(date(2026, 6, 1), "EUR")]) == 69  # receivables pile up: ~30% are never paid


def test_avg_days_to_pay_per_month_is_the_mean_days_from_invoice_to_settlement(lake):
    days: dict[date, list[int]] = defaultdict(list)
    for invoice in invoices_of_the_sample():
        if invoice["paid_on"] is not None:
            days[month(invoice["paid_on"])].append((invoice["paid_on"] - invoice["issued_at"]).days)

    found = {period: round(value, 9) for period, value in kpi_rows(lake, "KPI-AVG-DAYS-TO-PAY")}
    assert found == {period: round(sum(d) / len(d), 9) for period, d in days.items()}


def test_invoiced_revenue_per_month_and_currency_is_the_net_amount_of_each_invoice_once(lake):
    expected: dict[tuple[date, str], Decimal | None] = {}
    for invoice in invoices_of_the_sample():
        key = (month(invoice["issued_at"]), invoice["currency"])
        if invoice["amount_net"] is not None:
            expected[key] = (expected.get(key) or Decimal(0)) + invoice["amount_net"]
        else:
            expected.setdefault(key, None)

    assert by_month_and_currency(kpi_rows(lake, "KPI-INVOICED-REVENUE")) == expected


def test_collected_cash_per_month_and_currency_is_the_sum_of_the_payments(lake):
    expected: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for payment in SAMPLE["payments"]:
        expected[(month(payment["paid_at"].date()), payment["currency"])] += payment["amount"]

    assert by_month_and_currency(kpi_rows(lake, "KPI-COLLECTED-CASH")) == dict(expected)


@pytest.mark.parametrize("kpi_id", [c.id for c in CONTRACTS if c.layer is Layer.KPI])
def test_every_kpi_template_runs_on_the_sample_data_and_gives_values(lake, kpi_id):
    rows = kpi_rows(lake, kpi_id)
    assert rows
    assert any(row[-1] is not None for row in rows)
