"""KPI formulas: checked against the one GDP dataset they read with errors that point into the
text, compiled to one query for DuckDB and Spark, run from Raw rows through the GDP mappings to
KPI values on a real DuckDB and compared with the same numbers worked out in plain Python."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from keel.contracts.kpi_sql import KpiPlan, evaluate_thresholds, validate_kpi
from keel.contracts.mapping import MappingError, validate_mapping
from keel.contracts.model import Dataset, Field, KpiSpec, Threshold
from keel.kernel.errors import InvalidInput


def dataset(table: str, /, **types: str) -> Dataset:
    return Dataset(table, tuple(Field(column, type_) for column, type_ in types.items()))


INVOICE = dataset(
    "invoice",
    invoice_id="string",
    region="string",
    status="string",
    amount_gross="decimal",
    amount_open="decimal",
    issued_at="date",
    lines="integer",
    disputed="boolean",
)
PAYMENT = dataset("payment", invoice_id="string", amount="decimal", paid_at="timestamp")
GDP = {"gdp.invoice": INVOICE}
BOTH = {"gdp.invoice": INVOICE, "gdp.payment": PAYMENT}
DSO = "SUM(invoice.amount_open) / NULLIF(SUM(invoice.amount_gross), 0) * 30"


def spec(**changes) -> KpiSpec:
    fields = {"formula": DSO, "grain": "month", "time_field": "invoice.issued_at", "unit": "days"}
    return KpiSpec(**(fields | changes))


def error_of(kpi: KpiSpec, gdp: dict[str, Dataset] = GDP) -> MappingError:
    with pytest.raises(MappingError) as caught:
        validate_kpi(kpi, gdp)
    return caught.value


# --- a valid KPI --------------------------------------------------------------------------------------


def test_a_valid_kpi_compiles_to_one_grouped_query_over_its_gdp_table() -> None:
    plan = validate_kpi(spec(dimensions=("region",), filters=("status <> 'void'",)), GDP)

    assert plan.sql == (
        "SELECT\n"
        """  CAST(DATE_TRUNC('MONTH', "invoice"."issued_at") AS DATE) AS "period",\n"""
        """  "invoice"."region" AS "region",\n"""
        """  SUM("invoice"."amount_open") / NULLIF(SUM("invoice"."amount_gross"), 0) * 30 AS "value"\n"""
        """FROM "gdp"."invoice" AS "invoice"\n"""
        "WHERE\n"
        """  "invoice"."status" <> 'void'\n"""
        "GROUP BY\n"
        """  CAST(DATE_TRUNC('MONTH', "invoice"."issued_at") AS DATE),\n"""
        """  "invoice"."region"\n"""
        "ORDER BY\n"
        """  CAST(DATE_TRUNC('MONTH', "invoice"."issued_at") AS DATE),\n"""
        """  "invoice"."region\""""
    )
    assert (plan.table, plan.lineage, plan.columns, plan.dialect) == (
        "gdp.invoice",
        (("gdp.invoice", "amount_gross"), ("gdp.invoice", "amount_open")),
        ("amount_gross", "amount_open", "issued_at", "region", "status"),
        "duckdb",
    )


def test_the_query_renders_as_spark_sql_that_spark_parses() -> None:
    plan = validate_kpi(spec(dimensions=("region",), filters=("status <> 'void'", "NOT disputed")), GDP)

    spark = plan.sql_for("spark")

    assert "FROM `gdp`.`invoice` AS `invoice`" in spark
    assert "NULLS LAST" in spark  # Spark sorts NULL first unless told
    reparsed = sqlglot.parse_one(spark, read="spark")
    assert isinstance(reparsed, exp.Select)
    assert reparsed.named_selects == ["period", "region", "value"]


