"""Liveness with component status, and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from keel import __version__
from keel.api.deps import get_keel
from keel.observability.metrics import StoreCollector
from keel.platform.service import platform_deployed

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(keel=Depends(get_keel)):
    components: dict[str, dict] = {}
    try:
        with keel.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            deployed = platform_deployed(conn)
        components["control_plane"] = {"status": "ok", "dialect": keel.engine.dialect.name}
        components["platform"] = {"status": "ok" if deployed else "not_deployed"}
    except Exception as exc:  # report, never raise: health must answer
        components["control_plane"] = {"status": "error", "error": type(exc).__name__}
    root = keel.dataplanes.root
    components["data_plane"] = {"status": "ok" if root.exists() else "not_provisioned", "engine": "duckdb"}
    components["evidence"] = {"status": "ok" if keel.public_key_pem() else "no_signing_key"}
    healthy = components["control_plane"]["status"] == "ok"
    return JSONResponse(
        {"status": "ok" if healthy else "error", "version": __version__, "components": components},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics")
def metrics_endpoint(keel=Depends(get_keel)):
    registry = CollectorRegistry()
    registry.register(StoreCollector(keel.engine.connect))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
