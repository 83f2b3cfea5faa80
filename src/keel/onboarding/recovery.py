"""Manual recovery of a FAILED connector by a Platform Admin (13 step 3).

Check the source answers again, then resume every READY source of the connector
from its last committed checkpoint (``kind="recovery"`` runs). Only when every
stream caught up is the connector ACTIVE again, its incident resolved and a
recovery receipt issued; otherwise it stays FAILED with a ``failed`` receipt.
"""

from __future__ import annotations

import sqlalchemy as sa

from keel.identity.actor import Actor
from keel.onboarding import deployment, health, ingest
from keel.store.tables import sources

# A stream whose drifted batches landed in quarantine (03a) has caught up: nothing was lost.
CAUGHT_UP = ("SUCCEEDED", "QUARANTINED")


def recover(keel, actor: Actor, tenant_id: str, connector_id: str) -> dict:
    row, config = health.begin_recovery(keel, actor, tenant_id, connector_id)
    checked = deployment.instance(keel, row).check(config)
    runs: list[dict] = []
    message = checked.message
    if checked.ok:
        for source in _ready_sources(keel, tenant_id, connector_id):
            with keel.uow() as uow:
                run_ids = tuple(
                    ingest.claim_run(keel, uow, actor, source, stream, "recovery", None)
                    for stream in source.streams
                )
                uow.commit()
            plan = ingest.Plan(
                tenant_id, source.id, source.key, row.id, tuple(source.streams), "recovery", None, run_ids
            )
            runs += ingest.execute(keel, actor, plan, row, config, recovery=True)
        failed = [r for r in runs if r["status"] not in CAUGHT_UP]
        message = (
            "; ".join(f"{r['stream']}: {(r['error'] or {}).get('message')}" for r in failed) or "recovered"
        )
    ok = checked.ok and all(r["status"] in CAUGHT_UP for r in runs)
    with keel.uow() as uow:
        started = row
        row = deployment.load(uow.conn, tenant_id, connector_id, lock=True)
        if (row.status, row.config_version) != (started.status, started.config_version):
            # Reconfigured meanwhile: the new configuration goes through its own checks, not this recovery.
            ok, message = False, "the connector's configuration changed during recovery"
        outcome = health.finish_recovery(
            uow, actor, row, ok=ok, message=message, runs=[r["run_id"] for r in runs]
        )
        uow.commit()
        return {
            **deployment.view(deployment.load(uow.conn, tenant_id, connector_id)),
            "recovery": outcome,
            "runs": runs,
        }


def _ready_sources(keel, tenant_id: str, connector_id: str) -> list:
    with keel.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(sources).where(
                    sources.c.tenant_id == tenant_id,
                    sources.c.connector_id == connector_id,
                    sources.c.status == "READY",
                )
            )
        )
