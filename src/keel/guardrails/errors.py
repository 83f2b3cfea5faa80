"""Errors of guardrails."""

from __future__ import annotations

from keel.kernel.errors import Blocked


class GuardrailBreached(Blocked):
    """An enabled guardrail refused an action; ``guardrail_id`` names it (problem+json, 409)."""

    code = "guardrail_breached"
    title = "Refused by a guardrail"

    def __init__(self, detail: str, *, guardrail_id: str, kind: str, tenant_id: str, action: str) -> None:
        super().__init__(detail, guardrail_id=guardrail_id, kind=kind, tenant_id=tenant_id, action=action)
        self.guardrail_id = guardrail_id
