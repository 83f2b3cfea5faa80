"""The HTTP JSON API connector: streams read from the JSON endpoints of a REST API.

Each configured stream is one endpoint (``path`` under ``base_url``) whose
answer holds a list of records at ``records_path``. Pagination is by page
number or by opaque cursor, both read from a field of the answer
(``next_field``) and sent back as a query parameter (``param``). Auth is a
bearer token or a named header whose value comes from the secrets store; the
token never appears in a message, an error or a log line.

State is::

    {"next": token | null, "offset": n, "cursor": since, "seen": max_cursor}

while a read is under way: ``next`` is the page or cursor to fetch next
(``null``: the first page), ``offset`` (only when a page was split into
several batches) how many of that page's records are already delivered, and,
for incremental streams, ``cursor`` the value sent as the incremental
parameter during this read and ``seen`` the largest cursor value delivered so
far. A finished read leaves ``{"cursor": max_cursor}`` for incremental streams
(sent as the parameter next time) and ``{}`` for full-refresh streams. A batch
is yielded only with the checkpoint that covers it, so a crash resumes at the
next page and the records of a committed page are never read again. APIs
filter incrementally with ``>=``, so the records carrying exactly the saved
cursor value are delivered again by the next read; Raw de-duplicates them by
primary key or record hash.

429 and 5xx answers and transport errors are retried: ``Retry-After``
(seconds or an HTTP date, capped at ``backoff.max_s``) is honoured, otherwise
the delay is exponential with full jitter. After ``max_retries`` retries
``ConnectorError`` (reason ``rate_limited`` or ``unreachable``) is raised;
every batch yielded before it has its checkpoint already. Other non-2xx
answers raise ``ConnectorError`` naming the stream, the status and the path.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from keel.connectors.errors import ConnectorError
from keel.connectors.protocol import (
    REDACTED,
    Catalog,
    Connector,
    Failure,
    Message,
    RecordBatch,
    StateCheckpoint,
    Stream,
    validate_config,
)
from keel.kernel.clock import utcnow
from keel.kernel.errors import InvalidInput, NotFound

PAGINATION_DEFAULTS = {
    "page": {"param": "page", "next_field": "next_page"},
    "cursor": {"param": "cursor", "next_field": "next_cursor"},
    "none": {},
}

_STREAM: dict[str, Any] = {
    "type": "object",
    "required": ["name", "path"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "path": {"type": "string", "minLength": 1, "description": "Endpoint path under base_url."},
        "records_path": {
            "type": "string",
            "default": "data",
            "description": "Dotted path of the record list in the answer ('' : the answer itself).",
        },
        "params": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "integer", "boolean"]},
            "default": {},
            "description": "Fixed query parameters sent with every request.",
        },
        "pagination": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": list(PAGINATION_DEFAULTS)},
                "param": {"type": "string", "minLength": 1, "description": "Query parameter to send."},
                "next_field": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Dotted path of the next page or cursor in the answer (null: last page).",
                },
            },
            "default": {"type": "none"},
        },
        "incremental": {
            "type": "object",
            "required": ["param", "cursor_field"],
            "additionalProperties": False,
            "properties": {
                "param": {"type": "string", "minLength": 1, "description": "e.g. updated_since"},
                "cursor_field": {"type": "string", "minLength": 1, "description": "e.g. updated_at"},
            },
        },
        "primary_key": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
}

SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "HTTP JSON API",
    "type": "object",
    "required": ["base_url", "streams"],
    "additionalProperties": False,
    "properties": {
        "base_url": {
            "type": "string",
            "pattern": "^https?://[^/]+",
            "description": "e.g. https://api.example.com/v1",
        },
        "auth": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["bearer", "header", "none"]},
                "token": {"type": "string", "minLength": 1, "x-secret": True, "airbyte_secret": True},
                "header": {"type": "string", "minLength": 1, "description": "Header name for type 'header'."},
            },
            "allOf": [
                {"if": {"properties": {"type": {"const": "bearer"}}}, "then": {"required": ["token"]}},
                {
                    "if": {"properties": {"type": {"const": "header"}}},
                    "then": {"required": ["token", "header"]},
                },
            ],
            "default": {"type": "none"},
        },
        "streams": {"type": "array", "minItems": 1, "items": _STREAM},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 10},
        "max_retries": {"type": "integer", "minimum": 0, "default": 5},
        "max_response_mb": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1024,
            "default": 64,
            "description": "Largest answer accepted, in MiB: a bigger one is an error, never read whole.",
        },
        "backoff": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "base_s": {"type": "number", "minimum": 0, "default": 0.5},
                "max_s": {"type": "number", "minimum": 0, "default": 30},
            },
            "default": {},
        },
    },
}


class HttpConnector(Connector):
    """Reads the streams of a JSON API; ``sleep`` waits between retries (tests pass a recorder)."""

    name = "http"
    version = "1.0.0"
    repeats_boundary_records = True  # incremental APIs filter with >= (see the module docstring)

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sleep = sleep

    def spec(self) -> dict[str, Any]:
        return SPEC

    def probe(self, cfg: dict[str, Any]) -> tuple[bool, str, Failure | None]:
        stream = cfg["streams"][0]
        try:
            # A check answers fast: a refused connection is reported, not retried.
            with _Session(cfg, self.sleep, retry_transport=False) as session:
                records, _ = session.page(stream, None, None)
        except ConnectorError as exc:
            reason = exc.fields.get("reason")
            kind = {"auth": "auth", "unreachable": "unreachable", "rate_limited": "unreachable"}.get(
                reason, "config"
            )
            return False, exc.detail, kind
        return True, f"GET {stream['path']} answered with {len(records)} record(s)", None

    def discover(self, config: Mapping[str, Any]) -> Catalog:
        cfg = self.configure(config)
        streams = []
        with _Session(cfg, self.sleep) as session:
            for stream in cfg["streams"]:
                records, _ = session.page(stream, None, None)
                incremental = stream.get("incremental")
                streams.append(
                    Stream(
                        name=stream["name"],
                        json_schema=infer_schema(records),
                        supported_sync_modes=frozenset(
                            {"full_refresh", "incremental"} if incremental else {"full_refresh"}
                        ),
                        cursor_field=incremental["cursor_field"] if incremental else None,
                        primary_key=tuple(stream.get("primary_key", ())),
                    )
                )
        return Catalog(streams=tuple(streams))

    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        cfg = self.configure(config)
        found = next((s for s in cfg["streams"] if s["name"] == stream), None)
        if found is None:
            raise NotFound("stream", stream)
        if batch_size < 1:
            raise InvalidInput("batch_size", "must be at least 1")
        return self._messages(cfg, found, dict(state or {}), batch_size)

    def _messages(
        self, cfg: dict[str, Any], stream: dict[str, Any], state: dict[str, Any], batch_size: int
    ) -> Iterator[Message]:
        name = stream["name"]
        incremental = stream.get("incremental")
        since = state.get("cursor")
        seen = state.get("seen", since)
        token = state.get("next")
        offset = int(state.get("offset", 0))

        def checkpoint(**paging: Any) -> StateCheckpoint:
            new: dict[str, Any] = dict(paging)
            if incremental and since is not None and paging:
                new["cursor"] = since
            if incremental and seen is not None:
                new["seen" if paging else "cursor"] = seen
            return StateCheckpoint(name, new)

        with _Session(cfg, self.sleep) as session:
            while True:
                records, next_token = session.page(stream, token, since)
                if next_token is not None and next_token == token:
                    raise ConnectorError(
                        f"GET {stream['path']} answered the same next page {token!r} again",
                        stream=name,
                        path=stream["path"],
                        reason="malformed",
                    )
                for start in range(offset, len(records), batch_size):
                    batch = records[start : start + batch_size]
                    if incremental:
                        seen = _max_cursor(seen, batch, incremental["cursor_field"], name)
                    end = start + len(batch)
                    yield RecordBatch(name, batch)
                    if end < len(records):
                        yield checkpoint(next=token, offset=end)
                offset = 0
                if next_token is None:
                    yield checkpoint()
                    return
                yield checkpoint(next=next_token)
                token = next_token

    def window_state(
        self, config: Mapping[str, Any], stream: str, start: Any, end: Any = None
    ) -> dict[str, Any]:
        """``{"cursor": start}``: the API is asked for records updated at or after ``start``.

        The API has no upper bound, so ``end`` is left to the caller.
        """
        cfg = self.configure(config)
        found = next((s for s in cfg["streams"] if s["name"] == stream), None)
        if found is None:
            raise NotFound("stream", stream)
        if not found.get("incremental"):
            raise InvalidInput("window", f"stream '{stream}' has no incremental parameter to read windows by")
        if start is None:
            raise InvalidInput("window.start", "is required")
        return {"cursor": start}

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = validate_config(self, config)
        names = [s["name"] for s in cfg["streams"]]
        for index, stream in enumerate(cfg["streams"]):
            if stream["name"] in names[:index]:
                raise InvalidInput(
                    f"config.streams[{index}].name", f"stream '{stream['name']}' is configured twice"
                )
            pagination = stream["pagination"]
            stream["pagination"] = {**PAGINATION_DEFAULTS[pagination["type"]], **pagination}
        return cfg


def _max_cursor(current: Any, records: list[dict[str, Any]], field: str, stream: str) -> Any:
    """The largest cursor value (ISO strings compare as text, so they must share one format)."""
    for record in records:
        value = record.get(field)
        if value is None:
            continue
        try:
            if current is None or value > current:
                current = value
        except TypeError:
            raise ConnectorError(
                f"cursor field '{field}' mixes types ({value!r} and {current!r})",
                stream=stream,
                reason="malformed",
            ) from None
    return current


class _Session:
    """One HTTP client with the auth header, and the retry policy around each GET."""

    def __init__(
        self, cfg: Mapping[str, Any], sleep: Callable[[float], None], *, retry_transport: bool = True
    ):
        self.cfg = cfg
        self.sleep = sleep
        self.retry_transport = retry_transport
        auth = cfg["auth"]
        self.token: str | None = auth.get("token") if auth["type"] != "none" else None
        headers = {"Accept": "application/json", "User-Agent": f"keel-http-connector/{HttpConnector.version}"}
        if auth["type"] == "bearer":
            headers["Authorization"] = f"Bearer {auth['token']}"
        elif auth["type"] == "header":
            headers[auth["header"]] = auth["token"]
        # No redirects: a custom auth header would follow them to another host.
        self.client = httpx.Client(headers=headers, timeout=cfg["timeout_s"], follow_redirects=False)
        self.base_url = cfg["base_url"].rstrip("/")

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def page(self, stream: Mapping[str, Any], token: Any, since: Any) -> tuple[list[dict[str, Any]], Any]:
        """Records of one page and the next page's token (``None``: last page)."""
        params: dict[str, Any] = dict(stream.get("params", {}))
        pagination = stream["pagination"]
        if token is not None and pagination["type"] != "none":
            params[pagination["param"]] = token
        if since is not None and stream.get("incremental"):
            params[stream["incremental"]["param"]] = since
        body = self.get(stream, params)
        records = _at(body, stream["records_path"])
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise self.error(
                stream,
                f"GET {stream['path']} answered no list of records at '{stream['records_path']}'",
                "malformed",
            )
        next_token = _at(body, pagination["next_field"]) if pagination["type"] != "none" else None
        return records, next_token

    def get(self, stream: Mapping[str, Any], params: dict[str, Any]) -> Any:
        path = stream["path"]
        url = f"{self.base_url}/{path.lstrip('/')}"
        backoff = self.cfg["backoff"]
        base_s, max_s = backoff.get("base_s", 0.5), backoff.get("max_s", 30)
        for attempt in range(self.cfg["max_retries"] + 1):
            retry_after: float | None = None
            try:
                response = self._get(url, params, stream)
            except httpx.TimeoutException:
                reason, detail, status = "unreachable", f"GET {path} timed out", None
                retryable = self.retry_transport
            except httpx.TransportError as exc:
                reason, detail, status = "unreachable", f"GET {path} failed: {type(exc).__name__}", None
                retryable = self.retry_transport
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise self.error(
                            stream, f"GET {path} answered {status} with a body that is not JSON", "malformed"
                        ) from None
                detail = f"GET {path} answered {status}{_problem(response)}"
                if status == 429 or status >= 500:
                    reason = "rate_limited" if status == 429 else "unreachable"
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    retryable = True
                else:
                    reason = (
                        "auth" if status in (401, 403) else "config" if status in (400, 404, 405) else "http"
                    )
                    raise self.error(stream, detail, reason, status=status)
            if not retryable or attempt == self.cfg["max_retries"]:
                retries = f" after {attempt} retr{'y' if attempt == 1 else 'ies'}" if attempt else ""
                raise self.error(stream, detail + retries, reason, status=status, retries=attempt)
            cap = min(max_s, base_s * 2**attempt)
            delay = min(retry_after, max_s) if retry_after is not None else random.uniform(0, cap)
            self.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _get(self, url: str, params: dict[str, Any], stream: Mapping[str, Any]) -> httpx.Response:
        """GET with the body read in chunks up to ``max_response_mb``; a bigger answer is refused."""
        limit = int(self.cfg["max_response_mb"] * 1024 * 1024)
        with self.client.stream("GET", url, params=params) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise self.error(
                        stream,
                        f"GET {stream['path']} answered more than {self.cfg['max_response_mb']} MiB "
                        "(config.max_response_mb)",
                        "too_large",
                    )
        return httpx.Response(
            response.status_code, headers=response.headers, content=bytes(body), request=response.request
        )

    def error(self, stream: Mapping[str, Any], detail: str, reason: str, **fields: Any) -> ConnectorError:
        if self.token:
            detail = detail.replace(self.token, REDACTED)
        return ConnectorError(detail, stream=stream["name"], path=stream["path"], reason=reason, **fields)