@pytest.mark.parametrize(
    ("formula", "time_field", "dimension"),
    [
        ("SUM(amount_open)", "issued_at", "region"),  # one dataset: columns may go unqualified
        ("SUM(invoice.amount_open)", "invoice.issued_at", "invoice.region"),
        ("SUM(gdp.invoice.amount_open)", "gdp.invoice.issued_at", "gdp.invoice.region"),
        ("SUM(AMOUNT_OPEN)", "Invoice.Issued_At", "REGION"),  # names are case-insensitive
    ],
)
def test_columns_may_be_written_plain_by_entity_or_by_table(
    formula: str, time_field: str, dimension: str
) -> None:
    plan = validate_kpi(spec(formula=formula, time_field=time_field, dimensions=(dimension,)), GDP)

    assert (plan.lineage, plan.columns) == (
        (("gdp.invoice", "amount_open"),),
        ("amount_open", "issued_at", "region"),
    )
    assert '"invoice"."amount_open"' in plan.sql


def test_with_several_datasets_based_on_the_qualified_columns_pick_the_one_read() -> None:
    plan = validate_kpi(spec(formula="SUM(payment.amount) / COUNT(*)", time_field="paid_at"), BOTH)

    assert (plan.table, plan.lineage, plan.columns) == (
        "gdp.payment",
        (("gdp.payment", "amount"),),
        ("amount", "paid_at"),
    )


@pytest.mark.parametrize(
    "formula",
    [
        "COUNT(*)",
        "SUM(lines) + 1",
        "AVG(amount_gross)",
        "COUNT(DISTINCT region)",
        "SUM(amount_open) FILTER (WHERE disputed)",  # the FILTER's column is part of the aggregate
        "SUM(CASE WHEN status = 'paid' THEN amount_gross ELSE 0 END)",
        "CAST(MEDIAN(amount_gross) AS DOUBLE)",
        "100.0 * COUNT_IF(disputed) / COUNT(*)",
    ],
)
def test_these_formulas_are_accepted(formula: str) -> None:
    assert isinstance(validate_kpi(spec(formula=formula), GDP), KpiPlan)


def test_a_kpi_written_in_spark_sql_is_checked_and_compiled_as_spark() -> None:
    kpi = spec(formula="SUM(amount_open) / NULLIF(SUM(amount_gross), 0)", filters=("region RLIKE '^n'",))

    plan = validate_kpi(kpi, GDP, dialect="spark")

    assert plan.dialect == "spark"
    assert plan.sql == plan.sql_for("spark")
    assert "`invoice`.`region` RLIKE '^n'" in plan.sql
    assert 'REGEXP_MATCHES("invoice"."region", \'^n\')' in plan.sql_for("duckdb")


def test_a_plan_read_back_from_storage_renders_for_another_engine_from_its_sql() -> None:
    plan = validate_kpi(spec(dimensions=("region",)), GDP)

    stored = KpiPlan(sql=plan.sql, table=plan.table, lineage=plan.lineage, columns=plan.columns)

    assert stored == plan  # the tree is not part of the value
    assert stored.sql_for("spark") == plan.sql_for("spark")


# --- errors point into the text that is wrong -----------------------------------------------------------

