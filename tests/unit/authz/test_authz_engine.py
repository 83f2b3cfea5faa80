"""The evaluator: each persona gets exactly its grants, and the guard policies hold."""

import pytest

from keel.authz.actions import ACTIONS, actions_granted
from keel.authz.baseline import baseline_policies
from keel.authz.engine import Decision, PolicyEngine, Principal, Resource
from keel.identity.personas import Persona
from keel.kernel.errors import InvalidInput, PermissionDenied


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(baseline_policies())


def user(persona: Persona, tenant: str | None = "T1", uid: str | None = None) -> Principal:
    home = None if persona.is_provider else tenant
    return Principal(uid or f"u-{persona.value}", home, frozenset({persona.value}))


def home_resource(principal: Principal, **change) -> Resource:
    return Resource("object", "o-1", principal.tenant, owner=principal.user_id, **change)


def test_every_persona_is_allowed_exactly_its_granted_actions_in_its_own_scope(engine):
    allowed = {}
    for persona in Persona:
        who = user(persona)
        allowed[persona] = {
            name for name in ACTIONS if engine.check(who, name, home_resource(who), dual_signed=True).allowed
        }
    assert allowed == {persona: actions_granted(persona) for persona in Persona}


def test_actions_outside_a_persona_grants_are_refused_as_not_permitted_naming_the_cell(engine):
    who = user(Persona.AN)
    assert engine.check(who, "platform:Deploy", home_resource(who)) == Decision(
        False, "not_permitted", None, "platform:Deploy", "'platform:Deploy' requires platform:M"
    )


def test_allowed_decisions_name_the_permit_that_matched(engine):
    who = user(Persona.PA)
    assert engine.check(who, "platform:Deploy", home_resource(who)) == Decision(
        True, "permitted", "permit-PA", "platform:Deploy"
    )


def test_tenant_users_are_refused_every_action_on_another_tenants_objects(engine):
    outcomes = {}
    for persona in (p for p in Persona if not p.is_provider):
        who = user(persona, tenant="T1")
        for name in sorted(actions_granted(persona)):
            decision = engine.check(
                who, name, Resource("object", "o-2", "T2", owner=who.user_id), dual_signed=True
            )
            outcomes[(persona.value, name)] = (decision.allowed, decision.reason, decision.rule)
    assert set(outcomes.values()) == {(False, "forbidden_by_policy", "deny-cross-tenant")}


def test_a_cross_tenant_refusal_does_not_reveal_the_object(engine):
    decision = engine.check(user(Persona.AN), "data:Read", Resource("table", "secret-ledger", "T2"))
    assert "secret-ledger" not in decision.detail and "T2" not in decision.detail
    assert decision.detail == "'data:Read' is not permitted outside your tenant"


def test_provider_roles_are_refused_tenant_data_even_under_break_glass(engine):
    refused = {
        (persona.value, name): engine.check(
            user(persona), name, Resource("table", "t", "T1"), break_glass=True
        ).rule
        for persona in Persona
        if persona.is_provider
        for name in ("data:Read", "kpi:GetResults")
    }
    assert set(refused.values()) == {"deny-provider-tenant-data"}


def test_provider_roles_act_on_tenant_objects_outside_tenant_data(engine):
    pa = user(Persona.PA)
    assert engine.check(pa, "connector:Deploy", Resource("connector", "crm", "T1")).allowed


def test_tenant_users_only_read_platform_wide_objects(engine):
    tp = user(Persona.TP)
    platform_object = Resource("rbac-bundle", "b-1", None)
    assert engine.check(tp, "rbac:Read", platform_object).allowed
    decision = engine.check(tp, "rbac:Apply", platform_object)
    assert (decision.reason, decision.rule) == ("forbidden_by_policy", "deny-tenant-platform-change")
    assert engine.check(tp, "rbac:Apply", Resource("rbac-bundle", "b-1", "T1")).allowed


def test_a_role_held_on_the_wrong_side_of_the_tenancy_line_is_refused(engine):
    provider_with_tenant_role = Principal("u-x", None, frozenset({"TA"}))
    tenant_user_with_provider_role = Principal("u-y", "T1", frozenset({"PA"}))
    rules = {
        engine.check(provider_with_tenant_role, "connector:Read", Resource("connector", "c", "T1")).rule,
        engine.check(tenant_user_with_provider_role, "schema:Deploy", Resource("schema", "s", "T1")).rule,
    }
    assert rules == {"deny-role-scope"}


def test_tokens_are_created_only_for_oneself(engine):
    an = user(Persona.AN)
    assert engine.check(an, "token:Create", Resource("user", an.user_id, "T1", owner=an.user_id)).allowed
    assert engine.check(an, "token:Create", Resource("user", "u-other", "T1", owner="u-other")).rule == (
        "self-service-only"
    )


