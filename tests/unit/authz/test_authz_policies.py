"""Cedar text generated from role permissions: readable, complete and valid against the schema."""

import cedarpy
import pytest

from keel.authz.actions import ACTIONS
from keel.authz.baseline import (
    GUARD_IDS,
    action_groups,
    baseline_policies,
    baseline_role_permissions,
    cedar_schema,
    generate_policies,
)
from keel.authz.engine import PolicyEngine
from keel.identity.personas import Persona
from keel.kernel.errors import InvalidInput


def test_the_baseline_has_one_permit_per_persona_then_the_guards():
    engine = PolicyEngine(baseline_policies())
    assert engine.rules == (*(f"permit-{code}" for code in sorted(p.value for p in Persona)), *GUARD_IDS)


def test_guard_rules_are_named_and_ordered_by_precedence():
    assert GUARD_IDS == (
        "deny-cross-tenant",
        "deny-role-scope",
        "deny-provider-tenant-data",
        "deny-tenant-platform-change",
        "self-service-only",
        "sod-approve-own-draft",
        "sod-deploy-own-change",
        "dual-control-publish",
        "break-glass",
    )


def test_the_baseline_validates_against_the_keel_schema():
    assert cedarpy.validate_policies(baseline_policies(), cedar_schema()).validation_passed


def test_the_schema_declares_every_catalog_action():
    schema = cedar_schema()
    assert all(f'action "{name}" in [' in schema for name in ACTIONS)


def test_action_groups_reflect_the_catalog_flags():
    assert {n: action_groups(ACTIONS[n]) for n in ("schema:Publish", "workflow:Execute", "data:Read")} == {
        "schema:Publish": ["area:platform:M", "DualControl", "Deploy"],
        "workflow:Execute": ["area:workflow:A", "BreakGlassEligible"],
        "data:Read": ["area:connector:R", "TenantData", "ReadOnly"],
    }


def test_baseline_role_permissions_are_keyed_by_persona_code():
    assert set(baseline_role_permissions()) == {p.value for p in Persona}


def test_a_permit_lists_its_actions_one_per_line_in_order():
    text = generate_policies({"Viewer": ["kpi:Read", "evidence:Read"]}, tenant_roles=["Viewer"])
    assert (
        '@id("permit-Viewer")\n'
        "permit (\n"
        '  principal in Keel::Role::"Viewer",\n'
        "  action in [\n"
        '    Keel::Action::"evidence:Read",\n'
        '    Keel::Action::"kpi:Read"\n'
        "  ],\n"
        "  resource\n"
        ");"
    ) in text


def test_a_role_without_actions_gets_no_permit():
    text = generate_policies({"Idle": []})
    assert "// role Idle holds no actions" in text and "permit-Idle" not in text
    PolicyEngine(text)


def test_unknown_actions_and_malformed_role_names_are_rejected():
    with pytest.raises(InvalidInput, match="unknown actions"):
        generate_policies({"X": ["kpi:Levitate"]})
    with pytest.raises(InvalidInput, match="not a valid role name"):
        generate_policies({'X"; permit': ["kpi:Read"]})
