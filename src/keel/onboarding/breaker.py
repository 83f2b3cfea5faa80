"""Persisted circuit-breaker state of a connector (story 13).

``{"state": "closed" | "open", "failures": n, "opened_at": iso | None}``. Consecutive
failures open it; while open, runs are refused until the cool-down has passed,
after which one trial run is let through (half-open): its success closes the
breaker, its failure opens it again for another cool-down.
"""

from __future__ import annotations

from datetime import datetime, timedelta

CLOSED_BREAKER = {"state": "closed", "failures": 0, "opened_at": None}


def succeeded() -> dict:
    return dict(CLOSED_BREAKER)


def opened(now: datetime, failures: int = 0) -> dict:
    return {"state": "open", "failures": failures, "opened_at": now.isoformat()}


def failed(state: dict, now: datetime, settings) -> dict:
    failures = int(state.get("failures", 0)) + 1
    if state.get("state") == "open" or failures >= settings.breaker_failure_threshold:
        return opened(now, failures)
    return {"state": "closed", "failures": failures, "opened_at": None}


def refusal(state: dict, now: datetime, settings) -> str | None:
    """Why a run may not start now, or None. An open breaker past its cool-down lets one through."""
    if state.get("state") != "open" or not state.get("opened_at"):
        return None
    until = datetime.fromisoformat(state["opened_at"]) + timedelta(seconds=settings.breaker_cooldown_seconds)
    if now >= until:
        return None
    return f"the connector's circuit breaker is open until {until.isoformat()}"
