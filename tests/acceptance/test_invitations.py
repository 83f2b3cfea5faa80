"""Invitations: a user without a password gets a one-time invitation; a lost one can be issued again."""

from __future__ import annotations

import sqlalchemy as sa

from keel.store.tables import users

PASSWORD = "correct horse battery staple"


def _invite(world, email: str = "new.member@acme.test"):
    body = {"email": email, "display_name": "New Member", "roles": ["AN"]}
    answer = world.post("acme:TA", f"/api/v1/tenants/{world.tenants['acme']}/users", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _accept(world, token: str):
    return world.client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": PASSWORD})


def test_a_reissued_invitation_replaces_the_lost_one(world):
    user = _invite(world)

    again = world.post("acme:TA", f"/api/v1/users/{user['id']}/invitation")

    assert again.status_code == 201, again.text
    assert again.json()["user_id"] == user["id"] and again.json()["token"] != user["invitation"]["token"]
    old = _accept(world, user["invitation"]["token"])
    assert (old.status_code, old.json()["detail"]) == (401, "the invitation is unknown or was used already")
    accepted = _accept(world, again.json()["token"])
    assert (accepted.status_code, accepted.json()["status"]) == (200, "ACTIVE")
    [event] = world.events("identity.invitation.reissued")
    ta = world.actors["acme:TA"].user_id
    assert (event["actor_id"], event["payload"]) == (ta, {"user_id": user["id"], "delivered_to": ta})


def test_an_active_user_gets_no_new_invitation(world):
    user = _invite(world)
    assert _accept(world, user["invitation"]["token"]).status_code == 200

    answer = world.post("acme:TA", f"/api/v1/users/{user['id']}/invitation")

    assert (answer.status_code, answer.json()["code"]) == (409, "conflict")


def test_another_tenant_cannot_reissue_and_cannot_tell_whether_the_user_exists(world):
    user = _invite(world)

    foreign = world.post("globex:TA", f"/api/v1/users/{user['id']}/invitation")
    missing = world.post("globex:TA", "/api/v1/users/USR-20260101-NOTHERE0/invitation")

    assert (foreign.status_code, missing.status_code) == (403, 403)
    assert foreign.json()["detail"] == missing.json()["detail"]
    assert world.events("identity.invitation.reissued") == []


def test_no_provider_can_mint_an_account_inside_a_tenant(world):
    """Otherwise a provider could sign in as a tenant member and read tenant data."""
    body = {"email": "mole@acme.test", "display_name": "Mole", "roles": ["TA", "AN"], "password": PASSWORD}
    for who in ("PA", "SA", "PO", "SRE", "CO", "AU", "SS", "KA", "WA"):
        answer = world.post(who, f"/api/v1/tenants/{world.tenants['acme']}/users", json=body)
        assert (answer.status_code, answer.json()["action"]) == (403, "tenant:ManageMembers"), who
    assert world.rows(sa.select(users.c.id).where(users.c.email == "mole@acme.test")) == []


def test_a_tenant_approver_cannot_make_itself_a_tenant_admin(world):
    body = {"email": "twin@acme.test", "display_name": "Twin", "roles": ["TA", "TP"], "password": PASSWORD}

    answer = world.post("acme:TP", f"/api/v1/tenants/{world.tenants['acme']}/users", json=body)

    assert (answer.status_code, answer.json()["reason"]) == (403, "not_permitted")


def test_the_security_admin_reissues_only_a_tenant_admins_invitation(world):
    member = _invite(world)
    acme = world.tenants["acme"]
    admin_id = world.rows(
        sa.select(users.c.id).where(users.c.tenant_id == acme, users.c.email == "invited-admin@acme.test")
    )[0].id

    refused = world.post("SA", f"/api/v1/users/{member['id']}/invitation")
    admin = world.post("SA", f"/api/v1/users/{admin_id}/invitation")

    assert (refused.status_code, refused.json()["detail"]) == (
        409,
        "a provider re-issues only a Tenant Admin's invitation",
    )
    assert admin.status_code == 201
    [event] = world.events("identity.invitation.reissued")
    assert event["payload"]["delivered_to"] == world.actors["SA"].user_id


def test_who_holds_a_new_members_first_credential_is_evidenced(world):
    _invite(world)
    created = [
        e for e in world.events("identity.user.created") if e["actor_id"] == world.actors["acme:TA"].user_id
    ]
    assert [e["payload"]["credential"] for e in created] == ["invitation_to_creator"]
