"""Story 01b: tenant infrastructure provisioning, through the REST API.

Tenant-only compute, storage and network (PA), checked by the Security Admin,
monitoring enabled, readiness confirmed to the Tenant Admin; over quota the
request is blocked and logged; a failed security check tears everything down.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from tests.support import World, served_world

from keel.store.tables import metric_samples, tenant_keys, tenants

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@pytest.fixture
def capped_world(settings):
    """A platform whose quota is two tenants; World.build provisions two (acme, globex)."""
    with served_world(settings.model_copy(update={"max_tenants": 2})) as world:
        yield world


def _provision(world: World, slug: str):
    body = {"slug": slug, "name": slug.title(), "admin_email": f"admin@{slug}.test"}
    return world.post("PA", "/api/v1/tenants", json=body)


def _metric(world: World, name: str) -> float:
    found = re.search(rf"^keel_{name} (\S+)$", world.client.get("/metrics").text, re.M)
    assert found, f"metric {name} is not exposed"
    return float(found.group(1))


# Given a tenant, when provisioned, then resources exist, SA-validated -----------------------
def test_provisioned_tenant_has_its_own_resources_validated_by_the_security_admin(world):
    tenant_id = _provision(world, "initech").json()["tenant_id"]
    provisioned = [e for e in world.events("infra.tenant.provisioned") if e["tenant_id"] == tenant_id]

    answer = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert answer.status_code == 200, answer.text
    receipt = answer.json()["infra_receipt"]
    assert ISO.match(receipt.pop("timestamp"))
    assert receipt == {
        "tenant_id": tenant_id,
        "compute": "provisioned",
        "storage": "provisioned",
        "network": "provisioned",
        "monitoring": "enabled",
        "storage_quota_mb": world.keel.settings.tenant_storage_quota_mb,
        "validated_by": world.actors["SA"].user_id,
        "status": "SUCCESS",
    }
    assert [(e["actor_id"], e["payload"]) for e in provisioned] == [
        (
            world.actors["PA"].user_id,
            {
                "compute": "provisioned",
                "storage": "provisioned",
                "network": "provisioned",
                "monitoring": "enabled",
                "storage_quota_mb": world.keel.settings.tenant_storage_quota_mb,
            },
        )
    ]
    validated = [e for e in world.events("infra.tenant.validated") if e["tenant_id"] == tenant_id]
    assert [(e["actor_id"], e["payload"]) for e in validated] == [
        (world.actors["SA"].user_id, {"status": "SUCCESS"})
    ]
    # The resources are really there: its own storage directory, readable only by Keel.
    directory = world.keel.settings.home / "tenants" / tenant_id
    assert directory.is_dir() and directory.stat().st_mode & 0o077 == 0
    assert _metric(world, "tenant_infra_success_rate") == 1.0


def test_readiness_is_confirmed_to_the_tenant_admin(world):
    tenant_id = world.tenants["acme"]

    answer = world.get("acme:TA", f"/api/v1/tenants/{tenant_id}")

    assert answer.status_code == 200
    view = answer.json()
    assert view["status"] == "ACTIVE"
    infra = [r for r in view["receipts"] if "compute" in r and r["status"] == "SUCCESS"]
    assert [(r["compute"], r["storage"], r["network"], r["monitoring"]) for r in infra] == [
        ("provisioned", "provisioned", "provisioned", "enabled")
    ]
    # Nothing of the other tenant is readiness the Tenant Admin can see.
    assert world.get("acme:TA", f"/api/v1/tenants/{world.tenants['globex']}").status_code == 403


# When over quota, then blocked, logged ------------------------------------------------------
def test_provisioning_over_the_tenant_quota_is_blocked_and_logged(capped_world):
    world = capped_world
    denied_before = _metric(world, "tenant_infra_success_rate")

    answer = _provision(world, "initech")

    assert answer.status_code == 429, answer.text
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert {k: problem[k] for k in ("code", "quota", "limit", "current", "status")} == {
        "code": "quota_exceeded",
        "quota": "max_tenants",
        "limit": 2,
        "current": 2,
        "status": 429,
    }
    blocked = world.events("tenant.provisioning.blocked")
    assert [(e["actor_id"], e["tenant_id"], e["payload"]) for e in blocked] == [
        (world.actors["PA"].user_id, None, {"slug": "initech", "quota": "max_tenants", "limit": 2})
    ]
    with world.keel.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tenants)).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(tenant_keys)).scalar() == 2
    assert sorted(p.name for p in (world.keel.settings.home / "tenants").iterdir()) == sorted(
        world.tenants.values()
    )
    assert _metric(world, "tenant_infra_success_rate") < denied_before


def test_a_tenant_torn_down_by_a_failed_check_holds_no_quota(capped_world):
    world = capped_world
    world.keel.settings = world.keel.settings.model_copy(update={"max_tenants": 3})
    tenant_id = _provision(world, "initech").json()["tenant_id"]
    (world.keel.settings.home / "tenants" / tenant_id / "data.duckdb").unlink()
    assert world.post("SA", f"/api/v1/tenants/{tenant_id}/validate").status_code == 409

    replacement = _provision(world, "hooli")
    over = _provision(world, "pied-piper")

    assert replacement.status_code == 201, replacement.text
    assert (over.status_code, over.json()["current"]) == (429, 3)


# When a security check fails, then tear down ----------------------------------------------------
def test_failed_security_check_tears_the_tenant_infrastructure_down(world):
    tenant_id = _provision(world, "initech").json()["tenant_id"]
    directory = world.keel.settings.home / "tenants" / tenant_id
    (directory / "data.duckdb").write_bytes(b"\0" * 4096)

    answer = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "blocked"
    assert answer.json()["checks"]["storage_dedicated"] is False
    assert not directory.exists()
    view = world.get("PA", f"/api/v1/tenants/{tenant_id}").json()
    assert (view["status"], view["data_key"], view["receipts"]) == ("ROLLED_BACK", "destroyed", [])
    torn = [e for e in world.events("infra.tenant.torn_down") if e["tenant_id"] == tenant_id]
    assert len(torn) == 1
    assert torn[0]["payload"]["crypto_shred"]["proven"] is True
    assert torn[0]["payload"]["access_revoked"]["users"] == 1
    assert [e for e in world.events("infra.tenant.validated") if e["tenant_id"] == tenant_id] == []
    assert _metric(world, "validation_failure_count") == 1.0
    assert _metric(world, "tenant_infra_success_rate") < 1.0
    # A rolled-back tenant cannot be validated into life again.
    assert world.post("SA", f"/api/v1/tenants/{tenant_id}/validate").status_code == 409


def test_monitoring_that_is_not_collecting_is_flagged_incomplete_without_blocking_the_tenant(world):
    tenant_id = _provision(world, "initech").json()["tenant_id"]
    # The tenant's monitoring registration is lost before the Security Admin validates.
    with world.keel.engine.begin() as conn:
        conn.execute(
            metric_samples.delete().where(
                metric_samples.c.name == "tenant_monitoring_enabled", metric_samples.c.tenant_id == tenant_id
            )
        )

    validated = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert validated.status_code == 200, validated.text
    assert validated.json()["status"] == "ACTIVE"
    assert {k: validated.json()["infra_receipt"][k] for k in ("monitoring", "status")} == {
        "monitoring": "incomplete",
        "status": "INCOMPLETE",
    }
    [flag] = [e for e in world.events("observability.incomplete") if e["tenant_id"] == tenant_id]
    assert flag["payload"] == {"part": "monitoring"}
    [event] = [e for e in world.events("infra.tenant.validated") if e["tenant_id"] == tenant_id]
    assert event["payload"] == {"status": "INCOMPLETE"}


def test_a_provisioned_tenant_is_monitored(world):
    tenant_id = _provision(world, "initech").json()["tenant_id"]

    receipt = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate").json()["infra_receipt"]

    assert (receipt["monitoring"], receipt["status"]) == ("enabled", "SUCCESS")
    assert world.events("observability.incomplete") == []
