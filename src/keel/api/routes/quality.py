"""Routes of data-quality rules and quarantines (04)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["quality"])
