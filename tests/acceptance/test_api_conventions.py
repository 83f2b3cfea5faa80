"""API conventions: problem+json errors, the API description, health, metrics and cursor pagination.

Every error answer is RFC 9457 ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and ``instance`` (plus Keel's ``code``); an unexpected error
tells nothing of its internals, to the caller or to the log. ``/openapi.json``
describes every route, ``/healthz`` reports each component, ``/metrics`` exposes the
story metrics in Prometheus text, and every list walks page by page with
``cursor`` = ``next_cursor`` without repeating or missing an item.
"""

from __future__ import annotations

import logging
import math

import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tests.support import World
from tests.support_contracts import raw_contract

from keel import __version__
from keel.api.app import create_app
from keel.kernel.clock import utcnow
from keel.store.tables import (
    change_requests,
    ingestion_runs,
    notification_deliveries,
    notifications,
    review_tickets,
    rollouts,
    signoffs,
    tenants,
)

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before included routers were resolved lazily listed every route flat

    def iter_route_contexts(routes):
        return routes


API = "/api/v1"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "code"}


def _assert_problem(answer, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem.keys() >= PROBLEM_MEMBERS, problem
    assert problem["type"] == f"https://keel.dev/problems/{code}"
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["instance"] == answer.request.url.path
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


# Problem details ------------------------------------------------------------------------------
def test_every_kind_of_error_answers_problem_json(world):
    acme, client = world.tenants["acme"], world.client
    big = world.keel.settings.max_body_bytes + 1
    tenant = {"slug": "initech", "name": "Initech", "admin_email": "admin@initech.test"}
    cases = [
        (client.post(f"{API}/tenants", content=b"{}", headers={"content-length": "x"}), 400, "bad_request"),
        (client.get(f"{API}/me"), 401, "unauthenticated"),
        (world.get("acme:AN", f"{API}/tenants/{world.tenants['globex']}"), 403, "permission_denied"),
        (world.get("PA", f"{API}/no-such-route"), 404, "not_found"),
        (world.get("PA", f"{API}/tenants/TEN-20260101-ZZZZZZZZ"), 404, "not_found"),
        (world.client.put("/healthz"), 405, "method_not_allowed"),
        (world.post("PA", f"{API}/tenants", json={**tenant, "slug": "acme"}), 409, "conflict"),
        (world.post("SA", f"{API}/tenants/{acme}/validate"), 409, "conflict"),
        (
            client.post(f"{API}/tenants", content=b" " * big, headers=world.headers("PA")),
            413,
            "payload_too_large",
        ),
        (world.post("PA", f"{API}/tenants", json={"slug": 1}), 422, "invalid_input"),
        (world.get("PA", f"{API}/tenants", params={"limit": 0}), 422, "invalid_input"),
        (world.get("PA", f"{API}/tenants", params={"cursor": "nope"}), 422, "invalid_input"),
    ]

    for answer, status, code in cases:
        _assert_problem(answer, status, code)


def test_a_quota_refusal_answers_problem_json_with_the_quota(world):
    world.keel.settings.max_tenants = 2  # acme and globex fill it
    answer = world.post(
        "PA", f"{API}/tenants", json={"slug": "initech", "name": "I", "admin_email": "a@i.test"}
    )

    problem = _assert_problem(answer, 429, "quota_exceeded")
    assert (problem["quota"], problem["limit"]) == ("max_tenants", 2)


def test_unauthenticated_answers_name_the_bearer_scheme(client):
    answer = client.get(f"{API}/me", headers={"Authorization": "Bearer tok_unknown"})

    _assert_problem(answer, 401, "unauthenticated")
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_denial_names_its_reason_action_and_rule_and_counts_as_a_violation(world):
    before = _violations(world)

    answer = world.get("acme:TA", f"{API}/tenants/{world.tenants['globex']}/users")

    problem = _assert_problem(answer, 403, "permission_denied")
    assert {k: problem[k] for k in ("reason", "action", "rule")} == {
        "reason": "forbidden_by_policy",
        "action": "user:Read",
        "rule": "deny-cross-tenant",
    }
    assert _violations(world) == before + 1


def _violations(world: World) -> float:
    text = world.client.get("/metrics").text
    return next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "keel_permission_violation_count"
    )


