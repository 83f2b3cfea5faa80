"""Routes of guardrails and cost controls (04, 05b)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["guardrails"])
