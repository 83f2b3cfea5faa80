"""The action catalog is the single source of truth for what each persona holds."""

from keel.authz.actions import ACTIONS, EXTRA_GRANTS, actions_granted
from keel.identity.personas import Level, Persona, ServiceArea, grants


def test_catalog_keys_are_action_names():
    assert all(name == action.name for name, action in ACTIONS.items())


def test_change_actions_carry_a_kind_and_known_phases():
    phased = {name: (a.kind, a.phase) for name, a in ACTIONS.items() if a.phase}
    assert phased == {
        "platform:Deploy": ("platform", "deploy"),
        "platform:ApproveDeployment": ("platform", "approve"),
        "platform:ValidateDeployment": ("platform", "approve"),
        "tenant:ApproveOffboarding": (None, "approve"),
        "rbac:Define": ("rbac", "draft"),
        "rbac:Review": ("rbac", "approve"),
        "rbac:Apply": ("rbac", "deploy"),
        "breakglass:Request": ("breakglass", "draft"),
        "breakglass:Approve": ("breakglass", "approve"),
        "schema:Draft": ("schema", "draft"),
        "schema:Approve": ("schema", "approve"),
        "schema:Publish": ("schema", "deploy"),
        "schema:Deploy": ("schema", "deploy"),
        "schema:Validate": ("schema", "approve"),
        "schema:ReviewCompliance": ("schema", "approve"),
        "schema:ApproveChange": ("schema", "approve"),
        "schema:ReadyRollout": ("schema", "approve"),
        "kpi:Draft": ("kpi", "draft"),
        "kpi:Approve": ("kpi", "approve"),
        "kpi:Publish": ("kpi", "deploy"),
        "workflow:Draft": ("workflow", "draft"),
        "workflow:Approve": ("workflow", "approve"),
        "workflow:Publish": ("workflow", "deploy"),
        "housekeeping:ApprovePolicy": (None, "approve"),  # a CO approves a PA's retention policy (05b)
    }


def test_publishing_needs_dual_control_and_execute_and_rollback_are_break_glass_eligible():
    assert {n for n, a in ACTIONS.items() if a.dual_control} == {
        "schema:Publish",
        "kpi:Publish",
        "workflow:Publish",
    }
    assert {n for n, a in ACTIONS.items() if a.break_glass} == {"workflow:Execute", "schema:Rollback"}
    assert {n for n, a in ACTIONS.items() if a.tenant_data} == {"data:Read", "kpi:GetResults", "kpi:Export"}


def test_grants_follow_the_matrix_apart_from_tenant_data_and_extra_grants():
    for persona in Persona:
        from_matrix = {
            n for n, a in ACTIONS.items() if grants(persona, a.area, a.level) and not a.explicit_only
        }
        if persona.is_provider:
            from_matrix -= {n for n, a in ACTIONS.items() if a.tenant_data}
        assert actions_granted(persona) == from_matrix | EXTRA_GRANTS.get(persona, frozenset()), persona


def test_no_provider_persona_is_granted_tenant_data():
    held = {
        p.value: {n for n in actions_granted(p) if ACTIONS[n].tenant_data} for p in Persona if p.is_provider
    }
    assert held == {p.value: set() for p in Persona if p.is_provider}


def test_deploying_platform_and_connectors_is_for_the_platform_admin_only():
    holders = {
        name: {p.value for p in Persona if name in actions_granted(p)}
        for name in (
            "platform:Deploy",
            "connector:Deploy",
            "tenant:Provision",
            "schema:Deploy",
            "workflow:Publish",
        )
    }
    assert holders == {name: {"PA"} for name in holders}


def test_the_integration_operator_replays_backfills_and_reruns_but_changes_no_policy():
    io = actions_granted(Persona.IO)
    assert {"ingestion:Replay", "ingestion:Backfill", "ingestion:Rerun"} <= io
    assert {n for n in io if ACTIONS[n].level is not Level.R} == {
        "ingestion:Run",
        "ingestion:Replay",
        "ingestion:Backfill",
        "ingestion:Rerun",
        "pipeline:Run",  # builds GDP tables and KPIs from published contracts: a job, no policy
    }


def test_the_tenant_admin_owns_membership():
    assert "tenant:ManageMembers" in actions_granted(Persona.TA)


def test_every_extra_grant_names_a_catalog_action():
    assert set().union(*EXTRA_GRANTS.values()) <= set(ACTIONS)


def test_requirement_names_the_matrix_cell():
    assert ACTIONS["platform:Deploy"].requirement == "platform:M"
    assert ACTIONS["evidence:Read"].area is ServiceArea.EVIDENCE


def test_auditing_a_decommissioning_is_the_auditors_alone():
    assert {p.value for p in Persona if "tenant:AuditDecommissioning" in actions_granted(p)} == {"AU"}


def test_review_tickets_are_read_by_all_and_resolved_by_the_schema_steward_and_the_oe_alone():
    holders = {
        name: {p.value for p in Persona if name in actions_granted(p)}
        for name in ("ticket:Read", "ticket:Resolve")
    }
    assert holders == {"ticket:Read": {p.value for p in Persona}, "ticket:Resolve": {"SS", "SRE"}}
