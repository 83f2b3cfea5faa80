"""The ``kpi_publications`` rows (06): a tenant's current publication of a KPI, its history, views.

At most one row per tenant and KPI is PUBLISHED: the KPI contract version its people see.
Publishing another version marks the current one SUPERSEDED, withdrawing it UNPUBLISHED,
rolling it back ROLLED_BACK (and publishes the one it replaced).
"""

from __future__ import annotations

import sqlalchemy as sa

from keel.kernel.clock import as_utc
from keel.store.tables import kpi_publications

PUBLISHED, SUPERSEDED, UNPUBLISHED, ROLLED_BACK = "PUBLISHED", "SUPERSEDED", "UNPUBLISHED", "ROLLED_BACK"
STATUSES = (PUBLISHED, SUPERSEDED, UNPUBLISHED, ROLLED_BACK)


def current(conn, tenant_id: str, kpi_id: str, *, lock: bool = False):
    """The tenant's PUBLISHED publication of ``kpi_id``; None when its people see nothing of it."""
    query = sa.select(kpi_publications).where(
        kpi_publications.c.tenant_id == tenant_id,
        kpi_publications.c.kpi_id == kpi_id,
        kpi_publications.c.status == PUBLISHED,
    )
    return conn.execute(query.with_for_update() if lock else query).first()


def published(conn, tenant_id: str) -> list:
    """Every PUBLISHED publication of the tenant, by KPI id."""
    return list(
        conn.execute(
            sa.select(kpi_publications)
            .where(kpi_publications.c.tenant_id == tenant_id, kpi_publications.c.status == PUBLISHED)
            .order_by(kpi_publications.c.kpi_id)
        )
    )


def load(conn, publication_id: str | None):
    if publication_id is None:
        return None
    return conn.execute(sa.select(kpi_publications).where(kpi_publications.c.id == publication_id)).first()


def next_number(conn, tenant_id: str, kpi_id: str) -> int:
    top = conn.execute(
        sa.select(sa.func.max(kpi_publications.c.number)).where(
            kpi_publications.c.tenant_id == tenant_id, kpi_publications.c.kpi_id == kpi_id
        )
    ).scalar()
    return (top or 0) + 1


def end(conn, row, status: str, *, by: str, at, receipt_id: str) -> None:
    conn.execute(
        kpi_publications.update()
        .where(kpi_publications.c.id == row.id)
        .values(status=status, ended_by=by, ended_at=at, ended_receipt_id=receipt_id)
    )


def history(conn, tenant_id: str, kpi_id: str, *, before: int | None, limit: int) -> list[dict]:
    """The KPI's publications in the tenant, newest first; ``before``: a ``number`` to page from."""
    query = (
        sa.select(kpi_publications)
        .where(kpi_publications.c.tenant_id == tenant_id, kpi_publications.c.kpi_id == kpi_id)
        .order_by(kpi_publications.c.number.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(kpi_publications.c.number < before)
    return [view(r) for r in conn.execute(query)]


def view(row) -> dict:
    return {
        "publication_id": row.id,
        "number": row.number,
        "tenant_id": row.tenant_id,
        "kpi_id": row.kpi_id,
        "version": row.version,
        "status": row.status,
        "evidence": {
            "pipeline_run_id": row.pipeline_run_id,
            "build_table": row.build_table,
            "lineage_record_ids": list(row.lineage_record_ids),
            "dq_outcome": row.dq_outcome,
        },
        "previous_id": row.previous_id,
        "rolled_back_from": row.rolled_back_from,
        "receipt_id": row.receipt_id,
        "published_by": row.published_by,
        "published_at": as_utc(row.published_at).isoformat(),
        "ended_by": row.ended_by,
        "ended_at": as_utc(row.ended_at).isoformat() if row.ended_at else None,
        "ended_receipt_id": row.ended_receipt_id,
    }
