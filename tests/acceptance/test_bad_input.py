"""Bad input at the API edge: every refusal is a clean 4xx naming what was wrong, and nothing is half-written.

Malformed JSON, wrong types, missing and unknown fields, oversized bodies (declared or
streamed), unknown tenants and routes, wrong methods, expired, revoked and malformed
credentials, bad pagination parameters and replayed ``Idempotency-Key`` headers. Each
test compares the whole store (every table, the ledger and the files under KEEL_HOME)
before and after, so a refusal that wrote anything fails.

The module shares one world (deployed platform, tenants acme and globex); tests that
create something use names and keys of their own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.support import World, errors_are_problem_json, store_snapshot

from keel.api.deps import encode_cursor
from keel.kernel.clock import set_clock, utcnow
from keel.store.tables import idempotency_keys, ledger_entries, tenants

API = "/api/v1"
TENANT = {"slug": "initech", "name": "Initech", "admin_email": "admin@initech.test"}
NEW_USER = {"email": "new@provider.test", "display_name": "New", "roles": ["AU"]}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def world(module_world):
    """One world for the module (it overrides conftest's per-test one: building it is the slow part)."""
    module_world.client.event_hooks["response"].append(errors_are_problem_json)
    return module_world


@pytest.fixture
def clock():
    """Move Keel's clock; the wall clock is back after the test."""
    yield lambda moment: set_clock(lambda: moment)
    set_clock(None)


def _refused(answer, status: int, field: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    problem = answer.json()
    if field is not None:
        assert problem["field"] == field, problem
        assert field in problem["detail"]
    return problem


def _post_raw(world: World, path: str, content, headers: dict | None = None):
    return world.client.post(
        path, content=content, headers={**world.headers("PA"), **JSON, **(headers or {})}
    )


def _tenant_count(world: World) -> int:
    return world.scalar(sa.select(sa.func.count()).select_from(tenants))


# Malformed bodies --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [b'{"slug": "initech",', b"not json", b'{"slug": "initech"}}', b"\xff\xfe\xfa", b"'single quotes'"],
    ids=["truncated", "not-json", "trailing-brace", "not-utf8", "single-quotes"],
)
def test_malformed_json_is_refused_naming_the_body(world, raw):
    before = store_snapshot(world.keel)

    problem = _refused(_post_raw(world, f"{API}/tenants", raw), 422, "body")

    assert problem["code"] == "invalid_input"
    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize("raw", [b"[]", b'"initech"', b"42", b"null", b""])
def test_a_body_that_is_not_an_object_is_refused_naming_the_body(world, raw):
    before = store_snapshot(world.keel)

    _refused(_post_raw(world, f"{API}/tenants", raw), 422, "body")

    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", 123),
        ("name", ["Initech"]),
        ("admin_email", {"address": "admin@initech.test"}),
        ("storage_quota_mb", "12"),  # types are strict: a numeric string is not a number
        ("storage_quota_mb", 1.5),
        ("storage_quota_mb", True),
        ("storage_quota_mb", 0),
    ],
)
def test_a_field_of_the_wrong_type_or_range_is_refused_naming_it(world, field, value):
    before = store_snapshot(world.keel)

    problem = _refused(world.post("PA", f"{API}/tenants", json={**TENANT, field: value}), 422, field)

    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["errors"][0]["in"] == "body"
    assert store_snapshot(world.keel) == before


def test_a_boolean_must_be_a_boolean(world):
    request = world.post(
        "PA", f"{API}/tenants/{world.tenants['globex']}/offboarding-requests", json={"reason": "x"}
    )
    path = f"{API}/tenants/offboarding-requests/{request.json()['request_id']}/decision"
    before = store_snapshot(world.keel)

    for value in ("yes", 1, "true", None):
        _refused(world.post("PO", path, json={"approve": value}), 422, "approve")

    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize("missing", ["slug", "name", "admin_email"])
def test_a_missing_required_field_is_refused_naming_it(world, missing):
    body = {k: v for k, v in TENANT.items() if k != missing}
    before = store_snapshot(world.keel)

    problem = _refused(world.post("PA", f"{API}/tenants", json=body), 422, missing)

    assert problem["errors"] == [{"field": missing, "in": "body", "message": "Field required"}]
    assert store_snapshot(world.keel) == before


def test_an_unknown_field_is_refused_naming_it(world):
    before = store_snapshot(world.keel)

    problem = _refused(world.post("PA", f"{API}/tenants", json={**TENANT, "colour": "blue"}), 422, "colour")

    assert problem["errors"] == [
        {"field": "colour", "in": "body", "message": "Extra inputs are not permitted"}
    ]
    assert store_snapshot(world.keel) == before


