"""The one evaluator behind every enforcement point: Cedar over Keel's entity model.

The policy set, the schema and the action entities (which Cedar takes from the
schema, with their groups) are parsed once per engine; a check builds only the
principal and resource entities. Denials carry a machine-readable ``reason`` and the
``@id`` of the policy that decided, and their detail never names the resource, so a
refusal does not tell a caller whether another tenant's object exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import cedarpy

from keel.authz.actions import ACTIONS
from keel.authz.baseline import GUARD_IDS, cedar_schema
from keel.kernel.errors import InvalidInput, PermissionDenied

# Reasons a Decision can carry.
PERMITTED = "permitted"
NOT_PERMITTED = "not_permitted"  # no permit matched: the caller's roles lack the action
FORBIDDEN = "forbidden_by_policy"  # a forbid policy matched; ``rule`` is its @id
UNKNOWN_ACTION = "unknown_action"
EVALUATION_ERROR = "evaluation_error"  # a policy failed to evaluate; fail closed

_POLICY_REF = re.compile(r"`(policy\d+)`")
_CONTEXTS = {
    (dual, glass): json.dumps({"dual_signed": dual, "break_glass": glass})
    for dual in (False, True)
    for glass in (False, True)
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks. ``tenant`` is None (or "") for provider users."""

    user_id: str
    tenant: str | None
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class Resource:
    """What is acted on. ``tenant`` None (or "") means platform-wide.

    ``drafted_by``/``approved_by``/``deployed_by`` describe a change under separation
    of duties; ``owner`` is the user a self-service object (a user record) belongs to.
    """

    type: str
    id: str
    tenant: str | None
    drafted_by: str | None = None
    approved_by: frozenset[str] = field(default_factory=frozenset)
    deployed_by: str | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.approved_by, frozenset):
            object.__setattr__(self, "approved_by", frozenset(self.approved_by))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    rule: str | None
    action: str
    detail: str = ""


class PolicyEngine:
    """Evaluates requests against one Cedar policy set (the baseline or an applied bundle)."""

    def __init__(self, policies_text: str, schema: str | None = None) -> None:
        try:
            self._schema = cedarpy.Schema.from_str(schema or cedar_schema())
            validation = cedarpy.validate_policies(policies_text, self._schema)
            self._policies = cedarpy.PolicySet.from_str(policies_text)
        except ValueError as exc:
            raise InvalidInput("policies", f"cannot parse the policy set: {exc}") from exc
        if not validation.validation_passed:
            problems = "; ".join(str(e) for e in validation.errors)
            raise InvalidInput("policies", f"policy set does not fit the Keel schema: {problems}")
        self.policies_text = policies_text
        # Cedar names policies by position (policy0, policy1, ...); map them to their @id.
        parsed = json.loads(cedarpy.policies_to_json_str(policies_text))["staticPolicies"]
        self._rule_of = {pid: p.get("annotations", {}).get("id", pid) for pid, p in parsed.items()}
        order = {pid: int(pid.removeprefix("policy")) for pid in parsed}
        self._rank = {
            pid: (GUARD_IDS.index(rule) if rule in GUARD_IDS else len(GUARD_IDS), order[pid])
            for pid, rule in self._rule_of.items()
        }
        self._action_uid = {name: {"type": "Keel::Action", "id": name} for name in ACTIONS}

    @property
    def rules(self) -> tuple[str, ...]:
        """The ``@id`` of every policy, in policy-set order."""
        return tuple(self._rule_of.values())

    def check(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        *,
        dual_signed: bool = False,
        break_glass: bool = False,
    ) -> Decision:
        """Decide whether ``principal`` may do ``action`` on ``resource``."""
        action_uid = self._action_uid.get(action)
        if action_uid is None:
            return Decision(False, UNKNOWN_ACTION, None, action, f"'{action}' is not a known action")
        resource_id = f"{resource.type}/{resource.id}"
        entities_json = _entities_json(principal, resource, resource_id)
        entities = cedarpy.Entities.from_json_str(entities_json, self._schema)
        result = cedarpy.is_authorized(
            {
                "principal": {"type": "Keel::User", "id": principal.user_id},
                "action": action_uid,
                "resource": {"type": "Keel::Resource", "id": resource_id},
                "context": _CONTEXTS[(bool(dual_signed), bool(break_glass))],
            },
            self._policies,
            entities,
        )
        diagnostics = result.diagnostics
        if diagnostics.errors:
            return self._evaluation_error(action, diagnostics.errors)
        reasons = sorted(diagnostics.reasons, key=self._rank.__getitem__)
        if result.allowed:
            return Decision(True, PERMITTED, self._rule_of[reasons[0]], action)
        if reasons:
            rule = self._rule_of[reasons[0]]
            return Decision(False, FORBIDDEN, rule, action, _forbidden_detail(action, rule))
        requirement = ACTIONS[action].requirement
        return Decision(False, NOT_PERMITTED, None, action, f"'{action}' requires {requirement}")

    def enforce(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        *,
        dual_signed: bool = False,
        break_glass: bool = False,
    ) -> Decision:
        """Like ``check``, but raise ``PermissionDenied`` unless allowed."""
        decision = self.check(principal, action, resource, dual_signed=dual_signed, break_glass=break_glass)
        if not decision.allowed:
            raise PermissionDenied(decision.detail, reason=decision.reason, action=action, rule=decision.rule)
        return decision

    def _evaluation_error(self, action: str, errors: Iterable[str]) -> Decision:
        refs = [m.group(1) for e in errors for m in [_POLICY_REF.search(e)] if m]
        rule = self._rule_of.get(refs[0]) if refs else None
        return Decision(False, EVALUATION_ERROR, rule, action, f"'{action}' could not be evaluated")


@lru_cache(maxsize=4096)
def _principal_json(principal: Principal) -> str:
    # Principals repeat far more often than resources; their JSON is cached.
    return json.dumps(
        {
            "uid": {"type": "Keel::User", "id": principal.user_id},
            "attrs": {"tenant": principal.tenant or "", "uid": principal.user_id},
            "parents": [{"type": "Keel::Role", "id": role} for role in sorted(principal.roles)],
        }
    )


def _entities_json(principal: Principal, resource: Resource, resource_id: str) -> str:
    resource_json = json.dumps(
        {
            "uid": {"type": "Keel::Resource", "id": resource_id},
            "attrs": {
                "tenant": resource.tenant or "",
                "owner": resource.owner or "",
                "drafted_by": resource.drafted_by or "",
                "approved_by": sorted(resource.approved_by),
                "deployed_by": resource.deployed_by or "",
            },
            "parents": [],
        }
    )
    return f"[{_principal_json(principal)},{resource_json}]"


def _forbidden_detail(action: str, rule: str) -> str:
    if rule == "deny-cross-tenant":
        # Same words whether or not the object exists: no resource type, id or tenant.
        return f"'{action}' is not permitted outside your tenant"
    return f"'{action}' is forbidden by rule '{rule}'"
