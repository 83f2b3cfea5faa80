"""The sample CRM over real HTTP on loopback: auth, page and cursor pagination, incremental reads, 429."""

from __future__ import annotations

import httpx
import pytest

from keel.samples.crm import crm_data, serve_crm

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def crm():
    with serve_crm(seed=3, accounts=60, api_key=KEY, page_size=7) as server:
        yield server


@pytest.fixture
def http(crm):
    with httpx.Client(base_url=crm.url, timeout=5) as client:
        yield client


def test_the_same_seed_serves_the_same_records_and_another_seed_others():
    assert crm_data(3, 60) == crm_data(3, 60)
    assert crm_data(3, 60) != crm_data(4, 60)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_every_endpoint_requires_the_bearer_api_key(http, headers):
    for path in ("/accounts", "/contacts", "/opportunities"):
        response = http.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized", "detail": "a valid bearer API key is required"}


def test_page_pagination_walks_every_account_exactly_once(http, crm):
    seen, page, pages = [], 1, 0
    while page is not None:
        body = http.get("/accounts", params={"page": page}, headers=AUTH).json()
        assert len(body["data"]) <= 7
        seen.extend(body["data"])
        page, pages = body["next_page"], pages + 1

    assert pages == 9  # 60 accounts, 7 a page
    assert seen == crm.data["accounts"]
    assert len({row["id"] for row in seen}) == 60


def test_cursor_pagination_walks_every_contact_exactly_once(http, crm):
    seen, params, cursors = [], {}, []
    while True:
        body = http.get("/contacts", params=params, headers=AUTH).json()
        seen.extend(body["data"])
        if body["next_cursor"] is None:
            break
        cursors.append(body["next_cursor"])
        params = {"cursor": body["next_cursor"]}

    assert seen == crm.data["contacts"]
    assert len(cursors) == len(set(cursors)) == (len(seen) - 1) // 7
    assert all(not cursor.isdigit() for cursor in cursors)  # opaque, not a bare offset


def test_a_forged_cursor_or_page_is_a_bad_request(http):
    cursor = http.get("/contacts", params={"cursor": "not-a-cursor"}, headers=AUTH)
    page = http.get("/accounts", params={"page": "0"}, headers=AUTH)
    since = http.get("/opportunities", params={"updated_since": "yesterday"}, headers=AUTH)

    assert (cursor.status_code, cursor.json()["error"]) == (400, "bad_request")
    assert (page.status_code, page.json()) == (
        400,
        {"error": "bad_request", "detail": "page must be a positive integer, got '0'"},
    )
    assert (since.status_code, since.json()["error"]) == (400, "bad_request")


def test_opportunities_can_be_read_incrementally_by_updated_at(http, crm):
    everything = http.get("/opportunities", headers=AUTH).json()["data"]
    middle = everything[len(everything) // 2]["updated_at"]

    later = http.get("/opportunities", params={"updated_since": middle}, headers=AUTH).json()["data"]
    offset = http.get(
        "/opportunities", params={"updated_since": middle.replace("Z", "+00:00")}, headers=AUTH
    ).json()["data"]

    assert everything == crm.data["opportunities"]
    assert [row["updated_at"] for row in everything] == sorted(row["updated_at"] for row in everything)
    assert later == [row for row in everything if row["updated_at"] >= middle]
    assert 0 < len(later) < len(everything)
    assert offset == later


def test_unknown_paths_answer_404_in_json(http):
    response = http.get("/leads", headers=AUTH)
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not_found", "detail": "no endpoint /leads"},
    )


def test_every_nth_request_is_rate_limited_with_retry_after():
    with serve_crm(api_key=KEY, rate_limit=3) as crm, httpx.Client(base_url=crm.url) as http:
        responses = [http.get("/accounts", headers=AUTH) for _ in range(6)]

        assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429]
        assert responses[2].headers["Retry-After"] == "1"
        assert responses[2].json() == {"error": "rate_limited", "detail": "too many requests"}
        assert crm.requests == 6


def test_a_stopped_crm_refuses_connections():
    crm = serve_crm()
    url = crm.url
    assert httpx.get(f"{url}/accounts", headers={"Authorization": "Bearer crm-demo-key"}).status_code == 200

    crm.stop()

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/accounts", timeout=2)


def test_requests_are_not_logged_unless_verbose(capfd):
    for verbose in (False, True):
        with serve_crm(api_key=KEY, verbose=verbose) as crm:
            httpx.get(f"{crm.url}/accounts", headers=AUTH)
        logged = capfd.readouterr().err
        assert ("GET /accounts" in logged) is verbose
