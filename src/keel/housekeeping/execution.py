"""One retention job on a tenant's DuckDB data plane: tier or delete expired rows, then CHECKPOINT.

Pure of the control-plane store: the caller (``service.py``) reads the policy, the holds and the
evidence protection from the store, runs ``execute`` and records its ``RunRecord``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from keel.housekeeping.policy import LegalHold, RetentionPolicy
from keel.housekeeping.protection import Protection
from keel.pipeline.engine import DuckDBEngine

log = logging.getLogger(__name__)
ATTEMPTS = 3
BATCH = "_keel_batch_id"


@dataclass
class RunRecord:
    policy_id: str | None
    tenant_id: str
    table: str
    layer: str = ""
    status: str = "PENDING"
    reason: str = ""
    rows_tiered: int = 0
    rows_deleted: int = 0
    files: list[str] = field(default_factory=list)
    attempts: int = 0


class _Protected(Exception):
    """The job would delete protected data; it is blocked, not retried."""


class _Missing(Exception):
    """The table is not in this tenant's data plane; nothing to do."""


def execute(
    engine: DuckDBEngine,
    tenant_id: str,
    policy: RetentionPolicy,
    now: datetime,
    cold_root: Path,
    holds: Iterable[LegalHold] = (),
    protection: Protection | None = None,
) -> RunRecord:
    """Apply ``policy`` to one table; retried up to ``ATTEMPTS`` times; never touches held data,
    never deletes data evidence protects (``protection``)."""
    schema = policy.scope
    record = RunRecord(policy.policy_id, tenant_id, policy.table, schema)
    if not policy.in_effect:
        record.status, record.reason = "SKIPPED", f"policy {policy.policy_id} is not approved"
        return record
    for hold in holds:
        if hold.covers(tenant_id, schema, policy.table):
            record.status, record.reason = "BLOCKED", f"legal hold {hold.hold_id} protects {_what(hold)}"
            log.warning("housekeeping blocked: %s", record.reason)
            return record
    cutoff = policy.cutoff(now)
    for attempt in range(1, ATTEMPTS + 1):
        record.attempts = attempt
        try:
            _once(engine, policy, schema, cutoff, cold_root, record, protection or Protection())
            record.status = "SUCCEEDED"
            return record
        except _Protected as blocked:
            record.status, record.reason = "BLOCKED", str(blocked)
            log.warning("housekeeping blocked: %s", record.reason)
            return record
        except _Missing as missing:
            record.status, record.reason = "SKIPPED", str(missing)
            return record
        except Exception as exc:  # every failure is retried, then reported
            log.warning("housekeeping attempt %d of %s failed: %s", attempt, policy.policy_id, exc)
            record.reason = f"{type(exc).__name__}: {exc}"
            record.rows_tiered = record.rows_deleted = 0
            record.files = []
    record.status = "FAILED"
    log.error(
        "housekeeping %s on %s.%s failed after %d attempts", policy.policy_id, schema, policy.table, ATTEMPTS
    )
    return record


def _what(hold: LegalHold) -> str:
    scope = ".".join(p for p in (hold.layer, hold.table) if p) or "all data"
    return f"{scope} of tenant {hold.tenant_id}" + (f" ({hold.reason})" if hold.reason else "")


def _once(engine, policy, schema, cutoff, cold_root, record, protection: Protection) -> None:
    target = f'{schema}."{policy.table}"'
    where = f"\"{policy.time_column}\" < TIMESTAMPTZ '{cutoff.isoformat()}'"
    cold: Path | None = None
    with engine.session():
        if not engine.table_exists(schema, policy.table):
            raise _Missing(f"table {schema}.{policy.table} is not in the tenant's data plane")
        with engine.transaction():
            expired = engine.rows(f"SELECT count(*) FROM {target} WHERE {where}")[0][0]
            if expired and policy.action_on_expiry == "tier_to_cold":
                cold = (
                    cold_root
                    / schema
                    / policy.table
                    / f"{cutoff.date().isoformat()}-{uuid.uuid4().hex[:12]}.parquet"
                )
                cold.parent.mkdir(parents=True, exist_ok=True)
                path = str(cold).replace("'", "''")
                try:
                    engine.execute(
                        f"COPY (SELECT * FROM {target} WHERE {where}) TO '{path}' (FORMAT PARQUET)"
                    )
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
                _refuse_protected(engine, schema, policy.table, target, where, protection)
                engine.execute(f"DELETE FROM {target} WHERE {where}")
            record.rows_deleted = expired
        engine.execute("CHECKPOINT")


def _refuse_protected(engine, schema, table, target, where, protection: Protection) -> None:
    """Raise ``_Protected`` naming the evidence when the expired rows include protected data."""
    qualified = f"{schema}.{table}"
    if qualified in protection.tables:
        raise _Protected(f"{qualified} is protected: {protection.tables[qualified]}")
    if schema != "raw" or not protection.batches:
        return
    if BATCH not in {name for name, _ in engine.columns(schema, table)}:
        return
    listed = ", ".join("'" + b.replace("'", "''") + "'" for b in sorted(protection.batches))
    referenced = f'"{BATCH}" IN ({listed})'
    hit = engine.rows(
        f'SELECT DISTINCT "{BATCH}" FROM {target} WHERE {where} AND {referenced} ORDER BY 1 LIMIT 3'
    )
    if hit:
        names = "; ".join(f"batch {b} by {protection.batches[b]}" for (b,) in hit)
        raise _Protected(f"expired rows of {qualified} are referenced by evidence: {names}")
