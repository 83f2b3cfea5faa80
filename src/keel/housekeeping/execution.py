"""One housekeeping job on a tenant's DuckDB data plane: tier or delete expired rows, then CHECKPOINT."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from keel.housekeeping.policy import LegalHold, RetentionPolicy
from keel.pipeline.engine import DuckDBEngine

log = logging.getLogger(__name__)
ATTEMPTS = 3


@dataclass
class RunRecord:
    policy_id: str
    tenant_id: str
    table: str
    status: str = "PENDING"
    reason: str = ""
    rows_tiered: int = 0
    rows_deleted: int = 0
    files: list[str] = field(default_factory=list)
    attempts: int = 0


def execute(
    engine: DuckDBEngine,
    tenant_id: str,
    policy: RetentionPolicy,
    now: datetime,
    cold_root: Path,
    holds: Iterable[LegalHold] = (),
) -> RunRecord:
    """Apply ``policy`` to one table; retried up to ``ATTEMPTS`` times; never touches held data."""
    schema = policy.scope
    record = RunRecord(policy.policy_id, tenant_id, policy.table)
    if not policy.in_effect:
        record.status, record.reason = "SKIPPED", f"policy {policy.policy_id} is not approved"
        return record
    for hold in holds:
        if hold.covers(tenant_id, schema, policy.table):
            record.status, record.reason = "BLOCKED", f"legal hold {hold.hold_id} protects {tenant_id}"
            log.warning("housekeeping blocked: %s", record.reason)
            return record
    cutoff = policy.cutoff(now)
    for attempt in range(1, ATTEMPTS + 1):
        record.attempts = attempt
        try:
            _once(engine, tenant_id, policy, schema, cutoff, cold_root, record)
            record.status = "SUCCEEDED"
            return record
        except Exception as exc:  # every failure is retried, then reported
            log.warning("housekeeping attempt %d of %s failed: %s", attempt, policy.policy_id, exc)
            record.reason = str(exc)
            record.rows_tiered = record.rows_deleted = 0
            record.files = []
    record.status = "FAILED"
    return record


def _once(engine, tenant_id, policy, schema, cutoff, cold_root, record) -> None:
    target = f'{schema}."{policy.table}"'
    where = f"\"{policy.time_column}\" < TIMESTAMPTZ '{cutoff.isoformat()}'"
    cold: Path | None = None
    with engine.session(), engine.transaction():
        expired = engine.rows(f"SELECT count(*) FROM {target} WHERE {where}")[0][0]
        if expired and policy.action_on_expiry == "tier_to_cold":
            cold = cold_root / tenant_id / policy.table / f"{cutoff.date().isoformat()}.parquet"
            cold.parent.mkdir(parents=True, exist_ok=True)
            path = str(cold).replace("'", "''")
            try:
                engine.execute(f"COPY (SELECT * FROM {target} WHERE {where}) TO '{path}' (FORMAT PARQUET)")
                in_file = engine.rows(f"SELECT count(*) FROM read_parquet('{path}')")[0][0]
                if in_file != expired:
                    raise RuntimeError(f"cold file holds {in_file} rows, expected {expired}")
                engine.execute(f"DELETE FROM {target} WHERE {where}")
            except BaseException:
                with contextlib.suppress(OSError):
                    cold.unlink()
                raise
            record.rows_tiered, record.files = expired, [str(cold)]
        elif expired:
            engine.execute(f"DELETE FROM {target} WHERE {where}")
        record.rows_deleted = expired
    engine.execute("CHECKPOINT")


def run_due(
    keel,
    now: datetime,
    assignments: Iterable[tuple[str, RetentionPolicy]],
    holds: Iterable[LegalHold] = (),
) -> list[RunRecord]:
    """Scheduler entry: run each approved ``(tenant_id, policy)`` pair against the tenant's data plane.

    Until the store tables land, the caller supplies the policies and holds.
    """
    holds = list(holds)
    cold_root = Path(keel.settings.home) / "cold"
    runs = []
    for tenant_id, policy in assignments:
        engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
        runs.append(execute(engine, tenant_id, policy, now, cold_root, holds))
    return runs
