"""Story 03e: tenant-specific schema extension, through the REST API.

A Tenant Admin proposes namespaced fields for a published GDP (or Raw) contract with a
business case, the Schema Steward checks fields, namespace and constraints, and the
Platform Admin deploys them to that tenant only: the tenant's effective contract and
its own DuckDB file gain the fields, with lineage, while the global document, every
other tenant's view and every other tenant's data stay exactly as they were. A
namespace conflict is rejected and logged, a constraint violation is blocked, and a
build that fails is rolled back with nothing half-applied.

The tenants' Raw rows are written straight into their DuckDB files and their base GDP
tables built with the pipeline: that stands in for ingestion (story 02) and the
platform's regular GDP build, which are not what this story tests.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import duckdb
import pytest
import sqlalchemy as sa
from tests.support import make_user
from tests.support_contracts import BASE, gdp_contract, path, publish_contract, raw_contract

from keel.contracts import extensions
from keel.contracts.documents import read_contract
from keel.contracts.mapping import validate_mapping
from keel.contracts.odcs import check_standard
from keel.identity.personas import Persona
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict
from keel.pipeline import DuckDBEngine, activate, active, materialize_gdp
from keel.store.tables import contract_extensions, contract_lineage, metric_samples, receipts

API = "/api/v1"
RAW_FIELDS = {
    "order_id": "string",
    "customer_email": "string",
    "amount": "decimal",
    "placed_at": "date",
    "payment_terms": "string",
}
ROWS = {
    "acme": [
        ("A-1", "ann@acme.test", "120.50", "2026-01-05", "NET30"),
        ("A-2", "bob@acme.test", "80.00", "2026-01-09", "NET60"),
        ("A-3", "cat@acme.test", "42.00", "2026-01-12", None),
    ],
    "globex": [("G-1", "dan@globex.test", "999.00", "2026-01-07", "NET30")],
}
TERMS = (
    "CASE payment_terms WHEN 'NET30' THEN 'net 30 days' WHEN 'NET60' THEN 'net 60 days' "
    "ELSE 'due on receipt' END"
)
CASE = "Collections needs the payment terms spelled out on every order for dunning letters."


def field(name: str = "payment_terms_detail", type_: str = "string", expression: str = TERMS, **extra):
    return {"name": name, "type": type_, "expression": expression, "classification": "internal",
            "pii": False, "description": "Payment terms in words", **extra}  # fmt: skip


def proposal(namespace: str = "acme", fields: list[dict] | None = None, schema_id: str = "GDP-ORDER") -> dict:
    return {"schema_id": schema_id, "version": "1.0.0", "namespace": namespace,
            "fields": fields or [field()], "business_case": CASE}  # fmt: skip


def ext_path(world, slug: str, extension_id: str = "", step: str = "") -> str:
    out = f"{API}/tenants/{world.tenants[slug]}/extensions"
    return out + (f"/{extension_id}" if extension_id else "") + (f"/{step}" if step else "")


def effective_path(world, slug: str, schema_id: str = "GDP-ORDER") -> str:
    return f"{API}/tenants/{world.tenants[slug]}/contracts/{schema_id}/effective"


def propose(world, slug: str, body: dict) -> dict:
    answer = world.post(f"{slug}:TA", ext_path(world, slug), body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def check(world, slug: str, extension_id: str) -> dict:
    answer = world.post("SS", ext_path(world, slug, extension_id, "check"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def deploy(world, slug: str, extension_id: str):
    return world.post("PA", ext_path(world, slug, extension_id, "deploy"))


def proposed_and_checked(world, slug: str, body: dict) -> dict:
    return check(world, slug, propose(world, slug, body)["extension_id"])


# The data plane ---------------------------------------------------------------------------------
def _file(world, slug: str):
    return world.keel.dataplanes.database_path(world.tenants[slug])


def _land_raw(world, slug: str) -> None:
    """The tenant's Raw rows, written directly: stands in for ingestion (story 02)."""
    with duckdb.connect(str(_file(world, slug))) as con:
        con.execute(
            "CREATE TABLE raw.shop__orders (order_id VARCHAR, customer_email VARCHAR, "
            "amount DECIMAL(38, 9), placed_at DATE, payment_terms VARCHAR)"
        )
        con.executemany("INSERT INTO raw.shop__orders VALUES (?, ?, ?, ?, ?)", ROWS[slug])


