"""The FastAPI application: routers under /api/v1, one error renderer, guards on raw input."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel import __version__
from keel.api import errors
from keel.api.routes import (
    changes,
    connectors,
    contracts,
    evidence,
    evidence_packs,
    extensions,
    guardrails,
    health,
    housekeeping,
    identity,
    impact,
    kpis,
    lineage,
    pipeline,
    platform,
    quality,
    rbac,
    rollouts,
    tenants,
    tickets,
)


def create_app(keel) -> FastAPI:
    app = FastAPI(
        title="Keel",
        version=__version__,
        description="Governed KPIs and governed actions with offline-verifiable evidence.",
    )
    app.state.keel = keel
    errors.install(app)
    app.add_middleware(BodyLimit, limit=keel.settings.max_body_bytes)
    app.add_middleware(NoNulCharacters)
    app.include_router(health.router)
    for module in (
        platform,
        tenants,
        identity,
        rbac,
        evidence,
        connectors,
        contracts,
        changes,
        rollouts,
        impact,
        extensions,
        tickets,
        pipeline,
        quality,
        guardrails,
        housekeeping,
        lineage,
        kpis,
        evidence_packs,
    ):
        app.include_router(module.router, prefix="/api/v1")
    return app


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes before any route sees them, in bounded memory.

    A declared ``Content-Length`` over the limit is refused before a byte is read. Any other
    body (chunked, or a lying length) is read here up to the limit and refused as soon as it
    passes it, so a huge upload costs at most ``limit`` bytes and the rest is never read.
    Reading first also means a route that reads its body late, or never, cannot act on an
    oversized request: nothing is half-written. The body read is handed on unchanged.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and not declared.isdigit():
            response = errors.problem(
                400, "bad_request", "Bad request", "the Content-Length header is not a number", scope["path"]
            )
            await response(scope, receive, send)
            return
        if declared is not None and int(declared) > self.limit:
            await errors.too_large(self.limit, scope["path"])(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before it finished sending
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await errors.too_large(self.limit, scope["path"])(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # later calls only ever wait for a disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


class NoNulCharacters:
    """Refuse a NUL character in the path or the query: no id or name holds one, and PostgreSQL
    text cannot even be compared with one (the driver raises instead of finding nothing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = "path" if "\x00" in scope["path"] else None
            if field is None and (b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]):
                pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                field = next((k for k, v in pairs if "\x00" in v and "\x00" not in k), "query")
            if field is not None:
                detail = f"{field}: must not contain NUL characters"
                response = errors.problem(
                    422,
                    "invalid_input",
                    "Invalid input",
                    detail,
                    quote(scope["path"]),
                    field=field,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
