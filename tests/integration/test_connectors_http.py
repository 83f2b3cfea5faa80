"""The HTTP JSON API connector against the real sample CRM served on loopback (no mocks).

Only ``sleep`` is replaced (by a recorder), so back-off is observed without waiting.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from keel.connectors import Catalog, ConnectorError, RecordBatch, StateCheckpoint, Stream
from keel.connectors.http import HttpConnector, retry_after_seconds
from keel.connectors.protocol import redact
from keel.kernel.clock import set_clock
from keel.kernel.errors import InvalidInput, NotFound
from keel.samples.crm import serve_crm

KEY = "s3cr3t-crm-key-7f1d"
PAGE = 25

STREAMS = [
    {"name": "accounts", "path": "/accounts", "pagination": {"type": "page"}, "primary_key": ["id"]},
    {"name": "contacts", "path": "/contacts", "pagination": {"type": "cursor"}},
    {
        "name": "opportunities",
        "path": "/opportunities",
        "incremental": {"param": "updated_since", "cursor_field": "updated_at"},
        "primary_key": ["id"],
    },
]


@pytest.fixture(scope="module")
def crm():
    with serve_crm(api_key=KEY, page_size=PAGE) as server:
        yield server


class Sleeps(list):
    """Records the delays the connector asks for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def config(url: str, *, token: str = KEY, streams: list[dict[str, Any]] | None = None, **extra: Any):
    return {
        "base_url": url,
        "auth": {"type": "bearer", "token": token},
        "streams": streams or STREAMS,
        **extra,
    }


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def drain(messages) -> tuple[list[Any], BaseException | None]:
    """Every message a read yields, and the error it ends with (if any)."""
    out: list[Any] = []
    try:
        for message in messages:
            out.append(message)
    except ConnectorError as exc:
        return out, exc
    return out, None


def records_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [r for m in messages if isinstance(m, RecordBatch) for r in m.records]


def states_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.state for m in messages if isinstance(m, StateCheckpoint)]


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


# --- check -------------------------------------------------------------------


def test_check_with_the_right_key_passes_and_times_the_round_trip(crm):
    result = HttpConnector().check(config(crm.url))
    assert (result.ok, result.message, result.failure) == (
        True,
        "GET /accounts answered with 25 record(s)",
        None,
    )
    assert result.latency_ms > 0


def test_check_with_a_wrong_token_fails_as_auth_without_showing_either_token(crm):
    result = HttpConnector().check(config(crm.url, token="wrong-" + KEY))
    assert (result.ok, result.failure) == (False, "auth")
    assert (
        result.message == "stream 'accounts': GET /accounts answered 401: a valid bearer API key is required"
    )
    assert_no_token(result.message)


def test_check_of_a_closed_port_fails_as_unreachable_at_once():
    sleeps = Sleeps()
    result = HttpConnector(sleep=sleeps).check(config(closed_port_url()))
    assert (result.ok, result.failure, result.message) == (
        False,
        "unreachable",
        "stream 'accounts': GET /accounts failed: ConnectError",
    )
    assert sleeps == []


def test_check_of_a_missing_endpoint_fails_as_config(crm):
    streams = [{"name": "deals", "path": "/deals"}]
    result = HttpConnector().check(config(crm.url, streams=streams))
    assert (result.ok, result.failure, result.message) == (
        False,
        "config",
        "stream 'deals': GET /deals answered 404: no endpoint /deals",
    )


def test_check_of_an_answer_without_the_records_path_fails_as_config(crm):
    streams = [{"name": "accounts", "path": "/accounts", "records_path": "items"}]
    result = HttpConnector().check(config(crm.url, streams=streams))
    assert (result.ok, result.failure, result.message) == (
        False,
        "config",
        "stream 'accounts': GET /accounts answered no list of records at 'items'",
    )


def test_check_of_an_invalid_config_fails_as_config_without_the_token(crm):
    result = HttpConnector().check({"base_url": crm.url, "auth": {"type": "bearer"}, "streams": STREAMS})
    assert (result.ok, result.failure, result.message) == (False, "config", "config.auth.token: is required")


# --- discover ----------------------------------------------------------------