def _build_base(world, slug: str, raw_document: dict, gdp_document: dict) -> None:
    """The tenant's base GDP build of GDP-ORDER 1.0.0: stands in for the platform's GDP run."""
    raw, gdp = read_contract(raw_document), read_contract(gdp_document)
    dataset = gdp.datasets[0]
    plan = validate_mapping(dataset.mapping_sql, dataset, {"raw.shop__orders": raw.datasets[0]})
    engine = DuckDBEngine(_file(world, slug))
    materialize_gdp(engine, gdp, dataset, plan)
    activate(engine, "gdp", "order", "1.0.0")


def _query(world, slug: str, sql: str) -> list[tuple]:
    with duckdb.connect(str(_file(world, slug)), read_only=True) as con:
        return con.execute(sql).fetchall()


def _columns(world, slug: str, table: str) -> list[str]:
    rows = _query(
        world,
        slug,
        f"SELECT column_name FROM information_schema.columns WHERE table_schema = 'gdp' "
        f"AND table_name = '{table}' ORDER BY ordinal_position",
    )
    return [r[0] for r in rows]


def _digest(world, slug: str) -> dict[str, str]:
    """Every file of the tenant's data plane, by content."""
    directory = world.keel.dataplanes.directory(world.tenants[slug])
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def orders(world):
    """GDP-ORDER 1.0.0 published over RAW-SHOP 1.0.0; both tenants have Raw rows and a base build."""
    raw_document, gdp_document = raw_contract(fields=RAW_FIELDS), gdp_contract()
    publish_contract(world, raw_document)
    publish_contract(world, gdp_document)
    for slug in ("acme", "globex"):
        _land_raw(world, slug)
        _build_base(world, slug, raw_document, gdp_document)
    return world


