"""The blast radius of a contract change over the dependency graph (pure: no store, no network)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keel.contracts.impact import (
    Consumer,
    Graph,
    Impact,
    Node,
    blast_radius,
    dataset_name,
    suggest_risk,
)
from keel.kernel.errors import NotFound

ACME, GLOBEX = "TEN-A", "TEN-B"
RAW = Node("RAW-ERP", "1.0.0", "raw", "published", tables=("raw.erp__invoices",))
GDP = Node(
    "GDP-AR",
    "1.0.0",
    "gdp",
    "published",
    based_on=("RAW-ERP@1.0.0",),
    tables=("gdp.invoice",),
    lineage=(
        ("gdp.invoice.amount_open", "raw.erp__invoices.amount_net"),
        ("gdp.invoice.customer_id", "raw.erp__invoices.customer_id"),
        ("gdp.invoice.due_date", "raw.erp__invoices.due_date"),
    ),
)
GDP_NEXT = replace(GDP, version="1.1.0", status="approved", lineage=())  # the change, not live yet
DSO = Node(
    "KPI-DSO",
    "1.0.0",
    "kpi",
    "published",
    based_on=("GDP-AR@1.0.0",),
    tables=("kpi.KPI-DSO",),
    lineage=(("kpi.KPI-DSO.value", "gdp.invoice.amount_open"), ("kpi.KPI-DSO.value", "gdp.invoice.due_date")),
)
CUSTOMERS = Node(
    "KPI-CUSTOMERS",
    "1.0.0",
    "kpi",
    "published",
    based_on=("GDP-AR@1.0.0",),
    tables=("kpi.KPI-CUSTOMERS",),
    lineage=(("kpi.KPI-CUSTOMERS.value", "gdp.invoice.customer_id"),),
)
DRAFT_KPI = Node("KPI-DRAFT", "0.1.0", "kpi", "draft", based_on=("GDP-AR@1.0.0",), tables=("kpi.KPI-DRAFT",))
OVERVIEW = Consumer("CNS-1", "dashboard", "finance_overview", ("KPI-DSO",), ("u-acme-bo",), ACME)
DUNNING = Consumer("CNS-2", "workflow", "dunning", ("GDP-AR",), ("u-globex-de",), GLOBEX)
EXPORT = Consumer("CNS-3", "export", "customer_export", ("KPI-CUSTOMERS",), ("u-pa-2",))
EVERYONE = frozenset({ACME, GLOBEX})


def graph(*extra_nodes: Node, consumers=(OVERVIEW, DUNNING, EXPORT), **changes) -> Graph:
    nodes = (RAW, GDP, GDP_NEXT, DSO, CUSTOMERS, DRAFT_KPI, *extra_nodes)
    built = Graph(
        nodes=nodes,
        consumers=tuple(consumers),
        running={n.contract_id: EVERYONE for n in nodes if n.live and not n.tenant_id},
        tenant_contacts={ACME: ("u-acme-ta",), GLOBEX: ("u-globex-ta",)},
        platform_contacts=("u-pa",),
    )
    return replace(built, **changes)


def test_a_change_to_a_gdp_contract_reaches_its_kpis_their_consumers_the_tenants_and_their_people():
    impact = blast_radius(graph(), "GDP-AR")

    assert impact.as_dict() == {
        "contract_id": "GDP-AR",
        "fields": None,
        "impact_scope": {
            "contracts": ["GDP-AR", "KPI-CUSTOMERS", "KPI-DSO"],
            "datasets": ["gdp_invoice", "kpi_customers", "kpi_dso"],
            "columns": [],
            "kpis": ["KPI-CUSTOMERS", "KPI-DSO"],
            "dashboards": ["finance_overview"],
            "kpi_views": [],
            "workflows": ["dunning"],
            "reports": [],
            "exports": ["customer_export"],
            "tenants": [ACME, GLOBEX],
        },
        "consumers": [c.as_dict() for c in (OVERVIEW, DUNNING, EXPORT)],
        "recipients": ["u-acme-bo", "u-acme-ta", "u-globex-de", "u-globex-ta", "u-pa", "u-pa-2"],
        "assets": {
            "consumer:CNS-1": ["u-acme-bo"],
            "consumer:CNS-2": ["u-globex-de"],
            "consumer:CNS-3": ["u-pa-2"],
            f"tenant:{ACME}": ["u-acme-ta"],
            f"tenant:{GLOBEX}": ["u-globex-ta"],
        },
        "complete": True,
        "gaps": [],
        "risk": "high",  # 2 downstream contracts + 3 consumers + 2 tenants = 7
        "size": 7,
    }


def test_a_change_to_some_fields_reaches_only_what_the_lineage_derives_from_them():
    impact = blast_radius(graph(), "GDP-AR", fields=["amount_open"])

    assert impact.scope() | {"risk": impact.risk} == {
        "contracts": ["GDP-AR", "KPI-DSO"],
        "datasets": ["gdp_invoice", "kpi_dso"],
        "columns": ["gdp.invoice.amount_open", "kpi.KPI-DSO.value"],
        "kpis": ["KPI-DSO"],
        "dashboards": ["finance_overview"],
        "kpi_views": [],
        "workflows": ["dunning"],  # it reads GDP-AR itself: any change of it may matter
        "reports": [],
        "exports": [],  # KPI-CUSTOMERS derives from customer_id only
        "tenants": [ACME, GLOBEX],
        "risk": "medium",  # 1 + 2 + 2 = 5
    }
    assert "u-pa-2" not in impact.recipients


def test_a_raw_column_change_is_followed_through_gdp_to_the_kpi():
    impact = blast_radius(graph(), "RAW-ERP", fields=["erp__invoices.due_date"])

    assert impact.columns == ("gdp.invoice.due_date", "kpi.KPI-DSO.value", "raw.erp__invoices.due_date")
    assert impact.contracts == ("RAW-ERP", "GDP-AR", "KPI-DSO")
    assert impact.datasets == ("gdp_invoice", "kpi_dso", "raw_erp__invoices")


def test_a_new_field_no_lineage_mentions_touches_only_the_contract_and_its_own_consumers():
    impact = blast_radius(graph(), "GDP-AR", fields=["payment_terms"])

    assert (impact.contracts, impact.datasets, impact.columns) == (
        ("GDP-AR",),
        ("gdp_invoice",),
        ("gdp.invoice.payment_terms",),
    )
    assert [c.id for c in impact.consumers] == ["CNS-2"]


def test_versions_that_are_not_live_are_not_downstream():
    impact = blast_radius(graph(), "GDP-AR")

    assert "KPI-DRAFT" not in impact.contracts
    assert blast_radius(graph(), "KPI-DRAFT").contracts == ("KPI-DRAFT",)  # the subject may be a draft


def test_a_consumer_on_an_unknown_contract_makes_the_graph_incomplete_and_raises_the_risk():
    ghost = Consumer("CNS-9", "report", "old_report", ("GDP-GONE",), ("u-acme-bo",), ACME)

    impact = blast_radius(graph(consumers=(ghost,)), "KPI-CUSTOMERS")

    assert (impact.complete, impact.gaps) == (
        False,
        ("consumer CNS-9 (report 'old_report') depends on 'GDP-GONE', which no contract describes",),
    )
    assert impact.size == 2 and impact.risk == "medium"  # low by size, one step up for the gap


def test_holes_in_the_radius_are_reported_as_gaps():
    untraced = Node(
        "KPI-UNTRACED", "1.0.0", "kpi", "published", based_on=("GDP-AR@1.0.0",), tables=("kpi.KPI-UNTRACED",)
    )
    stray = Node(
        "KPI-STRAY",
        "1.0.0",
        "kpi",
        "published",
        based_on=("GDP-AR@0.9.0",),
        tables=("kpi.KPI-STRAY",),
        lineage=(("kpi.KPI-STRAY.value", "gdp.ledger.amount"),),
    )
    elsewhere = Node("KPI-ELSEWHERE", "1.0.0", "kpi", "published", based_on=("GDP-CRM@1.0.0",))

    impact = blast_radius(graph(untraced, stray, elsewhere), "GDP-AR")

    assert impact.gaps == (
        "KPI-STRAY@1.0.0 is based on GDP-AR@0.9.0, which the graph does not hold",
        "KPI-STRAY@1.0.0: lineage reads gdp.ledger, which no contract describes",
        "KPI-UNTRACED@1.0.0 is published but has no column lineage",
    )  # KPI-ELSEWHERE is outside the radius: its holes do not hide any of it


def test_an_untraced_downstream_version_is_taken_as_impacted_as_a_whole():
    untraced = Node(
        "GDP-UNTRACED", "1.0.0", "gdp", "published", based_on=("GDP-AR@1.0.0",), tables=("gdp.aging",)
    )
    reader = Node(
        "KPI-AGING",
        "1.0.0",
        "kpi",
        "published",
        based_on=("GDP-UNTRACED@1.0.0",),
        tables=("kpi.KPI-AGING",),
        lineage=(("kpi.KPI-AGING.value", "gdp.aging.days"),),
    )

    impact = blast_radius(graph(untraced, reader), "GDP-AR", fields=["customer_id"])

    assert impact.contracts == ("GDP-AR", "GDP-UNTRACED", "KPI-AGING", "KPI-CUSTOMERS")
    assert "gdp_aging" in impact.datasets and "kpi.KPI-AGING.value" in impact.columns
    assert impact.gaps == ("GDP-UNTRACED@1.0.0 is published but has no column lineage",)


def test_a_tenants_consumer_never_reaches_another_tenants_contract():
    private = Node(
        "RAW-GLOBEX", "1.0.0", "raw", "published", tenant_id=GLOBEX, tables=("raw.ledger__entries",)
    )
    nosy = Consumer("CNS-7", "dashboard", "peek", ("RAW-GLOBEX",), ("u-acme-bo",), ACME)
    own = Consumer("CNS-8", "dashboard", "books", ("RAW-GLOBEX",), ("u-globex-de",), GLOBEX)

    impact = blast_radius(graph(private, consumers=(nosy, own)), "RAW-GLOBEX")

    assert [c.id for c in impact.consumers] == ["CNS-8"]
    assert impact.tenants == (GLOBEX,) and "u-acme-bo" not in impact.recipients
    assert impact.gaps == (
        "consumer CNS-7 (dashboard 'peek') depends on 'RAW-GLOBEX', which no contract describes",
    )


def test_an_unknown_contract_cannot_be_analysed():
    with pytest.raises(NotFound):
        blast_radius(graph(), "GDP-NOPE")


@pytest.mark.parametrize(
    ("size", "complete", "risk"),
    [(0, True, "low"), (2, True, "low"), (3, True, "medium"), (6, True, "medium"), (7, True, "high"),
     (0, False, "medium"), (3, False, "high"), (9, False, "high")],
)  # fmt: skip
def test_the_risk_suggestion_follows_the_size_of_the_radius_and_its_gaps(size, complete, risk):
    assert suggest_risk(size, complete) == risk


def test_dataset_names_read_like_the_story_artifact():
    assert [
        dataset_name(t) for t in ("gdp.invoice", "kpi.KPI-DSO", "kpi.DSO", "raw.erp__invoices", "gdp.AR")
    ] == [
        "gdp_invoice",
        "kpi_dso",
        "kpi_dso",
        "raw_erp__invoices",
        "gdp_ar",
    ]


def test_an_impact_survives_being_stored_as_json_and_read_back():
    impact = blast_radius(graph(), "GDP-AR", fields=["amount_open"])

    assert Impact.from_dict(impact.as_dict()) == impact