def test_an_unexpected_error_answers_500_problem_json_and_leaks_nothing(keel, caplog):
    secret = "postgresql://admin:s3cr3t-pw@db/keel"
    app = create_app(keel)

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"could not connect to {secret}")

    with (
        caplog.at_level(logging.ERROR, logger="keel.api"),
        TestClient(app, raise_server_exceptions=False) as c,
    ):
        answer = c.get("/boom")

    problem = _assert_problem(answer, 500, "internal_error")
    assert secret not in answer.text and "RuntimeError" not in answer.text
    assert problem["error_id"] in caplog.text  # the operator can find it
    assert "RuntimeError" in caplog.text and "boom" in caplog.text  # and locate it
    assert "s3cr3t" not in caplog.text


# The API description -----------------------------------------------------------------------------
def _app_routes(app) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in getattr(route, "methods", None) or ()
        if route.path.startswith(f"{API}/")
    }


def test_the_api_description_lists_every_api_route(client):
    answer = client.get("/openapi.json")

    assert answer.status_code == 200
    spec = answer.json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["version"] == __version__
    described = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith(f"{API}/")
    }
    routes = _app_routes(client.app)
    assert len(routes) >= 40
    assert described == routes


def test_every_request_body_in_the_description_refuses_unknown_fields(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for operations in spec["paths"].values()
        for op in operations.values()
        if "requestBody" in op
    }

    assert len(bodies) >= 10
    assert {name: schemas[name].get("additionalProperties") for name in bodies} == dict.fromkeys(
        bodies, False
    )


# Health -------------------------------------------------------------------------------------------
def test_health_reports_every_component_of_a_deployed_platform(world):
    answer = world.client.get("/healthz")

    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "version": __version__,
        "components": {
            "control_plane": {"status": "ok", "dialect": world.keel.engine.dialect.name},
            "platform": {"status": "ok"},
            "evidence": {"status": "ok"},
            "data_plane": {"status": "ok", "engine": "duckdb"},
        },
    }


def test_health_before_deployment_says_what_is_missing(client, keel):
    answer = client.get("/healthz")

    assert answer.status_code == 200
    components = answer.json()["components"]
    assert {name: c["status"] for name, c in components.items()} == {
        "control_plane": "ok",
        "platform": "not_deployed",
        "evidence": "no_signing_key",
        "data_plane": components["data_plane"]["status"],
    }


def test_health_answers_503_problem_json_when_the_store_is_gone(keel, tmp_path):
    # A store that cannot be opened stands in for a database that went away.
    broken = sa.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'keel.db'}")
    healthy_engine, keel.engine = keel.engine, broken
    try:
        with TestClient(create_app(keel)) as c:
            answer = c.get("/healthz")
    finally:
        keel.engine = healthy_engine
        broken.dispose()

    problem = _assert_problem(answer, 503, "unavailable")
    assert problem["components"]["control_plane"]["status"] == "error"
    assert problem["components"]["control_plane"]["error"] == "OperationalError"
    assert set(problem["components"]) == {"control_plane", "platform", "evidence", "data_plane"}


# Metrics -----------------------------------------------------------------------------------------
def test_metrics_expose_the_story_metrics_in_prometheus_text(world):
    answer = world.client.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    assert samples["keel_deployment_success_rate"] == 1.0  # one deployment, validated
    assert samples["keel_rollback_count"] == 0.0
    assert samples["keel_provisioning_success_rate"] == 1.0  # acme and globex
    assert samples["keel_tenant_infra_success_rate"] == 1.0
    assert 0 < samples["keel_provisioning_time"] < 600
    assert {"keel_permission_violation_count", "keel_validation_failure_count", "keel_incident_count"} <= set(
        samples
    )
    assert world.tenants["acme"] not in answer.text  # aggregates only, no tenant labels
    # A scraper that asks for OpenMetrics gets it.
    answer = world.client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert answer.text.rstrip().endswith("# EOF")
    assert "keel_deployment_success_rate" in answer.text


