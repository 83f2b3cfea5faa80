"""Story 00a, platform infrastructure deployment, through the REST API.

PA requests a deployment from a template, PO approves it, PA executes it, SA signs
off IAM and network. Refusals: template error → job refused or failed and logged;
IAM invalid → rolled back and logged; dependency missing → alert.
"""

from __future__ import annotations

import hashlib
import logging

import pytest
import sqlalchemy as sa
from tests.support import PROVIDER, World, make_user

from keel.identity.personas import Persona
from keel.store.tables import incidents, platform_keys, users

API = "/api/v1/platform/deployments"
PROBLEM = "application/problem+json"
DEFAULT_ROLES = ["PO", "PA", "SA", "CO", "AU"]


def provider_world(keel, client) -> World:
    """Every provider persona with a token; nothing deployed yet."""
    return World.build(keel, client, deploy=False, baseline=False)


def request(world: World, template: dict | None = None) -> str:
    body = {"template": template} if template is not None else {}
    response = world.post("PA", API, json=body)
    assert response.status_code == 201, response.text
    return response.json()["deployment_id"]


def approved(world: World, template: dict | None = None) -> str:
    dep_id = request(world, template)
    assert world.post("PO", f"{API}/{dep_id}/approve").status_code == 200
    return dep_id


def deployed(world: World, template: dict | None = None) -> str:
    dep_id = approved(world, template)
    response = world.post("PA", f"{API}/{dep_id}/execute")
    assert response.status_code == 200, response.text
    return dep_id