# Given a proposal, when namespaced checks pass, then deployed to tenant scope, lineage updated ------
def test_an_extension_that_passes_the_checks_is_deployed_to_its_tenant_only(orders):
    world = orders
    document = world.get("globex:AN", path("GDP-ORDER", "1.0.0", "document")).content
    global_view = world.get("globex:AN", f"{BASE}/GDP-ORDER").json()
    globex_effective = world.get("globex:AN", effective_path(world, "globex")).json()
    globex_files = _digest(world, "globex")
    acme_base = _query(world, "acme", 'SELECT * FROM gdp."order" ORDER BY order_id')

    proposed = propose(world, "acme", proposal())
    checked = check(world, "acme", proposed["extension_id"])
    answer = deploy(world, "acme", proposed["extension_id"])

    assert (proposed["status"], checked["status"], checked["problems"]) == ("proposed", "approved", [])
    assert answer.status_code == 200, answer.text
    deployed = answer.json()
    # Artifact: tenant_id=TEN-001, base_schema=GDP-AR, extension={payment_terms_detail: string},
    # scope=tenant, status=deployed
    artifact = {k: deployed[k] for k in ("tenant_id", "base_schema", "extension", "scope", "status")}
    assert artifact == {
        "tenant_id": world.tenants["acme"],
        "base_schema": "GDP-ORDER",
        "extension": {"payment_terms_detail": "string"},
        "scope": "tenant",
        "status": "deployed",
    }
    assert deployed["build"] == {
        "table": "gdp.x_order__v1_0_0",
        "version": "1.0.0",
        "rows": 3,
        "view": "gdp.x_order",
    }

    # acme's effective contract has the field, its lineage and its document
    acme = world.get("acme:AN", effective_path(world, "acme")).json()
    assert acme["scope"] == "tenant" and [e["extension_id"] for e in acme["extensions"]] == [
        deployed["extension_id"]
    ]
    [dataset] = acme["datasets"]
    assert dataset["table"] == "gdp.x_order"
    assert [f["name"] for f in dataset["fields"]] == [
        "order_id",
        "amount",
        "placed_at",
        "x_acme_payment_terms_detail",
    ]
    assert {
        "target": "gdp.x_order.x_acme_payment_terms_detail",
        "source": "raw.shop__orders.payment_terms",
    } in (acme["lineage"])
    extended = acme["document"]["schema"][0]["properties"][-1]
    assert extended["name"] == "x_acme_payment_terms_detail" and extended["logicalType"] == "string"
    check_standard(acme["document"])  # the tenant's document is still an ODCS contract

    # acme's own data plane: the extended table has the field; its base table is as it was
    assert _query(
        world, "acme", 'SELECT order_id, x_acme_payment_terms_detail FROM gdp."x_order" ORDER BY 1'
    ) == [
        ("A-1", "net 30 days"),
        ("A-2", "net 60 days"),
        ("A-3", "due on receipt"),
    ]
    assert _query(world, "acme", 'SELECT * FROM gdp."order" ORDER BY order_id') == acme_base
    assert _columns(world, "acme", "order") == ["order_id", "amount", "placed_at"]

    # every other tenant and every global consumer sees no change
    assert world.get("globex:AN", path("GDP-ORDER", "1.0.0", "document")).content == document
    assert world.get("acme:AN", path("GDP-ORDER", "1.0.0", "document")).content == document
    assert world.get("globex:AN", f"{BASE}/GDP-ORDER").json() == global_view
    assert world.get("globex:AN", effective_path(world, "globex")).json() == globex_effective
    assert globex_effective["scope"] == "global" and globex_effective["extensions"] == []
    assert _digest(world, "globex") == globex_files

    # the story's events, receipt and metric
    types = [e["type"] for e in world.events() if e["type"].startswith("schema.extension.")]
    assert types == ["schema.extension.proposed", "schema.extension.approved", "schema.extension.deployed"]
    logged = world.events("schema.extension.deployed")[-1]["payload"]
    assert logged["columns"] == ["x_acme_payment_terms_detail"] and logged["lineage_edges"] == 1
    assert CASE not in str(world.events())  # the business case enters the ledger as a hash only
    receipt = world.rows(sa.select(receipts.c.body).where(receipts.c.kind == "schema.extension"))
    assert [r.body["status"] for r in receipt] == ["deployed"]
    counted = world.rows(
        sa.select(metric_samples.c.tenant_id).where(metric_samples.c.name == "extension_count")
    )
    assert [r.tenant_id for r in counted] == [world.tenants["acme"]]


def test_a_second_extension_of_the_same_dataset_is_a_new_build_holding_both(orders):
    world = orders
    first = proposed_and_checked(world, "acme", proposal())
    assert deploy(world, "acme", first["extension_id"]).status_code == 200
    gross = field("amount_doubled", "decimal", "amount * 2")
    second = proposed_and_checked(world, "acme", proposal("acmefin", [gross]))

    answer = deploy(world, "acme", second["extension_id"])

    assert answer.status_code == 200, answer.text
    assert answer.json()["build"]["table"] == "gdp.x_order__v2_0_0"
    assert _columns(world, "acme", "x_order") == [
        "order_id",
        "amount",
        "placed_at",
        "x_acme_payment_terms_detail",
        "x_acmefin_amount_doubled",
    ]
    assert _query(
        world, "acme", "SELECT x_acmefin_amount_doubled FROM gdp.\"x_order\" WHERE order_id = 'A-1'"
    ) == [(pytest.approx(241.0),)]
    fields = world.get("acme:AN", effective_path(world, "acme")).json()["datasets"][0]["fields"]
    assert [f["extension"] for f in fields][-2:] == [first["extension_id"], second["extension_id"]]


