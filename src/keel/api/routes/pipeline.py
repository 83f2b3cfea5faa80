"""Routes of pipeline runs: full and incremental, scheduled, recorded."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["pipeline"])
