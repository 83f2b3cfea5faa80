"""Invitations: a user without a password gets a one-time invitation; a lost one can be issued again."""

from __future__ import annotations

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
    assert (event["actor_id"], event["payload"]) == (world.actors["acme:TA"].user_id, {"user_id": user["id"]})


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