def metric(client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"keel_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"metric keel_{name} is not exposed")


def signing_keys(world: World) -> int:
    return world.scalar(sa.select(sa.func.count()).select_from(platform_keys))


def payloads(world: World, event_type: str) -> list[dict]:
    return [e["payload"] for e in world.events(event_type)]


# -- Given valid templates, when deployed, then planes up, success receipt ------------------------


def test_a_valid_template_deployed_after_approval_and_sign_off_brings_every_plane_up_with_a_receipt(
    keel, client
):
    world = provider_world(keel, client)
    pa, po, sa_ = (world.actors[p].user_id for p in ("PA", "PO", "SA"))
    assert client.get("/healthz").json()["components"]["platform"] == {"status": "not_deployed"}

    dep_id = request(world)
    assert world.get("PA", f"{API}/{dep_id}").json()["status"] == "REQUESTED"
    assert world.post("PO", f"{API}/{dep_id}/approve").json()["status"] == "APPROVED"
    executed = world.post("PA", f"{API}/{dep_id}/execute").json()
    assert executed["status"] == "DEPLOYED"
    assert {part: state["status"] for part, state in executed["parts"].items()} == {
        "control_plane": "provisioned",
        "data_plane": "provisioned",
        "shared_services": "provisioned",
    }
    assert executed["parts"]["data_plane"]["root"] == "created"
    assert executed["parts"]["shared_services"]["evidence_signing_key"] == "created"
    assert executed["receipt"] is None  # no receipt before the Security Admin signs off

    validated = world.post("SA", f"{API}/{dep_id}/validate")
    assert validated.status_code == 200, validated.text
    body = validated.json()
    assert body["status"] == "VALIDATED"
    assert (body["requested_by"], body["approved_by"], body["deployed_by"], body["validated_by"]) == (
        pa,
        po,
        pa,
        sa_,
    )
    receipt = body["receipt"]
    assert receipt == {
        "deployment_id": dep_id,
        "control_plane": "provisioned",
        "data_plane": "provisioned",
        "shared_services": "provisioned",
        "validated_by": sa_,
        "approved_by": po,
        "deployed_by": pa,
        "status": "SUCCESS",
        "timestamp": receipt["timestamp"],
    }
    assert dep_id.startswith("DEP-")

    # Planes up: the data plane root exists, the evidence key is published, health says so.
    assert keel.dataplanes.root.is_dir()
    assert client.get("/api/v1/evidence/public-key").json()["algorithm"] == "Ed25519"
    assert client.get("/healthz").json()["components"] == {
        "control_plane": {"status": "ok", "dialect": keel.engine.dialect.name},
        "platform": {"status": "ok"},
        "data_plane": {"status": "ok", "engine": "duckdb"},
        "evidence": {"status": "ok"},
    }

    # Audit events, linked to their actors.
    assert [(e["type"], e["actor_id"]) for e in world.events() if e["type"].startswith("infra.")] == [
        ("infra.deployment.requested", pa),
        ("infra.deployment.approved", po),
        ("infra.deployed", pa),
        ("infra.validated", sa_),
    ]
    assert payloads(world, "infra.validated") == [
        {"deployment_id": dep_id, "checks": {"iam": "PASS", "network": "loopback", "signing_key": True}}
    ]
    assert payloads(world, "infra.deployed")[0]["parts"] == executed["parts"]

    # Metrics, and an intact ledger as the Auditor sees it.
    assert (metric(client, "deployment_success_rate"), metric(client, "rollback_count")) == (1.0, 0.0)
    verified = world.get("AU", "/api/v1/evidence/verify").json()
    assert verified["ok"] is True, verified


def test_deployments_are_listed_page_by_page_to_everyone_who_reads_the_platform(keel, client):
    world = provider_world(keel, client)
    ids = sorted(request(world) for _ in range(3))
    first = world.get("AU", API, params={"limit": 2}).json()
    assert [d["deployment_id"] for d in first["items"]] == ids[:2]
    assert first["next_cursor"]
    second = world.get("AU", API, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert second == {"items": second["items"], "next_cursor": None}
    assert [d["deployment_id"] for d in second["items"]] == ids[2:]


# -- Only PA deploys, only after PO approval; SoD -----------------------------------------------


def test_only_the_platform_admin_may_request_a_deployment(keel, client):
    world = provider_world(keel, client)
    others = [p.value for p in PROVIDER if p is not Persona.PA]
    for who in others:
        response = world.post(who, API, json={})
        assert response.status_code == 403, who
        assert response.headers["content-type"] == PROBLEM
        assert response.json() == {
            "type": "https://keel.dev/problems/permission_denied",
            "title": "Permission denied",
            "status": 403,
            "detail": "'platform:Deploy' requires platform:M",
            "instance": API,
            "code": "permission_denied",
            "reason": "not_permitted",
            "action": "platform:Deploy",
        }
    denied = world.events("authz.denied")
    assert [e["actor_id"] for e in denied] == [world.actors[who].user_id for who in others]
    assert {(e["payload"]["action"], e["payload"]["reason"]) for e in denied} == {
        ("platform:Deploy", "not_permitted")
    }
    assert world.get("PA", API).json()["items"] == []  # nothing was persisted
    assert world.events("infra.deployment.requested") == []


def test_tenant_personas_can_neither_request_nor_execute_a_deployment(world):
    dep_id = approved(world)
    for who in ("acme:TA", "acme:TP", "globex:BO"):
        for path in (API, f"{API}/{dep_id}/execute"):
            response = world.post(who, path, json={})
            assert response.status_code == 403, (who, path)
            assert {k: response.json()[k] for k in ("code", "reason", "rule", "action")} == {
                "code": "permission_denied",
                "reason": "forbidden_by_policy",
                "rule": "deny-tenant-platform-change",
                "action": "platform:Deploy",
            }
    assert world.get("PA", f"{API}/{dep_id}").json()["status"] == "APPROVED"


def test_only_the_platform_admin_may_execute_an_approved_deployment(keel, client):
    world = provider_world(keel, client)
    dep_id = approved(world)
    for who in (p.value for p in PROVIDER if p is not Persona.PA):
        response = world.post(who, f"{API}/{dep_id}/execute")
        assert response.status_code == 403, who
        # The approver is stopped by separation of duties before the missing permit is even asked.
        expected = (
            ("forbidden_by_policy", "sod-deploy-own-change") if who == "PO" else ("not_permitted", None)
        )
        assert (response.json()["reason"], response.json().get("rule")) == expected, who
        assert response.json()["action"] == "platform:Deploy"
    assert world.get("PA", f"{API}/{dep_id}").json()["status"] == "APPROVED"
    assert not keel.dataplanes.root.exists()
    assert world.post("PA", f"{API}/{dep_id}/execute").json()["status"] == "DEPLOYED"


def test_executing_before_platform_owner_approval_is_blocked_and_provisions_nothing(keel, client):
    world = provider_world(keel, client)
    dep_id = request(world)
    response = world.post("PA", f"{API}/{dep_id}/execute")
    assert response.status_code == 409
    assert response.json() == {
        "type": "https://keel.dev/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "deployment is REQUESTED, expected APPROVED",
        "instance": f"{API}/{dep_id}/execute",
        "code": "conflict",
        "deployment_id": dep_id,
        "deployment_status": "REQUESTED",
    }
    assert not keel.dataplanes.root.exists()
    assert signing_keys(world) == 0
    assert world.events("infra.deployed") == []


def test_only_the_platform_owner_approves_and_never_a_request_of_their_own(keel, client):
    world = provider_world(keel, client)
    for who in ("PA", "SA", "CO"):
        dep_id = request(world)
        response = world.post(who, f"{API}/{dep_id}/approve")
        assert response.status_code == 403, who
        assert response.json()["action"] == "platform:ApproveDeployment"

    # One person holding both PA and PO still cannot approve what they requested.
    world.add("PA+PO", make_user(keel, Persona.PA, also=(Persona.PO,)))
    own = world.post("PA+PO", API, json={}).json()["deployment_id"]
    response = world.post("PA+PO", f"{API}/{own}/approve")
    assert response.status_code == 403
    assert {k: response.json()[k] for k in ("reason", "rule", "action", "detail")} == {
        "reason": "forbidden_by_policy",
        "rule": "sod-approve-own-draft",
        "action": "platform:ApproveDeployment",
        "detail": "'platform:ApproveDeployment' is forbidden by rule 'sod-approve-own-draft'",
    }
    assert world.events("authz.denied")[-1]["payload"] == {
        "action": "platform:ApproveDeployment",
        "reason": "forbidden_by_policy",
        "rule": "sod-approve-own-draft",
        "resource_type": "deployment",
    }
    assert world.post("PO", f"{API}/{own}/approve").json()["approved_by"] == world.actors["PO"].user_id


def test_only_the_security_admin_signs_off_a_deployment(keel, client):
    world = provider_world(keel, client)
    dep_id = deployed(world)
    for who in ("PA", "PO", "CO", "SRE"):
        response = world.post(who, f"{API}/{dep_id}/validate")
        assert response.status_code == 403, who
        assert response.json()["action"] == "platform:ValidateDeployment"
        response = world.post(who, f"{API}/{dep_id}/reject", json={"reason": "no"})
        assert response.status_code == 403, who
    assert world.get("PA", f"{API}/{dep_id}").json()["status"] == "DEPLOYED"


# -- Template error → fail job, log -------------------------------------------------------------

BAD_TEMPLATES = [
    ({"version": "1"}, "template.name", "Field required"),
    ({"name": "x", "version": "1", "iam": {"network": "internet"}}, "template.iam.network", None),
    ({"name": "x", "version": "1", "data_plane": {"engin": "duckdb"}}, "template.data_plane.engin", None),
    (
        {"name": "x", "version": "1", "iam": {"required_roles": ["PA", "TA"]}},
        "template.iam.required_roles",
        "'TA' is not a provider role",
    ),
]


@pytest.mark.parametrize(("template", "field", "message"), BAD_TEMPLATES)
def test_a_template_error_is_refused_naming_the_field_and_nothing_is_persisted(
    keel, client, caplog, template, field, message
):
    world = provider_world(keel, client)
    with caplog.at_level(logging.WARNING, logger="keel.platform"):
        response = world.post("PA", API, json={"template": template})
    assert response.status_code == 422
    body = response.json()
    assert (body["code"], body["field"], body["instance"]) == ("invalid_input", field, API)
    assert body["detail"].startswith(f"{field}: ")
    if message:
        assert body["detail"] == f"{field}: {message}"
    assert world.get("PA", API).json()["items"] == []
    assert world.events("infra.deployment.requested") == []
    rejected = world.events("infra.template.rejected")
    assert [(e["actor_id"], e["payload"]) for e in rejected] == [
        (world.actors["PA"].user_id, {"field": field})
    ]
    assert [r.getMessage() for r in caplog.records] == [f"deployment template refused: {body['detail']}"]


def test_a_template_refused_to_a_caller_without_the_right_reveals_nothing_about_it(keel, client):
    world = provider_world(keel, client)
    response = world.post("SRE", API, json={"template": {"version": "1"}})
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert world.events("infra.template.rejected") == []


def test_a_template_naming_another_control_plane_store_fails_the_job_and_logs_it(keel, client, caplog):
    world = provider_world(keel, client)
    other = "postgresql" if keel.engine.dialect.name == "sqlite" else "embedded"
    dep_id = approved(world, {"name": "x", "version": "1", "control_plane": {"store": other}})
    with caplog.at_level(logging.WARNING, logger="keel.platform"):
        response = world.post("PA", f"{API}/{dep_id}/execute")
    assert response.status_code == 422
    body = response.json()
    assert {k: body[k] for k in ("code", "field", "deployment_id", "deployment_status")} == {
        "code": "invalid_input",
        "field": "template.control_plane.store",
        "deployment_id": dep_id,
        "deployment_status": "FAILED",
    }
    view = world.get("PA", f"{API}/{dep_id}").json()
    assert (view["status"], view["failure"]) == ("FAILED", body["detail"])
    assert view["parts"] == {p: {"status": "not_provisioned"} for p in view["parts"]}
    assert payloads(world, "infra.deployment.failed") == [
        {"deployment_id": dep_id, "field": "template.control_plane.store"}
    ]
    assert f"deployment {dep_id} failed" in caplog.text
    assert not keel.dataplanes.root.exists()
    assert signing_keys(world) == 0
    assert metric(client, "deployment_success_rate") == 0.0
    # A failed job stays failed: running it again is a conflict.
    assert world.post("PA", f"{API}/{dep_id}/execute").status_code == 409


# -- Given a deploy, when IAM fails, then roll back, log ------------------------------------------


def test_when_iam_validation_fails_the_deployment_rolls_back_everything_it_created(keel, client, caplog):
    # Every required persona but SRE has an active user: SRE is the IAM gap.
    world = World(keel, client)
    for persona in (Persona.PA, Persona.PO, Persona.SA, Persona.CO, Persona.AU):
        world.add(persona.value, make_user(keel, persona))
    template = {"name": "with-sre", "version": "2", "iam": {"required_roles": [*DEFAULT_ROLES, "SRE"]}}
    dep_id = approved(world, template)

    with caplog.at_level(logging.WARNING, logger="keel.platform"):
        response = world.post("PA", f"{API}/{dep_id}/execute")
    assert response.status_code == 409
    assert response.json() == {
        "type": "https://keel.dev/problems/iam_invalid",
        "title": "IAM validation failed",
        "status": 409,
        "detail": "IAM validation failed, deployment rolled back: no active user holds the required role SRE",
        "instance": f"{API}/{dep_id}/execute",
        "code": "iam_invalid",
        "role": "SRE",
        "deployment_id": dep_id,
        "deployment_status": "ROLLED_BACK",
    }
    view = world.get("PA", f"{API}/{dep_id}").json()
    assert (view["status"], view["failure"]) == ("ROLLED_BACK", "no active user holds the required role SRE")
    assert view["parts"] == {p: {"status": "rolled_back"} for p in view["parts"]}
    # What execution created is gone: the data-plane root and the evidence signing key.
    assert not keel.dataplanes.root.exists()
    assert signing_keys(world) == 0
    assert client.get("/api/v1/evidence/public-key").status_code == 409
    assert client.get("/healthz").json()["components"]["evidence"] == {"status": "no_signing_key"}
    # Logged: the rollback is evidenced and counted, and nothing claims the deploy happened.
    assert world.events("infra.deployed") == []
    assert payloads(world, "infra.rolled_back") == [
        {
            "deployment_id": dep_id,
            "reason": "no active user holds the required role SRE",
            "removed": [],
            "retained": [],
        }
    ]
    assert f"deployment {dep_id} rolled back" in caplog.text
    assert (metric(client, "rollback_count"), metric(client, "deployment_success_rate")) == (1.0, 0.0)

    # Recovery: once someone holds the role, a new deployment goes through.
    world.add("SRE", make_user(keel, Persona.SRE))
    again = deployed(world, template)
    assert world.post("SA", f"{API}/{again}/validate").json()["receipt"]["status"] == "SUCCESS"
    assert world.post("PA", f"{API}/{dep_id}/execute").status_code == 409  # the rolled-back one stays so


def test_when_iam_breaks_before_the_security_admin_signs_off_the_deployment_rolls_back(keel, client):
    world = provider_world(keel, client)
    template = {"name": "with-sre", "version": "2", "iam": {"required_roles": [*DEFAULT_ROLES, "SRE"]}}
    dep_id = deployed(world, template)
    # The only SRE account is disabled in between (no route disables users yet: done in the store).
    with keel.engine.begin() as conn:
        conn.execute(
            users.update().where(users.c.id == world.actors["SRE"].user_id).values(status="DISABLED")
        )

    response = world.post("SA", f"{API}/{dep_id}/validate")
    assert response.status_code == 409
    assert {k: response.json()[k] for k in ("code", "role", "deployment_status")} == {
        "code": "iam_invalid",
        "role": "SRE",
        "deployment_status": "ROLLED_BACK",
    }
    view = world.get("PA", f"{API}/{dep_id}").json()
    assert (view["status"], view["receipt"], view["validated_by"]) == ("ROLLED_BACK", None, None)
    assert not keel.dataplanes.root.exists()
    assert payloads(world, "infra.rolled_back") == [
        {
            "deployment_id": dep_id,
            "reason": "no active user holds the required role SRE",
            "removed": ["data_plane.root"],
            "retained": ["shared_services.evidence_signing_key"],
        }
    ]
    assert world.events("infra.validated") == []
    assert metric(client, "rollback_count") == 1.0


def test_a_security_admin_rejection_rolls_back_and_the_ledger_stays_verifiable(keel, client):
    world = provider_world(keel, client)
    dep_id = deployed(world)
    assert world.post("SA", f"{API}/{dep_id}/reject", json={"reason": " "}).status_code == 422

    response = world.post("SA", f"{API}/{dep_id}/reject", json={"reason": "network is not private"})
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["status"], view["failure"], view["receipt"]) == (
        "ROLLED_BACK",
        "rejected by the Security Admin: network is not private",
        None,
    )
    assert {p: s["status"] for p, s in view["parts"].items()} == {
        "control_plane": "rolled_back",
        "data_plane": "rolled_back",
        "shared_services": "rolled_back",
    }
    assert not keel.dataplanes.root.exists()
    # The signing key stays: tree heads it signed are in the append-only ledger.
    assert payloads(world, "infra.rolled_back") == [
        {
            "deployment_id": dep_id,
            "reason": "rejected by the Security Admin",
            # The Security Admin's own words enter the append-only ledger only as a hash.
            "note_sha256": "sha256:" + hashlib.sha256(b"network is not private").hexdigest(),
            "removed": ["data_plane.root"],
            "retained": ["shared_services.evidence_signing_key"],
        }
    ]
    assert world.post("SA", f"{API}/{dep_id}/validate").status_code == 409
    assert (metric(client, "rollback_count"), metric(client, "deployment_success_rate")) == (1.0, 0.0)

    # A new deployment reuses the key, and every signed tree head still verifies.
    again = deployed(world)
    assert world.get("PA", f"{API}/{again}").json()["parts"]["shared_services"]["evidence_signing_key"] == (
        "existing"
    )
    assert world.post("SA", f"{API}/{again}/validate").json()["status"] == "VALIDATED"
    verified = world.get("AU", "/api/v1/evidence/verify").json()
    assert verified["ok"] is True, verified
    assert metric(client, "deployment_success_rate") == 0.5


# -- Dependency missing → alert -------------------------------------------------------------------


def test_a_missing_dependency_fires_an_alert_creates_nothing_and_can_be_retried(keel, client, caplog):
    world = provider_world(keel, client)
    dep_id = approved(world)
    root = keel.dataplanes.root
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("not a directory")  # the data-plane root cannot be created

    with caplog.at_level(logging.ERROR, logger="keel.platform"):
        response = world.post("PA", f"{API}/{dep_id}/execute")
    assert response.status_code == 409
    body = response.json()
    incident_id = body["incident_id"]
    assert body == {
        "type": "https://keel.dev/problems/dependency_missing",
        "title": "Deployment dependency missing",
        "status": 409,
        "detail": f"dependency data_plane.root is missing: {root} is not a directory",
        "instance": f"{API}/{dep_id}/execute",
        "code": "dependency_missing",
        "dependency": "data_plane.root",
        "deployment_id": dep_id,
        "incident_id": incident_id,
    }
    with keel.engine.connect() as conn:
        incident = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()
    assert (incident.kind, incident.status, incident.severity, incident.tenant_id) == (
        "dependency.missing",
        "OPEN",
        "SEV2",
        None,
    )
    assert incident.details == {"deployment_id": dep_id, "dependency": "data_plane.root"}
    alert = {"incident_id": incident_id, "kind": "dependency.missing", "severity": "SEV2"}
    assert payloads(world, "alert.fired") == [alert]
    assert payloads(world, "incident.opened") == [alert]
    assert incident_id in caplog.text
    assert metric(client, "incident_count") == 1.0

    # Nothing was created, and the approved deployment waits for the fix.
    view = world.get("PA", f"{API}/{dep_id}").json()
    assert (view["status"], view["failure"]) == ("APPROVED", body["detail"])
    assert signing_keys(world) == 0
    assert root.is_file()
    assert world.events("infra.deployed") == []

    root.unlink()
    retried = world.post("PA", f"{API}/{dep_id}/execute").json()
    assert (retried["status"], retried["failure"]) == ("DEPLOYED", None)
    assert root.is_dir()


def test_one_person_holding_two_personas_can_neither_execute_what_they_approved_nor_sign_off_their_deploy(
    keel, client
):
    """Separation of duties holds for a user given two personas: approver ≠ executor ≠ validator."""
    world = provider_world(keel, client)
    world.add("PA+PO", make_user(keel, Persona.PA, also=(Persona.PO,)))
    world.add("PA+SA", make_user(keel, Persona.PA, also=(Persona.SA,)))
    dep_id = world.post("PA", API, json={}).json()["deployment_id"]
    assert world.post("PA+PO", f"{API}/{dep_id}/approve").status_code == 200
    denied = world.post("PA+PO", f"{API}/{dep_id}/execute")
    assert (denied.status_code, denied.json()["rule"]) == (403, "sod-deploy-own-change")
    assert world.post("PA+SA", f"{API}/{dep_id}/execute").json()["status"] == "DEPLOYED"
    denied = world.post("PA+SA", f"{API}/{dep_id}/validate")
    assert (denied.status_code, denied.json()["rule"]) == (403, "sod-approve-own-draft")
    assert world.post("SA", f"{API}/{dep_id}/validate").json()["status"] == "VALIDATED"
