"""GDP mappings: checked against their contracts with errors that point into the SQL, traced to
source columns, rendered for DuckDB and Spark, and run on a real DuckDB."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from keel.contracts.graph import find_cycle
from keel.contracts.mapping import MappingError, MappingPlan, validate_mapping
from keel.contracts.model import Dataset, Field
from keel.kernel.errors import InvalidInput


def dataset(table: str, /, **types: str) -> Dataset:
    return Dataset(table, tuple(Field(column, type_) for column, type_ in types.items()))


INVOICES = dataset(
    "erp__invoices",
    id="string",
    customer_id="string",
    amount_net="decimal",
    vat="decimal",
    issued_on="date",
    qty="integer",
    status="string",
)
PAYMENTS = dataset("erp__payments", invoice_id="string", amount="decimal", paid_at="timestamp")
CUSTOMER = dataset("customer", customer_id="string", name="string", region="string")
SOURCES = {"raw.erp__invoices": INVOICES, "raw.erp__payments": PAYMENTS, "gdp.customer": CUSTOMER}
INVOICE = dataset(
    "invoice",
    invoice_id="string",
    region="string",
    amount_gross="decimal",
    amount_open="decimal",
    issued_at="date",
)

MAPPING = """\
WITH paid AS (
  SELECT invoice_id, SUM(amount) AS paid_total
  FROM raw.erp__payments
  GROUP BY invoice_id
)
SELECT i.id AS invoice_id,
       c.region,
       i.amount_net + i.vat AS amount_gross,
       i.amount_net + i.vat - COALESCE(p.paid_total, 0) AS amount_open,
       i.issued_on AS issued_at
FROM raw.erp__invoices AS i
LEFT JOIN paid AS p ON p.invoice_id = i.id
JOIN gdp.customer AS c ON c.customer_id = i.customer_id
WHERE i.status <> 'void'"""

# A small target for the error cases, so each SQL text stays on a line or two.
TARGET = dataset("invoice", invoice_id="string", amount="decimal")


def error_of(sql: str, target: Dataset = TARGET) -> MappingError:
    with pytest.raises(MappingError) as caught:
        validate_mapping(sql, target, SOURCES)
    return caught.value


# --- a valid mapping ---------------------------------------------------------------------------


def test_a_valid_mapping_returns_its_target_the_tables_it_reads_and_field_lineage() -> None:
    plan = validate_mapping(MAPPING, INVOICE, SOURCES)

    assert (plan.target, plan.tables, plan.dialect) == (
        "gdp.invoice",
        ("gdp.customer", "raw.erp__invoices", "raw.erp__payments"),
        "duckdb",
    )
    assert plan.lineage == {
        "invoice_id": (("raw.erp__invoices", "id"),),
        "region": (("gdp.customer", "region"),),
        "amount_gross": (("raw.erp__invoices", "amount_net"), ("raw.erp__invoices", "vat")),
        # through the CTE's SUM(amount) to the payments table
        "amount_open": (
            ("raw.erp__invoices", "amount_net"),
            ("raw.erp__invoices", "vat"),
            ("raw.erp__payments", "amount"),
        ),
        "issued_at": (("raw.erp__invoices", "issued_on"),),
    }


def test_the_normalized_sql_qualifies_every_column_with_its_table() -> None:
    plan = validate_mapping(MAPPING, INVOICE, SOURCES)

    tree = sqlglot.parse_one(plan.sql, read="duckdb")
    assert [c.sql() for c in tree.find_all(exp.Column) if not c.table] == []
    assert tree.named_selects == ["invoice_id", "region", "amount_gross", "amount_open", "issued_at"]


def test_the_plan_renders_as_spark_sql_that_spark_parses() -> None:
    plan = validate_mapping(MAPPING, INVOICE, SOURCES)

    spark = plan.sql_for("spark")

    assert "`raw`.`erp__invoices`" in spark
    reparsed = sqlglot.parse_one(spark, read="spark")
    assert isinstance(reparsed, exp.Select)
    assert reparsed.named_selects == ["invoice_id", "region", "amount_gross", "amount_open", "issued_at"]


def test_a_mapping_written_in_spark_sql_is_checked_as_spark() -> None:
    spark = validate_mapping(MAPPING, INVOICE, SOURCES).sql_for("spark")

    plan = validate_mapping(spark, INVOICE, SOURCES, dialect="spark")

    assert (plan.dialect, plan.sql) == ("spark", spark)
    assert plan.lineage == validate_mapping(MAPPING, INVOICE, SOURCES).lineage


def test_a_plan_read_back_from_storage_renders_for_another_engine_from_its_sql() -> None:
    plan = validate_mapping(MAPPING, INVOICE, SOURCES)

    stored = MappingPlan(target=plan.target, sql=plan.sql, tables=plan.tables, lineage=plan.lineage)

    assert stored == plan  # the tree is not part of the value
    assert stored.sql_for("spark") == plan.sql_for("spark")


def test_lineage_follows_union_branches_derived_tables_and_correlated_subqueries() -> None:
    target = dataset("movement", ref="string", amount="decimal", last_paid="timestamp")
    sql = """\