def test_every_request_body_refuses_unknown_fields(world):
    # Driven by the API description, so a body model added later is checked too.
    spec = world.client.get("/openapi.json").json()
    with_body = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    before = store_snapshot(world.keel)

    assert len(with_body) >= 10
    for method, path in with_body:
        concrete = path.replace("{", "X-").replace("}", "")
        answer = world.client.request(method, concrete, json={"zz_unknown": 1}, headers=world.headers("PA"))

        problem = _refused(answer, 422)
        assert "zz_unknown" in [e["field"] for e in problem["errors"]], (method, path, problem)
    assert store_snapshot(world.keel) == before


def test_validation_errors_never_echo_what_was_sent(world):
    secret = "hunter2-but-longer-than-twelve"
    answer = world.post(
        "SA",
        f"{API}/users",
        json={"email": 5, "display_name": "Eve", "roles": ["SA"], "password": secret, "extra": secret},
    )

    _refused(answer, 422)
    assert secret not in answer.text


def test_a_nul_character_is_refused_naming_where_it_is(world):
    # PostgreSQL text cannot hold NUL, nor be compared with it: unrefused, it would be a 500.
    cases = [
        (world.get("PA", f"{API}/tenants/TEN-%00"), "path"),
        (
            world.get("AU", f"{API}/evidence/entries", params={"event_type": "tenant\x00created"}),
            "event_type",
        ),
        (world.post("PA", f"{API}/tenants", json={**TENANT, "name": "Ini\x00tech"}), "name"),
        (world.post("SA", f"{API}/users", json={**NEW_USER, "roles": ["A\x00U"]}), "roles"),
        (world.post("PA", f"{API}/platform/deployments", json={"template": {"key\x00": "v"}}), "template"),
    ]
    before = store_snapshot(world.keel)

    for answer, field in cases:
        assert "NUL" in _refused(answer, 422, field)["detail"]
    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize(
    ("who", "path", "params", "field"),
    [
        ("AU", f"{API}/evidence/tree-head", {"tree_size": 2**70}, "tree_size"),
        ("AU", f"{API}/evidence/entries/{2**70}", {}, "seq"),
        ("AU", f"{API}/evidence/entries", {"after_seq": 2**63}, "after_seq"),
        ("AU", f"{API}/evidence/proofs/inclusion", {"seq": 2**70}, "seq"),
        ("AU", f"{API}/evidence/proofs/consistency", {"size1": 1, "size2": 2**70}, "size2"),
    ],
    ids=["tree-head", "entry", "entries", "inclusion", "consistency"],
)
def test_an_integer_beyond_what_the_store_holds_is_refused_naming_it(world, who, path, params, field):
    before = store_snapshot(world.keel)

    answer = world.get(who, path, params=params)

    _refused(answer, 422, field)
    assert store_snapshot(world.keel) == before


def test_a_quota_beyond_what_the_store_holds_is_refused_naming_it(world):
    before = store_snapshot(world.keel)

    answer = world.post("PA", f"{API}/tenants", json={**TENANT, "storage_quota_mb": 2**40})

    _refused(answer, 422, "storage_quota_mb")
    assert store_snapshot(world.keel) == before


# Oversized bodies --------------------------------------------------------------------------
def _big_tenant(size: int) -> bytes:
    body = b'{"slug": "initech", "name": "Initech", "admin_email": "admin@initech.test", "region": "'
    return body + b"x" * size + b'"}'


def test_a_body_over_the_declared_limit_is_refused_before_it_is_read(world):
    limit = world.keel.settings.max_body_bytes
    before = store_snapshot(world.keel)

    answer = _post_raw(world, f"{API}/tenants", _big_tenant(limit))

    assert answer.request.headers["content-length"] == str(len(_big_tenant(limit)))
    problem = _refused(answer, 413)
    assert problem["code"] == "payload_too_large"
    assert problem["limit"] == limit
    assert store_snapshot(world.keel) == before


def test_a_chunked_body_over_the_limit_is_refused(world):
    limit = world.keel.settings.max_body_bytes
    body = _big_tenant(limit)
    before = store_snapshot(world.keel)

    def chunks():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    answer = _post_raw(world, f"{API}/tenants", chunks())

    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    _refused(answer, 413)
    assert store_snapshot(world.keel) == before


