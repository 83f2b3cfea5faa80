"""A sample CRM served as a small local HTTP JSON API, for the demo and the HTTP connector's tests.

Three endpoints, one pagination style each, as real SaaS APIs mix them:

- ``GET /accounts?page=N`` (pages from 1): ``{"data": [...], "next_page": N+1 | null}``;
- ``GET /contacts?cursor=C``: ``{"data": [...], "next_cursor": "..." | null}``, cursors opaque;
- ``GET /opportunities?updated_since=ISO``: every opportunity updated at or after that instant,
  oldest first: ``{"data": [...]}``.

Every request needs ``Authorization: Bearer <api_key>`` (else 401). With ``rate_limit=N``
every Nth request (counted over all requests) answers 429 with ``Retry-After: 1``, so a
connector's back-off can be tested. Errors are JSON ``{"error": code, "detail": text}``.
"""

from __future__ import annotations

import base64
import json
import random
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
INDUSTRIES = ("manufacturing", "retail", "logistics", "pharma", "energy", "software", "finance")
COUNTRIES = ("DE", "FR", "NL", "IT", "ES", "GB", "US", "CH")
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira")
LAST_NAMES = ("Meyer", "Dubois", "Jansen", "Rossi", "Garcia", "Smith", "Miller", "Keller", "Novak", "Berg")
WORDS = ("Apex", "Blue", "Crest", "Dune", "Echo", "Flint", "Grove", "Helix", "Ion", "Jade", "Knot", "Loom")
STAGES = ("prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost")
OWNERS = ("sales.north", "sales.south", "sales.east", "sales.west")

# How Keel's HTTP connector reads this API: the preset of the ``crm-http`` connector template.
CONNECTOR_STREAMS: list[dict[str, Any]] = [
    {"name": "accounts", "path": "/accounts", "pagination": {"type": "page"}, "primary_key": ["id"]},
    {"name": "contacts", "path": "/contacts", "pagination": {"type": "cursor"}, "primary_key": ["id"]},
    {
        "name": "opportunities",
        "path": "/opportunities",
        "incremental": {"param": "updated_since", "cursor_field": "updated_at"},
        "primary_key": ["id"],
    },
]


def crm_data(seed: int = 7, accounts: int = 120) -> dict[str, list[dict[str, Any]]]:
    """The CRM's records (pure, deterministic): accounts, their contacts and opportunities."""
    rng = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = {"accounts": [], "contacts": [], "opportunities": []}
    for n in range(1, accounts + 1):
        account_id = f"ACC-{n:04d}"
        created = EPOCH - timedelta(days=rng.randint(30, 900))
        out["accounts"].append(
            {
                "id": account_id,
                "name": f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(('AG', 'Ltd', 'Inc.', 'SA'))}",
                "industry": rng.choice(INDUSTRIES),
                "country": rng.choice(COUNTRIES),
                "owner": rng.choice(OWNERS),
                "created_at": _iso(created),
                "updated_at": _iso(created + timedelta(days=rng.randint(0, 29))),
            }
        )
        for _ in range(rng.randint(0, 4)):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            number = len(out["contacts"]) + 1
            out["contacts"].append(
                {
                    "id": f"CON-{number:05d}",
                    "account_id": account_id,
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first}.{last}.{number}@example.com".lower(),
                    "updated_at": _iso(EPOCH + timedelta(minutes=rng.randint(0, 180 * 24 * 60))),
                }
            )
        for _ in range(rng.randint(0, 3)):
            number = len(out["opportunities"]) + 1
            updated = EPOCH + timedelta(minutes=rng.randint(0, 180 * 24 * 60))
            out["opportunities"].append(
                {
                    "id": f"OPP-{number:05d}",
                    "account_id": account_id,
                    "name": f"{rng.choice(WORDS)} renewal {number}",
                    "stage": rng.choice(STAGES),
                    "amount": rng.randint(100_000, 50_000_000) / 100,
                    "currency": "EUR",
                    "close_date": (updated + timedelta(days=rng.randint(10, 120))).date().isoformat(),
                    "updated_at": _iso(updated),
                }
            )
    out["opportunities"].sort(key=lambda row: (row["updated_at"], row["id"]))
    return out