def test_a_raw_extension_is_part_of_the_tenants_contract_and_lineage_and_changes_no_data(orders):
    world = orders
    acme_files = _digest(world, "acme")
    body = proposal("acme", [field("terms_days", "integer", "CAST(substr(payment_terms, 4) AS INTEGER)")])
    checked = proposed_and_checked(world, "acme", {**body, "schema_id": "RAW-SHOP"})

    answer = deploy(world, "acme", checked["extension_id"])

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "deployed" and answer.json()["build"] is None
    acme = world.get("acme:AN", effective_path(world, "acme", "RAW-SHOP")).json()
    assert acme["datasets"][0]["fields"][-1]["name"] == "x_acme_terms_days"
    assert {"target": "raw.shop__orders.x_acme_terms_days", "source": "raw.shop__orders.payment_terms"} in (
        acme["lineage"]
    )
    assert _digest(world, "acme") == acme_files


# Given a proposal, when namespaces collide, then rejected, logged ------------------------------------
def test_a_namespace_another_tenant_owns_is_rejected_and_logged(orders):
    world = orders
    owned = proposed_and_checked(world, "globex", proposal("shared"))
    assert deploy(world, "globex", owned["extension_id"]).status_code == 200

    checked = proposed_and_checked(world, "acme", proposal("shared"))

    assert checked["status"] == "rejected"
    assert checked["problems"] == [
        {
            "rule": "namespace",
            "where": "namespace",
            "detail": "namespace conflict: 'shared' belongs to another tenant",
        }
    ]
    logged = world.events("schema.extension.rejected")[-1]
    assert (
        logged["tenant_id"] == world.tenants["acme"] and logged["payload"]["problems"] == checked["problems"]
    )
    refused = deploy(world, "acme", checked["extension_id"])
    assert refused.status_code == 409 and refused.json()["extension_status"] == "rejected"
    assert world.get("acme:AN", effective_path(world, "acme")).json()["extensions"] == []


def test_a_namespace_taken_between_check_and_deploy_rejects_the_later_deploy(orders):
    world = orders
    acme = proposed_and_checked(world, "acme", proposal("terms"))
    globex = proposed_and_checked(world, "globex", proposal("terms"))
    assert (acme["status"], globex["status"]) == ("approved", "approved")
    assert deploy(world, "globex", globex["extension_id"]).status_code == 200

    late = deploy(world, "acme", acme["extension_id"])

    assert late.status_code == 409 and late.json()["reason"] == "recheck_failed"
    assert "belongs to another tenant" in late.json()["detail"]
    shown = world.get("acme:TA", ext_path(world, "acme", acme["extension_id"])).json()
    assert shown["status"] == "rejected"
    assert _columns(world, "acme", "x_order") == []  # nothing was built for acme


def test_two_tenants_deploying_one_namespace_at_once_leave_it_to_exactly_one(orders):
    # Through the service from two threads (two PA requests at once); the API is a thin call of it.
    world = orders
    approved = {slug: proposed_and_checked(world, slug, proposal("race"))["extension_id"] for slug in ROWS}
    start = threading.Barrier(len(approved))

    def run(slug: str):
        start.wait()
        try:
            return extensions.deploy(world.keel, world.actors["PA"], world.tenants[slug], approved[slug])[
                "status"
            ]
        except Conflict as refused:
            return refused.fields.get("reason")

    with ThreadPoolExecutor(max_workers=len(approved)) as pool:
        outcomes = dict(zip(approved, pool.map(run, approved), strict=True))

    assert sorted(outcomes.values()) == ["deployed", "recheck_failed"], outcomes
    statuses = world.rows(
        sa.select(contract_extensions.c.status).where(contract_extensions.c.namespace == "race")
    )
    assert sorted(r.status for r in statuses) == ["deployed", "rejected"]


