"""``evaluate`` as the workflow engine calls it: in the caller's unit of work, no raise on refusal."""

from __future__ import annotations

import pytest

from keel.guardrails import GuardrailBreached, evaluate
from keel.guardrails import service as guardrails


def test_a_refusal_is_returned_evidenced_in_the_callers_unit_of_work_and_raisable(world):
    keel, acme = world.keel, world.tenants["acme"]
    guardrails.define(keel, world.actors["SA"], {"guardrail_id": "ACT-QUOTA-02", "quota_per_day": 1})
    guardrails.enable(keel, world.actors["PA"], "ACT-QUOTA-02")
    bo = world.actors["acme:BO"]

    with keel.uow() as uow:
        first = evaluate(keel, uow, bo, acme, "workflow:Execute", essential=False)
        second = evaluate(keel, uow, bo, acme, "workflow:Execute", essential=False)
        events = [e.type for e in uow.events]
        uow.commit()

    assert first.allowed and not second.allowed
    assert second.guardrail_id == "ACT-QUOTA-02" and second.kind == "action_quota"
    assert events == ["policy.enforced", "incident.opened", "alert.fired"]
    with pytest.raises(GuardrailBreached) as caught:
        second.raise_if_refused()
    assert caught.value.to_dict()["guardrail_id"] == "ACT-QUOTA-02"
    assert [e["payload"]["guardrail_id"] for e in world.events("policy.enforced")] == ["ACT-QUOTA-02"]


def test_actions_outside_a_quotas_list_are_not_counted(world):
    keel, acme = world.keel, world.tenants["acme"]
    spec = {"guardrail_id": "ACT-QUOTA-03", "quota_per_day": 1, "actions": ["workflow:Execute"]}
    guardrails.define(keel, world.actors["SA"], spec)
    guardrails.enable(keel, world.actors["PA"], "ACT-QUOTA-03")
    with keel.uow() as uow:
        decisions = [
            evaluate(keel, uow, world.actors["PA"], acme, "kpi:Export", essential=False) for _ in range(3)
        ]
    assert all(d.allowed for d in decisions)


def test_a_quota_without_an_action_list_counts_governed_actions_only(world):
    """ACT-QUOTA-01 as the story writes it ("high-risk actions") names no actions: it counts the
    workflow actions taken on source systems, never the platform's own pipeline runs or exports."""
    keel, acme = world.keel, world.tenants["acme"]
    guardrails.define(keel, world.actors["SA"], {"guardrail_id": "ACT-QUOTA-04", "quota_per_day": 1})
    guardrails.enable(keel, world.actors["PA"], "ACT-QUOTA-04")
    with keel.uow() as uow:
        own = [
            evaluate(keel, uow, world.actors["PA"], acme, action, essential=False)
            for action in ("pipeline:Run", "kpi:Export", "ingestion:Replay", "pipeline:Run")
        ]
        first = evaluate(keel, uow, world.actors["PA"], acme, "workflow:Execute", essential=False)
        second = evaluate(keel, uow, world.actors["PA"], acme, "workflow:Rollback", essential=False)
    assert all(d.allowed for d in own) and first.allowed
    assert not second.allowed and second.guardrail_id == "ACT-QUOTA-04"
