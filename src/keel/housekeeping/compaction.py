"""Compaction and vacuum of one table of a tenant's data plane, and of its cold Parquet files (05b).

DuckDB keeps a table in row groups; many small appends (Raw batches, incremental builds) and
deletes (retention) leave it fragmented with free blocks. Compaction rewrites the table in one
transaction (a copy, a count check, the table emptied and refilled), then ``VACUUM ANALYZE``
refreshes its statistics and ``CHECKPOINT`` writes it out and returns the free blocks. The cold
files tiering wrote for the table (one per run) are merged into one Parquet file; the merged file's
row count must equal the sum of the small files' before they are removed. Any failure rolls back
(the table) or removes the merged file (cold), is logged, and the whole job is retried.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from pathlib import Path

from keel.housekeeping.execution import ATTEMPTS, RunRecord
from keel.kernel.clock import utcnow
from keel.pipeline.engine import DuckDBEngine

log = logging.getLogger(__name__)
SCRATCH = "__keel_compaction"


def compact(engine: DuckDBEngine, tenant_id: str, layer: str, table: str, cold_root: Path) -> RunRecord:
    """Compact ``layer.table`` and merge its cold files; retried up to ``ATTEMPTS`` times."""
    record = RunRecord(None, tenant_id, table, layer)
    for attempt in range(1, ATTEMPTS + 1):
        record.attempts = attempt
        try:
            record.reason, record.files = _once(engine, layer, table, cold_root)
            record.status = "SUCCEEDED"
            return record
        except Exception as exc:  # every failure is retried, then reported
            log.warning(
                "compaction attempt %d of %s.%s (tenant %s) failed: %s", attempt, layer, table, tenant_id, exc
            )
            record.reason = f"{type(exc).__name__}: {exc}"
            record.files = []
    record.status = "FAILED"
    log.error("compaction of %s.%s (tenant %s) failed after %d attempts", layer, table, tenant_id, ATTEMPTS)
    return record


def _once(engine: DuckDBEngine, layer: str, table: str, cold_root: Path) -> tuple[str, list[str]]:
    done = []
    target = f'{layer}."{table}"'
    with engine.session():
        hot = engine.table_exists(layer, table)
        if hot:
            with engine.transaction():
                before = engine.rows(f"SELECT count(*) FROM {target}")[0][0]
                engine.execute(f'CREATE TEMP TABLE "{SCRATCH}" AS SELECT * FROM {target}')
                copied = engine.rows(f'SELECT count(*) FROM "{SCRATCH}"')[0][0]
                if copied != before:
                    raise RuntimeError(f"the copy holds {copied} rows, the table {before}")
                engine.execute(f"DELETE FROM {target}")
                engine.execute(f'INSERT INTO {target} SELECT * FROM "{SCRATCH}"')
                engine.execute(f'DROP TABLE "{SCRATCH}"')
            engine.execute(f"VACUUM ANALYZE {target}")
            engine.execute("CHECKPOINT")
            done.append(f"rewrote {before} rows of {layer}.{table}")
        merged, files = _merge_cold(engine, cold_root / layer / table)
        if files > 1:
            done.append(f"merged {files} cold files into {merged.name}")
        if not hot and files == 0:
            raise FileNotFoundError(f"{layer}.{table} is neither in the data plane nor in cold storage")
    return "; ".join(done) or f"{layer}.{table} needed no compaction", [str(merged)] if files > 1 else []


def _merge_cold(engine: DuckDBEngine, folder: Path) -> tuple[Path | None, int]:
    """Merge the folder's Parquet files into one; (the merged file, how many files were merged)."""
    small = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if len(small) < 2:
        return (small[0] if small else None), len(small)
    merged = folder / f"compacted-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    sources = ", ".join("'" + str(p).replace("'", "''") + "'" for p in small)
    target = str(merged).replace("'", "''")
    try:
        expected = sum(
            engine.rows(f"SELECT count(*) FROM read_parquet('{s}')")[0][0] for s in map(_quoted, small)
        )
        union = f"SELECT * FROM read_parquet([{sources}], union_by_name = true)"
        engine.execute(f"COPY ({union}) TO '{target}' (FORMAT PARQUET)")
        written = engine.rows(f"SELECT count(*) FROM read_parquet('{target}')")[0][0]
        if written != expected:
            raise RuntimeError(f"the merged cold file holds {written} rows, the small files {expected}")
    except BaseException:
        with contextlib.suppress(OSError):
            merged.unlink()
        raise
    for path in small:
        path.unlink()
    return merged, len(small)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
