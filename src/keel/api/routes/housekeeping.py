"""Routes of housekeeping: retention, tiering, compaction, legal holds, scheduler (05b)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["housekeeping"])
