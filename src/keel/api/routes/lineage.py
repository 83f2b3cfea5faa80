"""Routes of lineage (OpenLineage) and evidence export templates (05)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["lineage"])
