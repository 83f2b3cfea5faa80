"""Story 01c, step 6: the Auditor checks a decommissioning's policy adherence; retention breach → incident."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from keel.identity.personas import Persona
from keel.store.tables import archives, incidents

API = "/api/v1/tenants"


def _decommission(world, slug: str = "globex") -> str:
    tenant_id = world.tenants[slug]
    request_id = world.post("PA", f"{API}/{tenant_id}/offboarding-requests", json={"reason": "ended"}).json()[
        "request_id"
    ]
    assert (
        world.post(
            "PO", f"{API}/offboarding-requests/{request_id}/decision", json={"approve": True}
        ).status_code
        == 200
    )
    assert world.post("CO", f"{API}/{tenant_id}/evidence-archives").status_code == 201
    assert (
        world.post("PA", f"{API}/{tenant_id}/decommission", json={"request_id": request_id}).status_code
        == 200
    )
    assert world.post("SA", f"{API}/{tenant_id}/wipe-validation").status_code == 200
    return tenant_id


def test_an_adherent_decommissioning_passes_the_audit(world):
    tenant_id = _decommission(world)

    answer = world.post("AU", f"{API}/{tenant_id}/decommission-audit")

    assert answer.status_code == 200, answer.text
    assert answer.json() | {"timestamp": None} == {
        "tenant_id": tenant_id,
        "checks": {
            "receipt_complete": True,
            "archive_retained": True,
            "archive_verifies_offline": True,
            "storage_deleted": True,
            "key_shredded": True,
            "steps_evidenced": True,
        },
        "findings": [],
        "policy_adherence": "PASS",
        "audited_by": world.actors["AU"].user_id,
        "timestamp": None,
    }
    [event] = world.events("tenant.decommission.audited")
    assert (event["tenant_id"], event["payload"]) == (tenant_id, {"policy_adherence": "PASS", "findings": 0})
    kinds = [
        r["kind"]
        for r in world.get("AU", "/api/v1/evidence/receipts", params={"subject_id": tenant_id}).json()[
            "items"
        ]
    ]
    assert "tenant.decommission_audit" in kinds


def test_an_archive_altered_after_decommissioning_is_a_retention_breach_with_an_incident(world):
    tenant_id = _decommission(world)
    path = Path(world.scalar(sa.select(archives.c.path).where(archives.c.tenant_id == tenant_id)))
    path.write_bytes(path.read_bytes().replace(b'"entries"', b'"entries" ', 1))

    answer = world.post("AU", f"{API}/{tenant_id}/decommission-audit").json()

    assert answer["policy_adherence"] == "FAIL"
    assert answer["checks"]["archive_retained"] is False
    assert answer["findings"] == [
        "the evidence archive is missing or no longer matches its recorded hash",
        "the evidence archive does not verify with the platform's public key",
    ]
    assert world.scalar(sa.select(incidents.c.kind).where(incidents.c.id == answer["incident_id"])) == (
        "retention.breach"
    )
    assert [e["payload"]["kind"] for e in world.events("incident.opened") if e["tenant_id"] == tenant_id] == [
        "retention.breach"
    ]


def test_a_deleted_archive_is_a_retention_breach_too(world):
    tenant_id = _decommission(world)
    Path(world.scalar(sa.select(archives.c.path).where(archives.c.tenant_id == tenant_id))).unlink()

    answer = world.post("AU", f"{API}/{tenant_id}/decommission-audit").json()

    assert (answer["policy_adherence"], answer["checks"]["archive_retained"]) == ("FAIL", False)
    assert "incident_id" in answer


def test_only_the_auditor_audits_and_only_a_decommissioned_tenant(world):
    tenant_id = _decommission(world)
    for who in [p.value for p in Persona if p.is_provider and p is not Persona.AU] + ["acme:TA"]:
        assert world.post(who, f"{API}/{tenant_id}/decommission-audit").status_code == 403, who
    active = world.post("AU", f"{API}/{world.tenants['acme']}/decommission-audit")
    assert (active.status_code, active.json()["code"]) == (409, "conflict")
    assert world.events("tenant.decommission.audited") == []
