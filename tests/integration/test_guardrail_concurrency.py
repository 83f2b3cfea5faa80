"""Concurrent evaluations of one tenant's quota never allow more uses than the quota.

Threads evaluate ``workflow:Execute`` at the same time, each in its own unit of work, as
concurrent requests would. On PostgreSQL (READ COMMITTED) each reads the day's usage and
adds to it, so without the tenant's row lock two of them could read the same count.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from keel.guardrails import evaluate
from keel.guardrails import service as guardrails
from keel.store.tables import guardrail_usage

QUOTA, CALLERS = 3, 8


def test_concurrent_evaluations_allow_exactly_the_quota(world):
    keel, acme, ta = world.keel, world.tenants["acme"], world.actors["acme:TA"]
    guardrails.define(keel, world.actors["SA"], {"guardrail_id": "ACT-QUOTA-RACE", "quota_per_day": QUOTA})
    guardrails.enable(keel, world.actors["PA"], "ACT-QUOTA-RACE")
    start, allowed, errors = threading.Barrier(CALLERS), [], []

    def call() -> None:
        try:
            start.wait()
            with keel.uow() as uow:
                decision = evaluate(keel, uow, ta, acme, "workflow:Execute", essential=False)
                uow.commit()
            allowed.append(decision.allowed)
        except Exception as error:  # reported by the assertion below, not swallowed
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sorted(allowed) == [False] * (CALLERS - QUOTA) + [True] * QUOTA
    uses = world.scalar(sa.select(guardrail_usage.c.uses).where(guardrail_usage.c.tenant_id == acme))
    assert uses == QUOTA
    assert len(world.events("policy.enforced")) == CALLERS - QUOTA
