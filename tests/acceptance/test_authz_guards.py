"""The guards on top of the matrix (issue 2, section 3): how a denial looks, break-glass, dual control.

Denials and the break-glass ticket flow go through the REST API. No route exercises
``workflow:Execute`` or ``schema:Rollback`` (the break-glass actions) or
``schema:Publish`` (dual control) yet, so those decisions are checked at the one
enforcement point, ``keel.authorize`` inside a real unit of work on a real Keel,
exactly as the later services will call it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.support import World, make_user

from keel.authz.engine import Resource
from keel.identity.actor import Actor
from keel.identity.personas import Persona
from keel.kernel.clock import set_clock, utcnow
from keel.kernel.errors import PermissionDenied
from keel.rbac.dual_control import dual_signed

BREAK_GLASS = "/api/v1/rbac/break-glass"
PROBLEM = "application/problem+json"


def authorize(keel, actor: Actor, action: str, resource: Resource, **context) -> None:
    """One authorization at the enforcement point, committed so its evidence lands."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, action, resource, **context)
        uow.commit()


def denial(keel, actor: Actor, action: str, resource: Resource, **context) -> dict:
    with pytest.raises(PermissionDenied) as denied:
        authorize(keel, actor, action, resource, **context)
    return {k: denied.value.fields.get(k) for k in ("reason", "rule", "action")}


def workflow(tenant_id: str) -> Resource:
    return Resource("workflow", "WF-7", tenant=tenant_id)


def ticket(world: World, who: str, tenant: str, actions: list[str], minutes: int = 30):
    return world.post(
        who,
        BREAK_GLASS,
        json={
            "tenant_id": world.tenants[tenant],
            "actions": actions,
            "minutes": minutes,
            "justification": "INC-42: the nightly activation is stuck",
        },
    )


# -- A denial: 403 problem+json with a machine-readable reason, and evidence -----------------------


def test_a_denial_is_a_problem_document_naming_reason_rule_and_action_and_is_evidenced(world):
    response = world.post("acme:AN", "/api/v1/platform/deployments", json={})
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "https://keel.dev/problems/permission_denied",
        "title": "Permission denied",
        "status": 403,
        "detail": "'platform:Deploy' is forbidden by rule 'deny-tenant-platform-change'",
        "instance": "/api/v1/platform/deployments",
        "code": "permission_denied",
        "reason": "forbidden_by_policy",
        "action": "platform:Deploy",
        "rule": "deny-tenant-platform-change",
    }
    event = world.events("authz.denied")[-1]
    assert (event["actor_id"], event["tenant_id"], event["payload"]) == (
        world.actors["acme:AN"].user_id,
        world.tenants["acme"],
        {
            "action": "platform:Deploy",
            "reason": "forbidden_by_policy",
            "rule": "deny-tenant-platform-change",
            "resource_type": "deployment",
        },
    )


def test_a_denial_for_a_missing_right_says_which_matrix_cell_it_needs(keel, client):
    world = World.build(keel, client, tenant_slugs=())
    response = world.post("SRE", "/api/v1/rbac/bundles", json={})
    assert response.status_code == 403
    body = response.json()
    assert {k: body[k] for k in ("code", "reason", "action", "detail")} == {
        "code": "permission_denied",
        "reason": "not_permitted",
        "action": "rbac:Define",
        "detail": "'rbac:Define' requires iam:M",
    }
    assert body.get("rule") is None  # no policy forbade it: no permit matched
    assert world.events("authz.denied")[-1]["payload"] == {
        "action": "rbac:Define",
        "reason": "not_permitted",
        "rule": None,
        "resource_type": "rbac-bundle",
    }


# -- Break-glass: an approved ticket, one tenant, named actions, expiring by itself ----------------


def test_break_glass_elevates_only_the_named_tenant_and_actions_until_it_expires(world):
    keel, sre = world.keel, world.actors["SRE"]
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    start = utcnow()
    set_clock(lambda: start)

    # Without a ticket the SRE has no right to run a tenant's workflow.
    assert denial(keel, sre, "workflow:Execute", workflow(acme)) == {
        "reason": "not_permitted",
        "rule": None,
        "action": "workflow:Execute",
    }
    requested = ticket(world, "SRE", "acme", ["workflow:Execute"], minutes=30)
    assert requested.status_code == 201, requested.text
    ticket_id = requested.json()["ticket_id"]
    assert requested.json() == {
        "ticket_id": ticket_id,
        "status": "PENDING",
        "tenant_id": acme,
        "actions": ["workflow:Execute"],
        "minutes": 30,
    }
    assert denial(keel, sre, "workflow:Execute", workflow(acme))["reason"] == "not_permitted"  # pending

    approved = world.post("PO", f"{BREAK_GLASS}/{ticket_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json() == {
        "ticket_id": ticket_id,
        "grant_id": approved.json()["grant_id"],
        "status": "APPROVED",
        "user_id": sre.user_id,
        "tenant_id": acme,
        "actions": ["workflow:Execute"],
        "expires_at": (start + timedelta(minutes=30)).isoformat(),
    }
    assert world.post("PO", f"{BREAK_GLASS}/{ticket_id}/approve").status_code == 409  # once only

    # The elevation covers the named tenant and action, for the ticket holder only; every use is evidenced.
    authorize(keel, sre, "workflow:Execute", workflow(acme))
    set_clock(lambda: start + timedelta(minutes=29, seconds=59))
    authorize(keel, sre, "workflow:Execute", Resource("workflow", "WF-8", tenant=acme))
    used = world.events("breakglass.used")
    assert [(e["actor_id"], e["tenant_id"], e["payload"]) for e in used] == [
        (
            sre.user_id,
            acme,
            {"action": "workflow:Execute", "resource_type": "workflow", "resource_id": "WF-7"},
        ),
        (
            sre.user_id,
            acme,
            {"action": "workflow:Execute", "resource_type": "workflow", "resource_id": "WF-8"},
        ),
    ]
    assert denial(keel, sre, "workflow:Execute", workflow(globex))["reason"] == "not_permitted"
    assert denial(keel, sre, "schema:Rollback", Resource("schema", "GDP-001", tenant=acme))["reason"] == (
        "not_permitted"
    )
    other_sre = world.add("SRE2", make_user(keel, Persona.SRE, mailbox="sre2"))
    assert denial(keel, other_sre, "workflow:Execute", workflow(acme))["reason"] == "not_permitted"
    assert len(world.events("breakglass.used")) == 2  # denials are not uses

    # It expires by itself.
    set_clock(lambda: start + timedelta(minutes=30))
    assert denial(keel, sre, "workflow:Execute", workflow(acme)) == {
        "reason": "not_permitted",
        "rule": None,
        "action": "workflow:Execute",
    }
    assert len(world.events("breakglass.used")) == 2
    assert [e["payload"]["ticket_id"] for e in world.events("breakglass.requested")] == [ticket_id]
    assert world.events("breakglass.approved")[0]["actor_id"] == world.actors["PO"].user_id


