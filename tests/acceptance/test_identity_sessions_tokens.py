"""Identity (issue section 3): console sessions and API tokens, through the REST API.

Tokens are random, stored only as a SHA-256, scoped to a tenant and a subset of the
holder's roles, expiring and revocable. Sessions use argon2id passwords and an
HttpOnly, SameSite=Strict cookie; state changes on a session need the CSRF header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import sqlalchemy as sa
from tests.support import World

from keel.kernel.clock import set_clock, utcnow
from keel.store.tables import api_tokens, ledger_entries, users

CSRF = {"X-Keel-CSRF": "1"}
PASSWORD = "a long and good password"


def _member(world: World, email: str, roles: list[str], slug: str = "acme") -> dict:
    body = {"email": email, "display_name": email.split("@")[0], "roles": roles, "password": PASSWORD}
    answer = world.post(f"{slug}:TA", f"/api/v1/tenants/{world.tenants[slug]}/users", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _move_clock(by: timedelta) -> None:
    start = utcnow()
    set_clock(lambda: start + by)


# API tokens -------------------------------------------------------------------------------------
def test_api_tokens_are_random_and_stored_only_as_a_sha256(world):
    first = world.post("acme:DE", "/api/v1/me/tokens", json={"name": "one"})
    second = world.post("acme:DE", "/api/v1/me/tokens", json={"name": "two"})

    assert (first.status_code, second.status_code) == (201, 201)
    tokens = [first.json()["token"], second.json()["token"]]
    assert tokens[0] != tokens[1]
    assert all(t.startswith("keel_tok_") and len(t) >= 40 for t in tokens)
    rows = world.rows(
        sa.select(api_tokens).where(api_tokens.c.id.in_([first.json()["id"], second.json()["id"]]))
    )
    assert sorted(r.token_hash for r in rows) == sorted(
        hashlib.sha256(t.encode()).hexdigest() for t in tokens
    )
    stored = repr([tuple(r) for r in world.rows(sa.select(api_tokens))])
    assert not any(t in stored for t in tokens)
    listed = world.get("acme:DE", "/api/v1/me/tokens")
    assert listed.status_code == 200
    assert {t["name"] for t in listed.json()["items"]} >= {"one", "two"}
    assert not any(t in listed.text for t in tokens)
    assert all("token" not in item for item in listed.json()["items"])


def test_a_token_is_scoped_to_its_tenant_and_to_a_subset_of_its_holders_roles(world):
    acme = world.tenants["acme"]
    _member(world, "both@acme.test", ["AN", "DE"])
    with world.sign_in("both@acme.test", PASSWORD) as browser:
        narrow = browser.post("/api/v1/me/tokens", json={"name": "read-only", "roles": ["AN"]}, headers=CSRF)
        wide = browser.post("/api/v1/me/tokens", json={"name": "all"}, headers=CSRF)
        foreign = browser.post("/api/v1/me/tokens", json={"name": "x", "roles": ["TA"]}, headers=CSRF)
        provider = browser.post("/api/v1/me/tokens", json={"name": "x", "roles": ["PA"]}, headers=CSRF)
        empty = browser.post("/api/v1/me/tokens", json={"name": "x", "roles": []}, headers=CSRF)

    assert (narrow.status_code, narrow.json()["roles"], narrow.json()["tenant_id"]) == (201, ["AN"], acme)
    assert (wide.status_code, wide.json()["roles"]) == (201, ["AN", "DE"])
    for refused in (foreign, provider, empty):
        assert (refused.status_code, refused.json()["field"]) == (422, "roles")
    me = world.client.get("/api/v1/me", headers=_bearer(narrow.json()["token"])).json()
    assert (me["tenant_id"], me["effective_roles"]) == (acme, ["AN"])
    secret = {"value": "hunter2-but-longer"}
    as_narrow = world.client.put(
        f"/api/v1/tenants/{acme}/secrets/db", json=secret, headers=_bearer(narrow.json()["token"])
    )
    as_wide = world.client.put(
        f"/api/v1/tenants/{acme}/secrets/db", json=secret, headers=_bearer(wide.json()["token"])
    )
    elsewhere = world.client.get(
        f"/api/v1/tenants/{world.tenants['globex']}", headers=_bearer(wide.json()["token"])
    )
    assert (as_narrow.status_code, as_wide.status_code, elsewhere.status_code) == (403, 200, 403)
    # A token cannot mint a token with more than it carries.
    widened = world.client.post(
        "/api/v1/me/tokens", json={"name": "y", "roles": ["DE"]}, headers=_bearer(narrow.json()["token"])
    )
    assert (widened.status_code, widened.json()["field"]) == (422, "roles")


def test_an_expired_token_is_refused(world):
    token = world.post("acme:DE", "/api/v1/me/tokens", json={"name": "short", "ttl_days": 1}).json()["token"]
    assert world.client.get("/api/v1/me", headers=_bearer(token)).status_code == 200

    _move_clock(timedelta(days=1, seconds=1))
    answer = world.client.get("/api/v1/me", headers=_bearer(token))

    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated" and "expired" in answer.json()["detail"]
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_is_refused_from_then_on(world):
    issued = world.post("acme:DE", "/api/v1/me/tokens", json={"name": "temp"}).json()
    assert world.client.get("/api/v1/me", headers=_bearer(issued["token"])).status_code == 200

    revoked = world.delete("acme:DE", f"/api/v1/tokens/{issued['id']}")

    assert (revoked.status_code, revoked.json()["revoked"]) == (200, True)
    answer = world.client.get("/api/v1/me", headers=_bearer(issued["token"]))
    assert (answer.status_code, answer.json()["code"]) == (401, "unauthenticated")
    events = [e for e in world.events("identity.token.revoked") if e["payload"]["token_id"] == issued["id"]]
    assert [e["actor_id"] for e in events] == [world.actors["acme:DE"].user_id]


def test_nobody_but_the_holder_or_the_security_admin_revokes_a_token(world):
    issued = world.post("acme:DE", "/api/v1/me/tokens", json={"name": "mine"}).json()

    by_peer = world.delete("acme:AN", f"/api/v1/tokens/{issued['id']}")
    by_other_tenant = world.delete("globex:TA", f"/api/v1/tokens/{issued['id']}")
    no_such = world.delete("acme:AN", "/api/v1/tokens/TOK-20260101-NOTHERE0")
    by_security_admin = world.delete("SA", f"/api/v1/tokens/{issued['id']}")

    assert (by_peer.status_code, by_other_tenant.status_code, no_such.status_code) == (403, 403, 403)
    assert by_peer.json()["detail"] == no_such.json()["detail"]
    assert by_security_admin.status_code == 200


# Sign-in and sessions ---------------------------------------------------------------------------
def test_passwords_are_stored_as_argon2id_hashes(world):
    user = _member(world, "hashed@acme.test", ["AN"])

    stored = world.rows(sa.select(users.c.password_hash).where(users.c.id == user["id"]))[0].password_hash

    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_wrong_password_is_refused_and_evidenced_without_the_email_in_clear(world):
    _member(world, "victim@acme.test", ["AN"])
    before = len(world.events("auth.signin.failed"))

    wrong = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "victim@acme.test", "password": "not it at all"}
    )
    unknown = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "nobody@acme.test", "password": PASSWORD}
    )

    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert wrong.json()["detail"] == unknown.json()["detail"]  # no hint whether the account exists
    assert "set-cookie" not in wrong.headers
    failed = world.events("auth.signin.failed")[before:]
    key = world.keel.keyring.derived_key("login-fingerprint")
    assert [e["payload"] for e in failed] == [
        {"login": "hmac-sha256:" + hmac.new(key, b"victim@acme.test", hashlib.sha256).hexdigest()},
        {"login": "hmac-sha256:" + hmac.new(key, b"nobody@acme.test", hashlib.sha256).hexdigest()},
    ]
    # Keyed: a bare hash of a guessed address does not match the ledger.
    assert all(hashlib.sha256(b"victim@acme.test").hexdigest() not in e["payload"]["login"] for e in failed)
    raw = [r.event_json for r in world.rows(sa.select(ledger_entries.c.event_json))]
    assert not any("victim@acme.test" in j or "nobody@acme.test" in j for j in raw)


def test_session_cookie_is_http_only_and_same_site_strict(world):
    _member(world, "cookie@acme.test", ["AN"])

    answer = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "cookie@acme.test", "password": PASSWORD}
    )

    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith("keel_session=keel_ses_")
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert set(answer.json()) == {"session_id", "user_id", "expires_at"}
    world.client.cookies.clear()


def test_state_changes_on_a_session_need_the_csrf_header(world):
    _member(world, "csrf@acme.test", ["DE"])
    with world.sign_in("csrf@acme.test", PASSWORD) as browser:
        read = browser.get("/api/v1/me")
        forged = browser.post("/api/v1/me/tokens", json={"name": "forged"})
        genuine = browser.post("/api/v1/me/tokens", json={"name": "genuine"}, headers=CSRF)

    assert read.status_code == 200 and read.json()["auth"] == "session"
    assert (forged.status_code, genuine.status_code) == (401, 201)
    names = [
        t["name"]
        for t in world.client.get("/api/v1/me/tokens", headers=_bearer(genuine.json()["token"])).json()[
            "items"
        ]
    ]
    assert names == ["genuine"]


def test_sign_out_revokes_the_session(world):
    _member(world, "leaving@acme.test", ["AN"])
    with world.sign_in("leaving@acme.test", PASSWORD) as browser:
        secret = browser.cookies["keel_session"]

        out = browser.post("/api/v1/auth/sign-out", headers=CSRF)
        browser.cookies.set("keel_session", secret)  # a stolen copy of the cookie
        replay = browser.get("/api/v1/me")

    assert out.status_code == 204
    assert (replay.status_code, replay.json()["code"]) == (401, "unauthenticated")


def test_a_session_expires(world):
    _member(world, "sleepy@acme.test", ["AN"])
    with world.sign_in("sleepy@acme.test", PASSWORD) as browser:
        _move_clock(timedelta(minutes=world.keel.settings.session_ttl_minutes, seconds=1))
        answer = browser.get("/api/v1/me")

    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_an_invitation_expires(world):
    invited = world.post(
        "acme:TA",
        f"/api/v1/tenants/{world.tenants['acme']}/users",
        json={"email": "late@acme.test", "display_name": "Late", "roles": ["AN"]},
    ).json()
    _move_clock(timedelta(hours=world.keel.settings.invitation_ttl_hours, seconds=1))

    answer = world.client.post(
        "/api/v1/auth/invitations/accept",
        json={"token": invited["invitation"]["token"], "password": PASSWORD},
    )

    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


# Reading users: only one's own tenant -----------------------------------------------------------
def test_tenant_users_read_their_own_members_only_with_one_answer_for_the_rest(world):
    own = world.actors["acme:DE"].user_id
    other_tenant = world.actors["globex:DE"].user_id
    provider = world.actors["PA"].user_id

    answers = {
        "own": world.get("acme:AN", f"/api/v1/users/{own}"),
        "other tenant": world.get("acme:AN", f"/api/v1/users/{other_tenant}"),
        "provider": world.get("acme:AN", f"/api/v1/users/{provider}"),
        "missing": world.get("acme:AN", "/api/v1/users/USR-20260101-NOTHERE0"),
        "provider directory": world.get("acme:AN", "/api/v1/users"),
        "other tenant members": world.get("acme:AN", f"/api/v1/tenants/{world.tenants['globex']}/users"),
    }

    assert {k: v.status_code for k, v in answers.items()} == {
        "own": 200,
        "other tenant": 403,
        "provider": 403,
        "missing": 403,
        "provider directory": 403,
        "other tenant members": 403,
    }
    details = {answers[k].json()["detail"] for k in ("other tenant", "provider", "missing")}
    assert len(details) == 1
    assert "globex" not in json.dumps([a.json() for a in answers.values()])