ERRORS = [
    # (kind, spec changes, gdp, field, line, column, token, problem)
    (
        "unknown_column",
        {"formula": "SUM(invoice.amount_opn) / NULLIF(SUM(invoice.amount_gross), 0)"},
        GDP,
        "kpi.formula",
        1,
        13,
        "amount_opn",
        "unknown column 'amount_opn' in gdp.invoice (did you mean 'amount_open'?)",
    ),
    (
        "unknown_column",
        {"filters": ("region = 'north'", "\n  stat = 'open'")},
        GDP,
        "kpi.filters[1]",
        2,
        3,
        "stat",
        "unknown column 'stat' in gdp.invoice (did you mean 'status'?)",
    ),
    (
        "unknown_column",
        {"dimensions": ("region", "segment")},
        GDP,
        "kpi.dimensions[1]",
        1,
        1,
        "segment",
        "unknown column 'segment' in gdp.invoice",
    ),
    (
        "unknown_column",
        {"time_field": "invoice.issued"},
        GDP,
        "kpi.time_field",
        1,
        9,
        "issued",
        "unknown column 'issued' in gdp.invoice (did you mean 'issued_at'?)",
    ),
    (
        "syntax_error",
        {"formula": "SUM(amount_open) /"},
        GDP,
        "kpi.formula",
        1,
        18,
        "/",
        "syntax error: Required keyword: 'expression' missing for DIV",
    ),
    ("empty", {"formula": "  "}, GDP, "kpi.formula", None, None, None, "is empty; write a SQL expression"),
    (
        "several_statements",
        {"formula": "SUM(lines); DROP TABLE gdp.invoice"},
        GDP,
        "kpi.formula",
        1,
        13,
        "DROP",
        "is one SQL expression; a second one starts here",
    ),
    (
        "not_an_expression",
        {"formula": "SELECT SUM(lines) FROM gdp.invoice"},
        GDP,
        "kpi.formula",
        1,
        1,
        "SELECT",
        "is one SQL expression, not SELECT",
    ),
    (
        "alias",
        {"formula": "SUM(lines) AS total"},
        GDP,
        "kpi.formula",
        1,
        15,
        "total",
        "takes no alias (AS): the KPI names its own columns",
    ),
    (
        "unknown_dataset",
        {"formula": "SUM(invoices.lines)"},
        GDP,
        "kpi.formula",
        1,
        5,
        "invoices",
        "unknown GDP dataset 'invoices'; the KPI is based on gdp.invoice (did you mean 'invoice'?)",
    ),
    (
        "several_datasets",
        {"formula": "SUM(invoice.amount_gross) - SUM(payment.amount)"},
        BOTH,
        "kpi.formula",
        1,
        33,
        "payment",
        "a KPI reads one GDP dataset; join in a GDP mapping instead (gdp.invoice is read already, "
        "this column is from gdp.payment)",
    ),
    (
        # the time field counts as a read too
        "several_datasets",
        {"formula": "SUM(payment.amount)", "time_field": "invoice.issued_at"},
        BOTH,
        "kpi.time_field",
        1,
        1,
        "invoice",
        "a KPI reads one GDP dataset; join in a GDP mapping instead (gdp.payment is read already, "
        "this column is from gdp.invoice)",
    ),
    (
        "not_a_field",
        {"formula": "COUNT(*)", "time_field": "'2024-01-01'"},
        BOTH,
        "kpi.time_field",
        1,
        1,
        "'2024-01-01'",
        "names one field, e.g. <entity>.<field>",
    ),
    (
        "ambiguous_dataset",
        {"formula": "SUM(amount)", "time_field": "paid_at"},
        BOTH,
        "kpi.formula",
        1,
        5,
        "amount",
        "column 'amount' does not say which GDP dataset it is from; the KPI is based on gdp.invoice, "
        "gdp.payment, so write <entity>.amount",
    ),
    (
        "not_a_field",
        {"time_field": "CAST(issued_at AS DATE)"},
        GDP,
        "kpi.time_field",
        1,
        6,
        "issued_at",
        "names one field, e.g. invoice.<field>",
    ),
    (
        "not_temporal",
        {"time_field": "invoice.lines"},
        GDP,
        "kpi.time_field",
        1,
        1,
        "invoice.lines",
        "field 'lines' is integer; the time field must be a date or timestamp",
    ),
    (
        "duplicate_dimension",
        {"dimensions": ("region", "invoice.region")},
        GDP,
        "kpi.dimensions[1]",
        1,
        1,
        "invoice.region",
        "field 'region' is a dimension twice",
    ),
    (
        "no_aggregate",
        {"formula": " amount_open / 30"},
        GDP,
        "kpi.formula",
        1,
        2,
        "amount_open / 30",
        "aggregates nothing; a KPI value is an aggregate such as SUM(...), COUNT(*) or AVG(...)",
    ),
    (
        "unaggregated_column",
        {"formula": "SUM(amount_open) / amount_gross"},
        GDP,
        "kpi.formula",
        1,
        20,
        "amount_gross",
        "column 'amount_gross' is not inside an aggregate (SUM, COUNT, AVG, MIN, MAX, ...)",
    ),
    (
        "nested_aggregate",
        {"formula": "AVG(SUM(lines))"},
        GDP,
        "kpi.formula",
        1,
        5,
        "SUM",
        "nests an aggregate inside another",
    ),
    (
        "window",
        {"formula": "SUM(lines) OVER (PARTITION BY region)"},
        GDP,
        "kpi.formula",
        1,
        1,
        "SUM",
        "cannot use a window function; grain and dimensions group the rows",
    ),
    (
        "subquery",
        {"formula": "SUM(lines) / (SELECT COUNT(*) FROM gdp.invoice)"},
        GDP,
        "kpi.formula",
        1,
        15,
        "SELECT",
        "cannot hold a subquery; a KPI reads its dataset's rows",
    ),
    (
        "aggregate_in_filter",
        {"filters": ("SUM(amount_open) > 0",)},
        GDP,
        "kpi.filters[0]",
        1,
        1,
        "SUM",
        "is a row predicate; aggregates belong in the formula",
    ),
    (
        "not_numeric",
        {"formula": "MAX(issued_at)"},
        GDP,
        "kpi.formula",
        1,
        1,
        "MAX(issued_at)",
        "is date; a KPI value is a number",
    ),
    (
        "unknown_type",
        {"formula": "MEDIAN(amount_gross)"},
        GDP,
        "kpi.formula",
        1,
        1,
        "MEDIAN(amount_gross)",
        "cannot tell the type of the value; CAST it, e.g. CAST(... AS DOUBLE)",
    ),
    (
        "not_boolean",
        {"filters": ("region",)},
        GDP,
        "kpi.filters[0]",
        1,
        1,
        "region",
        "is string, not a true/false condition",
    ),
]


