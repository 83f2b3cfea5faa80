"""Persisted circuit-breaker state of a connector (story 13).

``{"state": "closed" | "open" | "half_open", "failures": n, "opened_at": iso | None}``.
Consecutive failures open it; while open, runs are refused until the cool-down has
passed. Then exactly one trial run is let through: the run that finds the cool-down
over claims it (``half_open``, under the connector's row lock) and every other run
is refused until the trial ends; its success closes the breaker, a connector
failure opens it again for another cool-down.
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
    if state.get("state") in ("open", "half_open") or failures >= settings.breaker_failure_threshold:
        return opened(now, failures)
    return {"state": "closed", "failures": failures, "opened_at": None}


def trial(state: dict, now: datetime) -> dict:
    """The state while the one trial run after a cool-down is in flight."""
    return {**state, "state": "half_open", "trial_at": now.isoformat()}


def refusal(state: dict, now: datetime, settings) -> str | None:
    """Why a run may not start now, or None. An open breaker past its cool-down lets one through."""
    if state.get("state") == "half_open":
        # A trial whose worker died would hold the breaker forever: after a cool-down, try again.
        since = datetime.fromisoformat(state["trial_at"])
        if now < since + timedelta(seconds=settings.breaker_cooldown_seconds):
            return "the connector's circuit breaker is letting one trial run through; wait for its outcome"
        return None
    if state.get("state") != "open" or not state.get("opened_at"):
        return None
    until = datetime.fromisoformat(state["opened_at"]) + timedelta(seconds=settings.breaker_cooldown_seconds)
    if now >= until:
        return None
    return f"the connector's circuit breaker is open until {until.isoformat()}"
