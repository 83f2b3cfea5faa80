"""How the CLI reaches Keel: REST calls over HTTP, to a remote server or to the embedded one in-process.

Remote mode (``KEEL_URL`` set) talks to a running server with httpx. Local mode
builds Keel from settings and sends the very same requests through an in-process
ASGI transport, so every command passes the same enforcement point as the API
and no server needs to run. Problem+json answers become one ``CliError``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import typer
from pydantic import ValidationError

from keel.cli import credentials
from keel.kernel.settings import Settings, load_settings

EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_BLOCKED = 5
CSRF = {"X-Keel-CSRF": "1"}


class CliError(Exception):
    """An error the CLI reports as ``error: <detail>`` (plus field/rule/reason) and an exit code."""

    def __init__(
        self,
        detail: str,
        exit_code: int = EXIT_FAILURE,
        *,
        field: str | None = None,
        rule: str | None = None,
        reason: str | None = None,
        hint: str | None = None,
        problem: dict | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.exit_code = exit_code
        self.field = field
        self.rule = rule
        self.reason = reason
        self.hint = hint
        self.problem = problem


def exit_code_for(status: int) -> int:
    """2 bad input, 3 not signed in or not allowed, 4 not found, 5 blocked or conflicting, 1 otherwise."""
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (409, 429):
        return EXIT_BLOCKED
    if 400 <= status < 500:
        return EXIT_INPUT
    return EXIT_FAILURE


def problem_error(response: httpx.Response, *, token_sent: bool) -> CliError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {
            "status": response.status_code,
            "detail": f"HTTP {response.status_code} {response.reason_phrase}",
        }
    status = response.status_code
    hint = None
    if status == 401 and not token_sent:
        hint = "sign in with `keel login --email <e-mail>`, or pass --token / set KEEL_TOKEN"
    return CliError(
        str(body.get("detail") or body.get("title") or f"HTTP {status}"),
        exit_code_for(status),
        field=_text(body.get("field")),
        rule=_text(body.get("rule")),
        reason=_text(body.get("reason")),
        hint=hint,
        problem=body,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class ApiClient:
    """REST calls with a bearer token; an error answer raises ``CliError``."""

    def __init__(
        self, http: httpx.Client, token: str | None, where: str, on_close: Callable[[], None] | None = None
    ) -> None:
        self.http = http
        self.token = token
        self.where = where
        self._on_close = on_close

    def with_token(self, token: str | None) -> ApiClient:
        """Another identity over the same connection (closing it leaves the connection open)."""
        return ApiClient(self.http, token, self.where)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        auth: bool = True,
    ) -> Any:
        send = dict(headers or {})
        token_sent = bool(auth and self.token)
        if token_sent:
            send["Authorization"] = f"Bearer {self.token}"
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.http.request(method, path, json=json, params=params, headers=send)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach Keel at {self.where}: {exc}") from None
        if response.status_code >= 400:
            raise problem_error(response, token_sent=token_sent)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(f"{method} {path}: the server did not answer with JSON") from None

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("POST", path, json=json if json is not None else {}, **kw)

    def put(self, path: str, json: Any = None, **kw) -> Any:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw) -> Any:
        return self.request("DELETE", path, **kw)

    def get_all(self, path: str, params: dict | None = None) -> list[dict]:
        """Every item of a cursor-paginated list."""
        items: list[dict] = []
        cursor = None
        while True:
            page = self.get(path, params={**(params or {}), "cursor": cursor})
            items.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def sign_in_for_token(self, email: str, password: str, token_name: str) -> dict:
        """Sign in with a password and turn the session into an API token (then close the session)."""
        self.post("/api/v1/auth/sign-in", json={"email": email, "password": password}, auth=False)
        try:
            return self.post("/api/v1/me/tokens", json={"name": token_name}, auth=False, headers=CSRF)
        finally:
            # Best effort: the session expires by itself; the token is what the caller needs.
            with contextlib.suppress(CliError):
                self.post("/api/v1/auth/sign-out", auth=False, headers=CSRF)
            self.http.cookies.clear()

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


def connect(settings: Settings, token: str | None) -> ApiClient:
    """An API client for the remote Keel at ``KEEL_URL``, or for the embedded one in ``KEEL_HOME``."""
    if settings.url:
        http = httpx.Client(base_url=settings.url, timeout=60.0)
        return ApiClient(http, token, settings.url, http.close)
    return _local(settings, token)


def _local(settings: Settings, token: str | None) -> ApiClient:
    from keel.bootstrap import build  # here, so offline commands never load the store

    try:
        keel = build(settings)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise CliError(
            f"cannot open the embedded Keel in {settings.home}: {type(exc).__name__}: {first_line}"
        ) from None
    return in_process(keel, token, close_keel=True)


def in_process(keel, token: str | None = None, *, close_keel: bool = False) -> ApiClient:
    """An API client whose requests run through ``keel``'s own FastAPI app in this process."""
    from keel.api.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about its httpx dependency is not for users
        from fastapi.testclient import TestClient
    # Unexpected server errors come back as problem+json (500), as they would from a remote server.
    http = TestClient(create_app(keel), base_url="http://keel.local", raise_server_exceptions=False)

    def close() -> None:
        http.close()
        if close_keel:
            keel.close()

    return ApiClient(http, token, f"the embedded Keel in {keel.settings.home}", close)


@dataclass
class State:
    """What the global options decided, and the API connection opened on first use."""

    token_option: str | None = None
    json: bool = False
    _settings: Settings | None = None
    _api: ApiClient | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = read_settings()
        return self._settings

    def token(self) -> str | None:
        """--token, then KEEL_TOKEN, then the token saved by ``keel login`` for this server."""
        if self.token_option:
            return self.token_option
        settings = self.settings()
        if settings.token:
            return settings.token
        saved = credentials.load(settings)
        return saved["token"] if saved else None

    def api(self) -> ApiClient:
        if self._api is None:
            self._api = connect(self.settings(), self.token())
            self._closers.append(self._api.close)
        return self._api

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


def read_settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "KEEL_" + "_".join(str(p) for p in first["loc"]).upper()
        raise CliError(f"{name}: {first['msg']}", EXIT_INPUT, field=name) from None


def state_of(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)