@pytest.mark.parametrize(
    ("kind", "changes", "gdp", "field", "line", "column", "token", "problem"),
    ERRORS,
    ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)],
)
def test_each_kpi_error_names_its_kind_input_and_exact_position(
    kind: str,
    changes: dict,
    gdp: dict[str, Dataset],
    field: str,
    line: int | None,
    column: int | None,
    token: str | None,
    problem: str,
) -> None:
    error = error_of(spec(**changes), gdp)

    assert (error.kind, error.fields["field"], error.line, error.column, error.token, error.problem) == (
        kind,
        field,
        line,
        column,
        token,
        problem,
    )
    if line is not None:  # the position really is where the token is written in that input
        kpi = spec(**changes)
        name, _, index = field.removeprefix("kpi.").partition("[")
        text = getattr(kpi, name)[int(index[:-1])] if index else getattr(kpi, name)
        start = sum(len(part) + 1 for part in text.split("\n")[: line - 1]) + column - 1
        assert text[start : start + len(token)] == token


def test_a_kpi_error_message_names_the_contract_the_input_and_the_place() -> None:
    with pytest.raises(MappingError) as caught:
        validate_kpi(spec(formula="SUM(amount_opn)"), GDP, contract="kpi-dso")

    assert str(caught.value) == (
        "kpi.formula: formula of KPI kpi-dso, line 1 col 5: unknown column 'amount_opn' in gdp.invoice "
        "(did you mean 'amount_open'?)"
    )
    assert (caught.value.contract, caught.value.dataset) == ("kpi-dso", "gdp.invoice")


def test_an_unknown_grain_is_invalid_input_naming_the_grains() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_kpi(spec(grain="hour"), GDP)

    assert caught.value.to_dict()["field"] == "kpi.grain"
    assert (
        caught.value.detail == "kpi.grain: 'hour' is not a grain; use one of day, week, month, quarter, year"
    )


def test_a_kpi_based_on_no_gdp_dataset_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_kpi(spec(formula="COUNT(*)", time_field="issued_at"), {})

    assert caught.value.detail == "based_on: a KPI is based on one GDP dataset; it names none"


def test_a_dimension_cannot_take_the_name_of_the_querys_own_columns() -> None:
    gdp = {"gdp.reading": dataset("reading", value="decimal", at="timestamp")}

    error = error_of(spec(formula="SUM(value)", time_field="at", dimensions=("value",)), gdp)

    assert (error.kind, error.fields["field"], error.column) == ("reserved_name", "kpi.dimensions[0]", 1)


# --- from Raw rows to KPI values on DuckDB ----------------------------------------------------------------

