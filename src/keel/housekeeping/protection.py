"""What evidence protects from deletion in a tenant's data plane (05b: "over-deletion risk → block job").

Evidence must stay resolvable: a receipt, a published KPI or an exported snapshot names the data it
attests, so deleting that data would leave the evidence pointing at nothing. The rule, precisely:

* A **Raw row** is protected when its ``_keel_batch_id`` is named by
  - a receipt of the tenant whose body lists it in ``batch_ids`` (or names it as ``batch_id``):
    the receipts of guarded replays and backfills (``ingestion.replay``, ``ingestion.backfill``), or
  - a pipeline run of the tenant that folded it in (``pipeline_runs.batches``, the record of an
    incremental build, which its lineage records point at).
* A **GDP or KPI build table** (``gdp.invoice__v1_0_0``, ``kpi.dso__v1_0_0``) is protected when
  - a KPI publication of the tenant names it as its ``build_table`` (whatever the publication's
    status: a withdrawn publication is evidence too), or
  - it is the build of a KPI version a ``kpi.snapshot`` receipt of the tenant attests, or
  - it is an input (``pipeline_runs.inputs``) of a KPI build protected by either of the above.

A job that would delete protected data is BLOCKED: nothing is deleted, ``housekeeping.executed``
records the outcome and the reason names what protects the data. Tiering to cold is allowed for
protected data: the rows move to a Parquet file whose row count is checked before the hot rows go,
so the data stays readable and the evidence resolvable (the run record names the file).
Legal holds (``LegalHold``) block every job, tiering included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from keel.pipeline.naming import safe_name
from keel.store import tables as t


@dataclass(frozen=True)
class Protection:
    """Protected Raw batch ids and build tables of one tenant, each with what protects it."""

    batches: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)


def evidence_protection(conn, tenant_id: str) -> Protection:
    """Read the tenant's evidence from the control-plane store and apply the rule above."""
    batches: dict[str, str] = {}
    tables: dict[str, str] = {}
    receipts = conn.execute(
        sa.select(t.receipts.c.id, t.receipts.c.kind, t.receipts.c.subject_id, t.receipts.c.body)
        .where(t.receipts.c.tenant_id == tenant_id)
        .order_by(t.receipts.c.created_at, t.receipts.c.id)
    ).all()
    snapshots: list[tuple[str, str, str]] = []  # (receipt id, kpi id, version)
    for receipt_id, kind, subject_id, body in receipts:
        body = body if isinstance(body, dict) else {}
        named = list(body.get("batch_ids") or []) + ([body["batch_id"]] if body.get("batch_id") else [])
        for batch_id in named:
            batches.setdefault(str(batch_id), f"receipt {receipt_id} ({kind})")
        if kind == "kpi.snapshot" and body.get("version"):
            snapshots.append((receipt_id, body.get("kpi_id") or subject_id, str(body["version"])))
    runs = t.pipeline_runs.c
    for run_id, table_name, folded in conn.execute(
        sa.select(runs.id, runs.table_name, runs.batches)
        .where(runs.tenant_id == tenant_id, runs.batches.is_not(None))
        .order_by(runs.started_at, runs.id)
    ):
        for batch_id in folded or []:
            batches.setdefault(str(batch_id), f"pipeline run {run_id} ({table_name})")

    def protect_build(table_name: str, inputs, why: str) -> None:
        tables.setdefault(table_name, why)
        for source in inputs or []:
            if not str(source).startswith("raw."):  # Raw is protected batch by batch, above
                tables.setdefault(str(source), f"input of {table_name} ({why})")

    publications = getattr(t, "kpi_publications", None)
    if publications is not None:
        for pub_id, kpi_id, build_table, run_id in conn.execute(
            sa.select(
                publications.c.id,
                publications.c.kpi_id,
                publications.c.build_table,
                publications.c.pipeline_run_id,
            )
            .where(publications.c.tenant_id == tenant_id)
            .order_by(publications.c.id)
        ):
            run = conn.execute(sa.select(runs.inputs).where(runs.id == run_id)).first()
            protect_build(
                build_table, run.inputs if run else (), f"publication {pub_id} of {kpi_id} names it"
            )
    for receipt_id, kpi_id, version in snapshots:
        try:
            name = safe_name(kpi_id, "kpi_id")
        except Exception:  # a receipt of a KPI id that is no table name protects no table
            continue
        for table_name, inputs in conn.execute(
            sa.select(runs.table_name, runs.inputs).where(
                runs.tenant_id == tenant_id,
                runs.layer == "kpi",
                runs.name == name,
                runs.version == version,
                runs.purpose != "dry_run",
                runs.error.is_(None),
            )
        ):
            protect_build(table_name, inputs, f"snapshot receipt {receipt_id} of {kpi_id} attests it")
    return Protection(batches, tables)
