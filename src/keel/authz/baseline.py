"""Cedar policies generated from role permissions, and the baseline generated from the matrix.

Entity model (namespace ``Keel``), declared once in ``cedar_schema()``:

* ``Keel::User::"<user id>"`` with ``tenant`` ("" for provider users) and ``uid`` (the
  user id again, as a string a policy can compare), member of ``Keel::Role::"<role>"``
  (a persona code or a custom role name from an RBAC bundle);
* ``Keel::Action::"<name>"`` for every catalog action, member of the action groups
  ``area:<area>:<level>``, ``TenantData``, ``BreakGlassEligible``, ``DualControl``,
  ``SelfService``, ``ReadOnly`` and the phase groups ``Draft``/``Approve``/``Deploy``;
* ``Keel::Resource::"<type>/<id>"`` with ``tenant`` ("" = platform-wide), ``owner``,
  ``drafted_by``, ``deployed_by`` (user ids, "" if none) and ``approved_by`` (a set).

Context: ``dual_signed`` and ``break_glass``, both computed by the caller. Cedar has no
clock here, so the two-hour time box of break-glass is the caller's: it sets
``break_glass`` only while an approved, unexpired elevation covers this principal,
action and tenant.

Each role gets one permit listing its actions; the fixed guard policies below apply
to every policy set. Every policy carries an ``@id`` so a decision names its rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from keel.authz.actions import ACTIONS, Action, actions_granted
from keel.identity.personas import Persona
from keel.kernel.errors import InvalidInput

ROLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

# Guard policies in precedence order: when several forbid one request, the decision
# names the first. Tenancy first, then separation of duties, then dual control.
GUARDS: tuple[tuple[str, str], ...] = (
    (
        # A tenant user never touches another tenant's objects; no elevation crosses tenants.
        "deny-cross-tenant",
        """forbid (principal, action, resource)
when { principal.tenant != "" && resource.tenant != "" && principal.tenant != resource.tenant };""",
    ),
    (
        # Provider roles never read tenant data, whichever tenant it belongs to.
        "deny-provider-tenant-data",
        """forbid (principal, action in Keel::Action::"TenantData", resource)
when { principal.tenant == "" };""",
    ),
    (
        # Tenant personas make no control-plane changes: platform-wide objects are read-only to them.
        "deny-tenant-platform-change",
        """forbid (principal, action, resource)
when { principal.tenant != "" && resource.tenant == "" }
unless { action in Keel::Action::"ReadOnly" };""",
    ),
    (
        "self-service-only",
        """forbid (principal, action in Keel::Action::"SelfService", resource)
unless { resource.owner == principal.uid };""",
    ),
    (
        # Nobody approves (or signs off) a change they drafted or deployed themselves.
        "sod-approve-own-draft",
        """forbid (principal, action in Keel::Action::"Approve", resource)
when { resource.drafted_by == principal.uid || resource.deployed_by == principal.uid };""",
    ),
    (
        "sod-deploy-own-change",
        """forbid (principal, action in Keel::Action::"Deploy", resource)
when { resource.drafted_by == principal.uid || resource.approved_by.contains(principal.uid) };""",
    ),
    (
        "dual-control-publish",
        """forbid (principal, action in Keel::Action::"DualControl", resource)
unless { context.dual_signed };""",
    ),
    (
        # The only permit not tied to a role. Forbids still apply: no cross-tenant use,
        # no self-approval, and tenant data stays closed to providers.
        "break-glass",
        """permit (principal, action in Keel::Action::"BreakGlassEligible", resource)