def _problem(response: httpx.Response) -> str:
    """A short excerpt of an error answer (its ``detail``/``error`` when JSON), to help the reader."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        text = body.get("detail") or body.get("error") or body.get("message")
        if isinstance(text, str) and text:
            return f": {text[:200]}"
    return ""


def _at(body: Any, dotted: str) -> Any:
    for part in (p for p in dotted.split(".") if p):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait per a ``Retry-After`` header (seconds or HTTP date); ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


# --- schema inference --------------------------------------------------------

_TYPE_ORDER = ("boolean", "integer", "number", "string", "array", "object", "null")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def infer_schema(records: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of records: per field the union of the types seen, every field nullable."""
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    for record in records:
        for key, value in record.items():
            known = schema["properties"].get(key)
            schema["properties"][key] = (
                _schema_of(value) if known is None else _union(known, _schema_of(value))
            )
    schema["properties"] = {k: _nullable(v) for k, v in schema["properties"].items()}
    return schema


def _schema_of(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": ["null"]}
    if isinstance(value, bool):
        return {"type": ["boolean"]}
    if isinstance(value, int):
        return {"type": ["integer"]}
    if isinstance(value, float):
        return {"type": ["number"]}
    if isinstance(value, str):
        fmt = "date-time" if _DATE_TIME.match(value) else "date" if _DATE.match(value) else None
        return {"type": ["string"], "format": fmt} if fmt else {"type": ["string"]}
    if isinstance(value, list):
        items: dict[str, Any] | None = None
        for item in value:
            items = _schema_of(item) if items is None else _union(items, _schema_of(item))
        return {"type": ["array"], "items": items or {}}
    if isinstance(value, dict):
        return {"type": ["object"], "properties": {k: _schema_of(v) for k, v in value.items()}}
    return {"type": ["string"]}


def _union(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    types = set(a.get("type", [])) | set(b.get("type", []))
    if "number" in types:
        types.discard("integer")
    merged: dict[str, Any] = {"type": [t for t in _TYPE_ORDER if t in types]}
    # A format holds when every side that has strings agrees on it.
    formats = {s.get("format") for s in (a, b) if "string" in s.get("type", [])}
    if len(formats) == 1 and None not in formats:
        merged["format"] = formats.pop()
    if "items" in a or "items" in b:
        items_a, items_b = a.get("items") or {}, b.get("items") or {}
        merged["items"] = _union(items_a, items_b) if items_a and items_b else dict(items_a or items_b)
    if "properties" in a or "properties" in b:
        props = dict(a.get("properties", {}))
        for key, sub in b.get("properties", {}).items():
            props[key] = _union(props[key], sub) if key in props else sub
        merged["properties"] = props
    return merged


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    if "null" not in out["type"]:
        out["type"] = [*out["type"], "null"]
    if "properties" in out:
        out["properties"] = {k: _nullable(v) for k, v in out["properties"].items()}
    return out
