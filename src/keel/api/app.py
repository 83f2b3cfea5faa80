"""The FastAPI application: routers under /api/v1, one error renderer, a body-size limit."""

from __future__ import annotations

from fastapi import FastAPI, Request

from keel import __version__
from keel.api import errors
from keel.api.routes import evidence, health, identity, platform, rbac, tenants


def create_app(keel) -> FastAPI:
    app = FastAPI(
        title="Keel",
        version=__version__,
        description="Governed KPIs and governed actions with offline-verifiable evidence.",
    )
    app.state.keel = keel
    errors.install(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        declared = request.headers.get("content-length")
        limit = keel.settings.max_body_bytes
        too_big = declared is not None and (not declared.isdigit() or int(declared) > limit)
        if not too_big and declared is None and request.method in ("POST", "PUT", "PATCH"):
            too_big = len(await request.body()) > limit
        if too_big:
            return errors.problem(
                413,
                "payload_too_large",
                "Payload too large",
                f"request bodies are limited to {limit} bytes",
                request.url.path,
            )
        return await call_next(request)

    app.include_router(health.router)
    for module in (platform, tenants, identity, rbac, evidence):
        app.include_router(module.router, prefix="/api/v1")
    return app