@pytest.mark.parametrize(
    ("namespace", "fields", "problem"),
    [
        ("keel", [field()], ("namespace", "namespace", "'keel' is reserved")),
        ("Acme!", [field()], ("namespace", "namespace", "is not a namespace")),
        (
            "acme",
            [field("amount", "decimal", "amount")],
            ("field_names", "fields[0].name", "'amount' is a field"),
        ),
        (
            "acme",
            [field(expression="upper(payment_termz)")],
            ("expression", "fields[0].expression", "line 1 col 7: unknown column 'payment_termz'"),
        ),
        (
            "acme",
            [field("terms_count", "integer", "payment_terms")],
            ("expression", "fields[0].expression", "is integer but the column is string"),
        ),
        ("acme", [field(type_="money")], ("field_types", "fields[0].type", "'money'")),
        (
            "acme",
            [field(pii=True, classification="internal")],
            ("pii_handling", "fields[0].classification", "is PII and cannot be classified internal"),
        ),
    ],
    ids=["reserved", "malformed", "base-field", "unknown-column", "type", "unknown-type", "pii-internal"],
)
def test_a_proposal_with_a_conflict_or_a_bad_field_is_rejected_naming_it(orders, namespace, fields, problem):
    checked = proposed_and_checked(orders, "acme", proposal(namespace, fields))

    assert checked["status"] == "rejected"
    [found] = checked["problems"]
    rule, where, words = problem
    assert (found["rule"], found["where"]) == (rule, where) and words in found["detail"], found


# Constraint violation -> block -----------------------------------------------------------------------
def test_a_required_extension_field_is_blocked_and_never_deployed(orders):
    world = orders
    checked = proposed_and_checked(world, "acme", proposal(fields=[field(required=True)]))

    assert checked["status"] == "blocked"
    assert checked["problems"] == [
        {
            "rule": "constraints",
            "where": "fields[0].required",
            "detail": "constraint violation: extension field payment_terms_detail cannot be required; "
            "an extension never changes what the base contract guarantees",
        }
    ]
    assert world.events("schema.extension.blocked")[-1]["payload"]["problems"] == checked["problems"]
    refused = deploy(world, "acme", checked["extension_id"])
    assert refused.status_code == 409 and refused.json()["extension_status"] == "blocked"


# Side effects -> roll back -----------------------------------------------------------------------------
def test_a_build_that_fails_is_rolled_back_with_nothing_half_applied(orders):
    world = orders
    good = proposed_and_checked(world, "acme", proposal())
    assert deploy(world, "acme", good["extension_id"]).status_code == 200
    before = world.get("acme:AN", effective_path(world, "acme")).json()
    rows_before = _query(world, "acme", 'SELECT * FROM gdp."x_order" ORDER BY order_id')
    # Type-checks (a CAST to integer), but order ids like 'A-1' do not convert when it runs.
    failing = field("order_number", "integer", "CAST(order_id AS INTEGER)")
    bad = proposed_and_checked(world, "acme", proposal("acmeops", [failing]))
    assert bad["status"] == "approved"

    answer = deploy(world, "acme", bad["extension_id"])

    assert answer.status_code == 409, answer.text
    assert (answer.json()["code"], answer.json()["extension_status"]) == (
        "extension_rolled_back",
        "rolled_back",
    )
    shown = world.get("acme:TA", ext_path(world, "acme", bad["extension_id"])).json()
    assert shown["status"] == "rolled_back" and shown["problems"][0]["rule"] == "materialization"
    # the tenant's view stays on the previous build, with its rows; no table of the failed build remains
    assert active(DuckDBEngine(_file(world, "acme")), "gdp", "x_order") == "1.0.0"
    assert _query(world, "acme", 'SELECT * FROM gdp."x_order" ORDER BY order_id') == rows_before
    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gdp' ORDER BY 1"
    assert _query(world, "acme", tables) == [
        ("order",),
        ("order__v1_0_0",),
        ("x_order",),
        ("x_order__v1_0_0",),
    ]
    # nothing of it in the contract, its lineage or its receipts
    assert world.get("acme:AN", effective_path(world, "acme")).json() == before
    key = f"GDP-ORDER+{bad['extension_id']}"
    assert world.scalar(sa.select(sa.func.count()).where(contract_lineage.c.contract_id == key)) == 0
    assert world.scalar(sa.select(sa.func.count()).where(receipts.c.subject_id == bad["extension_id"])) == 0
    logged = world.events("schema.extension.rolled_back")[-1]["payload"]
    assert logged["extension_id"] == bad["extension_id"] and "order_id" in logged["reason"]
    counted = world.rows(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == "extension_rollback_count")
    )
    assert [float(r.value) for r in counted] == [1.0]


