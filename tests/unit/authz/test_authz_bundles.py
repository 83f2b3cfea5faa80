"""RBAC bundles (story 00d): least privilege and separation of duties, each rule by its id."""

import pytest

from keel.authz.bundles import (
    RULES,
    Violation,
    baseline_bundle,
    lockout_violations,
    policies_for_bundle,
    validate_bundle,
)
from keel.authz.engine import PolicyEngine, Principal, Resource
from keel.kernel.errors import InvalidInput


def bundle(*roles: tuple[str, str, list[str]]) -> dict:
    return {
        "name": "custom",
        "roles": [{"role": r, "based_on": b, "permissions": perms} for r, b, perms in roles],
    }


def test_the_baseline_bundle_generated_from_the_matrix_validates_clean():
    assert validate_bundle(baseline_bundle()) == []


def test_the_baseline_bundle_policies_are_the_baseline_policies():
    from keel.authz.baseline import baseline_policies

    assert policies_for_bundle(baseline_bundle()) == baseline_policies()


def test_rules_run_in_a_fixed_order_with_stable_ids():
    assert [rule.__name__.replace("_", "-") for rule in RULES] == [
        "unknown-action",
        "unknown-persona",
        "duplicate-role",
        "excess-permission",
        "sod-draft-approve-deploy",
        "sod-security-admin",
        "sod-steward-no-infra",
        "sod-sre-no-business",
        "provider-tenant-data",
        "role-persona-mismatch",
    ]


@pytest.mark.parametrize(
    ("crafted", "expected"),
    [
        (
            bundle(("Reader", "AN", ["kpi:Read", "kpi:Levitate"])),
            [Violation("unknown-action", "Reader", "'kpi:Levitate' is not a known action")],
        ),
        (
            bundle(("Ghost", "ZZ", ["kpi:Read"])),
            [Violation("unknown-persona", "Ghost", "'ZZ' is not a persona code")],
        ),
        (
            bundle(("Reader", "AN", ["kpi:Read"]), ("Reader", "AN", ["schema:Read"])),
            [Violation("duplicate-role", "Reader", "role 'Reader' is declared 2 times")],
        ),
        (
            bundle(("TenantAdmin", "TA", ["connector:Configure", "workflow:Execute"])),
            [
                Violation(
                    "excess-permission",
                    "TenantAdmin",
                    "'workflow:Execute' needs workflow:A, beyond what TA (Tenant Admin) is granted",
                )
            ],
        ),
    ],
    ids=["unknown-action", "unknown-persona", "duplicate-role", "excess-permission"],
)
def test_each_structural_and_least_privilege_rule_reports_exactly_its_violation(crafted, expected):
    assert validate_bundle(crafted) == expected


def rules_broken(crafted: dict) -> list[tuple[str, str]]:
    return [(v.rule, v.role) for v in validate_bundle(crafted)]


def test_a_role_that_drafts_approves_and_deploys_one_kind_is_flagged():
    crafted = bundle(("SchemaAllInOne", "SS", ["schema:Draft", "schema:Approve", "schema:Deploy"]))
    assert rules_broken(crafted) == [
        ("excess-permission", "SchemaAllInOne"),
        ("sod-draft-approve-deploy", "SchemaAllInOne"),
        ("sod-steward-no-infra", "SchemaAllInOne"),
    ]


def test_a_security_admin_role_that_drafts_contracts_or_runs_workflows_is_flagged():
    crafted = bundle(("SecOps", "SA", ["secret:Write", "kpi:Draft", "workflow:Execute"]))
    assert [v for v in validate_bundle(crafted) if v.rule == "sod-security-admin"] == [
        Violation(
            "sod-security-admin",
            "SecOps",
            "holds 'kpi:Draft': a Security Admin changes no business contracts and runs no workflows",
        ),
        Violation(
            "sod-security-admin",
            "SecOps",
            "holds 'workflow:Execute': a Security Admin changes no business contracts and runs no workflows",
        ),
    ]