SELECT d.id AS ref, d.gross AS amount,
       (SELECT MAX(p.paid_at) FROM raw.erp__payments AS p WHERE p.invoice_id = d.id) AS last_paid
FROM (SELECT id, amount_net + vat AS gross FROM raw.erp__invoices) AS d
UNION ALL
SELECT invoice_id, -amount, paid_at FROM raw.erp__payments"""

    plan = validate_mapping(sql, target, SOURCES)

    assert plan.lineage == {
        "ref": (("raw.erp__invoices", "id"), ("raw.erp__payments", "invoice_id")),
        "amount": (
            ("raw.erp__invoices", "amount_net"),
            ("raw.erp__invoices", "vat"),
            ("raw.erp__payments", "amount"),
        ),
        "last_paid": (("raw.erp__payments", "paid_at"),),
    }
    assert plan.tables == ("raw.erp__invoices", "raw.erp__payments")


def test_a_field_from_a_literal_or_count_star_has_no_source_columns() -> None:
    target = dataset("tally", customer_id="string", invoices="integer", source="string")
    sql = (
        "SELECT customer_id, COUNT(*) AS invoices, 'erp' AS source"
        " FROM raw.erp__invoices GROUP BY customer_id"
    )

    plan = validate_mapping(sql, target, SOURCES)

    assert plan.lineage == {
        "customer_id": (("raw.erp__invoices", "customer_id"),),
        "invoices": (),
        "source": (),
    }


@pytest.mark.parametrize(
    "sql",
    [
        # GROUP BY and ORDER BY may name output columns
        "SELECT customer_id AS invoice_id, SUM(amount_net) AS amount FROM raw.erp__invoices"
        " GROUP BY invoice_id ORDER BY invoice_id",
        # ORDER BY of a UNION names the UNION's columns
        "SELECT id AS invoice_id, amount_net AS amount FROM raw.erp__invoices"
        " UNION SELECT invoice_id, amount FROM raw.erp__payments ORDER BY invoice_id",
        # a USING join makes the shared column unambiguous
        "SELECT invoice_id, p.amount FROM raw.erp__payments AS p"
        " JOIN raw.erp__payments AS q USING (invoice_id)",
        # a CTE's column list renames its columns
        "WITH c(k, v) AS (SELECT id, amount_net FROM raw.erp__invoices)"
        " SELECT k AS invoice_id, v AS amount FROM c",
        # unquoted and quoted names are case-insensitive, as in DuckDB and Spark
        'SELECT I.ID AS Invoice_Id, "AMOUNT_NET" AS amount FROM RAW.ERP__INVOICES AS I',
        # an integer fits a decimal field; NULL fits any field; EXISTS reads an outer column
        "SELECT id AS invoice_id, qty AS amount FROM raw.erp__invoices AS i"
        " WHERE EXISTS (SELECT 1 FROM raw.erp__payments AS p WHERE p.invoice_id = i.id)",
        "SELECT NULL AS invoice_id, amount FROM raw.erp__payments",
        # an explicit CAST converts
        "SELECT CAST(qty AS VARCHAR) AS invoice_id, CAST(qty * 1.5 AS DECIMAL(18, 2)) AS amount"
        " FROM raw.erp__invoices",
        # DuckDB's FROM-first form and a window function
        "FROM raw.erp__invoices"
        " SELECT id AS invoice_id, SUM(amount_net) OVER (PARTITION BY customer_id) AS amount",
    ],
)
def test_these_mappings_are_accepted(sql: str) -> None:
    assert isinstance(validate_mapping(sql, TARGET, SOURCES), MappingPlan)


def test_a_date_fits_a_timestamp_field() -> None:
    target = dataset("event", at="timestamp")

    plan = validate_mapping("SELECT issued_on AS at FROM raw.erp__invoices", target, SOURCES)

    assert plan.lineage == {"at": (("raw.erp__invoices", "issued_on"),)}


# --- errors point into the SQL --------------------------------------------------------------------


def test_an_unknown_column_error_names_the_mapping_the_place_the_table_and_a_close_match() -> None:
    error = error_of(MAPPING.replace("i.amount_net + i.vat AS", "i.amount_nett + i.vat AS"), INVOICE)

    assert str(error) == (
        "datasets.invoice.mapping: mapping of gdp.invoice, line 8 col 10: unknown column 'amount_nett' "
        "in raw.erp__invoices (did you mean 'amount_net'?)"
    )
    assert isinstance(error, InvalidInput)
    assert error.to_dict() == {
        "code": "invalid_input",
        "title": "Invalid input",
        "detail": str(error),
        "field": "datasets.invoice.mapping",
        "kind": "unknown_column",
        "problem": "unknown column 'amount_nett' in raw.erp__invoices (did you mean 'amount_net'?)",
        "line": 8,
        "column": 10,
        "token": "amount_nett",
        "contract": None,
        "dataset": "gdp.invoice",
        "suggestion": "amount_net",
    }
    assert (error.line, error.column, error.token, error.kind) == (8, 10, "amount_nett", "unknown_column")


def test_the_error_names_the_contract_when_it_is_given() -> None:
    with pytest.raises(MappingError) as caught:
        validate_mapping("SELECT 1 AS invoice_id", TARGET, SOURCES, contract="gdp-invoices")

    assert (caught.value.contract, caught.value.kind) == ("gdp-invoices", "missing_field")


ERRORS = [
    # (kind, sql, line, column, token, problem)
    (
        "syntax_error",
        "SELECT id AS invoice_id,\n  amount AS amount\nFROM raw.erp__payments WHERE",
        3,
        24,
        "WHERE",
        "syntax error: Required keyword: 'this' missing for WHERE",
    ),
    (
        "syntax_error",
        "SELECT id AS invoice_id, 'open AS amount FROM raw.erp__invoices",
        1,
        26,
        "'",
        "syntax error: cannot read the text from here (an unclosed quote?)",
    ),
    ("empty", "  ;  ", None, None, None, "the mapping is empty; write one SELECT"),
    (
        "several_statements",
        "SELECT 1 AS invoice_id, 2 AS amount;\nSELECT 3",
        2,
        1,
        "SELECT",
        "a mapping is one SELECT statement; a second one starts here",
    ),
    (
        "not_a_select",
        "INSERT INTO gdp.invoice SELECT id, amount_net FROM raw.erp__invoices",
        1,
        1,
        "INSERT",
        "a mapping is one SELECT, not INSERT",
    ),
    (
        "not_a_select",
        "  CREATE TABLE gdp.invoice AS SELECT 1",
        1,
        3,
        "CREATE",
        "a mapping is one SELECT, not CREATE TABLE",
    ),
    ("not_a_select", "DELETE FROM raw.erp__invoices", 1, 1, "DELETE", "a mapping is one SELECT, not DELETE"),
    (
        "unsupported",
        "SELECT id AS invoice_id, amount FROM raw.erp__invoices, UNNEST([1, 2]) AS u(amount)",
        1,
        57,
        "UNNEST",
        "UNNEST is not supported in a mapping",
    ),
    (
        "unsupported",
        "SELECT p.invoice_id, l.amount FROM raw.erp__payments AS p,\n"
        "  LATERAL (SELECT amount FROM raw.erp__payments AS q WHERE q.invoice_id = p.invoice_id) AS l",
        2,
        3,
        "LATERAL",
        "LATERAL is not supported in a mapping",
    ),
    (
        "unsupported",
        "WITH RECURSIVE r(invoice_id, amount) AS (SELECT invoice_id, amount FROM raw.erp__payments)\n"
        "SELECT invoice_id, amount FROM r",
        1,
        6,
        "RECURSIVE",
        "WITH RECURSIVE is not supported in a mapping",
    ),
    (
        "unknown_table",
        "SELECT invoice_id, amount\nFROM raw.erp__paymets",
        2,
        6,
        "raw.erp__paymets",
        "unknown table 'raw.erp__paymets'; the mapping may read gdp.customer, raw.erp__invoices, "
        "raw.erp__payments (did you mean 'raw.erp__payments'?)",
    ),
    (
        "unqualified_table",
        "SELECT invoice_id, amount FROM erp__payments",
        1,
        32,
        "erp__payments",
        "table 'erp__payments' must be named with its schema (did you mean 'raw.erp__payments'?)",
    ),
    (
        "table_function",
        "SELECT invoice_id, amount FROM read_csv('payments.csv')",
        1,
        32,
        "read_csv",
        "reads a table function; a mapping reads declared source tables only",
    ),
    (
        "star",
        "WITH p AS (SELECT * FROM raw.erp__payments) SELECT invoice_id, amount FROM p",
        1,
        19,
        "*",
        "SELECT * is not allowed; name each column",
    ),
    (
        "star",
        "SELECT p.* FROM raw.erp__payments AS p",
        1,
        8,
        "p.*",
        "SELECT * is not allowed; name each column",
    ),
    (
        "unknown_column",
        "SELECT invoice_id, amount\nFROM raw.erp__payments\nWHERE paid_on > DATE '2024-01-01'",
        3,
        7,
        "paid_on",
        "unknown column 'paid_on' in raw.erp__payments (did you mean 'paid_at'?)",
    ),
    (
        "unknown_column",
        "WITH p AS (SELECT invoice_id FROM raw.erp__payments) SELECT p.invoice_id, p.amount FROM p",
        1,
        77,
        "amount",
        "unknown column 'amount' in CTE p",
    ),
    (
        "unknown_column",
        "SELECT d.invoice_id, d.amount FROM (SELECT invoice_id, amount AS amt FROM raw.erp__payments) AS d",
        1,
        24,
        "amount",
        "unknown column 'amount' in subquery d (did you mean 'amt'?)",
    ),
    (
        "unknown_alias",
        "SELECT pmt.invoice_id, amount FROM raw.erp__payments AS pmnt",
        1,
        8,
        "pmt",
        "unknown table or alias 'pmt' (did you mean 'pmnt'?)",
    ),
    (
        "ambiguous_column",
        "SELECT i.id AS invoice_id, p.amount\nFROM raw.erp__invoices AS i JOIN raw.erp__payments AS p"
        " ON invoice_id = id\nJOIN gdp.customer AS c ON c.customer_id = customer_id",
        3,
        43,
        "customer_id",
        "column 'customer_id' is ambiguous: it is in raw.erp__invoices and gdp.customer; qualify it",
    ),
    (
        "union_arity",
        "SELECT invoice_id, amount FROM raw.erp__payments\nUNION ALL\nSELECT id FROM raw.erp__invoices",
        3,
        8,
        "id",
        "each branch of the UNION selects 2 columns; this one selects 1",
    ),
    (
        "unnamed_column",
        "SELECT invoice_id, amount * 2 FROM raw.erp__payments",
        1,
        20,
        "amount * 2",
        "column 2 has no name; add AS <field>",
    ),
    (
        "duplicate_column",
        "SELECT invoice_id, amount, amount_net AS amount FROM raw.erp__payments, raw.erp__invoices",
        1,
        42,
        "amount",
        "column 'amount' is selected twice",
    ),
    (
        "extra_column",
        "SELECT invoice_id, amount, paid_at AS paid FROM raw.erp__payments",
        1,
        39,
        "paid",
        "column 'paid' is not a field of gdp.invoice",
    ),
    (
        "extra_column",
        "SELECT invoice_id, amount AS amnt FROM raw.erp__payments",
        1,
        30,
        "amnt",
        "column 'amnt' is not a field of gdp.invoice (did you mean 'amount'?)",
    ),
    (
        "missing_field",
        "SELECT invoice_id FROM raw.erp__payments",
        1,
        8,
        "invoice_id",
        "field 'amount' of gdp.invoice is missing from the SELECT list",
    ),
    (
        "type_mismatch",
        "SELECT invoice_id,\n       paid_at AS amount\nFROM raw.erp__payments",
        2,
        19,
        "amount",
        "field 'amount' is decimal but the column is timestamp; CAST it, e.g. CAST(... AS DECIMAL(38, 9))",
    ),
    (
        "type_mismatch",
        "SELECT qty AS invoice_id, amount_net AS amount FROM raw.erp__invoices",
        1,
        15,
        "invoice_id",
        "field 'invoice_id' is string but the column is integer; CAST it, e.g. CAST(... AS VARCHAR)",
    ),
    (
        # each UNION branch must fit, not only the first (a float is not exact: not a decimal)
        "type_mismatch",
        "SELECT invoice_id, amount FROM raw.erp__payments UNION ALL SELECT id, 0.5 FROM raw.erp__invoices",
        1,
        71,
        "0.5",
        "field 'amount' is decimal but the column is number; CAST it, e.g. CAST(... AS DECIMAL(38, 9))",
    ),
    (
        "unknown_type",
        "SELECT my_udf(invoice_id) AS invoice_id, amount FROM raw.erp__payments",
        1,
        30,
        "invoice_id",
        "cannot tell the type of column 'invoice_id' (field type string); CAST it, e.g. CAST(... AS VARCHAR)",
    ),
]


@pytest.mark.parametrize(
    ("kind", "sql", "line", "column", "token", "problem"),
    ERRORS,
    ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)],
)
def test_each_mapping_error_names_its_kind_and_exact_position(
    kind: str, sql: str, line: int | None, column: int | None, token: str | None, problem: str
) -> None:
    error = error_of(sql)

    assert (error.kind, error.line, error.column, error.token, error.problem) == (
        kind,
        line,
        column,
        token,
        problem,
    )
    where = f", line {line} col {column}" if line else ""
    assert error.detail == f"datasets.invoice.mapping: mapping of gdp.invoice{where}: {problem}"
    if line is not None:  # the position really is where the token is written
        start = sum(len(text) + 1 for text in sql.split("\n")[: line - 1]) + column - 1
        assert sql[start : start + len(token)] == token


def test_the_first_unknown_column_in_the_text_is_reported() -> None:
    sql = "SELECT invoice_idd AS invoice_id, amount\nFROM raw.erp__payments\nWHERE amont > 0"

    error = error_of(sql)

    assert (error.line, error.column, error.token) == (1, 8, "invoice_idd")


def test_an_unknown_table_is_reported_before_the_columns_read_from_it() -> None:
    error = error_of("SELECT x.invoice_id, x.amount FROM raw.nope AS x")

    assert (error.kind, error.token) == ("unknown_table", "raw.nope")


# --- run on DuckDB ---------------------------------------------------------------------------------


def raw_duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA gdp")
    con.execute(
        "CREATE TABLE raw.erp__invoices (id VARCHAR, customer_id VARCHAR, amount_net DECIMAL(18, 2),"
        " vat DECIMAL(18, 2), issued_on DATE, qty BIGINT, status VARCHAR)"
    )
    con.execute(
        "CREATE TABLE raw.erp__payments (invoice_id VARCHAR, amount DECIMAL(18, 2), paid_at TIMESTAMP)"
    )
    con.execute("CREATE TABLE gdp.customer (customer_id VARCHAR, name VARCHAR, region VARCHAR)")
    con.executemany(
        "INSERT INTO raw.erp__invoices VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            ("I1", "C1", "100.00", "20.00", "2024-01-05", 1, "open"),
            ("I2", "C2", "50.00", "10.00", "2024-01-20", 2, "open"),
            ("I3", "C1", "10.00", "2.00", "2024-02-01", 3, "void"),
        ],
    )
    con.executemany(
        "INSERT INTO raw.erp__payments VALUES (?, ?, ?)",
        [
            ("I1", "30.00", "2024-01-10 09:00"),
            ("I1", "20.00", "2024-01-11 09:00"),
            ("I2", "60.00", "2024-02-01"),
        ],
    )
    con.executemany(
        "INSERT INTO gdp.customer VALUES (?, ?, ?)", [("C1", "Acme", "north"), ("C2", "Bolt", "south")]
    )
    return con


def test_the_mapping_sql_runs_on_duckdb_and_produces_the_target_rows() -> None:
    plan = validate_mapping(MAPPING, INVOICE, SOURCES)
    con = raw_duckdb()

    rows = con.execute(f"{plan.sql}\nORDER BY 1").fetchall()

    assert [d[0] for d in con.description] == [f.name for f in INVOICE.fields]
    assert rows == [
        ("I1", "north", Decimal("120.00"), Decimal("70.00"), date(2024, 1, 5)),
        ("I2", "south", Decimal("60.00"), Decimal("0.00"), date(2024, 1, 20)),
    ]


def test_the_spark_rendering_transpiled_back_gives_the_same_rows_on_duckdb() -> None:
    plan = validate_mapping(MAPPING, INVOICE, SOURCES)
    con = raw_duckdb()
    back = sqlglot.transpile(plan.sql_for("spark"), read="spark", write="duckdb")[0]

    assert con.execute(f"{back} ORDER BY 1").fetchall() == con.execute(f"{plan.sql} ORDER BY 1").fetchall()


# --- dependency cycles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({}, None),
        ({"gdp.invoice": ["raw.erp__invoices", "gdp.customer"], "gdp.customer": ["raw.crm__accounts"]}, None),
        ({"gdp.a": ["gdp.a"]}, ["gdp.a", "gdp.a"]),
        ({"gdp.a": ["gdp.b"], "gdp.b": ["gdp.a"]}, ["gdp.a", "gdp.b", "gdp.a"]),
        # the loop is reported without the path that led into it
        (
            {"gdp.x": ["gdp.a"], "gdp.a": ["gdp.b"], "gdp.b": ["gdp.c"], "gdp.c": ["gdp.a"]},
            ["gdp.a", "gdp.b", "gdp.c", "gdp.a"],
        ),
        # a diamond is not a cycle
        ({"gdp.a": ["gdp.b", "gdp.c"], "gdp.b": ["gdp.d"], "gdp.c": ["gdp.d"], "gdp.d": []}, None),
    ],
)
def test_find_cycle_reports_a_dependency_loop_as_the_path_that_walks_it(
    edges: dict[str, list[str]], cycle: list[str] | None
) -> None:
    assert find_cycle(edges) == cycle


def test_find_cycle_reports_the_same_loop_whatever_the_order_of_the_edges() -> None:
    edges = {"gdp.b": {"gdp.c"}, "gdp.c": {"gdp.b", "gdp.a"}, "gdp.a": {"gdp.b"}}

    assert (
        find_cycle(edges) == find_cycle(dict(reversed(edges.items()))) == ["gdp.a", "gdp.b", "gdp.c", "gdp.a"]
    )


def test_find_cycle_handles_a_long_chain_without_recursion_limits() -> None:
    chain = {f"gdp.t{i:05d}": [f"gdp.t{i + 1:05d}"] for i in range(5000)}

    assert find_cycle(chain) is None
    assert find_cycle({**chain, "gdp.t05000": ["gdp.t00000"]}) == [*sorted(chain), "gdp.t05000", "gdp.t00000"]
