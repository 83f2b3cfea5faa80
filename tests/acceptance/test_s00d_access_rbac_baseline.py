"""Story 00d, access and RBAC baseline, through the REST API.

SA defines roles, PA applies them to both planes, CO reviews, AU verifies the
assignment logs. Refusals: role conflict → application fails; missing right →
action denied; excess right → flagged, rejected, logged.
"""

from __future__ import annotations

import copy
import hashlib

from tests.support import PROVIDER, World, make_user

from keel.authz.bundles import baseline_bundle
from keel.identity.personas import Persona

API = "/api/v1/rbac"
DEPLOYMENTS = "/api/v1/platform/deployments"


def deployed_world(keel, client) -> World:
    """A deployed platform, no RBAC bundle yet, no tenants."""
    return World.build(keel, client, baseline=False, tenant_slugs=())


def baseline_world(keel, client) -> World:
    """A deployed platform with the reviewed RBAC baseline in force, no tenants."""
    return World.build(keel, client, tenant_slugs=())


def define(world: World, bundle: dict | None = None, who: str = "SA"):
    return world.post(who, f"{API}/bundles", json={"bundle": bundle} if bundle is not None else {})


def in_force(world: World) -> str:
    return world.get("AU", f"{API}/policy").json()["bundle_id"]


def metric(client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"keel_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"metric keel_{name} is not exposed")


def payloads(world: World, event_type: str) -> list[dict]:
    return [e["payload"] for e in world.events(event_type)]


def baseline_document(world: World) -> dict:
    bundles = world.get("SA", f"{API}/bundles").json()["items"]
    return copy.deepcopy(next(b for b in bundles if b["name"] == "baseline")["document"])


def without(document: dict, role: str, permission: str, name: str = "least-privilege") -> dict:
    """``document`` renamed, with ``permission`` taken from ``role``."""
    changed = copy.deepcopy(document)
    changed["name"] = name
    for entry in changed["roles"]:
        if entry["role"] == role:
            assert permission in entry["permissions"], "the test removes a permission the role holds"
            entry["permissions"] = [p for p in entry["permissions"] if p != permission]
    return changed


# -- Given defined roles, when applied, then enforced and review passes --------------------------------


def test_roles_defined_by_sa_applied_by_pa_and_reviewed_by_co_are_in_force_with_a_pass_receipt(keel, client):
    world = deployed_world(keel, client)
    sa_, pa, co = (world.actors[p].user_id for p in ("SA", "PA", "CO"))
    assert in_force(world) == "baseline"  # the generated matrix, before any bundle

    defined = define(world)
    assert defined.status_code == 201, defined.text
    bundle = defined.json()
    bundle_id = bundle["bundle_id"]
    assert (bundle["name"], bundle["version"], bundle["status"], bundle["defined_by"]) == (
        "baseline",
        1,
        "DEFINED",
        sa_,
    )
    assert in_force(world) == "baseline"  # defining changes nothing yet

    applied = world.post("PA", f"{API}/bundles/{bundle_id}/apply")
    assert applied.status_code == 200, applied.text
    assert (applied.json()["status"], applied.json()["applied_by"]) == ("APPLIED", pa)
    assert in_force(world) == bundle_id

    reviewed = world.post("CO", f"{API}/bundles/{bundle_id}/review", json={"approve": True})
    assert reviewed.status_code == 200, reviewed.text
    body = reviewed.json()
    assert body["status"] == "REVIEWED"
    roles = {r["role"]: sorted(r["permissions"]) for r in bundle["document"]["roles"]}
    receipt = body["receipt"]
    assert receipt == {
        "bundle_id": bundle_id,
        "roles": [{"role": role, "permissions": perms} for role, perms in roles.items()],
        "defined_by": sa_,
        "applied_by": pa,
        "reviewed_by": co,
        "compliance_check": "PASS",
        "findings": [],
        "restored_bundle_id": None,
        "timestamp": receipt["timestamp"],
    }
    # The 00d artifact: the Tenant Admin role, its permissions, who applied it, PASS.
    assert {"role": "TA", "permissions": roles["TA"]} in receipt["roles"]
    assert {"connector:Configure", "tenant:ManageMembers"} <= set(roles["TA"])
    assert in_force(world) == bundle_id

    assert [(e["type"], e["actor_id"]) for e in world.events() if e["type"].startswith("rbac.")] == [
        ("rbac.defined", sa_),
        ("rbac.applied", pa),
        ("rbac.reviewed", co),
    ]
    assert payloads(world, "rbac.applied") == [
        {"bundle_id": bundle_id, "control_plane": "applied", "data_plane": "applied"}
    ]
    assert payloads(world, "rbac.reviewed") == [
        {"bundle_id": bundle_id, "compliance_check": "PASS", "findings": [], "restored": None}
    ]
    assert metric(client, "policy_application_success_rate") == 1.0
    assert "permit-TA" in world.get("AU", f"{API}/policy").json()["policies"]


def test_a_permission_removed_by_an_applied_bundle_is_denied_from_then_on(keel, client):
    world = baseline_world(keel, client)
    assert world.get("CO", DEPLOYMENTS).status_code == 200
    narrowed = define(world, without(baseline_document(world), "CO", "platform:Read")).json()
    assert world.get("CO", DEPLOYMENTS).status_code == 200  # defined, not yet applied

    assert world.post("PA", f"{API}/bundles/{narrowed['bundle_id']}/apply").status_code == 200
    assert in_force(world) == narrowed["bundle_id"]
    response = world.get("CO", DEPLOYMENTS)
    assert response.status_code == 403
    assert {k: response.json()[k] for k in ("code", "reason", "action", "detail")} == {
        "code": "permission_denied",
        "reason": "not_permitted",
        "action": "platform:Read",
        "detail": "'platform:Read' requires platform:R",
    }
    assert world.events("authz.denied")[-1]["actor_id"] == world.actors["CO"].user_id
    assert world.get("AU", DEPLOYMENTS).status_code == 200  # only what was removed is gone


def test_a_review_finding_excess_rights_rejects_the_bundle_and_restores_the_reviewed_one(keel, client):
    world = baseline_world(keel, client)
    reviewed_id = in_force(world)
    violations_before = metric(world.client, "permission_violation_count")
    candidate = define(
        world, without(baseline_document(world), "CO", "platform:Read", name="candidate")
    ).json()
    assert world.post("PA", f"{API}/bundles/{candidate['bundle_id']}/apply").status_code == 200
    assert world.get("CO", DEPLOYMENTS).status_code == 403

    finding = {
        "role": "AU",
        "permission": "evidence:Verify",
        "detail": "auditors verify exports offline; online verification is excess",
    }
    response = world.post(
        "CO", f"{API}/bundles/{candidate['bundle_id']}/review", json={"approve": False, "findings": [finding]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    flagged = [{"rule": "excess-permission", **finding}]
    assert (body["status"], body["findings"]) == ("REJECTED", flagged)
    assert {k: body["receipt"][k] for k in ("compliance_check", "findings", "restored_bundle_id")} == {
        "compliance_check": "FAIL",
        "findings": flagged,
        "restored_bundle_id": reviewed_id,
    }
    # The previously reviewed bundle is in force again, with its rights.
    assert in_force(world) == reviewed_id
    assert world.get("AU", f"{API}/bundles/{reviewed_id}").json()["status"] == "REVIEWED"
    assert world.get("CO", DEPLOYMENTS).status_code == 200
    # Logged.
    # Logged; the reviewer's own words enter the append-only ledger only as a hash.
    evidenced = [
        {"rule": "excess-permission", "role": finding["role"], "permission": finding["permission"],
         "detail_sha256": "sha256:" + hashlib.sha256(finding["detail"].encode()).hexdigest()}
    ]  # fmt: skip
    assert payloads(world, "rbac.reviewed")[-1] == {
        "bundle_id": candidate["bundle_id"],
        "compliance_check": "FAIL",
        "findings": evidenced,
        "restored": reviewed_id,
    }
    assert payloads(world, "rbac.rejected") == [
        {
            "stage": "review",
            "bundle_id": candidate["bundle_id"],
            "name": "candidate",
            "violations": evidenced,
            "restored": reviewed_id,
        }
    ]
    # One more violation than before the review (the CO's GET above added one denial too).
    assert metric(world.client, "permission_violation_count") == violations_before + 2


def test_a_review_must_name_findings_to_reject_and_none_to_approve(keel, client):
    world = baseline_world(keel, client)
    bundle_id = define(world).json()["bundle_id"]
    world.post("PA", f"{API}/bundles/{bundle_id}/apply")
    path = f"{API}/bundles/{bundle_id}/review"
    cases = [
        ({"approve": False}, "findings", "a rejecting review names at least one finding"),
        (
            {"approve": True, "findings": [{"role": "AU", "detail": "x"}]},
            "findings",
            "an approving review lists no findings; reject the bundle instead",
        ),
        (
            {"approve": False, "findings": [{"role": "AU"}]},
            "findings",
            "each finding needs a non-empty 'detail'",
        ),
        ({"approve": False, "findings": [{"role": "Root", "detail": "x"}]}, "findings.role", None),
        (
            {"approve": False, "findings": [{"role": "AU", "permission": "platform:Deploy", "detail": "x"}]},
            "findings.permission",
            "role 'AU' does not hold 'platform:Deploy'",
        ),
    ]
    for review, field, message in cases:
        response = world.post("CO", path, json=review)
        assert (response.status_code, response.json()["field"]) == (422, field), review
        if message:
            assert response.json()["detail"] == f"{field}: {message}"
    assert world.get("AU", f"{API}/bundles/{bundle_id}").json()["status"] == "APPLIED"
    assert world.events("rbac.reviewed")[-1]["payload"]["bundle_id"] != bundle_id


# -- Excess right / SoD breach → flagged, rejected, logged; role conflict → application fails -----


def test_a_bundle_that_breaks_separation_of_duties_is_rejected_naming_the_rule(keel, client):
    world = baseline_world(keel, client)
    before = in_force(world)
    violations_before = metric(world.client, "permission_violation_count")
    bundle = {
        "name": "one-hand",
        "roles": [
            {
                "role": "SchemaOwner",
                "based_on": "SS",
                "permissions": ["schema:Draft", "schema:Approve", "schema:Publish"],
            }
        ],
    }
    response = define(world, bundle)
    assert response.status_code == 409
    body = response.json()
    # No persona both drafts and publishes schemas (the matrix keeps them apart), so a role
    # that drafts, approves and deploys also exceeds its persona: every broken rule is named.
    expected = [
        {
            "rule": "excess-permission",
            "role": "SchemaOwner",
            "detail": "'schema:Publish' needs platform:M, beyond what SS (Schema Steward) is granted",
        },
        {
            "rule": "sod-draft-approve-deploy",
            "role": "SchemaOwner",
            "detail": "drafts, approves and deploys schema changes",
        },
        {
            "rule": "sod-steward-no-infra",
            "role": "SchemaOwner",
            "detail": "holds 'schema:Publish': Schema Stewards and KPI Authors never touch infrastructure",
        },
    ]
    assert body == {
        "type": "https://keel.dev/problems/bundle_rejected",
        "title": "RBAC bundle rejected",
        "status": 409,
        "detail": f"bundle breaks rule excess-permission: {expected[0]['detail']}",
        "instance": f"{API}/bundles",
        "code": "bundle_rejected",
        "rule": "excess-permission",
        "role": "SchemaOwner",
        "violations": expected,
    }
    assert payloads(world, "rbac.rejected") == [
        {"stage": "define", "bundle_id": None, "name": "one-hand", "violations": expected}
    ]
    assert world.events("rbac.rejected")[0]["actor_id"] == world.actors["SA"].user_id
    assert [b["name"] for b in world.get("SA", f"{API}/bundles").json()["items"]] == ["baseline"]
    assert in_force(world) == before
    assert metric(world.client, "permission_violation_count") == violations_before + 3
    assert metric(world.client, "policy_application_success_rate") == 0.5  # baseline applied, this refused


def test_a_bundle_granting_excess_permission_is_rejected_naming_the_rule(keel, client):
    world = baseline_world(keel, client)
    bundle = {
        "name": "tenant-admins",
        "roles": [
            {"role": "TA", "based_on": "TA", "permissions": ["connector:Configure", "platform:Deploy"]}
        ],
    }
    response = define(world, bundle)
    assert response.status_code == 409
    assert {k: response.json()[k] for k in ("code", "rule", "role", "violations")} == {
        "code": "bundle_rejected",
        "rule": "excess-permission",
        "role": "TA",
        "violations": [
            {
                "rule": "excess-permission",
                "role": "TA",
                "detail": "'platform:Deploy' needs platform:M, beyond what TA (Tenant Admin) is granted",
            }
        ],
    }
    assert [p["violations"][0]["rule"] for p in payloads(world, "rbac.rejected")] == ["excess-permission"]


def test_a_bundle_with_conflicting_role_declarations_fails_and_changes_nothing(world):
    before = in_force(world)
    bundle = {
        "name": "conflict",
        "roles": [
            {"role": "TA", "based_on": "TA", "permissions": ["connector:Configure"]},
            {"role": "TA", "based_on": "TA", "permissions": ["tenant:ManageMembers"]},
        ],
    }
    response = define(world, bundle)
    assert response.status_code == 409
    assert (response.json()["rule"], response.json()["violations"]) == (
        "duplicate-role",
        [{"rule": "duplicate-role", "role": "TA", "detail": "role 'TA' is declared 2 times"}],
    )
    assert payloads(world, "rbac.rejected")[0]["violations"][0]["rule"] == "duplicate-role"
    assert in_force(world) == before
    assert world.get("acme:TA", "/api/v1/tenants").status_code == 200  # TA's rights are untouched


def test_a_malformed_bundle_is_refused_naming_the_field_but_only_to_its_author(keel, client):
    world = baseline_world(keel, client)
    malformed = {"name": "x", "roles": [{"role": "1-bad", "based_on": "TA", "permissions": []}]}
    response = define(world, malformed)
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        422,
        "invalid_input",
        "bundle.roles.0.role",
    )
    response = define(world, malformed, who="PA")  # no right to define: learns nothing about the document
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert define(world, {"name": "n" * 101, "roles": []}).json()["field"] == "bundle.name"


def test_a_bundle_is_applied_once_and_reviewed_only_once_applied(keel, client):
    world = baseline_world(keel, client)
    bundle_id = define(world).json()["bundle_id"]
    review = world.post("CO", f"{API}/bundles/{bundle_id}/review", json={"approve": True})
    assert (review.status_code, review.json()["detail"]) == (409, "bundle is DEFINED, expected APPLIED")
    assert world.post("PA", f"{API}/bundles/{bundle_id}/apply").status_code == 200
    again = world.post("PA", f"{API}/bundles/{bundle_id}/apply")
    assert (again.status_code, again.json()["detail"]) == (409, "bundle is APPLIED, expected DEFINED")
    assert world.post("PA", f"{API}/bundles/RBAC-unknown/apply").status_code == 404


# -- Lifecycle separation of duties and least privilege ------------------------------------------


def test_each_lifecycle_step_belongs_to_its_persona_and_everyone_else_is_denied(keel, client):
    world = deployed_world(keel, client)
    bundle_id = define(world).json()["bundle_id"]
    steps = [
        ("SA", f"{API}/bundles", {}, "rbac:Define"),
        ("PA", f"{API}/bundles/{bundle_id}/apply", {}, "rbac:Apply"),
        ("CO", f"{API}/bundles/{bundle_id}/review", {"approve": True}, "rbac:Review"),
    ]
    for owner, path, body, action in steps:
        for persona in PROVIDER:
            if persona.value == owner:
                continue
            response = world.post(persona.value, path, json=body)
            assert response.status_code == 403, (persona.value, action)
            denial = {k: response.json().get(k) for k in ("reason", "rule", "action")}
            # SA defined the bundle: applying or reviewing it breaks SoD before any missing right.
            rule = {"rbac:Apply": "sod-deploy-own-change", "rbac:Review": "sod-approve-own-draft"}.get(action)
            if persona.value == "SA" and rule:
                assert denial == {"reason": "forbidden_by_policy", "rule": rule, "action": action}
            else:
                assert denial == {"reason": "not_permitted", "rule": None, "action": action}, persona.value
    assert world.get("AU", f"{API}/bundles/{bundle_id}").json()["status"] == "DEFINED"


def test_the_security_admin_who_defined_a_bundle_cannot_apply_it(keel, client):
    world = deployed_world(keel, client)
    world.add("SA+PA", make_user(keel, Persona.SA, also=(Persona.PA,)))
    bundle_id = define(world, who="SA+PA").json()["bundle_id"]
    response = world.post("SA+PA", f"{API}/bundles/{bundle_id}/apply")
    assert response.status_code == 403
    assert {k: response.json()[k] for k in ("reason", "rule", "action")} == {
        "reason": "forbidden_by_policy",
        "rule": "sod-deploy-own-change",
        "action": "rbac:Apply",
    }
    assert world.events("authz.denied")[-1]["payload"]["rule"] == "sod-deploy-own-change"
    assert world.post("PA", f"{API}/bundles/{bundle_id}/apply").status_code == 200


def test_the_compliance_officer_who_defined_a_bundle_cannot_review_it(keel, client):
    world = deployed_world(keel, client)
    world.add("SA+CO", make_user(keel, Persona.SA, also=(Persona.CO,)))
    bundle_id = define(world, who="SA+CO").json()["bundle_id"]
    world.post("PA", f"{API}/bundles/{bundle_id}/apply")
    response = world.post("SA+CO", f"{API}/bundles/{bundle_id}/review", json={"approve": True})
    assert (response.status_code, response.json()["rule"]) == (403, "sod-approve-own-draft")


def test_the_platform_admin_who_applied_a_bundle_cannot_review_it(keel, client):
    world = deployed_world(keel, client)
    world.add("PA+CO", make_user(keel, Persona.PA, also=(Persona.CO,)))
    bundle_id = define(world).json()["bundle_id"]
    assert world.post("PA+CO", f"{API}/bundles/{bundle_id}/apply").status_code == 200
    response = world.post("PA+CO", f"{API}/bundles/{bundle_id}/review", json={"approve": True})
    assert response.status_code == 403
    assert (response.json()["reason"], response.json()["rule"]) == (
        "forbidden_by_policy",
        "sod-approve-own-draft",
    )


def test_the_auditor_reads_the_assignment_logs_but_cannot_define_or_apply(keel, client):
    world = baseline_world(keel, client)
    bundle_id = in_force(world)
    for event_type, actor in (("rbac.defined", "SA"), ("rbac.applied", "PA"), ("rbac.reviewed", "CO")):
        page = world.get("AU", "/api/v1/evidence/entries", params={"event_type": event_type})
        assert page.status_code == 200
        assert [
            (e["event"]["actor_id"], e["event"]["payload"]["bundle_id"]) for e in page.json()["items"]
        ] == [(world.actors[actor].user_id, bundle_id)]
    created = world.get(
        "AU", "/api/v1/evidence/entries", params={"event_type": "identity.user.created", "limit": 1000}
    )
    assignments = {
        e["event"]["payload"]["user_id"]: e["event"]["payload"].get("roles") for e in created.json()["items"]
    }
    for persona in PROVIDER:
        assert assignments[world.actors[persona.value].user_id] == [persona.value]
    assert world.get("AU", f"{API}/bundles/{bundle_id}").json()["status"] == "REVIEWED"

    assert define(world, who="AU").status_code == 403
    candidate = define(world).json()["bundle_id"]
    response = world.post("AU", f"{API}/bundles/{candidate}/apply")
    assert (response.status_code, response.json()["action"]) == (403, "rbac:Apply")
    assert in_force(world) == bundle_id


def test_bundles_are_listed_page_by_page(keel, client):
    world = baseline_world(keel, client)
    for _ in range(2):
        define(world)
    first = world.get("AU", f"{API}/bundles", params={"limit": 2}).json()
    second = world.get("AU", f"{API}/bundles", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [b["bundle_id"] for b in first["items"] + second["items"]]
    assert len(ids) == 3 and ids == sorted(ids) and second["next_cursor"] is None
    assert [b["version"] for b in sorted(first["items"] + second["items"], key=lambda b: b["version"])] == [
        1,
        2,
        3,
    ]


def test_applying_a_bundle_that_would_lock_rbac_out_is_refused(keel, client):
    """A bundle with no role left to apply bundles could never be replaced: applying it fails."""
    world = deployed_world(keel, client)
    document = baseline_bundle().model_dump(mode="json")
    document["name"] = "lockout"
    for role in document["roles"]:
        role["permissions"] = [p for p in role["permissions"] if p != "rbac:Apply"]
    bundle_id = define(world, document).json()["bundle_id"]
    response = world.post("PA", f"{API}/bundles/{bundle_id}/apply")
    assert (response.status_code, response.json()["rule"]) == (409, "lifecycle-lockout")
    assert world.get("AU", f"{API}/policy").json()["bundle_id"] != bundle_id