def test_approving_ones_own_draft_is_forbidden(engine):
    author = user(Persona.SS, uid="u-ss-1")
    peer = user(Persona.SS, uid="u-ss-2")
    draft = Resource("schema", "GDP-AR", None, drafted_by="u-ss-1")
    assert engine.check(author, "schema:Approve", draft).rule == "sod-approve-own-draft"
    assert engine.check(peer, "schema:Approve", draft).allowed


def test_signing_off_ones_own_deployment_request_is_forbidden_even_holding_both_roles(engine):
    both = Principal("u-both", None, frozenset({"PA", "PO"}))
    request = Resource("deployment", "DEP-001", None, drafted_by="u-both")
    decision = engine.check(both, "platform:ApproveDeployment", request)
    assert (decision.allowed, decision.rule) == (False, "sod-approve-own-draft")
    assert engine.check(user(Persona.PO), "platform:ApproveDeployment", request).allowed


def test_deploying_a_change_one_drafted_or_approved_is_forbidden(engine):
    pa = user(Persona.PA, uid="u-pa")
    drafted = Resource("schema", "s", None, drafted_by="u-pa", approved_by=frozenset({"u-ss-2"}))
    approved = Resource("schema", "s", None, drafted_by="u-ss-1", approved_by=frozenset({"u-pa", "u-ss-2"}))
    independent = Resource(
        "schema", "s", None, drafted_by="u-ss-1", approved_by=frozenset({"u-ss-2", "u-ss-3"})
    )
    outcomes = {
        label: (d.allowed, d.rule)
        for label, d in {
            "drafted": engine.check(pa, "schema:Deploy", drafted),
            "approved": engine.check(pa, "schema:Deploy", approved),
            "independent": engine.check(pa, "schema:Deploy", independent),
        }.items()
    }
    assert outcomes == {
        "drafted": (False, "sod-deploy-own-change"),
        "approved": (False, "sod-deploy-own-change"),
        "independent": (True, "permit-PA"),
    }


def test_publishing_needs_dual_signatures(engine):
    pa = user(Persona.PA)
    change = Resource("kpi", "DSO", None, drafted_by="u-ka-1", approved_by={"u-ka-2", "u-ka-3"})
    unsigned = engine.check(pa, "kpi:Publish", change)
    signed = engine.check(pa, "kpi:Publish", change, dual_signed=True)
    assert (unsigned.allowed, unsigned.rule, signed.allowed) == (False, "dual-control-publish", True)


def test_break_glass_permits_workflow_execute_only_while_elevated(engine):
    pa = user(Persona.PA)
    run = Resource("workflow", "WF-1", "T1")
    without = engine.check(pa, "workflow:Execute", run)
    elevated = engine.check(pa, "workflow:Execute", run, break_glass=True)
    assert (without.allowed, without.reason) == (False, "not_permitted")
    assert (elevated.allowed, elevated.rule) == (True, "break-glass")


def test_break_glass_does_not_open_actions_that_are_not_eligible(engine):
    sre = user(Persona.SRE)
    assert not engine.check(
        sre, "platform:Deploy", Resource("deployment", "d", None), break_glass=True
    ).allowed


def test_break_glass_never_crosses_tenants_for_tenant_users(engine):
    tp = user(Persona.TP, tenant="T1")
    decision = engine.check(tp, "workflow:Execute", Resource("workflow", "WF-1", "T2"), break_glass=True)
    assert decision.rule == "deny-cross-tenant"


def test_an_unknown_action_is_refused_without_evaluation(engine):
    assert engine.check(user(Persona.PA), "platform:Nuke", Resource("x", "y", None)) == Decision(
        False, "unknown_action", None, "platform:Nuke", "'platform:Nuke' is not a known action"
    )


def test_enforce_raises_permission_denied_with_reason_and_rule(engine):
    with pytest.raises(PermissionDenied) as denied:
        engine.enforce(user(Persona.AU), "data:Read", Resource("table", "t", "T1"))
    assert denied.value.to_dict() == {
        "code": "permission_denied",
        "title": "Permission denied",
        "detail": "'data:Read' is forbidden by rule 'deny-provider-tenant-data'",
        "reason": "forbidden_by_policy",
        "action": "data:Read",
        "rule": "deny-provider-tenant-data",
    }


def test_enforce_returns_the_decision_when_allowed(engine):
    assert engine.enforce(user(Persona.CO), "evidence:Export", Resource("evidence", "e", None)).allowed


def test_an_empty_tenant_string_is_treated_as_provider(engine):
    provider = Principal("u-pa", "", frozenset({"PA"}))
    assert engine.check(provider, "data:Read", Resource("table", "t", "")).rule == "deny-provider-tenant-data"


def test_a_policy_set_that_does_not_fit_the_schema_is_rejected():
    with pytest.raises(InvalidInput):
        PolicyEngine('permit (principal, action, resource) when { resource.colour == "red" };')
    with pytest.raises(InvalidInput):
        PolicyEngine("permit (principal, action, ")
