"""Guardrail definitions and their validation; every error names the offending field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.kernel.errors import InvalidInput

KINDS = ("action_quota", "residency", "export_limit", "spend_cap")
ID = re.compile(r"^[A-Z][A-Z0-9-]{1,79}$")
REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d$|^[a-z][a-z0-9-]{1,39}$")
ACTION = re.compile(r"^[a-z-]+:[A-Za-z]+$")
ENFORCEMENTS = ("block", "alert")
ON_BREACH = ("block_non_essential_actions", "alert_only")
# What an action quota without an ``actions`` list counts: governed actions, the ones workflows
# take on a tenant's source systems, not the platform's own work (pipeline runs, exports, replays).
GOVERNED_ACTIONS = "workflow:"


def quota_counts(spec: Mapping[str, Any], action: str) -> bool:
    """Whether an ``action_quota`` with ``spec`` counts ``action``: a listed one, or with no list
    a governed action (``workflow:*``)."""
    listed = spec.get("actions")
    return action in listed if listed else action.startswith(GOVERNED_ACTIONS)


EXPORT_FIELDS = ("max_rows_per_export", "max_bytes_per_export", "max_rows_per_day", "max_bytes_per_day")
COMMON = ("guardrail_id", "policy_id", "kind", "description", "tenant_scope", "scope", "tenant_id")
FIELDS = {
    "action_quota": ("quota_per_day", "enforcement", "actions"),
    "residency": ("allowed_regions", "enforcement"),
    "export_limit": (*EXPORT_FIELDS, "enforcement"),
    "spend_cap": ("daily_spend_cap_usd", "on_breach"),
}


@dataclass(frozen=True)
class Guardrail:
    guardrail_id: str
    kind: str
    description: str
    tenant_id: str | None  # None: every tenant (global)
    spec: Mapping[str, Any] = field(default_factory=dict)


def _positive_int(spec: Mapping, name: str, required: bool = True) -> int | None:
    value = spec.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(name, "must be a whole number of at least 1")
    return value


def _choice(spec: Mapping, name: str, choices: tuple[str, ...], default: str) -> str:
    value = spec.get(name, default)
    if value not in choices:
        raise InvalidInput(name, f"must be one of {', '.join(choices)}")
    return value


def _tenant_of(spec: Mapping) -> str | None:
    """``tenant_scope`` (global or a tenant id), ``tenant_id``, or ``scope`` (tenant: counted per tenant)."""
    scope = spec.get("scope")
    if scope is not None and scope != "tenant" and not str(scope).startswith("tenant:"):
        raise InvalidInput("scope", "must be 'tenant' (applies to each tenant) or 'tenant:<tenant_id>'")
    tenant = spec.get("tenant_id")
    if isinstance(scope, str) and scope.startswith("tenant:"):
        tenant = scope.removeprefix("tenant:")
    tenant_scope = spec.get("tenant_scope")
    if tenant_scope is not None:
        if not isinstance(tenant_scope, str) or not tenant_scope:
            raise InvalidInput("tenant_scope", "must be 'global' or a tenant id")
        tenant = None if tenant_scope == "global" else tenant_scope
    if tenant is not None and (not isinstance(tenant, str) or not 1 <= len(tenant) <= 40):
        raise InvalidInput("tenant_id", "must be a tenant id of at most 40 characters")
    return tenant


def validate(spec: Mapping[str, Any]) -> Guardrail:
    if not isinstance(spec, Mapping):
        raise InvalidInput("body", "must be an object")
    gid = spec.get("guardrail_id") or spec.get("policy_id")
    if not isinstance(gid, str) or not ID.match(gid):
        raise InvalidInput("guardrail_id", "is required: upper-case letters, digits, dashes (ACT-QUOTA-01)")
    kind = spec.get("kind")
    if kind is None:  # the story artifacts carry no kind; infer it from the fields they do carry
        kind = next((k for k, names in FIELDS.items() if names[0] in spec), None)
    if kind not in KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(KINDS)}")
    unknown = sorted(set(spec) - set(COMMON) - set(FIELDS[kind]))
    if unknown:
        raise InvalidInput(unknown[0], f"is not a field of a {kind} guardrail")
    description = spec.get("description") or ""
    if not isinstance(description, str) or len(description) > 500:
        raise InvalidInput("description", "must be text of at most 500 characters")
    out: dict[str, Any] = {}
    if kind == "action_quota":
        out["quota_per_day"] = _positive_int(spec, "quota_per_day")
        out["enforcement"] = _choice(spec, "enforcement", ENFORCEMENTS, "block")
        actions = spec.get("actions")
        if actions is not None:
            if (
                not isinstance(actions, list)
                or not actions
                or not all(isinstance(a, str) and ACTION.match(a) for a in actions)
            ):
                raise InvalidInput("actions", "must list action names like workflow:Execute")
            out["actions"] = sorted(set(actions))
    elif kind == "residency":
        regions = spec.get("allowed_regions")
        if (
            not isinstance(regions, list)
            or not regions
            or not all(isinstance(r, str) and REGION.match(r) for r in regions)
        ):
            raise InvalidInput("allowed_regions", "must be a non-empty list of region names like eu-west-1")
        out["allowed_regions"] = sorted(set(regions))
        out["enforcement"] = _choice(spec, "enforcement", ENFORCEMENTS, "block")
    elif kind == "export_limit":
        for name in EXPORT_FIELDS:
            value = _positive_int(spec, name, required=False)
            if value is not None:
                out[name] = value
        if not out:
            raise InvalidInput("max_rows_per_export", "an export limit needs " + " or ".join(EXPORT_FIELDS))
        out["enforcement"] = _choice(spec, "enforcement", ENFORCEMENTS, "block")
    else:
        cap = spec.get("daily_spend_cap_usd")
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not cap > 0 or cap > 1e9:
            raise InvalidInput("daily_spend_cap_usd", "is required: a positive amount in USD")
        out["daily_spend_cap_usd"] = float(cap)
        out["on_breach"] = _choice(spec, "on_breach", ON_BREACH, "block_non_essential_actions")
    return Guardrail(gid, kind, description, _tenant_of(spec), out)
