"""Story 01, step 6: the Compliance Officer reviews the provisioning receipts; compliance fails → block."""

from __future__ import annotations

from keel.identity.personas import Persona

API = "/api/v1/tenants"


def _review(world, approve: bool, findings: list[str] | None = None, who: str = "CO", slug: str = "acme"):
    body = {"approve": approve, "findings": findings or []}
    return world.post(who, f"{API}/{world.tenants[slug]}/compliance-review", json=body)


def test_a_passing_review_names_the_receipts_it_reviewed_and_keeps_the_tenant_active(world):
    tenant_id = world.tenants["acme"]
    provisioning = world.get("CO", "/api/v1/evidence/receipts", params={"subject_id": tenant_id}).json()[
        "items"
    ]

    answer = _review(world, True)

    assert answer.status_code == 200, answer.text
    review = answer.json()["review"]
    assert review | {"timestamp": None, "receipts_reviewed": sorted(review["receipts_reviewed"])} == {
        "tenant_id": tenant_id,
        "receipts_reviewed": sorted(r["receipt_id"] for r in provisioning),
        "compliance_check": "PASS",
        "findings": [],
        "reviewed_by": world.actors["CO"].user_id,
        "status": "ACTIVE",
        "timestamp": None,
    }
    assert {r["kind"] for r in provisioning} == {"tenant.provisioning", "tenant.infrastructure"}
    assert answer.json()["status"] == "ACTIVE"
    [event] = [e for e in world.events("tenant.compliance.reviewed") if e["tenant_id"] == tenant_id]
    assert event["payload"] == {"compliance_check": "PASS", "findings": 0, "status": "ACTIVE"}
    assert world.get("acme:AN", "/api/v1/me").status_code == 200


def test_a_failed_review_blocks_the_tenant_until_a_later_review_passes(world):
    tenant_id = world.tenants["acme"]

    blocked = _review(world, False, ["network isolation evidence is missing"])

    assert (blocked.status_code, blocked.json()["status"]) == (200, "BLOCKED")
    assert blocked.json()["review"]["compliance_check"] == "FAIL"
    refused = world.get("acme:TA", "/api/v1/me")
    assert (refused.status_code, refused.json()["detail"]) == (401, "the account's tenant is not active")
    assert [e["type"] for e in world.events() if e["tenant_id"] == tenant_id][-2:] == [
        "tenant.compliance.reviewed",
        "tenant.blocked",
    ]
    assert world.get("globex:TA", "/api/v1/me").status_code == 200  # the other tenant is untouched

    unblocked = _review(world, True)

    assert unblocked.json()["status"] == "ACTIVE"
    assert world.get("acme:TA", "/api/v1/me").status_code == 200
    assert world.events("tenant.unblocked")[-1]["tenant_id"] == tenant_id


def test_a_review_is_the_compliance_officers_alone(world):
    for who in [p.value for p in Persona if p.is_provider and p is not Persona.CO] + ["acme:TA", "acme:TP"]:
        answer = _review(world, False, ["no"], who=who)
        assert answer.status_code == 403, who
    assert world.get("PA", f"{API}/{world.tenants['acme']}").json()["status"] == "ACTIVE"


def test_a_review_must_be_consistent_with_its_findings(world):
    failed_without_findings = _review(world, False)
    approved_with_findings = _review(world, True, ["something"])
    empty_finding = _review(world, False, ["  "])

    assert [
        (a.status_code, a.json()["field"]) for a in (failed_without_findings, approved_with_findings)
    ] == [
        (422, "findings"),
        (422, "findings"),
    ]
    assert empty_finding.status_code == 422
    assert world.events("tenant.compliance.reviewed") == []