ACCOUNTS = [("A1", "Acme", "north"), ("A2", "Bolt", "south"), ("A3", "Core", None)]
RAW_INVOICES = [  # id, account, net, vat, issued, status, lines
    ("I01", "A1", "100.00", "20.00", date(2024, 1, 3), "open", 2),
    ("I02", "A1", "200.00", "40.00", date(2024, 1, 17), "open", 1),
    ("I03", "A2", "50.00", "10.00", date(2024, 1, 31), "open", 5),
    ("I04", "A2", "80.00", "16.00", date(2024, 2, 1), "void", 1),
    ("I05", "A3", "10.00", "2.00", date(2024, 2, 12), "open", 3),
    ("I06", "A1", "300.00", "60.00", date(2024, 3, 29), "open", 4),
    ("I07", "A2", "70.00", "14.00", date(2024, 4, 1), "open", 2),
    ("I08", "A3", "0.00", "0.00", date(2024, 4, 2), "open", 1),
    ("I09", "A1", "45.50", "9.10", date(2023, 12, 31), "open", 1),
]
RAW_PAYMENTS = [  # invoice, amount, paid at
    ("I01", "120.00", datetime(2024, 1, 20, 10)),
    ("I02", "100.00", datetime(2024, 2, 1, 9)),
    ("I02", "40.00", datetime(2024, 2, 15, 16, 30)),
    ("I03", "60.00", datetime(2024, 2, 2, 0, 0)),
    ("I06", "10.00", datetime(2024, 4, 1, 23, 59)),
]

RAW = {
    "raw.crm__accounts": dataset("crm__accounts", id="string", name="string", region="string"),
    "raw.erp__invoices": dataset(
        "erp__invoices",
        id="string",
        account_id="string",
        net="decimal",
        vat="decimal",
        issued_on="date",
        status="string",
        line_count="integer",
    ),
    "raw.erp__payments": dataset("erp__payments", invoice_id="string", amount="decimal", paid_at="timestamp"),
}
CUSTOMER = dataset("customer", customer_id="string", name="string", region="string")
CUSTOMER_MAPPING = "SELECT id AS customer_id, name, region FROM raw.crm__accounts"
INVOICE_MAPPING = """\
WITH paid AS (
  SELECT invoice_id, SUM(amount) AS paid
  FROM raw.erp__payments
  GROUP BY invoice_id
)
SELECT i.id AS invoice_id,
       c.region,
       i.status,
       i.net + i.vat AS amount_gross,
       i.net + i.vat - COALESCE(p.paid, 0) AS amount_open,
       i.issued_on AS issued_at,
       i.line_count AS lines,
       i.status = 'disputed' AS disputed
FROM raw.erp__invoices AS i
LEFT JOIN paid AS p ON p.invoice_id = i.id
LEFT JOIN gdp.customer AS c ON c.customer_id = i.account_id"""
PAYMENT_MAPPING = "SELECT invoice_id, amount, paid_at FROM raw.erp__payments"