@dataclass
class CrmServer:
    """A running sample CRM; ``url`` is its base URL. Stop it with ``stop()`` or a ``with`` block."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    api_key: str
    data: dict[str, list[dict[str, Any]]] = field(repr=False)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> int:
        """Requests answered so far (429s and 401s included)."""
        return self.server.requests  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> CrmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_crm(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 7,
    accounts: int = 120,
    api_key: str = "crm-demo-key",
    page_size: int = 25,
    rate_limit: int | None = None,
    verbose: bool = False,
) -> CrmServer:
    """Start the sample CRM on ``host:port`` (0: any free port) in a background thread."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    if rate_limit is not None and rate_limit < 2:
        raise ValueError("rate_limit must be at least 2 (every Nth request is refused)")
    data = crm_data(seed, accounts)
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.data = data  # type: ignore[attr-defined]
    server.api_key = api_key  # type: ignore[attr-defined]
    server.page_size = page_size  # type: ignore[attr-defined]
    server.rate_limit = rate_limit  # type: ignore[attr-defined]
    server.verbose = verbose  # type: ignore[attr-defined]
    server.requests = 0  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="sample-crm", daemon=True)
    thread.start()
    return CrmServer(server=server, thread=thread, api_key=api_key, data=data)


class _Handler(BaseHTTPRequestHandler):
    server_version = "KeelSampleCRM/1"
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs; every answer sets Content-Length
    # Headers and body go out in separate writes: without this each answer waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        server: Any = self.server
        with server.lock:
            server.requests += 1
            refused = server.rate_limit is not None and server.requests % server.rate_limit == 0
        if refused:
            self._send(429, {"error": "rate_limited", "detail": "too many requests"}, {"Retry-After": "1"})
            return
        if self.headers.get("Authorization") != f"Bearer {server.api_key}":
            self._send(401, {"error": "unauthorized", "detail": "a valid bearer API key is required"})
            return
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        route = {"/accounts": self._accounts, "/contacts": self._contacts, "/opportunities": self._opps}
        handler = route.get(url.path.rstrip("/"))
        if handler is None:
            self._send(404, {"error": "not_found", "detail": f"no endpoint {url.path}"})
            return
        try:
            self._send(200, handler(server, query))
        except _BadRequest as error:
            self._send(400, {"error": "bad_request", "detail": str(error)})

    def _accounts(self, server: Any, query: dict[str, str]) -> dict:
        page = _positive_int(query.get("page", "1"), "page")
        rows = server.data["accounts"]
        size = server.page_size
        chunk = rows[(page - 1) * size : page * size]
        return {"data": chunk, "next_page": page + 1 if page * size < len(rows) else None}

    def _contacts(self, server: Any, query: dict[str, str]) -> dict:
        offset = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
        rows = server.data["contacts"]
        end = offset + server.page_size
        return {"data": rows[offset:end], "next_cursor": _encode_cursor(end) if end < len(rows) else None}

    def _opps(self, server: Any, query: dict[str, str]) -> dict:
        rows = server.data["opportunities"]
        if query.get("updated_since"):
            since = _parse_instant(query["updated_since"])
            rows = [row for row in rows if _parse_instant(row["updated_at"]) >= since]
        return {"data": rows}

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


class _BadRequest(ValueError):
    pass


def _positive_int(text: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise _BadRequest(f"{name} must be a positive integer, got {text!r}")
    return int(text)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["o"]
    except (ValueError, KeyError, TypeError):
        raise _BadRequest(f"invalid cursor {cursor!r}") from None
    if not isinstance(offset, int) or offset < 0:
        raise _BadRequest(f"invalid cursor {cursor!r}")
    return offset


def _parse_instant(text: str) -> datetime:
    try:
        # A '+' left unencoded in a query string arrives as a space.
        instant = datetime.fromisoformat(text.strip().replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise _BadRequest(f"updated_since must be an ISO 8601 instant, got {text!r}") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
