"""Story 05: "logging gap → incident". Every pipeline run must have its evidence in the ledger.

A run through the API records its ``lineage.captured`` evidence with it, so the check finds
nothing missing. A run row without its evidence (written straight into the store: it stands in
for a code path that lost its events, which no API can be made to do) is a logging gap: the
check opens one ``evidence_gap`` incident for it, however often it runs, and the tenant's
``evidence_completeness_rate`` drops to the evidenced share.
"""

from __future__ import annotations

import sqlalchemy as sa
from tests.acceptance.test_pipeline_runs import FIRST, _land, _ok, _run
from tests.support_contracts import gdp_contract, kpi_contract, publish_contract, raw_contract

from keel.kernel.clock import utcnow
from keel.store.tables import incidents, metric_samples, pipeline_runs

API = "/api/v1"
CHECKS = f"{API}/evidence/completeness-checks"


def _shop(world) -> None:
    publish_contract(world, raw_contract())
    publish_contract(world, gdp_contract(mapping="SELECT order_id, amount, placed_at FROM raw.shop__orders"))
    publish_contract(world, kpi_contract())
    _land(world, FIRST)


def _gaps(world) -> list:
    return world.rows(sa.select(incidents.c.details).where(incidents.c.kind == "evidence_gap"))


def _rates(world, tenant: str) -> list[float]:
    rows = world.rows(
        sa.select(metric_samples.c.value)
        .where(metric_samples.c.name == "evidence_completeness_rate", metric_samples.c.tenant_id == tenant)
        .order_by(metric_samples.c.id)
    )
    return [float(r.value) for r in rows]


def test_runs_through_the_api_carry_their_evidence(world) -> None:
    _shop(world)
    _ok(_run(world), 201)
    acme = world.tenants["acme"]

    report = _ok(world.post("CO", CHECKS))

    assert report["tenants"][acme] == {"runs": 2, "evidence_completeness_rate": 1.0, "gaps": []}
    assert _gaps(world) == []
    assert _rates(world, acme) == [1.0]


def test_a_run_without_its_evidence_opens_one_incident_and_lowers_the_rate(world) -> None:
    _shop(world)
    _ok(_run(world), 201)
    acme = world.tenants["acme"]
    with world.keel.engine.begin() as conn:
        conn.execute(
            pipeline_runs.insert().values(
                id="PLR-20261207-NOEVIDNC", tenant_id=acme, layer="gdp", name="order",
                contract="GDP-ORDER@1.0.0", version="1.0.0", table_name="gdp.order__v1_0_0", inputs=[],
                rows=3, error_rows=0, dq_failures=0, duration_seconds=0.1, purpose="build", run_by="lost",
                started_at=utcnow(), finished_at=utcnow(),
            )
        )  # fmt: skip

    first = _ok(world.post("AU", CHECKS, params={"tenant_id": acme}))
    again = _ok(world.post("CO", CHECKS))

    assert first["tenants"][acme]["gaps"] == ["PLR-20261207-NOEVIDNC"]
    assert first["tenants"][acme]["evidence_completeness_rate"] == 2 / 3
    assert again["tenants"][acme]["gaps"] == ["PLR-20261207-NOEVIDNC"]
    (gap,) = _gaps(world)
    assert gap.details["pipeline_run_id"] == "PLR-20261207-NOEVIDNC"
    assert len([e for e in world.events("incident.opened") if e["payload"]["kind"] == "evidence_gap"]) == 1
    assert _rates(world, acme) == [2 / 3, 2 / 3]


def test_the_scheduler_runs_the_check_and_other_tenants_cannot_ask_about_acme(world) -> None:
    from keel.scheduling import registry
    from keel.scheduling.service import tick

    _shop(world)
    _ok(_run(world), 201)
    registry.load()

    (job,) = tick(world.keel, only="evidence.completeness")

    assert job["result"]["tenants"][world.tenants["acme"]]["evidence_completeness_rate"] == 1.0
    refused = world.post("globex:TA", CHECKS, params={"tenant_id": world.tenants["acme"]})
    assert refused.status_code in (403, 404)