def test_break_glass_cannot_cross_a_tenant_line_even_for_a_tenant_user(world):
    # TP may ask for break-glass (incident work), but only in its own tenant.
    assert ticket(world, "acme:TP", "acme", ["schema:Rollback"]).status_code == 201
    response = ticket(world, "acme:TP", "globex", ["schema:Rollback"])
    assert response.status_code == 403
    assert (response.json()["rule"], response.json()["detail"]) == (
        "deny-cross-tenant",
        "'breakglass:Request' is not permitted outside your tenant",
    )


def test_nobody_approves_their_own_break_glass_ticket(world):
    requester = world.add("PO+SRE", make_user(world.keel, Persona.PO, also=(Persona.SRE,)))
    ticket_id = ticket(world, "PO+SRE", "acme", ["workflow:Execute"]).json()["ticket_id"]
    response = world.post("PO+SRE", f"{BREAK_GLASS}/{ticket_id}/approve")
    assert response.status_code == 403
    assert {k: response.json()[k] for k in ("reason", "rule", "action")} == {
        "reason": "forbidden_by_policy",
        "rule": "sod-approve-own-draft",
        "action": "breakglass:Approve",
    }
    for who in ("SRE", "SA", "PA"):  # only the Platform Owner approves elevations
        assert world.post(who, f"{BREAK_GLASS}/{ticket_id}/approve").json()["reason"] == "not_permitted"
    assert denial(world.keel, requester, "workflow:Execute", workflow(world.tenants["acme"]))["reason"] == (
        "not_permitted"
    )
    assert world.post("PO", f"{BREAK_GLASS}/{ticket_id}/approve").json()["user_id"] == requester.user_id


REFUSED_TICKETS = [
    ({"minutes": 121}, 422, "minutes"),  # two hours at most
    ({"minutes": 0}, 422, "minutes"),
    ({"actions": ["kpi:Publish"]}, 422, "actions"),  # not break-glass eligible
    ({"actions": []}, 422, "actions"),
    ({"justification": " "}, 422, "justification"),
    ({"tenant_id": "TEN-00000000-NOSUCH00"}, 404, None),
]


def test_break_glass_beyond_two_hours_for_ineligible_actions_or_an_unknown_tenant_is_refused(keel, client):
    world = World.build(keel, client, tenant_slugs=("acme",))
    valid = {"tenant_id": world.tenants["acme"], "actions": ["workflow:Execute"], "minutes": 120}
    for change, status, field in REFUSED_TICKETS:
        response = world.post("SRE", BREAK_GLASS, json=valid | {"justification": "INC-42"} | change)
        assert response.status_code == status, (change, response.text)
        assert response.json().get("field") == field, change
    assert world.events("breakglass.requested") == []
    accepted = world.post("SRE", BREAK_GLASS, json=valid | {"justification": "INC-42"})
    assert (accepted.status_code, accepted.json()["minutes"]) == (201, 120)


# -- Dual control: publish needs two distinct approvers, neither the author -------------------------


def test_publishing_without_two_independent_approvals_is_denied_by_dual_control(keel, client):
    world = World.build(keel, client, tenant_slugs=())
    keel, publisher = world.keel, world.actors["PA"]
    author, first, second = (world.actors[p].user_id for p in ("SS", "KA", "WA"))

    def publish(approvers: set[str]) -> Resource:
        return Resource("schema", "GDP-001", tenant="", drafted_by=author, approved_by=frozenset(approvers))

    for approvers in ({author}, {first}, {author, first}):
        signed = dual_signed(author, approvers)
        assert signed is False
        assert denial(keel, publisher, "schema:Publish", publish(approvers), dual_signed=signed) == {
            "reason": "forbidden_by_policy",
            "rule": "dual-control-publish",
            "action": "schema:Publish",
        }
    approvers = {first, second}
    authorize(
        keel, publisher, "schema:Publish", publish(approvers), dual_signed=dual_signed(author, approvers)
    )

    # Two signatures do not let one of the approvers publish the change they approved.
    approver = world.add("PA+KA", make_user(keel, Persona.PA, also=(Persona.KA,)))
    own = {approver.user_id, second}
    assert denial(keel, approver, "schema:Publish", publish(own), dual_signed=dual_signed(author, own)) == {
        "reason": "forbidden_by_policy",
        "rule": "sod-deploy-own-change",
        "action": "schema:Publish",
    }
