"""Liveness with component status, and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from keel import __version__
from keel.api.deps import get_keel
from keel.api.errors import problem
from keel.observability.metrics import StoreCollector
from keel.platform.service import platform_deployed

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(keel=Depends(get_keel)):
    """200 while the control-plane store answers; each component reports its own status."""
    components: dict[str, dict] = {
        "control_plane": {"status": "error", "dialect": keel.engine.dialect.name},
        "platform": {"status": "unknown"},
        "evidence": {"status": "unknown"},
    }
    try:
        with keel.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            components["control_plane"]["status"] = "ok"
            components["platform"]["status"] = "ok" if platform_deployed(conn) else "not_deployed"
            components["evidence"]["status"] = "ok" if keel.public_key_pem(conn) else "no_signing_key"
    except Exception as exc:  # report, never raise: health must answer
        components["control_plane"]["error"] = type(exc).__name__
    root = keel.dataplanes.root
    components["data_plane"] = {"status": "ok" if root.exists() else "not_provisioned", "engine": "duckdb"}
    if components["control_plane"]["status"] != "ok":
        # An error like any other (problem+json), still carrying every component's status.
        return problem(
            503,
            "unavailable",
            "Service unavailable",
            "the control-plane store does not answer",
            "/healthz",
            version=__version__,
            components=components,
        )
    return JSONResponse({"status": "ok", "version": __version__, "components": components})


@router.get("/metrics")
def metrics_endpoint(request: Request, keel=Depends(get_keel)):
    """The story metrics, in the exposition format the scraper asks for (classic text by default)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(keel.engine.connect))
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), media_type=content_type)