# Cursor pagination ---------------------------------------------------------------------------------
# Every list that takes a cursor, with a caller allowed to read all of it and its item key.
PAGED = {
    f"{API}/tenants": ("PA", "tenant_id"),
    f"{API}/users": ("SA", "id"),
    f"{API}/tenants/{{tenant_id}}/users": ("acme:TA", "id"),
    f"{API}/platform/deployments": ("PA", "deployment_id"),
    f"{API}/rbac/bundles": ("SA", "bundle_id"),
    f"{API}/evidence/receipts": ("CO", "receipt_id"),
    f"{API}/connector-templates": ("acme:DE", "template_id"),
    f"{API}/tenants/{{tenant_id}}/connectors": ("acme:DE", "connector_id"),
    f"{API}/tenants/{{tenant_id}}/sources": ("acme:DE", "source_id"),
    f"{API}/tenants/{{tenant_id}}/ingestion-runs": ("acme:IO", "run_id"),
    f"{API}/tenants/{{tenant_id}}/notifications": ("acme:TA", "notification_id"),
    f"{API}/contracts": ("SS", "key"),
    f"{API}/tenants/{{tenant_id}}/schema-changes": ("acme:TA", "change_id"),
    f"{API}/rollouts": ("PA", "rollout_id"),
    f"{API}/contract-consumers": ("PA", "consumer_id"),
    f"{API}/notices/deliveries": ("PA", "delivery_id", {"subject_id": "SC-20260101-PAGED000"}),
    f"{API}/signoffs": ("PA", "user_id", {"subject_id": "SC-20260101-PAGED000"}),
    f"{API}/review-tickets": ("SS", "ticket_id"),
    # -- issue 5: pipeline
    f"{API}/tenants/{{tenant_id}}/pipeline-runs": ("acme:DE", "id"),
    f"{API}/evidence/export-templates": ("AU", "key"),
    # -- issue 5: quality
    f"{API}/quality-rules": ("SS", "rule_id"),
    f"{API}/tenants/{{tenant_id}}/quarantine/{{dataset}}": ("acme:DE", "quarantine_id"),
    # -- issue 5: guardrails
    f"{API}/guardrails": ("AU", "guardrail_id"),
    # -- issue 5: housekeeping
    f"{API}/housekeeping/policies": ("CO", "policy_id"),
    f"{API}/tenants/{{tenant_id}}/legal-holds": ("SA", "hold_id"),
    f"{API}/tenants/{{tenant_id}}/housekeeping-runs": ("acme:TA", "run_id"),
    f"{API}/scheduler/jobs": ("SRE", "name"),
    # -- issue 5: lineage
    f"{API}/tenants/{{tenant_id}}/lineage": ("AU", "record_id"),
    # -- issue 5: kpis
    f"{API}/tenants/{{tenant_id}}/kpis/{{kpi_id}}/publications": ("AU", "number"),
}


def test_every_list_that_takes_a_cursor_is_walked_below(client):
    spec = client.get("/openapi.json").json()
    paged = {
        path
        for path, operations in spec["paths"].items()
        for op in operations.values()
        if any(p["name"] == "cursor" and p["in"] == "query" for p in op.get("parameters", []))
    }

    assert paged == set(PAGED)


