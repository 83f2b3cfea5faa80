"""The health signals a rollout judges a run by (pure): error and data-quality rates, latency.

A run that failed counts as all errors; its data-quality rate is unknown (None), as
is a latency ratio without a usable baseline (none given, failed, or of no duration).
"""

from __future__ import annotations

from keel.pipeline.model import RunResult


def signals(result: RunResult, baseline: RunResult | None = None) -> dict[str, float | None]:
    """``error_rate``, ``dq_failure_rate``, ``latency_seconds`` and ``latency_ratio`` of a run."""
    usable = baseline is not None and baseline.ok and baseline.duration_seconds > 0
    return {
        "error_rate": 1.0 if not result.ok else rate(result.error_rows, result.rows),
        "dq_failure_rate": None if not result.ok else rate(result.dq_failures, result.rows),
        "latency_seconds": result.duration_seconds,
        "latency_ratio": result.duration_seconds / baseline.duration_seconds if usable else None,
    }


def rate(count: int, rows: int) -> float:
    """``count`` as a share of ``rows``; an empty table has no failing share (0.0)."""
    return count / rows if rows else 0.0
