"""The signals a rollout judges a build by: shares of the built rows, and latency against a baseline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keel.pipeline.model import RunResult
from keel.pipeline.signals import rate, signals

T0 = datetime(2025, 9, 29, 10, 0, tzinfo=UTC)


def run(
    rows: int = 200, error_rows: int = 0, dq_failures: int = 0, seconds: float = 2.0, **changes
) -> RunResult:
    fields = {
        "layer": "gdp", "name": "order", "version": "1.0.0", "table": "gdp.order__v1_0_0",
        "contract": "GDP-ORDER@1.0.0", "inputs": ("raw.shop__orders",), "rows": rows,
        "error_rows": error_rows, "dq_failures": dq_failures, "started_at": T0, "finished_at": T0,
        "duration_seconds": seconds,
    }  # fmt: skip
    return RunResult(**(fields | changes))


def test_rates_are_shares_of_the_rows_built_and_latency_is_compared_with_the_baseline() -> None:
    assert signals(run(error_rows=5, dq_failures=10, seconds=3.0), run(seconds=2.0)) == {
        "error_rate": 0.025,
        "dq_failure_rate": 0.05,
        "latency_seconds": 3.0,
        "latency_ratio": 1.5,
    }


def test_without_a_baseline_there_is_no_latency_ratio() -> None:
    assert signals(run())["latency_ratio"] is None


@pytest.mark.parametrize(
    "baseline",
    [run(seconds=0.0), run(rows=0, error="CAST failed")],
    ids=["no duration", "failed"],
)
def test_a_baseline_without_a_usable_duration_gives_no_latency_ratio(baseline: RunResult) -> None:
    assert signals(run(), baseline)["latency_ratio"] is None


def test_a_failed_run_counts_as_all_errors_and_its_quality_is_unknown() -> None:
    failed = run(rows=0, seconds=0.5, error="Conversion Error: Could not convert string 'x' to INT32")

    assert signals(failed, run(seconds=1.0)) == {
        "error_rate": 1.0,
        "dq_failure_rate": None,
        "latency_seconds": 0.5,
        "latency_ratio": 0.5,
    }


def test_an_empty_table_has_no_failing_share() -> None:
    assert (rate(0, 0), signals(run(rows=0))["dq_failure_rate"]) == (0.0, 0.0)