def _walk(
    world: World, who: str, path: str, key: str, limit: int, query: dict | None = None
) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        params = {**(query or {}), "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = world.get(who, path, params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert set(page) >= {"items", "next_cursor"}
        pages.append([item[key] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the walk does not end"


def _grow(world: World) -> None:
    """More items than a page holds on every paged list: tenants, users, deployments, bundles."""
    for n in range(3):
        slug = f"paged-{n}"
        body = {"slug": slug, "name": slug, "admin_email": f"admin@{slug}.test"}
        assert world.post("PA", f"{API}/tenants", json=body).status_code == 201
    member = {"email": "extra@acme.test", "display_name": "Extra", "roles": ["AN"]}
    assert (
        world.post("acme:TA", f"{API}/tenants/{world.tenants['acme']}/users", json=member).status_code == 201
    )
    acme = world.tenants["acme"]
    for n in range(4):
        connector = {"template": "sql", "name": f"db-{n}"}
        assert world.post("PA", f"{API}/tenants/{acme}/connectors", json=connector).status_code == 201
        source = {"name": f"src{n}", "streams": ["x"], "justification": "paging"}
        answer = world.post("acme:DE", f"{API}/tenants/{acme}/sources", json=source)
        assert answer.status_code == 201
        # Runs and notifications come from live sources and failures; their records are all paging reads.
        with world.keel.engine.begin() as conn:
            conn.execute(
                ingestion_runs.insert().values(
                    id=f"RUN-20260101-PAGED00{n}",
                    tenant_id=acme,
                    source_id=answer.json()["source_id"],
                    stream="x",
                    kind="sync",
                    status="SUCCEEDED",
                    rows=0,
                    batches=0,
                    skipped=0,
                    attempts=1,
                    started_by="paging",
                    started_at=utcnow(),
                )
            )
            conn.execute(
                notifications.insert().values(
                    id=f"NTF-20260101-PAGED00{n}", tenant_id=acme,
                    recipient_id=world.actors["acme:TA"].user_id,
                    subject="paging", body={}, channel="in-app", status="DELIVERED", created_at=utcnow(),
                )
            )  # fmt: skip
    # Change requests, rollouts, deliveries, sign-offs and review tickets: their records are all paging reads.
    signers = [world.actors[who].user_id for who in ("PA", "SS", "CO", "PO")]
    with world.keel.engine.begin() as conn:
        for n in range(4):
            now = utcnow()
            conn.execute(
                notification_deliveries.insert().values(
                    message_id=f"MSG-PAGED-{n}", subject_id="SC-20260101-PAGED000", tenant_id=None,
                    recipient_id=signers[n], channel="email", status="sent", detail="paging", attempts=1,
                    attempted_at=now,
                )
            )  # fmt: skip
            conn.execute(
                signoffs.insert().values(
                    subject_id="SC-20260101-PAGED000", user_id=signers[n], roles=["PA"], decision="approve",
                    recorded_at=now,
                )
            )  # fmt: skip
            conn.execute(
                change_requests.insert().values(
                    id=f"SC-20260101-PAGED00{n}",
                    tenant_id=acme,
                    contract_id="GDP-X",
                    base_version="1.0.0",
                    change={"summary": "paging"},
                    justification="paging",
                    status="REQUESTED",
                    requested_by=world.actors["acme:TA"].user_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                rollouts.insert().values(
                    id=f"RO-20260101-PAGED00{n}",
                    contract_id="GDP-X",
                    from_version="1.0.0",
                    to_version="1.1.0",
                    stages=[{"name": "all", "tenants": [acme]}],
                    conditions=[],
                    status="PLANNED",
                    current_stage=-1,
                    started_by=world.actors["PA"].user_id,
                    measurements={"stages": [], "moved": {}},
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                review_tickets.insert().values(
                    id=f"TKT-20260101-PAGED00{n}", tenant_id=acme if n % 2 else None, kind="drift",
                    subject=f"paging {n}", details={}, status="OPEN", opened_by="paging", opened_at=now,
                )
            )  # fmt: skip
    for n in range(4):
        consumer = {"kind": "dashboard", "name": f"board-{n}", "depends_on": ["GDP-X"]}
        assert world.post("PA", f"{API}/contract-consumers", json=consumer).status_code == 201
        document = raw_contract(f"RAW-PAGED-{n}")
        assert world.post("SS", f"{API}/contracts", json={"document": document}).status_code == 201
    for _ in range(3):
        assert world.post("PA", f"{API}/platform/deployments", json={}).status_code == 201
        assert world.post("SA", f"{API}/rbac/bundles", json={}).status_code == 201
    # -- issue 5 grow: pipeline
    from keel.store.tables import pipeline_runs

    with world.keel.engine.begin() as conn:
        for n in range(4):
            conn.execute(
                pipeline_runs.insert().values(
                    id=f"PLR-20260101-PAGED00{n}", tenant_id=world.tenants["acme"], layer="gdp", name="paged",
                    contract="GDP-PAGED@1.0.0", version="1.0.0", table_name="gdp.paged__v1_0_0", inputs=[],
                    rows=n, error_rows=0, dq_failures=0, duration_seconds=0.1, purpose="build",
                    run_by="test", started_at=utcnow(), finished_at=utcnow(), mode="full",
                )
            )  # fmt: skip
    for n in range(4):
        template = {"template_id": f"EV-PAGED-0{n}", "sections": ["identity_map"], "retention_years": 1}
        assert world.post("CO", f"{API}/evidence/export-templates", json=template).status_code == 201
    # -- issue 5 grow: quality
    for n in range(4):
        rule = {"rule_id": f"GDP-PAGED-0{n}", "layer": "gdp", "dataset": "paged", "field": f"f{n}",
                "check": "not_null", "on_fail": "alert"}  # fmt: skip
        assert world.post("SS", f"{API}/quality-rules", json=rule).status_code == 201
    from tests.support_contracts import gdp_contract, publish_contract, write_raw

    fields = {"invoice_id": "string", "amount_net": "decimal"}
    publish_contract(world, raw_contract("RAW-PAGED-INV", table="shop__invoices", fields=fields))
    mapping = "SELECT invoice_id, amount_net FROM raw.shop__invoices"
    gdp = gdp_contract(
        "GDP-PAGED-INV", based_on="RAW-PAGED-INV@1.0.0", table="invoice", fields=fields, mapping=mapping
    )
    publish_contract(world, gdp)
    nulls = [(f"INV-{n}", None) for n in range(5)]
    write_raw(world, "acme", "shop__invoices", "invoice_id VARCHAR, amount_net DECIMAL(38, 9)", nulls)
    quarantine = {
        "rule_id": "GDP-PAGED-AMT",
        "layer": "gdp",
        "dataset": "invoice",
        "field": "amount_net",
        "check": "not_null",
        "on_fail": "quarantine",
    }
    assert world.post("SS", f"{API}/quality-rules", json=quarantine).status_code == 201
    assert world.post("PA", f"{API}/quality-rules/GDP-PAGED-AMT/enable").status_code == 200
    builds = f"{API}/tenants/{world.tenants['acme']}/builds"
    built = world.post("acme:DE", builds, json={"schema_id": "GDP-PAGED-INV"})
    assert built.status_code == 200, built.text
    # -- issue 5 grow: guardrails
    for n in range(4):
        rail = {"guardrail_id": f"GR-PAGED-0{n}", "quota_per_day": 5}
        assert world.post("SA", f"{API}/guardrails", json=rail).status_code == 201
    # -- issue 5 grow: housekeeping
    from keel.scheduling import registry
    from keel.store.tables import housekeeping_runs

    acme = world.tenants["acme"]
    for n in range(4):
        policy = {"policy_id": f"RET-PAGED-0{n}", "scope": "raw", "retention_months": 12 + n,
                  "action_on_expiry": "delete"}  # fmt: skip
        assert world.post("PA", f"{API}/housekeeping/policies", json=policy).status_code == 201
        hold = {"layer": "raw", "reason": f"paging matter {n}"}
        assert world.post("SA", f"{API}/tenants/{acme}/legal-holds", json=hold).status_code == 201
        registry.register(f"paging.noop-{n}", 3600, lambda keel, now: None)  # harmless if it ever runs
    with world.keel.engine.begin() as conn:  # a run needs a data plane; its record is all paging reads
        for n in range(4):
            conn.execute(
                housekeeping_runs.insert().values(
                    id=f"HKR-20260101-PAGED00{n}", tenant_id=acme, kind="retention", policy_id="RET-PAGED-00",
                    policy_version=1, layer="raw", table_name="paged", status="SKIPPED", reason="paging",
                    rows_tiered=0, rows_deleted=0, files=[], attempts=0, trigger="manual", run_by="paging",
                    started_at=utcnow(), finished_at=utcnow(),
                )
            )  # fmt: skip
    # -- issue 5 grow: lineage
    from keel.store.tables import lineage_events

    with world.keel.engine.begin() as conn:
        for n in range(4):
            conn.execute(
                lineage_events.insert().values(
                    id=f"LIN-20260101-PAGED00{n}", tenant_id=world.tenants["acme"], run_id=f"run-{n}",
                    job="gdp.paged", event_type="START", layer="gdp", contract="GDP-PAGED@1.0.0",
                    table_name="gdp.paged__v1_0_0", event={}, columns=0, event_time=utcnow(),
                    created_at=utcnow(),
                )
            )  # fmt: skip
    # -- issue 5 grow: kpis
    from keel.store.tables import kpi_publications

    with world.keel.engine.begin() as conn:  # a publication needs a built KPI; its record is all paging reads
        for n in range(1, 5):
            conn.execute(
                kpi_publications.insert().values(
                    id=f"KPB-20260101-PAGED00{n}", tenant_id=world.tenants["acme"], kpi_id="KPI-PAGED",
                    number=n, version=f"{n}.0.0", status="PUBLISHED" if n == 4 else "SUPERSEDED",
                    pipeline_run_id=f"PLR-PAGED-{n}", build_table=f"kpi.kpi_paged__v{n}_0_0",
                    lineage_record_ids=[], dq_outcome={}, receipt_id=f"RCP-PAGED-{n}", published_by="paging",
                    published_at=utcnow(),
                )
            )  # fmt: skip


def test_walking_every_list_page_by_page_yields_each_item_once(world):
    _grow(world)

    for limit in (1, 2, 3):
        for template, (who, key, *query) in PAGED.items():
            path = template.format(tenant_id=world.tenants["acme"], dataset="invoice", kpi_id="KPI-PAGED")
            query = query[0] if query else {}
            everything = world.get(who, path, params={**query, "limit": 500}).json()
            assert everything["next_cursor"] is None
            expected = [item[key] for item in everything["items"]]
            assert len(expected) > limit, path

            pages = _walk(world, who, path, key, limit, query)

            walked = [item for page in pages for item in page]
            assert walked == expected, (limit, path)  # same order, no duplicates, nothing missed
            assert len(walked) == len(set(walked)), (limit, path)
            assert len(pages) == math.ceil(len(expected) / limit), (limit, path)  # no empty last page
            assert all(len(page) == limit for page in pages[:-1]), (limit, path)
    with world.keel.engine.connect() as conn:
        stored = sorted(conn.execute(sa.select(tenants.c.id)).scalars())
    assert [t for page in _walk(world, "PA", f"{API}/tenants", "tenant_id", 2) for t in page] == stored


def test_a_walk_keeps_its_place_while_items_are_added(world):
    _grow(world)
    first_page = world.get("PA", f"{API}/tenants", params={"limit": 2}).json()
    seen = [t["tenant_id"] for t in first_page["items"]]
    # Items added mid-walk land before or after the cursor; an offset-based walk would repeat one.
    for n in range(4):
        body = {"slug": f"late-{n}", "name": "Late", "admin_email": f"admin@late-{n}.test"}
        assert world.post("PA", f"{API}/tenants", json=body).status_code == 201
    cursor = first_page["next_cursor"]
    while cursor:
        page = world.get("PA", f"{API}/tenants", params={"limit": 2, "cursor": cursor}).json()
        seen += [t["tenant_id"] for t in page["items"]]
        cursor = page["next_cursor"]

    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