def nullable(kind: str, fmt: str | None = None) -> dict[str, Any]:
    return {"type": [kind, "null"], **({"format": fmt} if fmt else {})}


def test_discover_infers_each_streams_schema_and_modes_from_its_first_page(crm):
    catalog = HttpConnector().discover(config(crm.url))
    text = nullable("string")
    instant = nullable("string", "date-time")
    assert catalog == Catalog(
        streams=(
            Stream(
                name="accounts",
                json_schema={
                    "type": "object",
                    "properties": {
                        "id": text,
                        "name": text,
                        "industry": text,
                        "country": text,
                        "owner": text,
                        "created_at": instant,
                        "updated_at": instant,
                    },
                },
                supported_sync_modes=frozenset({"full_refresh"}),
                primary_key=("id",),
            ),
            Stream(
                name="contacts",
                json_schema={
                    "type": "object",
                    "properties": {
                        "id": text,
                        "account_id": text,
                        "first_name": text,
                        "last_name": text,
                        "email": text,
                        "updated_at": instant,
                    },
                },
                supported_sync_modes=frozenset({"full_refresh"}),
            ),
            Stream(
                name="opportunities",
                json_schema={
                    "type": "object",
                    "properties": {
                        "id": text,
                        "account_id": text,
                        "name": text,
                        "stage": text,
                        "amount": nullable("number"),
                        "currency": text,
                        "close_date": nullable("string", "date"),
                        "updated_at": instant,
                    },
                },
                supported_sync_modes=frozenset({"full_refresh", "incremental"}),
                cursor_field="updated_at",
                primary_key=("id",),
            ),
        )
    )


def test_discover_against_a_wrong_token_raises_an_auth_error_without_the_token(crm):
    with pytest.raises(ConnectorError) as caught:
        HttpConnector().discover(config(crm.url, token="nope-" + KEY))
    assert caught.value.to_dict() == {
        "code": "connector_error",
        "title": "Connector error",
        "detail": "stream 'accounts': GET /accounts answered 401: a valid bearer API key is required",
        "stream": "accounts",
        "file": None,
        "row": None,
        "reason": "auth",
        "path": "/accounts",
        "status": 401,
    }
    assert_no_token(str(caught.value), repr(caught.value), repr(caught.value.to_dict()))


# --- read --------------------------------------------------------------------


def test_a_full_read_of_paged_accounts_yields_every_account_once_with_a_checkpoint_per_page(crm):
    messages = list(HttpConnector().read(config(crm.url), "accounts", None))
    accounts = crm.data["accounts"]
    pages = [accounts[i : i + PAGE] for i in range(0, len(accounts), PAGE)]
    expected: list[Any] = []
    for number, page in enumerate(pages, start=1):
        expected.append(RecordBatch("accounts", page))
        expected.append(StateCheckpoint("accounts", {"next": number + 1} if number < len(pages) else {}))
    assert messages == expected