@pytest.fixture(scope="module")
def tenant() -> duckdb.DuckDBPyConnection:
    """A tenant's DuckDB: Raw tables loaded, then the GDP tables built by their checked mappings."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA gdp")
    con.execute("CREATE TABLE raw.crm__accounts (id VARCHAR, name VARCHAR, region VARCHAR)")
    con.execute(
        "CREATE TABLE raw.erp__invoices (id VARCHAR, account_id VARCHAR, net DECIMAL(18, 2),"
        " vat DECIMAL(18, 2), issued_on DATE, status VARCHAR, line_count BIGINT)"
    )
    con.execute(
        "CREATE TABLE raw.erp__payments (invoice_id VARCHAR, amount DECIMAL(18, 2), paid_at TIMESTAMP)"
    )
    con.executemany("INSERT INTO raw.crm__accounts VALUES (?, ?, ?)", ACCOUNTS)
    con.executemany("INSERT INTO raw.erp__invoices VALUES (?, ?, ?, ?, ?, ?, ?)", RAW_INVOICES)
    con.executemany("INSERT INTO raw.erp__payments VALUES (?, ?, ?)", RAW_PAYMENTS)
    customer = validate_mapping(CUSTOMER_MAPPING, CUSTOMER, RAW)
    con.execute(f"CREATE TABLE gdp.customer AS {customer.sql}")
    invoice = validate_mapping(INVOICE_MAPPING, INVOICE, RAW | {"gdp.customer": CUSTOMER})
    con.execute(f"CREATE TABLE gdp.invoice AS {invoice.sql}")
    payment = validate_mapping(PAYMENT_MAPPING, PAYMENT, RAW)
    con.execute(f"CREATE TABLE gdp.payment AS {payment.sql}")
    return con


def python_invoices() -> list[dict]:
    """The GDP invoices worked out from the Raw rows in plain Python."""
    regions = {account: region for account, _, region in ACCOUNTS}
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for invoice, amount, _ in RAW_PAYMENTS:
        paid[invoice] += Decimal(amount)
    rows = []
    for invoice, account, net, vat, issued, status, lines in RAW_INVOICES:
        gross = Decimal(net) + Decimal(vat)
        rows.append(
            {
                "region": regions[account],
                "status": status,
                "gross": gross,
                "open": gross - paid[invoice],
                "issued": issued,
                "lines": lines,
            }
        )
    return rows


BUCKETS = {
    "day": lambda d: d,
    "week": lambda d: d - timedelta(days=d.weekday()),  # weeks start on Monday in both engines
    "month": lambda d: d.replace(day=1),
    "quarter": lambda d: date(d.year, 3 * ((d.month - 1) // 3) + 1, 1),
    "year": lambda d: date(d.year, 1, 1),
}


def by_period_then_region(row: tuple) -> tuple:
    period, region, *_ = row
    return (period, region is None, region or "")


def test_the_dso_kpi_on_duckdb_equals_the_same_sums_done_in_python(tenant: duckdb.DuckDBPyConnection) -> None:
    plan = validate_kpi(spec(dimensions=("region",), filters=("status <> 'void'",)), {"gdp.invoice": INVOICE})

    got = tenant.execute(plan.sql).fetchall()

    sums: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in python_invoices():
        if row["status"] != "void":
            key = (BUCKETS["month"](row["issued"]), row["region"])
            sums[key][0] += row["open"]
            sums[key][1] += row["gross"]
    expected = sorted(
        ((period, region, float(o / g * 30) if g else None) for (period, region), (o, g) in sums.items()),
        key=by_period_then_region,
    )
    assert [d[0] for d in tenant.description] == ["period", "region", "value"]
    assert [(p, r) for p, r, _ in got] == [(p, r) for p, r, _ in expected]  # NULL region sorts last
    for (_, _, value), (_, _, wanted) in zip(got, expected, strict=True):
        assert (value is None and wanted is None) or float(value) == pytest.approx(wanted)
    assert any(value is None for _, _, value in got)  # April's 0.00 invoice divides by NULLIF(0)


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter", "year"])
def test_each_grain_buckets_rows_as_python_does(tenant: duckdb.DuckDBPyConnection, grain: str) -> None:
    plan = validate_kpi(spec(formula="SUM(lines)", grain=grain), {"gdp.invoice": INVOICE})

    got = tenant.execute(plan.sql).fetchall()

    totals: dict[date, int] = defaultdict(int)
    for row in python_invoices():
        totals[BUCKETS[grain](row["issued"])] += row["lines"]
    assert got == sorted(totals.items())


def test_a_timestamp_time_field_buckets_to_dates(tenant: duckdb.DuckDBPyConnection) -> None:
    plan = validate_kpi(spec(formula="SUM(amount)", time_field="payment.paid_at", grain="month"), BOTH)

    got = tenant.execute(plan.sql).fetchall()

    totals: dict[date, Decimal] = defaultdict(Decimal)
    for _, amount, paid_at in RAW_PAYMENTS:
        totals[BUCKETS["month"](paid_at.date())] += Decimal(amount)
    assert got == sorted(totals.items())


def test_filters_and_a_filtered_aggregate_select_the_same_rows_as_python(
    tenant: duckdb.DuckDBPyConnection,
) -> None:
    kpi = spec(
        formula="COUNT(*) FILTER (WHERE amount_open > 0) * 1.0 / COUNT(*)",
        grain="year",
        filters=("status = 'open'", "region IS NOT NULL OR lines > 2"),
    )
    plan = validate_kpi(kpi, GDP)

    got = tenant.execute(plan.sql).fetchall()

    kept = [
        r for r in python_invoices() if r["status"] == "open" and (r["region"] is not None or r["lines"] > 2)
    ]
    years = sorted({BUCKETS["year"](r["issued"]) for r in kept})
    expected = []
    for year in years:
        rows = [r for r in kept if BUCKETS["year"](r["issued"]) == year]
        expected.append((year, sum(r["open"] > 0 for r in rows) / len(rows)))
    assert [p for p, _ in got] == [p for p, _ in expected]
    assert [float(v) for _, v in got] == pytest.approx([v for _, v in expected])


def test_the_spark_rendering_transpiled_back_gives_the_same_kpi_values(
    tenant: duckdb.DuckDBPyConnection,
) -> None:
    plan = validate_kpi(spec(dimensions=("region",), filters=("status <> 'void'",), grain="quarter"), GDP)

    back = sqlglot.transpile(plan.sql_for("spark"), read="spark", write="duckdb")[0]

    assert tenant.execute(back).fetchall() == tenant.execute(plan.sql).fetchall()


def test_entity_and_field_names_that_are_sql_keywords_stay_names_on_duckdb() -> None:
    order = dataset("order", group="string", date="date", value="decimal")
    kpi = spec(formula='SUM("order"."value")', grain="year", time_field='"date"', dimensions=('"group"',))
    con = duckdb.connect()
    con.execute(
        'CREATE SCHEMA gdp; CREATE TABLE gdp."order" ("group" VARCHAR, "date" DATE, "value" DECIMAL(9, 2))'
    )
    con.execute(
        """INSERT INTO gdp."order" VALUES ('a', DATE '2024-05-01', 2.5), ('a', DATE '2024-09-30', 1)"""
    )

    plan = validate_kpi(kpi, {"gdp.order": order})

    assert con.execute(plan.sql).fetchall() == [(date(2024, 1, 1), "a", Decimal("3.50"))]
    assert sqlglot.parse_one(plan.sql_for("spark"), read="spark").named_selects == [
        "period",
        "group",
        "value",
    ]


# --- thresholds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "status"),
    [
        (">", 45.5, "breached"),
        (">", 45.0, "ok"),
        (">=", 45.0, "breached"),
        (">=", 44.9, "ok"),
        ("<", 44.9, "breached"),
        ("<", 45.0, "ok"),
        ("<=", 45.0, "breached"),
        ("<=", 45.1, "ok"),
        ("==", 45.0, "breached"),
        ("==", 45.1, "ok"),
        ("!=", 45.1, "breached"),
        ("!=", 45.0, "ok"),
        (">", Decimal("45.01"), "breached"),
        (">", None, "no_data"),
        (">", math.nan, "no_data"),
    ],
)
def test_each_threshold_operator_reports_breach_ok_or_no_data(op: str, value, status: str) -> None:
    [result] = evaluate_thresholds(value, [Threshold("dso", op, 45.0, "critical")])

    assert result == {
        "name": "dso",
        "op": op,
        "limit": 45.0,
        "severity": "critical",
        "value": None if status == "no_data" else value,
        "status": status,
    }


def test_thresholds_are_judged_each_in_their_order() -> None:
    thresholds = (Threshold("warn", ">", 30), Threshold("crit", ">", 60, "critical"))

    assert [(r["name"], r["status"]) for r in evaluate_thresholds(42, thresholds)] == [
        ("warn", "breached"),
        ("crit", "ok"),
    ]
    assert evaluate_thresholds(42, []) == []


def test_an_unknown_threshold_operator_is_invalid_input_naming_the_threshold() -> None:
    with pytest.raises(InvalidInput) as caught:
        evaluate_thresholds(1.0, [Threshold("a", ">", 1), Threshold("b", "=>", 1)])

    assert (
        caught.value.detail
        == "kpi.thresholds[1].op: '=>' is not a comparison; use one of >, >=, <, <=, ==, !="
    )
