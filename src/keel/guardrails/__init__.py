"""Guardrails and cost controls (04, 05b): quotas, residency, export limits, spend caps."""

from keel.guardrails.errors import GuardrailBreached
from keel.guardrails.service import Decision, evaluate

__all__ = ["Decision", "GuardrailBreached", "evaluate"]
