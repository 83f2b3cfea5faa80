"""RBAC bundles (story 00d): custom roles, validated for least privilege and separation of duties.

A bundle declares roles, each based on a persona and holding catalog actions:
``{"name": ..., "roles": [{"role": ..., "based_on": "TA", "permissions": [...]}]}``.
``validate_bundle`` runs the rules below in order and returns every violation, each
naming its rule by a stable id; a bundle with any violation is not applied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.authz.actions import ACTIONS, Action, actions_granted
from keel.authz.baseline import ROLE_NAME, generate_policies
from keel.identity.personas import Level, Persona, ServiceArea
from keel.kernel.errors import InvalidInput

BUSINESS_KINDS = frozenset({"schema", "kpi", "workflow"})


class BundleRole(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str = Field(pattern=ROLE_NAME.pattern)
    based_on: str
    permissions: tuple[str, ...] = ()


class Bundle(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    roles: tuple[BundleRole, ...]


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    role: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def parse_bundle(data: Bundle | Mapping[str, Any]) -> Bundle:
    """Read a bundle document; raise ``InvalidInput`` when it is not shaped like one."""
    if isinstance(data, Bundle):
        return data
    try:
        return Bundle.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "bundle"
        raise InvalidInput(where, first["msg"]) from exc


# -- rules: each takes the bundle and yields its violations ------------------------


def _persona(role: BundleRole) -> Persona | None:
    try:
        return Persona(role.based_on)
    except ValueError:
        return None


def _held(role: BundleRole) -> list[Action]:
    return [ACTIONS[name] for name in dict.fromkeys(role.permissions) if name in ACTIONS]


def unknown_action(bundle: Bundle) -> Iterator[Violation]:
    for role in bundle.roles:
        for name in dict.fromkeys(role.permissions):
            if name not in ACTIONS:
                yield Violation("unknown-action", role.role, f"'{name}' is not a known action")


def unknown_persona(bundle: Bundle) -> Iterator[Violation]:
    for role in bundle.roles:
        if _persona(role) is None:
            yield Violation("unknown-persona", role.role, f"'{role.based_on}' is not a persona code")


def duplicate_role(bundle: Bundle) -> Iterator[Violation]:
    counts = Counter(role.role for role in bundle.roles)
    for name, count in counts.items():
        if count > 1:
            yield Violation("duplicate-role", name, f"role '{name}' is declared {count} times")


def excess_permission(bundle: Bundle) -> Iterator[Violation]:
    """Least privilege: a role holds nothing beyond what the matrix grants its persona."""
    for role in bundle.roles:
        persona = _persona(role)
        if persona is None:
            continue
        granted = actions_granted(persona)
        for action in _held(role):
            if action.name not in granted:
                yield Violation(
                    "excess-permission",
                    role.role,
                    f"'{action.name}' needs {action.requirement}, beyond what {persona.value} "
                    f"({persona.title}) is granted",
                )


def sod_draft_approve_deploy(bundle: Bundle) -> Iterator[Violation]:
    """One risk-altering change needs more than one persona: no role drafts, approves and deploys it."""
    for role in bundle.roles:
        phases: dict[str, set[str]] = {}
        for action in _held(role):
            if action.kind and action.phase:
                phases.setdefault(action.kind, set()).add(action.phase)
        for kind, held in sorted(phases.items()):
            if {"draft", "approve", "deploy"} <= held:
                yield Violation(
                    "sod-draft-approve-deploy", role.role, f"drafts, approves and deploys {kind} changes"
                )


def _based_on(role: BundleRole, *personas: Persona) -> bool:
    return _persona(role) in personas


def _flag(
    rule: str, bundle: Bundle, personas: tuple[Persona, ...], forbidden: Callable[[Action], bool], why: str
) -> Iterator[Violation]:
    for role in bundle.roles:
        if _based_on(role, *personas):
            for action in _held(role):
                if forbidden(action):
                    yield Violation(rule, role.role, f"holds '{action.name}': {why}")


def sod_security_admin(bundle: Bundle) -> Iterator[Violation]:
    """SA: identities and secrets only; no business-contract changes, no workflow execution."""
    yield from _flag(
        "sod-security-admin",
        bundle,
        (Persona.SA,),
        lambda a: a.kind in BUSINESS_KINDS and a.phase != "approve",
        "a Security Admin changes no business contracts and runs no workflows",
    )


def sod_steward_no_infra(bundle: Bundle) -> Iterator[Violation]:
    """SS and KA never touch infrastructure."""
    yield from _flag(
        "sod-steward-no-infra",
        bundle,
        (Persona.SS, Persona.KA),
        lambda a: a.area is ServiceArea.PLATFORM and a.level is not Level.R,
        "Schema Stewards and KPI Authors never touch infrastructure",
    )


def sod_sre_no_business(bundle: Bundle) -> Iterator[Violation]:
    """SRE never touches KPIs or contracts."""
    yield from _flag(
        "sod-sre-no-business",
        bundle,
        (Persona.SRE,),
        lambda a: (
            (a.area in (ServiceArea.SCHEMA, ServiceArea.KPI) and a.level is not Level.R)
            or a.kind in ("schema", "kpi")
        ),
        "SRE never changes KPIs or contracts",
    )


def provider_tenant_data(bundle: Bundle) -> Iterator[Violation]:
    """Provider roles never read tenant data."""
    provider = tuple(p for p in Persona if p.is_provider)
    yield from _flag(
        "provider-tenant-data",
        bundle,
        provider,
        lambda a: a.tenant_data,
        "provider roles never read tenant data",
    )


def role_persona_mismatch(bundle: Bundle) -> Iterator[Violation]:
    """A role named like a persona must be that persona: 'PA' based on 'TA' would lock every PA out."""
    codes = {p.value for p in Persona}
    for role in bundle.roles:
        if role.role in codes and role.based_on != role.role:
            yield Violation(
                "role-persona-mismatch",
                role.role,
                f"role '{role.role}' is a persona code but is based on '{role.based_on}'",
            )


# The steps of the RBAC lifecycle itself: a bundle that drops one could never be replaced.
LIFECYCLE = ("rbac:Define", "rbac:Apply", "rbac:Review")


def lifecycle_lockout(bundle: Bundle) -> Iterator[Violation]:
    """Some role must still hold each RBAC lifecycle step, or no later bundle could ever be applied."""
    held = {name for role in bundle.roles for name in role.permissions}
    for step in LIFECYCLE:
        if step not in held:
            yield Violation(
                "lifecycle-lockout", "", f"no role holds '{step}': no later bundle could replace this one"
            )


RULES: tuple[Callable[[Bundle], Iterator[Violation]], ...] = (
    unknown_action,
    unknown_persona,
    duplicate_role,
    excess_permission,
    sod_draft_approve_deploy,
    sod_security_admin,
    sod_steward_no_infra,
    sod_sre_no_business,
    provider_tenant_data,
    role_persona_mismatch,
)


def lockout_violations(bundle: Bundle | Mapping[str, Any]) -> list[Violation]:
    """Checked when a bundle is about to be put in force (not when drafted): would it lock RBAC out?"""
    return list(lifecycle_lockout(parse_bundle(bundle)))


def validate_bundle(bundle: Bundle | Mapping[str, Any]) -> list[Violation]:
    """Every violation of every rule, in rule order; empty when the bundle may be applied."""
    parsed = parse_bundle(bundle)
    return [violation for rule in RULES for violation in rule(parsed)]


def baseline_bundle() -> Bundle:
    """The bundle the matrix implies: one role per persona, holding exactly its granted actions."""
    return Bundle(
        name="baseline",
        roles=tuple(
            BundleRole(role=p.value, based_on=p.value, permissions=tuple(sorted(actions_granted(p))))
            for p in Persona
        ),
    )


def policies_for_bundle(bundle: Bundle | Mapping[str, Any]) -> str:
    """Cedar policies for a bundle; raise ``InvalidInput`` (with the violations) if it breaks a rule."""
    parsed = parse_bundle(bundle)
    violations = validate_bundle(parsed)
    if violations:
        raise InvalidInput(
            "bundle",
            f"'{parsed.name}' breaks {len(violations)} rule(s): "
            + ", ".join(sorted({v.rule for v in violations})),
            violations=[v.to_dict() for v in violations],
        )
    tenant_roles = [r.role for r in parsed.roles if not Persona(r.based_on).is_provider]
    return generate_policies({r.role: r.permissions for r in parsed.roles}, tenant_roles=tenant_roles)