def test_a_body_over_the_limit_is_refused_even_where_the_route_never_reads_it(world):
    limit = world.keel.settings.max_body_bytes
    path = f"{API}/tenants/{world.tenants['acme']}/evidence-archives"
    before = store_snapshot(world.keel)

    answer = world.client.post(path, content=b" " * (limit + 1), headers={**world.headers("CO"), **JSON})

    _refused(answer, 413)
    assert store_snapshot(world.keel) == before


def test_an_endless_body_is_cut_off_at_the_limit_without_being_buffered(world):
    # Driven at the ASGI level: an HTTP client would buffer or time out, but here the test
    # counts exactly how much of a never-ending upload the server pulls before refusing it.
    app = world.client.app
    limit = world.keel.settings.max_body_bytes
    chunk = 64 * 1024
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        if pulled > 20 * limit:
            raise AssertionError("the server kept reading an oversized body")
        pulled += chunk
        return {"type": "http.request", "body": b" " * chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{API}/tenants",
        "raw_path": f"{API}/tenants".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", world.headers("PA")["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    before = store_snapshot(world.keel)

    asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert pulled <= limit + chunk
    assert store_snapshot(world.keel) == before


def test_a_content_length_that_is_not_a_number_is_refused(world):
    before = store_snapshot(world.keel)

    answer = _post_raw(world, f"{API}/tenants", b"{}", headers={"content-length": "lots"})

    assert _refused(answer, 400)["code"] == "bad_request"
    assert store_snapshot(world.keel) == before


# Unknown tenants, routes and methods -------------------------------------------------------
UNKNOWN = "TEN-20260101-ZZZZZZZZ"


@pytest.mark.parametrize(
    ("who", "method", "path", "body"),
    [
        ("PA", "GET", f"{API}/tenants/{UNKNOWN}", None),
        ("SA", "POST", f"{API}/tenants/{UNKNOWN}/validate", None),
        ("PA", "POST", f"{API}/tenants/{UNKNOWN}/offboarding-requests", {"reason": "x"}),
        ("CO", "POST", f"{API}/tenants/{UNKNOWN}/evidence-archives", None),
        ("PA", "POST", f"{API}/tenants/{UNKNOWN}/decommission", {"request_id": "OFF-20260101-ZZZZZZZZ"}),
        ("SA", "POST", f"{API}/tenants/{UNKNOWN}/wipe-validation", None),
        ("SA", "GET", f"{API}/tenants/{UNKNOWN}/users", None),
        ("SA", "GET", f"{API}/tenants/{UNKNOWN}/secrets", None),
        (
            "SRE",
            "POST",
            f"{API}/rbac/break-glass",
            {"tenant_id": UNKNOWN, "actions": ["workflow:Execute"], "minutes": 5, "justification": "x"},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith(API) else None,
)
def test_an_unknown_tenant_is_not_found(world, who, method, path, body):
    # Each caller is one the route would serve for an existing tenant. (Writing a secret and
    # adding a member are left out: only the tenant's own TA/DE may, so for an unknown tenant
    # nobody can.)
    before = store_snapshot(world.keel)

    answer = world.client.request(method, path, json=body, headers=world.headers(who))

    problem = _refused(answer, 404)
    assert (problem["code"], problem["kind"]) == ("not_found", "tenant")
    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{API}/nope"), ("GET", "/api/v2/tenants"), ("POST", f"{API}/tenants/a/b/c"), ("GET", "/")],
)
def test_an_unknown_route_is_not_found(world, method, path):
    before = store_snapshot(world.keel)

    answer = world.client.request(method, path, headers=world.headers("PA"))

    problem = _refused(answer, 404)
    assert (problem["code"], problem["title"]) == ("not_found", "Not Found")
    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/healthz", "GET"),
        ("DELETE", f"{API}/tenants", "GET, POST"),
        ("PATCH", f"{API}/me", "GET"),
        ("GET", f"{API}/auth/sign-in", "POST"),
    ],
)
def test_a_wrong_method_is_refused_naming_the_allowed_ones(world, method, path, allowed):
    before = store_snapshot(world.keel)

    answer = world.client.request(method, path, headers=world.headers("PA"))

    problem = _refused(answer, 405)
    assert problem["code"] == "method_not_allowed"
    assert answer.headers["allow"] == allowed
    assert allowed in problem["detail"]
    assert store_snapshot(world.keel) == before


# Credentials --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "tok_abc", "Bearer tok_unknown", "Token abc", "Bearer a b"],
)
def test_a_malformed_or_unknown_authorization_header_is_unauthenticated(world, authorization):
    before = store_snapshot(world.keel)

    answer = world.client.post(f"{API}/tenants", json=TENANT, headers={"Authorization": authorization})

    problem = _refused(answer, 401)
    assert problem["code"] == "unauthenticated"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert store_snapshot(world.keel) == before


