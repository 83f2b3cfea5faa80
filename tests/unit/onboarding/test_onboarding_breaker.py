"""The connector circuit breaker: consecutive failures open it, a cool-down, then exactly one trial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keel.kernel.settings import Settings
from keel.onboarding import breaker

SETTINGS = Settings(breaker_failure_threshold=3, breaker_cooldown_seconds=60)
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _fail(times: int, state: dict | None = None) -> dict:
    state = state or dict(breaker.CLOSED_BREAKER)
    for n in range(times):
        state = breaker.failed(state, T0 + timedelta(seconds=n), SETTINGS)
    return state


def test_failures_below_the_threshold_keep_it_closed_and_counted():
    state = _fail(2)
    assert (state["state"], state["failures"]) == ("closed", 2)
    assert breaker.refusal(state, T0, SETTINGS) is None


def test_the_threshold_opens_it_and_runs_are_refused_until_the_cool_down_passes():
    state = _fail(3)
    opened_at = datetime.fromisoformat(state["opened_at"])
    assert state["state"] == "open"
    assert "open until" in breaker.refusal(state, opened_at + timedelta(seconds=59), SETTINGS)
    assert breaker.refusal(state, opened_at + timedelta(seconds=60), SETTINGS) is None


def test_after_the_cool_down_exactly_one_trial_runs_and_the_others_wait():
    state = _fail(3)
    later = datetime.fromisoformat(state["opened_at"]) + timedelta(seconds=61)
    trial = breaker.trial(state, later)

    assert trial["state"] == "half_open"
    assert "one trial run" in breaker.refusal(trial, later + timedelta(seconds=1), SETTINGS)
    # A trial whose worker died does not hold the breaker forever.
    assert breaker.refusal(trial, later + timedelta(seconds=61), SETTINGS) is None


def test_a_failed_trial_opens_it_again_and_a_success_closes_it():
    trial = breaker.trial(_fail(3), T0 + timedelta(minutes=5))
    again = breaker.failed(trial, T0 + timedelta(minutes=6), SETTINGS)
    assert again["state"] == "open" and again["failures"] == 4
    assert breaker.succeeded() == breaker.CLOSED_BREAKER
