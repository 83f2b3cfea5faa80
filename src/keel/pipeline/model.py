"""What a materialization run reports (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class RunResult:
    """One build of one version of a GDP table or KPI.

    ``error_rows`` are rows holding a value that could not be converted to its
    field's declared type (it was stored as NULL); ``dq_failures`` are rows that
    break at least one of the dataset's NOT NULL, unique or primary-key
    constraints, with the count per constraint in ``dq_checks``; ``rule_results`` counts
    the data-quality rules (04) it applied. A run that did
    not commit has ``error`` set and counts nothing. An incremental run's counts cover
    what it added (see ``mode``).
    """

    layer: str  # "gdp" or "kpi"
    name: str  # the active view's name: "order", "kpi_dso"
    version: str  # the contract version built
    table: str  # the versioned table: "gdp.order__v1_0_0"
    contract: str  # "ID@VERSION" of the contract that drove the build
    inputs: tuple[str, ...]  # the tables read, versioned where Keel built them
    rows: int
    error_rows: int
    dq_failures: int
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    dq_checks: Mapping[str, int] = field(default_factory=dict, hash=False)
    error: str | None = None
    # data-quality rules (04): rule id -> version, on_fail, checked, failed, passed
    rule_results: Mapping[str, Mapping] = field(default_factory=dict, hash=False)
    # "full": the table was computed from all its inputs; "incremental": rows were added
    # (GDP) or the affected periods recomputed (KPI), and ``delta_rows`` counts those; the
    # counts above then cover the added rows only, except ``rows`` (the whole table).
    mode: str = "full"
    delta_rows: int | None = None
    batches: tuple[str, ...] = ()  # the Raw batches an incremental run folded in
    note: str | None = None  # why a refresh ran in full, or what it found
    # column lineage of what the run wrote: output column -> the (table, column) pairs it comes from
    lineage: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, hash=False)

    @property
    def ok(self) -> bool:
        return self.error is None