def test_an_expired_token_is_refused_once_the_clock_passes_its_expiry(world, clock):
    short = world.post("PA", f"{API}/me/tokens", json={"name": "short", "ttl_days": 1}).json()
    headers = {"Authorization": f"Bearer {short['token']}"}
    assert world.client.get(f"{API}/me", headers=headers).status_code == 200
    clock(utcnow() + timedelta(days=1, seconds=1))
    before = store_snapshot(world.keel)

    answer = world.client.post(f"{API}/tenants", json=TENANT, headers=headers)

    problem = _refused(answer, 401)
    assert problem["detail"] == "the token has expired"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert world.get("PA", f"{API}/me").status_code == 200  # the 30-day token still works
    assert store_snapshot(world.keel) == before


def _browser(world: World, email: str, roles: list[str]) -> TestClient:
    """A separate browser, signed in as a new provider user: its cookie jar holds the session."""
    password = "correct horse battery"
    created = world.post(
        "SA", f"{API}/users", json={"email": email, "display_name": "S", "roles": roles, "password": password}
    )
    assert created.status_code == 201, created.text
    browser = TestClient(world.client.app)
    browser.event_hooks["response"].append(errors_are_problem_json)
    signed_in = browser.post(f"{API}/auth/sign-in", json={"email": email, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    assert browser.get(f"{API}/me").status_code == 200
    return browser


def test_an_expired_session_is_refused(world, clock):
    browser = _browser(world, "sessions@provider.test", ["AU"])
    clock(utcnow() + timedelta(minutes=world.keel.settings.session_ttl_minutes, seconds=1))
    before = store_snapshot(world.keel)

    answer = browser.get(f"{API}/me")

    assert _refused(answer, 401)["detail"] == "the session has expired"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert store_snapshot(world.keel) == before


def test_a_revoked_token_is_refused(world):
    token = world.post("PA", f"{API}/me/tokens", json={"name": "to-revoke", "ttl_days": 1}).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert world.client.delete(f"{API}/tokens/{token['id']}", headers=headers).status_code == 200
    before = store_snapshot(world.keel)

    answer = world.client.post(f"{API}/tenants", json=TENANT, headers=headers)

    assert _refused(answer, 401)["detail"] == "the token is unknown or revoked"
    assert store_snapshot(world.keel) == before


def test_a_session_change_without_the_csrf_header_is_refused(world):
    browser = _browser(world, "csrf@provider.test", ["PA"])
    before = store_snapshot(world.keel)

    answer = browser.post(f"{API}/tenants", json=TENANT)

    assert "X-Keel-CSRF" in _refused(answer, 401)["detail"]
    assert store_snapshot(world.keel) == before


# Pagination parameters ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "AAAA",  # valid base64, but not a cursor this API issued
        base64.urlsafe_b64encode(b"TEN-20260101-AAAAAAAA").decode(),
        "a" * 500,
        encode_cursor("") or "-",
        "%00",
    ],
)
@pytest.mark.parametrize("path", [f"{API}/tenants", f"{API}/users"])
def test_a_cursor_this_api_did_not_issue_is_refused_naming_it(world, path, cursor):
    before = store_snapshot(world.keel)

    answer = world.get("PA" if path.endswith("tenants") else "SA", path, params={"cursor": cursor})

    _refused(answer, 422, "cursor")
    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize("limit", ["0", "-1", "501", "ten", "1.5"])
@pytest.mark.parametrize("path", [f"{API}/tenants", f"{API}/users"])
def test_a_page_limit_out_of_range_is_refused_naming_it(world, path, limit):
    answer = world.get("PA" if path.endswith("tenants") else "SA", path, params={"limit": limit})

    problem = _refused(answer, 422, "limit")
    assert problem["errors"][0]["in"] == "query"


# Idempotency-Key ----------------------------------------------------------------------------
def _tenant(slug: str) -> dict:
    return {"slug": slug, "name": slug.title(), "admin_email": f"admin@{slug}.test"}


def _provision(world: World, key: str, body: dict, who: str = "PA"):
    return world.post(who, f"{API}/tenants", json=body, headers={"Idempotency-Key": key})


def _created_events(world: World, slug: str) -> int:
    return sum(1 for e in world.events("tenant.created") if e["payload"]["slug"] == slug)