when { context.break_glass };""",
    ),
)
# Generated per policy set (it lists the roles), ranked right after deny-cross-tenant.
ROLE_SCOPE = "deny-role-scope"
GUARD_IDS: tuple[str, ...] = (GUARDS[0][0], ROLE_SCOPE, *(rule for rule, _ in GUARDS[1:]))


def action_groups(action: Action) -> list[str]:
    """The Cedar action groups ``action`` belongs to."""
    groups = [f"area:{action.area.value}:{action.level.value}"]
    flags = (
        (action.tenant_data, "TenantData"),
        (action.break_glass, "BreakGlassEligible"),
        (action.dual_control, "DualControl"),
        (action.self_service, "SelfService"),
        (action.read_only, "ReadOnly"),
        (action.phase == "draft", "Draft"),
        (action.phase == "approve", "Approve"),
        (action.phase == "deploy", "Deploy"),
    )
    return groups + [group for flag, group in flags if flag]


def cedar_schema() -> str:
    """The Cedar schema of the entity model, with every catalog action and its groups."""
    groups = sorted({g for a in ACTIONS.values() for g in action_groups(a)})
    lines = [
        "namespace Keel {",
        "  entity Role;",
        "  entity User in [Role] { tenant: String, uid: String };",
        "  entity Resource {",
        "    tenant: String, owner: String, drafted_by: String,",
        "    approved_by: Set<String>, deployed_by: String",
        "  };",
        "  type RequestContext = { dual_signed: Bool, break_glass: Bool };",
    ]
    lines += [f'  action "{g}";' for g in groups]
    for a in ACTIONS.values():
        parents = ", ".join(f'"{g}"' for g in action_groups(a))
        lines.append(
            f'  action "{a.name}" in [{parents}] appliesTo '
            "{ principal: [User], resource: [Resource], context: RequestContext };"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _permit(role: str, actions: list[str]) -> str:
    listed = ",\n".join(f'    Keel::Action::"{name}"' for name in actions)
    return (
        f'@id("permit-{role}")\n'
        f"permit (\n"
        f'  principal in Keel::Role::"{role}",\n'
        f"  action in [\n{listed}\n  ],\n"
        f"  resource\n"
        f");"
    )


def _role_scope(provider_roles: list[str], tenant_roles: list[str]) -> str:
    # A role granted on the wrong side of the tenancy line is a misassignment: a provider
    # user holding a tenant role would otherwise hold it in every tenant. Fail closed.
    def held(roles: list[str]) -> str:
        return "principal in [" + ", ".join(f'Keel::Role::"{r}"' for r in roles) + "]" if roles else "false"

    return (
        f'@id("{ROLE_SCOPE}")\n'
        "forbid (principal, action, resource)\n"
        "when {\n"
        f'  (principal.tenant == "" && {held(tenant_roles)}) ||\n'
        f'  (principal.tenant != "" && {held(provider_roles)})\n'
        "};"
    )


def generate_policies(
    role_permissions: Mapping[str, Iterable[str]], *, tenant_roles: Iterable[str] | None = None
) -> str:
    """Render Cedar text: one permit per role listing its actions, then the guard policies.

    ``tenant_roles`` names the roles held by tenant users (default: the tenant persona
    codes among the roles); every other role is a provider role. Raises ``InvalidInput``
    for a malformed role name or an action not in the catalog.
    """
    if tenant_roles is None:
        tenant_roles = [p.value for p in Persona if not p.is_provider]
    tenant_side = set(tenant_roles)
    blocks = ["// Generated by keel.authz.baseline; edit the RBAC bundle, not this text."]
    for role in sorted(role_permissions):
        if not ROLE_NAME.match(role):
            raise InvalidInput("role", f"'{role}' is not a valid role name", role=role)
        actions = sorted(set(role_permissions[role]))
        unknown = [name for name in actions if name not in ACTIONS]
        if unknown:
            raise InvalidInput("permissions", f"unknown actions for role '{role}': {unknown}", role=role)
        if actions:
            blocks.append(_permit(role, actions))
        else:
            blocks.append(f"// role {role} holds no actions")
    roles = sorted(role_permissions)
    provider_side = [r for r in roles if r not in tenant_side]
    guards = [f'@id("{rule}")\n{text}' for rule, text in GUARDS]
    blocks += [guards[0], _role_scope(provider_side, [r for r in roles if r in tenant_side]), *guards[1:]]
    return "\n\n".join(blocks) + "\n"


def baseline_role_permissions() -> dict[str, set[str]]:
    """Each persona code mapped to the actions the matrix grants it."""
    return {persona.value: actions_granted(persona) for persona in Persona}


def baseline_policies() -> str:
    """The Cedar policy set in force before any RBAC bundle is applied."""
    return generate_policies(baseline_role_permissions())