def test_cursor_pagination_reads_every_contact_once(crm):
    messages = list(HttpConnector().read(config(crm.url), "contacts", None))
    assert records_of(messages) == crm.data["contacts"]
    states = states_of(messages)
    assert len(states) == -(-len(crm.data["contacts"]) // PAGE)
    assert all(isinstance(s["next"], str) for s in states[:-1]) and states[-1] == {}


def test_resuming_from_a_checkpoint_between_pages_yields_exactly_the_rest(crm):
    connector = HttpConnector()
    first = list(connector.read(config(crm.url), "contacts", None))
    checkpoints = range(1, len(first) - 1, 2)  # each but the last (which ends the read)
    for cut in (checkpoints[0], checkpoints[len(checkpoints) // 2], checkpoints[-1]):
        delivered = records_of(first[:cut])
        rest = list(connector.read(config(crm.url), "contacts", first[cut].state))
        assert delivered + records_of(rest) == crm.data["contacts"]


def test_batches_smaller_than_a_page_checkpoint_an_offset_and_resume_inside_the_page(crm):
    connector = HttpConnector()
    messages = list(connector.read(config(crm.url), "accounts", None, batch_size=10))
    assert states_of(messages)[:4] == [
        {"next": None, "offset": 10},
        {"next": None, "offset": 20},
        {"next": 2},
        {"next": 2, "offset": 10},
    ]
    assert [len(m.records) for m in messages if isinstance(m, RecordBatch)][:4] == [10, 10, 5, 10]
    rest = list(connector.read(config(crm.url), "accounts", {"next": 2, "offset": 10}, batch_size=10))
    assert records_of(rest) == crm.data["accounts"][PAGE + 10 :]


def test_an_incremental_read_sends_the_saved_cursor_and_returns_only_records_updated_since(capfd):
    with serve_crm(api_key=KEY, page_size=PAGE, verbose=True) as server:
        connector = HttpConnector()
        opportunities = server.data["opportunities"]
        first = list(connector.read(config(server.url), "opportunities", None))
        newest = max(o["updated_at"] for o in opportunities)
        assert (records_of(first), states_of(first)) == (opportunities, [{"cursor": newest}])

        middle = opportunities[len(opportunities) // 2]["updated_at"]
        capfd.readouterr()
        second = list(connector.read(config(server.url), "opportunities", {"cursor": middle}))
        requests = capfd.readouterr().err
    since = [o for o in opportunities if o["updated_at"] >= middle]
    assert 0 < len(since) < len(opportunities)
    assert (records_of(second), states_of(second)) == (since, [{"cursor": newest}])
    assert f"GET /opportunities?updated_since={middle.replace(':', '%3A')} HTTP/1.1" in requests


def test_a_rate_limited_read_completes_honouring_retry_after():
    with serve_crm(api_key=KEY, page_size=PAGE, rate_limit=3) as server:
        sleeps = Sleeps()
        messages = list(HttpConnector(sleep=sleeps).read(config(server.url), "accounts", None))
        pages = -(-len(server.data["accounts"]) // PAGE)
        assert records_of(messages) == server.data["accounts"]
        assert sleeps == [1.0] * (server.requests - pages)
        assert len(sleeps) == pages // 2  # every third request was refused


def test_without_retries_a_429_raises_after_the_committed_pages_and_a_resume_finishes_exactly():
    with serve_crm(api_key=KEY, page_size=PAGE, rate_limit=3) as server:
        sleeps = Sleeps()
        strict = config(server.url, max_retries=0)
        messages, error = drain(HttpConnector(sleep=sleeps).read(strict, "accounts", None))
        assert isinstance(error, ConnectorError)
        assert (error.fields["reason"], error.fields["status"], error.detail) == (
            "rate_limited",
            429,
            "stream 'accounts': GET /accounts answered 429: too many requests",
        )
        assert records_of(messages) == server.data["accounts"][: 2 * PAGE]
        assert states_of(messages)[-1] == {"next": 3}
        assert sleeps == []
        rest = list(HttpConnector(sleep=sleeps).read(config(server.url), "accounts", states_of(messages)[-1]))
        assert records_of(messages) + records_of(rest) == server.data["accounts"]


def test_an_unreachable_source_is_retried_with_jittered_exponential_backoff_then_raises():
    sleeps = Sleeps()
    cfg = config(closed_port_url(), max_retries=4, backoff={"base_s": 0.5, "max_s": 3})
    messages, error = drain(HttpConnector(sleep=sleeps).read(cfg, "accounts", None))
    assert messages == []
    assert isinstance(error, ConnectorError)
    assert (error.fields["reason"], error.fields["retries"], error.detail) == (
        "unreachable",
        4,
        "stream 'accounts': GET /accounts failed: ConnectError after 4 retries",
    )
    assert len(sleeps) == 4
    assert all(0 <= delay <= cap for delay, cap in zip(sleeps, [0.5, 1.0, 2.0, 3.0], strict=True))


def test_a_client_error_names_the_stream_status_and_path_but_never_the_token(crm):
    with pytest.raises(ConnectorError) as caught:
        list(HttpConnector().read(config(crm.url), "accounts", {"next": "zero"}))
    assert caught.value.to_dict() == {
        "code": "connector_error",
        "title": "Connector error",
        "detail": "stream 'accounts': "
        "GET /accounts answered 400: page must be a positive integer, got 'zero'",
        "stream": "accounts",
        "file": None,
        "row": None,
        "reason": "config",
        "path": "/accounts",
        "status": 400,
    }
    assert_no_token(str(caught.value), repr(caught.value.to_dict()))


def test_a_custom_auth_header_carries_the_token(crm):
    # The CRM wants "Authorization: Bearer <key>", which a header-type auth can send verbatim.
    cfg = config(crm.url)
    cfg["auth"] = {"type": "header", "header": "Authorization", "token": f"Bearer {KEY}"}
    assert records_of(list(HttpConnector().read(cfg, "contacts", None))) == crm.data["contacts"]
    cfg["auth"] = {"type": "none"}
    assert HttpConnector().check(cfg).failure == "auth"


def test_an_unknown_stream_is_not_found_and_a_duplicate_stream_name_is_invalid(crm):
    with pytest.raises(NotFound):
        HttpConnector().read(config(crm.url), "leads", None)
    with pytest.raises(InvalidInput) as caught:
        HttpConnector().discover(config(crm.url, streams=[STREAMS[0], STREAMS[0]]))
    assert caught.value.fields["field"] == "config.streams[1].name"


def test_the_token_never_appears_in_redacted_config_messages_errors_or_logs(crm, caplog):
    caplog.set_level(logging.DEBUG)
    connector = HttpConnector()
    texts = [
        repr(redact(connector.spec(), config(crm.url))),
        connector.check(config(crm.url)).message,
        connector.check(config(crm.url, token=KEY + "x")).message,
    ]
    list(connector.read(config(crm.url), "contacts", None))
    for bad in (config(crm.url, token=KEY + "x"), config(crm.url, streams=[{"name": "x", "path": "/x"}])):
        with pytest.raises(ConnectorError) as caught:
            list(connector.read(bad, bad["streams"][0]["name"], None))
        texts += [str(caught.value), repr(caught.value.to_dict())]
    with pytest.raises(InvalidInput) as invalid:
        connector.read(config(crm.url, streams=[{"name": "bad name", "path": "/x"}]), "x", None)
    texts.append(str(invalid.value))
    assert redact(connector.spec(), config(crm.url))["auth"] == {"type": "bearer", "token": "***"}
    assert caplog.records  # httpx logged the requests
    assert_no_token(*texts, caplog.text)


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    set_clock(lambda: datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    try:
        assert [
            retry_after_seconds(value)
            for value in ("7", "Sun, 01 Mar 2026 12:00:30 GMT", "Sun, 01 Mar 2026 11:00:00 GMT", "soon", None)
        ] == [7.0, 30.0, 0.0, None, None]
    finally:
        set_clock(None)


def test_a_window_state_asks_for_the_records_updated_at_or_after_its_start(crm):
    connector = HttpConnector()
    opportunities = crm.data["opportunities"]
    start = opportunities[len(opportunities) // 3]["updated_at"]
    state = connector.window_state(config(crm.url), "opportunities", start, "2099-01-01T00:00:00Z")
    records = records_of(list(connector.read(config(crm.url), "opportunities", state)))
    assert state == {"cursor": start}
    assert records == [o for o in opportunities if o["updated_at"] >= start]  # the API has no upper bound
    assert HttpConnector.repeats_boundary_records is True  # the boundary record comes again


def test_a_stream_without_an_incremental_parameter_has_no_window(crm):
    with pytest.raises(InvalidInput) as raised:
        HttpConnector().window_state(config(crm.url), "accounts", "2026-01-01")
    with pytest.raises(NotFound):
        HttpConnector().window_state(config(crm.url), "invoices", "2026-01-01")
    assert raised.value.detail == "window: stream 'accounts' has no incremental parameter to read windows by"


def test_an_answer_larger_than_the_limit_is_refused_without_being_read_whole(crm):
    # The sample CRM's accounts page is a few KiB; a limit of 1 KiB makes it "oversized".
    cfg = config(crm.url, streams=[STREAMS[0]], max_response_mb=1 / 1024)

    with pytest.raises(ConnectorError) as caught:
        list(HttpConnector().read(cfg, "accounts", None))

    assert caught.value.fields["reason"] == "too_large"
    assert "config.max_response_mb" in caught.value.detail