def test_a_replayed_key_with_the_same_body_answers_the_first_response_and_acts_once(world):
    first = _provision(world, "replay-1", _tenant("replayed"))
    tenants_after_first = _tenant_count(world)

    replay = _provision(world, "replay-1", _tenant("replayed"))

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert (replay.status_code, replay.json()) == (201, first.json())
    assert replay.headers["idempotent-replayed"] == "true"
    assert _tenant_count(world) == tenants_after_first
    assert _created_events(world, "replayed") == 1


def test_a_replayed_key_with_a_different_body_is_a_conflict_naming_the_key(world):
    assert _provision(world, "replay-2", _tenant("first-body")).status_code == 201
    before = store_snapshot(world.keel)

    answer = _provision(world, "replay-2", _tenant("second-body"))

    problem = _refused(answer, 409, "Idempotency-Key")
    assert problem["code"] == "conflict"
    assert store_snapshot(world.keel) == before


def test_a_key_reused_on_another_route_is_a_conflict(world):
    world.post(
        "PA", f"{API}/me/tokens", json={"name": "t", "ttl_days": 1}, headers={"Idempotency-Key": "shared-key"}
    )
    before = store_snapshot(world.keel)

    answer = _provision(world, "shared-key", _tenant("other-route"))

    _refused(answer, 409, "Idempotency-Key")
    assert store_snapshot(world.keel) == before


def test_keys_belong_to_their_caller(world):
    first = world.post(
        "PA", f"{API}/me/tokens", json={"name": "t", "ttl_days": 1}, headers={"Idempotency-Key": "same"}
    )
    second = world.post(
        "SA", f"{API}/me/tokens", json={"name": "t", "ttl_days": 1}, headers={"Idempotency-Key": "same"}
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]


def test_a_replayed_token_creation_does_not_show_the_secret_twice(world):
    first = world.post(
        "PA", f"{API}/me/tokens", json={"name": "ci", "ttl_days": 1}, headers={"Idempotency-Key": "tok-1"}
    )
    replay = world.post(
        "PA", f"{API}/me/tokens", json={"name": "ci", "ttl_days": 1}, headers={"Idempotency-Key": "tok-1"}
    )

    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == {**first.json(), "token": "<shown once>"}
    assert first.json()["token"] not in replay.text


@pytest.mark.parametrize(
    ("slug", "bad", "status", "field"),
    [
        ("retried-a", {**_tenant("retried-a"), "slug": "Not_A_Slug"}, 422, "slug"),  # refused by the service
        ("retried-b", {**_tenant("retried-b"), "slug": "acme"}, 409, "slug"),  # the slug is taken
    ],
)
def test_a_failed_creation_can_be_retried_with_the_same_key(world, slug, bad, status, field):
    before = store_snapshot(world.keel)

    failed = _provision(world, f"retry-{slug}", bad)
    again = _provision(world, f"retry-{slug}", bad)

    _refused(failed, status, field)
    _refused(again, status, field)
    assert "idempotent-replayed" not in again.headers
    assert store_snapshot(world.keel) == before, "a failed request left its key or anything else behind"
    fixed = _provision(world, f"retry-{slug}", _tenant(slug))
    assert fixed.status_code == 201, fixed.text
    assert _created_events(world, slug) == 1


def test_a_key_still_in_flight_is_a_conflict(world):
    # A request that holds the key and has not finished (still running, or crashed) is
    # stood in for by the reservation row such a request writes before it acts.
    body = json.dumps(TENANT).encode()
    with world.keel.engine.begin() as conn:
        conn.execute(
            idempotency_keys.insert().values(
                principal=world.actors["PA"].user_id,
                key="in-flight",
                method="POST",
                path=f"{API}/tenants",
                body_sha256=hashlib.sha256(body).hexdigest(),
                status_code=0,
                response={},
                created_at=utcnow(),
            )
        )
    before = store_snapshot(world.keel)

    answer = _post_raw(world, f"{API}/tenants", body, headers={"Idempotency-Key": "in-flight"})

    assert "still in progress" in _refused(answer, 409, "Idempotency-Key")["detail"]
    assert store_snapshot(world.keel) == before


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_an_idempotency_key_of_the_wrong_length_is_refused_naming_it(world, key):
    before = store_snapshot(world.keel)

    answer = _provision(world, key, _tenant("bad-key"))

    _refused(answer, 422, "Idempotency-Key")
    assert store_snapshot(world.keel) == before
    assert world.scalar(sa.select(sa.func.count()).select_from(ledger_entries)) == len(
        before["ledger_entries"]
    )
