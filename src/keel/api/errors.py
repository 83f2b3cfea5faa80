"""Render every error as RFC 9457 problem+json, in one place."""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.kernel import errors as e

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before included routers were resolved lazily listed every route flat

    def iter_route_contexts(routes):
        return routes


log = logging.getLogger("keel.api")

STATUS = {
    e.InvalidInput: 422,
    e.NotFound: 404,
    e.Conflict: 409,
    e.QuotaExceeded: 429,
    e.Blocked: 409,
    e.Unauthenticated: 401,
    e.PermissionDenied: 403,
    e.IntegrityError: 409,
}
PROBLEM = "application/problem+json"
# Where a request input lives; a validation error names the input itself ("limit", not "query.limit").
LOCATIONS = ("body", "query", "path", "header", "cookie")
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_of(error: e.KeelError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem(
    status: int, code: str, title: str, detail: str, instance: str, headers: dict | None = None, **extra
) -> JSONResponse:
    body = {
        "type": f"https://keel.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        **jsonable_encoder(extra),
    }
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"  # RFC 6750: say which credential would do
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


def too_large(limit: int, instance: str) -> JSONResponse:
    return problem(
        413,
        "payload_too_large",
        "Payload too large",
        f"request bodies are limited to {limit} bytes",
        instance,
        limit=limit,
    )


def field_of(error: dict) -> tuple[str, str | None]:
    """``(field, location)`` of one pydantic error: the input's own name, and where it was sent."""
    loc = list(error.get("loc", ()))
    where = str(loc.pop(0)) if loc and loc[0] in LOCATIONS else None
    if error.get("type") == "json_invalid":
        return "body", "body"  # loc holds a character offset, not a field
    return ".".join(str(part) for part in loc) or (where or "body"), where


_PARAM = re.compile(r"\{[^}]+\}")


def allowed_methods(app, path: str) -> list[str]:
    """Every method some route answers on ``path`` (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        template = getattr(route, "path", None)
        if not template or not getattr(route, "methods", None):
            continue
        parts = (re.escape(part) for part in _PARAM.split(template))
        if re.fullmatch("[^/]+".join(parts), path):
            methods |= set(route.methods)
    return sorted(methods)


_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "code", "headers"})


def install(app: FastAPI) -> None:
    @app.exception_handler(e.KeelError)
    async def keel_error(request: Request, exc: e.KeelError):
        # RFC 9457's own members cannot be overridden by an error's fields.
        fields = {k: v for k, v in exc.fields.items() if v is not None and k not in _MEMBERS}
        if isinstance(exc, e.NotFound) and fields.get("kind") == "tenant":
            fields.pop("id", None)
        return problem(status_of(exc), exc.code, exc.title, exc.detail, request.url.path, **fields)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # Messages only: pydantic's "input" would echo what was sent, passwords included.
        errors = []
        for err in exc.errors():
            field, where = field_of(err)
            errors.append({"field": field, "in": where, "message": err["msg"]})
        first = errors[0] if errors else {"field": "body", "in": "body", "message": "invalid"}
        return problem(
            422,
            "invalid_input",
            "Invalid input",
            f"{first['field']}: {first['message']}",
            request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        status = exc.status_code
        if status == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI's answer to a body it could not decode (e.g. not UTF-8): bad input, like bad JSON.
            detail = "body: is not JSON text in UTF-8"
            errors = [{"field": "body", "in": "body", "message": "is not JSON text in UTF-8"}]
            return problem(
                422, "invalid_input", "Invalid input", detail, request.url.path, field="body", errors=errors
            )
        headers = exc.headers
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "HTTP error"
        detail = str(exc.detail)
        if status == 404 and detail == title:
            detail = f"no route matches {request.url.path}"
        elif status == 405:
            allowed = ", ".join(allowed_methods(request.app, request.url.path))
            headers = {**(exc.headers or {}), "Allow": allowed}
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
        return problem(
            status,
            HTTP_CODES.get(status, "http_error"),
            title,
            detail,
            request.url.path,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # The message of an unexpected error may carry secrets (a driver echoing SQL parameters,
        # a decrypted value in a repr), so neither the answer nor the log repeats it: the log
        # gets the type and the frames, which locate the bug, under an id the caller can quote.
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "unhandled %s (error %s) on %s %s\n%s",
            type(exc).__name__,
            error_id,
            request.method,
            request.url.path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return problem(
            500,
            "internal_error",
            "Internal error",
            f"an unexpected error occurred; quote error id {error_id} when reporting it",
            request.url.path,
            error_id=error_id,
        )
