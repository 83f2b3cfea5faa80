"""Errors of the data-plane pipeline, on top of the kernel hierarchy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.kernel.errors import Conflict, KeelError

if TYPE_CHECKING:
    from keel.pipeline.model import RunResult


class EngineError(KeelError):
    """The SQL engine refused or failed a statement; ``cause`` names the engine's error class."""

    code = "engine_error"
    title = "Data-plane engine error"


class DataPlaneBusy(Conflict):
    """Another process holds the tenant's database file (DuckDB allows one writing process)."""

    code = "data_plane_busy"
    title = "Data plane busy"


class MaterializationFailed(KeelError):
    """A build did not commit; nothing it started is visible. ``result`` is the failed run."""

    code = "materialization_failed"
    title = "Materialization failed"

    def __init__(self, result: RunResult, cause: str) -> None:
        super().__init__(
            f"building {result.table} failed: {result.error}",
            layer=result.layer,
            table=result.table,
            version=result.version,
            cause=cause,
        )
        self.result = result
