"""Routes of KPI publishing (06) and consumption (07)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["kpis"])