def test_a_steward_role_touching_infrastructure_is_flagged():
    crafted = bundle(("KpiOps", "KA", ["kpi:Draft", "platform:Deploy"]))
    assert rules_broken(crafted) == [("excess-permission", "KpiOps"), ("sod-steward-no-infra", "KpiOps")]


def test_an_sre_role_changing_kpis_or_contracts_is_flagged():
    crafted = bundle(("Oncall", "SRE", ["observability:Manage", "kpi:Read", "schema:Rollback"]))
    assert rules_broken(crafted) == [("excess-permission", "Oncall"), ("sod-sre-no-business", "Oncall")]


def test_a_provider_role_holding_tenant_data_is_flagged():
    crafted = bundle(("Support", "PA", ["platform:Read", "data:Read"]))
    assert rules_broken(crafted) == [("excess-permission", "Support"), ("provider-tenant-data", "Support")]


def test_a_least_privilege_custom_bundle_is_enforced_by_its_own_policies():
    crafted = bundle(
        ("TenantAdmin", "TA", ["connector:Configure", "connector:SetCredentials", "tenant:ManageMembers"]),
        ("PlatformCore", "PA", ["platform:Deploy", "platform:Read", "rbac:Read"]),
    )
    engine = PolicyEngine(policies_for_bundle(crafted))
    admin = Principal("u-ta", "T1", frozenset({"TenantAdmin"}))
    core = Principal("u-pa", None, frozenset({"PlatformCore"}))
    assert {
        "admin configures own connector": engine.check(
            admin, "connector:Configure", Resource("c", "crm", "T1")
        ).allowed,
        "admin reads data": engine.check(admin, "data:Read", Resource("t", "x", "T1")).allowed,
        "admin in other tenant": engine.check(
            admin, "connector:Configure", Resource("c", "crm", "T2")
        ).allowed,
        "core deploys": engine.check(core, "platform:Deploy", Resource("d", "1", None)).allowed,
        "core holding tenant role": engine.check(
            Principal("u-pa", None, frozenset({"TenantAdmin"})), "connector:Read", Resource("c", "crm", "T1")
        ).rule,
    } == {
        "admin configures own connector": True,
        "admin reads data": False,
        "admin in other tenant": False,
        "core deploys": True,
        "core holding tenant role": "deny-role-scope",
    }


def test_policies_are_refused_for_a_bundle_that_breaks_a_rule():
    with pytest.raises(InvalidInput) as refused:
        policies_for_bundle(bundle(("Support", "PA", ["data:Read"])))
    assert refused.value.fields["violations"] == [
        {
            "rule": "excess-permission",
            "role": "Support",
            "detail": "'data:Read' needs connector:R, beyond what PA (Platform Admin) is granted",
        },
        {
            "rule": "provider-tenant-data",
            "role": "Support",
            "detail": "holds 'data:Read': provider roles never read tenant data",
        },
    ]


def test_a_document_that_is_not_a_bundle_is_invalid_input():
    with pytest.raises(InvalidInput):
        validate_bundle({"name": "x", "roles": [{"role": "bad name!", "based_on": "TA", "permissions": []}]})
    with pytest.raises(InvalidInput):
        validate_bundle({"name": "x"})


def test_a_role_named_after_a_persona_must_be_based_on_that_persona():
    bundle = baseline_bundle().model_dump(mode="json")
    for role in bundle["roles"]:
        if role["role"] == "PA":
            role["based_on"] = "TA"
            role["permissions"] = ["tenant:Read"]
    assert [(v.rule, v.role) for v in validate_bundle(bundle)] == [("role-persona-mismatch", "PA")]


def test_a_bundle_that_drops_an_rbac_lifecycle_step_is_a_lockout():
    bundle = baseline_bundle().model_dump(mode="json")
    for role in bundle["roles"]:
        role["permissions"] = [p for p in role["permissions"] if p != "rbac:Apply"]
    assert validate_bundle(bundle) == []  # drafting is fine; putting it in force is not
    violations = lockout_violations(bundle)
    assert [(v.rule, v.detail) for v in violations] == [
        ("lifecycle-lockout", "no role holds 'rbac:Apply': no later bundle could replace this one")
    ]
