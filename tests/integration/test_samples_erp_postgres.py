"""The sample ERP written into a PostgreSQL schema of its own, on the real server."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from keel.kernel.errors import Conflict
from keel.samples.erp import ErpSpec, dirty_rows, erp_metadata, generate, write

pytestmark = pytest.mark.postgres

SPEC = ErpSpec(seed=8, months=2, customers=12, vendors=4, invoices_per_month=80, dirty_share=0.1)


@pytest.fixture
def erp_schema(postgres_url):
    """A schema name nobody uses yet; the test's writes create it, and it is dropped afterwards."""
    schema = f"keel_erp_{uuid.uuid4().hex[:12]}"
    yield schema
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def read_back(url: str, schema: str) -> dict[str, list[dict]]:
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


def test_the_sample_erp_lands_in_a_fresh_postgresql_schema_exactly_as_generated(postgres_url, erp_schema):
    counts = write(SPEC, postgres_url, erp_schema)

    stored = read_back(postgres_url, erp_schema)
    expected = generate(SPEC)

    assert counts == {"customers": 12, "vendors": 4, "invoices": 164, "payments": len(expected["payments"])}
    # PostgreSQL keeps types and time zones, so the rows come back equal, value for value.
    assert stored == expected
    assert dirty_rows(stored["invoices"]) == {
        "null_amount": 4,
        "duplicate_invoice_id": 4,
        "bad_currency": 4,
        "late_arriving": 4,
    }


def test_postgresql_tables_with_rows_are_kept_unless_replace(postgres_url, erp_schema):
    write(SPEC, postgres_url, erp_schema)

    with pytest.raises(Conflict) as error:
        write(ErpSpec(seed=1, months=1), postgres_url, erp_schema)
    kept = read_back(postgres_url, erp_schema)
    write(ErpSpec(seed=1, months=1), postgres_url, erp_schema, replace=True)
    replaced = read_back(postgres_url, erp_schema)

    assert error.value.fields == {"table": f"{erp_schema}.customers", "rows": 12}
    assert len(kept["customers"]) == 12
    assert len(replaced["customers"]) == 50
    assert replaced == generate(ErpSpec(seed=1, months=1))
