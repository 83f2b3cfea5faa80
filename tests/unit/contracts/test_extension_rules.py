"""Tenant extension checks (pure): namespaces, names, types, classification, constraints and
expressions, each problem naming its field; the extended mapping, its lineage and document."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pytest
from tests.support_contracts import gdp_contract

from keel.contracts import extension_rules as xr
from keel.contracts.extension_rules import Context, Extension, ExtensionField
from keel.contracts.mapping import MappingError
from keel.contracts.model import Contract, Dataset, Field, Layer
from keel.contracts.odcs import check_standard, to_contract
from keel.contracts.rules import Problem

ORDERS = Dataset(
    "shop__orders",
    (
        Field("order_id", "string"),
        Field("amount", "decimal"),
        Field("placed_at", "date"),
        Field("payment_terms", "string"),
    ),
)
MAPPING = "SELECT o.order_id, o.amount, o.placed_at\nFROM raw.shop__orders AS o\nWHERE o.amount > 0"
ORDER = Dataset(
    "order", (Field("order_id", "string"), Field("amount", "decimal"), Field("placed_at", "date")), MAPPING
)
GDP = Contract("GDP-ORDER", "order", "1.0.0", Layer.GDP, datasets=(ORDER,), regulatory_tags=("SOX", "GDPR"))
RAW = Contract("RAW-SHOP", "shop", "1.0.0", Layer.RAW, datasets=(ORDERS,), regulatory_tags=("SOX",))
SOURCES = {"raw.shop__orders": ORDERS}
CONTEXT = Context(GDP, SOURCES, owners={"globexfin": "TEN-GLOBEX"})


def item(name="terms_detail", type_="string", expression="lower(payment_terms)", **extra) -> ExtensionField:
    return ExtensionField(name, type_, expression, extra.pop("classification", "internal"),
                          extra.pop("pii", False), **extra)  # fmt: skip


def ext(*fields: ExtensionField, namespace="acme", dataset="order", ext_id="EXT-1") -> Extension:
    return Extension(ext_id, "TEN-ACME", namespace, dataset, fields or (item(),))


def problems(extension: Extension, context: Context = CONTEXT) -> list[tuple[str, str, str]]:
    return [(p.rule, p.where, p.detail) for p in xr.check(extension, context)]


# Passing ------------------------------------------------------------------------------------
def test_a_namespaced_field_over_the_raw_columns_of_the_mapping_passes():
    assert xr.check(ext(), CONTEXT) == []
    assert xr.verdict([]) == "approved"


def test_stored_names_carry_the_prefix_and_the_namespace():
    assert ext().columns == ("x_acme_terms_detail",)
    assert xr.extended_table("order") == "x_order"


# Namespaces --------------------------------------------------------------------------------
NOT_A_NAMESPACE = (
    "is not a namespace: 2-32 lowercase letters, digits and single underscores, starting with a letter"
)


@pytest.mark.parametrize(
    ("namespace", "detail"),
    [
        ("keel", "namespace conflict: 'keel' is reserved (gdp, keel, kpi, raw, system, x)"),
        ("x", f"'x' {NOT_A_NAMESPACE}"),
        ("Acme", f"'Acme' {NOT_A_NAMESPACE}"),
        ("a__b", f"'a__b' {NOT_A_NAMESPACE}"),
        ("globexfin", "namespace conflict: 'globexfin' belongs to another tenant"),
    ],
)  # fmt: skip
def test_a_bad_reserved_or_foreign_namespace_is_a_namespace_problem(namespace, detail):
    found = problems(ext(namespace=namespace))

    assert found == [("namespace", "namespace", detail)]
    assert xr.verdict(xr.check(ext(namespace=namespace), CONTEXT)) == "rejected"


def test_a_namespace_the_tenant_owns_itself_is_its_own_to_use():
    assert problems(ext(namespace="globexfin"), replace(CONTEXT, owners={"globexfin": "TEN-ACME"})) == []


# Names -------------------------------------------------------------------------------------
def test_a_field_named_like_a_base_field_is_a_name_conflict():
    assert problems(ext(item("amount", "decimal", "amount * 2"))) == [
        (
            "field_names",
            "fields[0].name",
            "name conflict: 'amount' is a field of GDP-ORDER@1.0.0; an extension adds fields, a change "
            "to a base field is a change request (03d)",
        )
    ]


def test_a_column_another_deployed_extension_holds_is_a_name_conflict_even_across_namespaces():
    deployed = ext(item("e"), namespace="ab_cd", ext_id="EXT-0")  # x_ab_cd_e
    context = replace(CONTEXT, deployed=(deployed,))

    assert problems(ext(item("cd_e"), namespace="ab")) == []
    assert problems(ext(item("cd_e"), namespace="ab"), context) == [
        ("field_names", "fields[0].name", "name conflict: 'x_ab_cd_e' is deployed already by extension EXT-0")
    ]
    assert problems(ext(item("e"), namespace="ab_cd", ext_id="EXT-0"), context) == []  # itself


def test_field_names_are_identifiers_given_once_and_short_enough():
    found = problems(ext(item("Terms"), item("terms"), item("terms"), item("t" * 60)))

    assert [(rule, where) for rule, where, _ in found] == [
        ("field_names", "fields[0].name"),
        ("field_names", "fields[2].name"),
        ("field_names", "fields[3].name"),
    ]
    assert "given twice" in found[1][2] and "longer than 63 characters" in found[2][2]


def test_an_extension_without_fields_or_with_an_unknown_dataset_is_refused():
    assert problems(Extension("EXT-1", "TEN-ACME", "acme", "order", ())) == [
        ("field_names", "fields", "an extension adds at least one field")
    ]
    assert problems(ext(dataset="invoice")) == [
        ("dataset", "dataset", "'invoice' is not a dataset of GDP-ORDER@1.0.0 (order)")
    ]


# Types and classification ---------------------------------------------------------------------
def test_an_unknown_type_or_a_missing_classification_names_the_field():
    found = problems(ext(item(type_="money"), item("other", classification=None, pii=None)))

    assert found == [
        ("field_types", "fields[0].type", "terms_detail has 'money'; Keel knows string, integer, number, "
         "decimal, boolean, date, timestamp, time, object, array"),
        ("classification", "fields[1].classification", "other has classification none; one of public, "
         "internal, confidential, restricted"),
        ("pii_flags", "fields[1].pii", "other must say pii: true or false"),
    ]  # fmt: skip


def test_pii_is_never_public_or_internal_and_needs_a_privacy_tag_on_the_base():
    assert problems(ext(item(pii=True, classification="internal"))) == [
        ("pii_handling", "fields[0].classification", "terms_detail is PII and cannot be classified internal")
    ]
    untagged = replace(CONTEXT, base=replace(GDP, regulatory_tags=("SOX",)))
    assert problems(ext(item(pii=True, classification="confidential")), untagged) == [
        (
            "pii_handling",
            "fields[0].pii",
            "terms_detail is PII but GDP-ORDER@1.0.0 has no privacy tag (one of CCPA, GDPR, LGPD, PIPEDA)",
        )
    ]


# Constraints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("constraint", ["required", "unique", "primary_key"])
def test_a_constrained_extension_field_is_a_constraint_violation_that_blocks(constraint):
    extension = ext(item(**{constraint: True}))

    assert problems(extension) == [
        (
            "constraints",
            f"fields[0].{constraint}",
            f"constraint violation: extension field terms_detail cannot be {constraint.replace('_', ' ')}; "
            "an extension never changes what the base contract guarantees",
        )
    ]
    assert xr.verdict(xr.check(extension, CONTEXT)) == "blocked"


def test_a_namespace_conflict_rejects_even_when_a_constraint_is_violated_too():
    found = xr.check(ext(item(required=True), namespace="keel"), CONTEXT)

    assert {p.rule for p in found} == {"namespace", "constraints"}
    assert xr.verdict(found) == "rejected"


# Expressions ---------------------------------------------------------------------------------
NOT_ROW_LEVEL = "an extension field is computed from the row it extends; the expression holds"


@pytest.mark.parametrize(
    ("expression", "place", "words"),
    [
        ("lower(payment_termz)", "line 1 col 7",
         "unknown column 'payment_termz' in raw.shop__orders (did you mean 'payment_terms'?)"),
        ("lower(\n  z.payment_terms)", "line 2 col 3", "unknown table or alias 'z'"),
        ("lower(payment_terms", "line 1 col 7", "syntax error: Expecting )"),
        ("max(payment_terms)", "line 1 col 1", f"{NOT_ROW_LEVEL} an aggregate"),
        ("sum(amount) OVER (PARTITION BY order_id)", "line 1 col 1", f"{NOT_ROW_LEVEL} a window function"),
        ("(SELECT max(payment_terms) FROM raw.shop__orders)", "line 1 col 2", f"{NOT_ROW_LEVEL} a subquery"),
        ("payment_terms AS t", "line 1 col 1",
         f"{NOT_ROW_LEVEL} an alias (the field's name is its column name)"),
        ("1; DROP TABLE raw.shop__orders", "line 1 col 4",
         "an expression is one SQL expression; a second one starts here"),
    ],
    ids=["unknown-column", "unknown-alias", "syntax", "aggregate", "window", "subquery", "alias", "stmt"],
)  # fmt: skip
def test_an_expression_that_does_not_parse_is_refused_at_its_place_in_the_expression(
    expression, place, words
):
    assert problems(ext(item(expression=expression))) == [
        ("expression", "fields[0].expression", f"expression of x_acme_terms_detail, {place}: {words}")
    ]


def test_an_expression_whose_type_does_not_fit_its_field_is_refused():
    assert problems(ext(item(expression="amount"))) == [
        (
            "expression",
            "fields[0].expression",
            "expression of x_acme_terms_detail: field 'x_acme_terms_detail' is string but the column is "
            "decimal; CAST it, e.g. CAST(... AS VARCHAR)",
        )
    ]


def test_converting_takes_an_explicit_cast_and_widening_needs_none():
    assert problems(ext(item("amount_text", "string", "CAST(amount AS VARCHAR)"))) == []
    assert problems(ext(item("amount_total", "number", "amount + 1"))) == []


def test_an_expression_on_a_distinct_mapping_is_refused():
    distinct = replace(ORDER, mapping_sql="SELECT DISTINCT order_id, amount, placed_at FROM raw.shop__orders")
    context = replace(CONTEXT, base=replace(GDP, datasets=(distinct,)))

    [(rule, where, detail)] = problems(ext(), context)

    assert (rule, where) == ("expression", "fields[0].expression") and "SELECT DISTINCT" in detail


def test_parse_expression_returns_the_tree_or_a_positioned_error():
    node, _ = xr.parse_expression("upper(payment_terms)", "expr", "x_acme_t")
    assert node.sql() == "UPPER(payment_terms)"
    with pytest.raises(MappingError) as raised:
        xr.parse_expression("   ", "expr", "x_acme_t")
    assert raised.value.kind == "empty"


# Raw contracts -----------------------------------------------------------------------------------
def test_a_raw_extension_reads_the_raw_tables_own_columns():
    context = Context(RAW, {"raw.shop__orders": ORDERS})

    assert xr.check(ext(dataset="shop__orders"), context) == []
    _, plan = xr.extended_plan(RAW, ORDERS, [ext(dataset="shop__orders")], context.sources)
    assert plan.lineage["x_acme_terms_detail"] == (("raw.shop__orders", "payment_terms"),)


# Building -----------------------------------------------------------------------------------------
def test_the_extended_mapping_casts_each_expression_to_its_type_and_traces_it_to_raw():
    first = ext(item())
    second = ext(item("doubled", "decimal", "o.amount * 2"), namespace="acmefin", ext_id="EXT-2")

    dataset, plan = xr.extended_plan(GDP, ORDER, [first, second], SOURCES, target="x_order")

    assert [f.name for f in dataset.fields] == [
        "order_id",
        "amount",
        "placed_at",
        "x_acme_terms_detail",
        "x_acmefin_doubled",
    ]
    assert dataset.name == "x_order" and plan.target == "gdp.x_order"
    assert 'CAST(LOWER("o"."payment_terms") AS TEXT) AS "x_acme_terms_detail"' in plan.sql
    assert 'CAST("o"."amount" * 2 AS DECIMAL(38, 9)) AS "x_acmefin_doubled"' in plan.sql
    assert xr.lineage(plan, [first, second], "gdp.x_order") == [
        ("gdp.x_order.x_acme_terms_detail", "raw.shop__orders.payment_terms"),
        ("gdp.x_order.x_acmefin_doubled", "raw.shop__orders.amount"),
    ]
    assert not any(f.required or f.unique or f.primary_key for f in dataset.fields[3:])


def test_the_extended_mapping_runs_on_duckdb_and_keeps_the_base_rows():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute(
        "CREATE TABLE raw.shop__orders (order_id VARCHAR, amount DECIMAL(38, 9), placed_at DATE, "
        "payment_terms VARCHAR)"
    )
    con.execute(
        "INSERT INTO raw.shop__orders VALUES ('A-1', 10, '2026-01-01', 'NET30'), "
        "('A-2', 0, '2026-01-02', 'NET60'), ('A-3', 5, '2026-01-03', NULL)"
    )
    _, plan = xr.extended_plan(GDP, ORDER, [ext(item())], SOURCES)

    rows = con.execute(f"SELECT order_id, x_acme_terms_detail FROM ({plan.sql}) ORDER BY 1").fetchall()
    base = con.execute(f"SELECT order_id FROM ({MAPPING}) ORDER BY 1").fetchall()

    assert rows == [("A-1", "net30"), ("A-3", None)]
    assert [r[:1] for r in rows] == base  # the WHERE of the base mapping still decides the rows


def test_a_union_mapping_gets_the_field_in_every_branch():
    union = replace(
        ORDER, mapping_sql=f"{MAPPING}\nUNION ALL\nSELECT order_id, amount, placed_at FROM raw.shop__orders"
    )

    _, plan = xr.extended_plan(GDP, union, [ext(item())], SOURCES)

    assert plan.sql.count('AS "x_acme_terms_detail"') == 2


# Documents ------------------------------------------------------------------------------------------
def test_the_tenants_document_adds_the_fields_and_stays_an_odcs_contract():
    document = gdp_contract()
    original = repr(document)
    extension = ext(item(description="terms in words"), item("gross", "decimal", "amount * 1.2"))

    out = xr.extended_document(document, "TEN-ACME", [extension], {"order": "gdp.x_order"})

    assert repr(document) == original  # the global document is never touched
    check_standard(out)
    added = out["schema"][0]["properties"][-2:]
    assert [(p["name"], p["logicalType"], p.get("physicalType")) for p in added] == [
        ("x_acme_terms_detail", "string", None),
        ("x_acme_gross", "number", "decimal(38,9)"),
    ]
    assert added[0]["customProperties"][1]["value"] == {
        "extension": "EXT-1",
        "tenant": "TEN-ACME",
        "namespace": "acme",
        "expression": "lower(payment_terms)",
    }
    seen = to_contract(out).datasets[0]
    assert [(f.name, f.type, f.pii) for f in seen.fields][-2:] == [
        ("x_acme_terms_detail", "string", False),
        ("x_acme_gross", "decimal", False),
    ]
    assert xr.extended_document(document, "TEN-ACME", [], {}) == document


def test_fields_round_trip_through_their_stored_form():
    field = item("terms", description="d", required=True)

    assert ExtensionField.of(field.as_dict()) == field
    assert ExtensionField.of({"name": "n", "pii": "yes"}).pii is None


def test_the_rules_run_in_order_and_share_one_signature():
    assert [rule.__name__ for rule in xr.RULES] == [
        "namespace",
        "dataset_exists",
        "field_names",
        "field_types",
        "classification",
        "constraints",
        "expressions",
    ]
    assert all(isinstance(p, Problem) for p in xr.check(ext(item(required=True)), CONTEXT))
