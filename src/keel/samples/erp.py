"""A deterministic sample ERP (customers, vendors, invoices, payments) with a known share of dirty rows.

``generate(spec)`` is pure: the same ``ErpSpec`` always gives the same rows (one
``random.Random(seed)``, dates counted from ``spec.start``, never the wall clock).
``write(spec, url)`` puts them in a SQLite file or a PostgreSQL schema.

Dirty rows are all invoices, on purpose, so data-quality rules and connectors have
something to find. ``dirty_share`` is the share of (non-duplicate) invoices that are
dirty, split between the kinds by ``DIRTY_MIX``; a row is dirty in one way only:

- ``null_amount``: ``amount_net`` and ``amount_tax`` are NULL;
- ``duplicate_invoice_id``: a second row with the same ``invoice_id`` (hence the
  surrogate ``row_id`` primary key);
- ``bad_currency``: a currency outside ``CURRENCIES`` ('XXX', 'usd ', '', 'EURO');
- ``late_arriving``: ``updated_at`` more than ``LATE_AFTER`` after the end of the
  month the invoice was issued in, so an incremental sync by ``updated_at`` must
  pick it up long after its period was loaded.

Clean invoices are updated at most ~60 days after their month ends, which keeps the
two populations apart for ``dirty_rows``.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from keel.kernel.errors import Conflict, InvalidInput

DIRTY_KINDS = ("null_amount", "duplicate_invoice_id", "bad_currency", "late_arriving")
DIRTY_MIX: dict[str, float] = dict.fromkeys(DIRTY_KINDS, 0.25)  # each kind: a quarter of dirty_share
CURRENCIES = frozenset({"EUR", "GBP", "USD", "CHF"})
BAD_CURRENCIES = ("XXX", "usd ", "", "EURO")
LATE_AFTER = timedelta(days=90)
TABLES = ("customers", "vendors", "invoices", "payments")

# country -> (currency, VAT rate)
COUNTRIES: dict[str, tuple[str, Decimal]] = {
    "DE": ("EUR", Decimal("0.19")),
    "FR": ("EUR", Decimal("0.20")),
    "NL": ("EUR", Decimal("0.21")),
    "IT": ("EUR", Decimal("0.22")),
    "ES": ("EUR", Decimal("0.21")),
    "GB": ("GBP", Decimal("0.20")),
    "US": ("USD", Decimal("0.00")),
    "CH": ("CHF", Decimal("0.081")),
}
LEGAL_FORM = {
    "DE": "GmbH",
    "FR": "SAS",
    "NL": "B.V.",
    "IT": "S.r.l.",
    "ES": "S.L.",
    "GB": "Ltd",
    "US": "Inc.",
}
NAME_HEADS = (
    "Adler", "Birch", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen", "Meridian", "Nordic", "Orion", "Pioneer", "Quarry", "Riverside", "Summit", "Tide",
)  # fmt: skip
NAME_TAILS = (
    "Logistics", "Foods", "Components", "Retail", "Pharma", "Textiles", "Energy", "Systems", "Metals",
    "Packaging", "Analytics", "Motors",
)  # fmt: skip
SEGMENTS = {"enterprise": 500_000, "mid-market": 100_000, "smb": 20_000}  # base credit limit
PAYMENT_TERMS = (15, 30, 45, 60, 90)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ErpSpec:
    """What to generate. The defaults give ~1,200 invoices over six months of 2026."""

    seed: int = 42
    months: int = 6
    customers: int = 50
    vendors: int = 20
    invoices_per_month: int = 200
    dirty_share: float = 0.05
    start: date = date(2026, 1, 1)

    def __post_init__(self) -> None:
        for name in ("months", "customers", "vendors", "invoices_per_month"):
            if getattr(self, name) < 1:
                raise InvalidInput(name, "must be at least 1")
        if not 0 <= self.dirty_share <= 1:
            raise InvalidInput("dirty_share", "must be between 0 and 1")

    def dirty_counts(self) -> dict[str, int]:
        """How many invoices of each dirty kind ``generate`` makes."""
        base = self.months * self.invoices_per_month
        return {kind: round(base * self.dirty_share * DIRTY_MIX[kind]) for kind in DIRTY_KINDS}


def generate(spec: ErpSpec) -> dict[str, list[dict[str, Any]]]:
    """All rows of the sample ERP, table by table, in insertion order."""
    rng = random.Random(spec.seed)
    customers = [_customer(rng, spec, n) for n in range(1, spec.customers + 1)]
    vendors = [_vendor(rng, n) for n in range(1, spec.vendors + 1)]
    as_of = _at(_add_months(spec.start, spec.months))
    invoices: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    for month in range(spec.months):
        first = _add_months(spec.start, month)
        days = sorted(rng.randint(1, _days_in(first)) for _ in range(spec.invoices_per_month))
        for day in days:
            issued = first.replace(day=day)
            invoice = _invoice(rng, customers, issued, len(invoices) + 1)
            invoice_payments = _payments(rng, invoice, as_of, len(payments) + 1)
            if invoice_payments:
                invoice["updated_at"] = invoice_payments[-1]["updated_at"] + timedelta(hours=1)
            else:
                invoice["status"] = "overdue" if _at(invoice["due_at"]) < as_of else "open"
            invoices.append(invoice)
            payments.extend(invoice_payments)
    invoices = _make_dirty(rng, spec, invoices)
    for row_id, invoice in enumerate(invoices, start=1):
        invoice["row_id"] = row_id
    return {"customers": customers, "vendors": vendors, "invoices": invoices, "payments": payments}


def dirty_rows(invoices: list[dict[str, Any]]) -> dict[str, int]:
    """Count the dirty invoices of each kind, from the rows alone (generated or read back from a database)."""
    ids = [row["invoice_id"] for row in invoices]
    return {
        "null_amount": sum(row["amount_net"] is None for row in invoices),
        "duplicate_invoice_id": len(ids) - len(set(ids)),
        "bad_currency": sum(row["currency"] not in CURRENCIES for row in invoices),
        "late_arriving": sum(is_late(row) for row in invoices),
    }


def is_late(invoice: dict[str, Any]) -> bool:
    """Whether the invoice was updated more than ``LATE_AFTER`` after the end of its month."""
    updated = invoice["updated_at"]
    if updated.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        updated = updated.replace(tzinfo=UTC)
    issued = invoice["issued_at"]
    return updated > _at(_period_end(issued)) + LATE_AFTER


def write(spec: ErpSpec, url: str, schema: str | None = None, *, replace: bool = False) -> dict[str, int]:
    """Generate the sample ERP and write it to ``url`` (in ``schema``, created if missing); row counts.

    Refuses (``Conflict`` naming the table) when one of the tables already holds rows,
    unless ``replace`` is set; existing tables are dropped and created afresh.
    """
    data = generate(spec)
    engine = sa.create_engine(url)
    try:
        if schema and engine.dialect.name == "sqlite":
            raise InvalidInput("schema", "SQLite has no schemas; write to a file of its own instead")
        metadata = erp_metadata(schema)
        with engine.begin() as conn:
            if schema:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            inspector = sa.inspect(conn)
            for table in metadata.sorted_tables:
                if not inspector.has_table(table.name, schema=schema):
                    continue
                count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                if count and not replace:
                    raise Conflict(
                        f"table {table.fullname} already holds {count} rows; "
                        "pass replace=True (--replace) to overwrite it",
                        table=table.fullname,
                        rows=count,
                    )
            metadata.drop_all(conn)
            metadata.create_all(conn)
            for name in TABLES:
                conn.execute(metadata.tables[_key(name, schema)].insert(), data[name])
    finally:
        engine.dispose()
    return {name: len(data[name]) for name in TABLES}


def erp_metadata(schema: str | None = None) -> sa.MetaData:
    """The sample ERP's tables (no foreign keys: dirty rows must be able to break them)."""
    metadata = sa.MetaData(schema=schema)
    amount = sa.Numeric(14, 2, asdecimal=True)
    stamp = sa.DateTime(timezone=True)
    sa.Table(
        "customers",
        metadata,
        sa.Column("customer_id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("segment", sa.String(16), nullable=False),
        sa.Column("credit_limit", amount, nullable=False),
        sa.Column("created_at", stamp, nullable=False),
    )
    sa.Table(
        "vendors",
        metadata,
        sa.Column("vendor_id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("payment_terms_days", sa.Integer, nullable=False),
    )
    sa.Table(
        "invoices",
        metadata,
        sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("invoice_id", sa.String(24), nullable=False, index=True),  # not unique: see duplicates
        sa.Column("customer_id", sa.String(16), nullable=False),
        sa.Column("issued_at", sa.Date, nullable=False),
        sa.Column("due_at", sa.Date, nullable=False),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("amount_net", amount, nullable=True),
        sa.Column("amount_tax", amount, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", stamp, nullable=False, index=True),
    )
    sa.Table(
        "payments",
        metadata,
        sa.Column("payment_id", sa.String(16), primary_key=True),
        sa.Column("invoice_id", sa.String(24), nullable=False, index=True),
        sa.Column("paid_at", stamp, nullable=False),
        sa.Column("amount", amount, nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("updated_at", stamp, nullable=False, index=True),
    )
    return metadata


# -- rows ---------------------------------------------------------------------------------------


def _customer(rng: random.Random, spec: ErpSpec, n: int) -> dict[str, Any]:
    country = rng.choice(sorted(COUNTRIES))
    segment = rng.choice(sorted(SEGMENTS))
    name = f"{rng.choice(NAME_HEADS)} {rng.choice(NAME_TAILS)} {LEGAL_FORM.get(country, 'AG')}"
    created = _at(spec.start) - timedelta(days=rng.randint(30, 1500), seconds=rng.randint(0, 86_399))
    return {
        "customer_id": f"CUS-{n:04d}",
        "name": name,
        "country": country,
        "segment": segment,
        "credit_limit": Decimal(SEGMENTS[segment] * rng.randint(1, 5)).quantize(CENT),
        "created_at": created,
    }


def _vendor(rng: random.Random, n: int) -> dict[str, Any]:
    country = rng.choice(sorted(COUNTRIES))
    return {
        "vendor_id": f"VEN-{n:03d}",
        "name": f"{rng.choice(NAME_HEADS)} {rng.choice(NAME_TAILS)} {LEGAL_FORM.get(country, 'AG')}",
        "country": country,
        "critical": rng.random() < 0.2,
        "payment_terms_days": rng.choice(PAYMENT_TERMS),
    }


def _invoice(rng: random.Random, customers: list[dict], issued: date, seq: int) -> dict[str, Any]:
    customer = customers[rng.randrange(len(customers))]
    currency, vat = COUNTRIES[customer["country"]]
    net = (Decimal(rng.randint(5_000, 2_500_000)) / 100).quantize(CENT)
    return {
        "row_id": 0,  # numbered once the dirty rows are in
        "invoice_id": f"INV-{issued:%Y%m}-{seq:05d}",
        "customer_id": customer["customer_id"],
        "issued_at": issued,
        "due_at": issued + timedelta(days=30),
        "currency": currency,
        "amount_net": net,
        "amount_tax": (net * vat).quantize(CENT, rounding=ROUND_HALF_UP),
        "status": "paid",
        "updated_at": _at(issued) + timedelta(hours=rng.randint(8, 72)),
    }


def _payments(rng: random.Random, invoice: dict[str, Any], as_of: datetime, seq: int) -> list[dict]:
    """One payment, or two instalments, for ~70% of invoices; none if they would fall after ``as_of``."""
    if rng.random() >= 0.7:
        return []
    paid_at = _at(invoice["issued_at"]) + timedelta(days=rng.randint(3, 45), hours=rng.randint(8, 17))
    if paid_at >= as_of:
        return []
    gross = invoice["amount_net"] + invoice["amount_tax"]
    if rng.random() < 0.15:
        first = (gross / 2).quantize(CENT)
        parts = [(paid_at - timedelta(days=rng.randint(1, 3)), first), (paid_at, gross - first)]
    else:
        parts = [(paid_at, gross)]
    return [
        {
            "payment_id": f"PAY-{seq + i:06d}",
            "invoice_id": invoice["invoice_id"],
            "paid_at": when,
            "amount": amount,
            "currency": invoice["currency"],
            "updated_at": when + timedelta(minutes=rng.randint(1, 240)),
        }
        for i, (when, amount) in enumerate(parts)
    ]


def _make_dirty(rng: random.Random, spec: ErpSpec, invoices: list[dict]) -> list[dict]:
    """Spoil ``spec.dirty_counts()`` distinct invoices, one kind each; duplicates follow their original."""
    counts = spec.dirty_counts()
    picked = rng.sample(range(len(invoices)), sum(counts.values()))
    kind_of: dict[int, str] = {}
    for kind in DIRTY_KINDS:
        for _ in range(counts[kind]):
            kind_of[picked.pop()] = kind
    out: list[dict] = []
    for index, invoice in enumerate(invoices):
        kind = kind_of.get(index)
        out.append(invoice)
        if kind == "null_amount":
            invoice["amount_net"] = invoice["amount_tax"] = None
        elif kind == "bad_currency":
            invoice["currency"] = BAD_CURRENCIES[rng.randrange(len(BAD_CURRENCIES))]
        elif kind == "late_arriving":
            late = timedelta(days=rng.randint(120, 240), hours=rng.randint(0, 23))
            invoice["updated_at"] = _at(_period_end(invoice["issued_at"])) + late
        elif kind == "duplicate_invoice_id":
            # The same invoice sent twice by the ERP export, a little later.
            out.append({**invoice, "updated_at": invoice["updated_at"] + timedelta(hours=rng.randint(1, 48))})
    return out


# -- dates --------------------------------------------------------------------------------------


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _days_in(first: date) -> int:
    return calendar.monthrange(first.year, first.month)[1]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _period_end(issued: date) -> date:
    """The first day of the month after ``issued``."""
    return _add_months(issued.replace(day=1), 1)


def _key(name: str, schema: str | None) -> str:
    return f"{schema}.{name}" if schema else name