def test_a_first_build_that_fails_leaves_the_tenant_without_an_extended_table(orders):
    world = orders
    bad = proposed_and_checked(
        world, "acme", proposal(fields=[field("n", "integer", "CAST(order_id AS INTEGER)")])
    )

    assert deploy(world, "acme", bad["extension_id"]).status_code == 409
    assert _columns(world, "acme", "x_order") == []
    assert _columns(world, "acme", "order") == ["order_id", "amount", "placed_at"]
    status = world.scalar(
        sa.select(contract_extensions.c.status).where(contract_extensions.c.id == bad["extension_id"])
    )
    assert status == "rolled_back"


def test_a_deploy_under_way_is_not_started_twice_and_one_left_by_a_dead_worker_is_resumed(orders):
    world = orders
    checked = proposed_and_checked(world, "acme", proposal())
    claimed = sa.update(contract_extensions).where(contract_extensions.c.id == checked["extension_id"])
    with world.keel.engine.begin() as conn:  # as a deploy whose build is still running leaves it
        conn.execute(claimed.values(status="deploying", updated_at=utcnow()))

    twice = deploy(world, "acme", checked["extension_id"])

    assert twice.status_code == 409 and twice.json()["reason"] == "deploying"
    with world.keel.engine.begin() as conn:  # its worker died: the lease has run out
        conn.execute(claimed.values(updated_at=utcnow() - extensions.DEPLOY_LEASE - timedelta(minutes=1)))
    resumed = deploy(world, "acme", checked["extension_id"])
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "deployed" and resumed.json()["build"]["version"] == "1.0.0"


# Who does what -------------------------------------------------------------------------------------------
def test_only_the_tenant_admin_proposes_the_steward_checks_and_the_platform_admin_deploys(orders):
    world = orders
    for who in ("acme:AN", "acme:DE", "SS", "PA"):
        assert world.post(who, ext_path(world, "acme"), proposal()).status_code == 403, who
    assert world.post("globex:TA", ext_path(world, "acme"), proposal()).status_code == 403
    proposed = propose(world, "acme", proposal())
    assert (
        world.post("acme:TA", ext_path(world, "acme", proposed["extension_id"], "check")).status_code == 403
    )
    assert world.post("PA", ext_path(world, "acme", proposed["extension_id"], "check")).status_code == 403
    checked = check(world, "acme", proposed["extension_id"])
    assert world.post("SS", ext_path(world, "acme", checked["extension_id"], "deploy")).status_code == 403
    assert (
        world.post("acme:TA", ext_path(world, "acme", checked["extension_id"], "deploy")).status_code == 403
    )


def test_who_checked_an_extension_may_not_also_deploy_it(orders):
    world = orders
    world.add("SSPA", make_user(world.keel, Persona.SS, also=(Persona.PA,)))
    proposed = propose(world, "acme", proposal())
    checked = world.post("SSPA", ext_path(world, "acme", proposed["extension_id"], "check"))
    assert checked.status_code == 200 and checked.json()["status"] == "approved"

    refused = world.post("SSPA", ext_path(world, "acme", proposed["extension_id"], "deploy"))

    assert refused.status_code == 403 and refused.json()["rule"] == "sod-deploy-own-change"


def test_an_extension_needs_a_published_base_and_a_business_case(orders):
    world = orders
    no_case = world.post("acme:TA", ext_path(world, "acme"), {**proposal(), "business_case": " "})
    assert no_case.status_code == 422 and no_case.json()["field"] == "business_case"
    unknown = world.post("acme:TA", ext_path(world, "acme"), {**proposal(), "version": "9.9.9"})
    assert unknown.status_code == 404
    draft = gdp_contract("GDP-DRAFT")
    assert world.post("SS", BASE, {"document": draft}).status_code == 201
    unpublished = world.post("acme:TA", ext_path(world, "acme"), proposal(schema_id="GDP-DRAFT"))
    assert unpublished.status_code == 409 and "draft" in unpublished.json()["detail"]
    listed = world.get("acme:TA", ext_path(world, "acme")).json()["items"]
    assert listed == []
