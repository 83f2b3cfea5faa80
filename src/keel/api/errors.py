"""Render every error as RFC 9457 problem+json, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.kernel import errors as e

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


def status_of(error: e.KeelError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem(status: int, code: str, title: str, detail: str, instance: str, **extra) -> JSONResponse:
    body = {
        "type": f"https://keel.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.KeelError)
    async def keel_error(request: Request, exc: e.KeelError):
        fields = {k: v for k, v in exc.fields.items() if v is not None}
        if isinstance(exc, e.NotFound) and fields.get("kind") == "tenant":
            fields.pop("id", None)
        return problem(status_of(exc), exc.code, exc.title, exc.detail, request.url.path, **fields)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body") or "body", "message": err["msg"]}
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
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
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # Never echo internals (they may carry secrets); the log has the traceback.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "internal_error",
            "Internal error",
            "an unexpected error occurred; it was logged",
            request.url.path,
        )
