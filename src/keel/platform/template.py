"""The declarative deployment template and its validation (pure)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.identity.personas import Persona
from keel.kernel.errors import InvalidInput
from keel.platform.errors import TemplateMismatch


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ControlPlane(_Strict):
    # None: whatever store this installation runs on. A named store must be the one in use.
    store: Literal["embedded", "postgresql"] | None = None


class DataPlane(_Strict):
    engine: Literal["duckdb"] = "duckdb"
    region: str = Field("local", min_length=1, max_length=40)


class SharedServices(_Strict):
    secrets: Literal["envelope-aes-256-gcm"] = "envelope-aes-256-gcm"
    evidence: Literal["merkle-ed25519"] = "merkle-ed25519"
    monitoring: Literal["prometheus"] = "prometheus"


class Iam(_Strict):
    # Personas that must each hold at least one active user for the platform to be operable.
    required_roles: list[str] = Field(default_factory=lambda: ["PO", "PA", "SA", "CO", "AU"])
    network: Literal["loopback", "private"] = "loopback"


class DeploymentTemplate(_Strict):
    name: str = Field(..., min_length=1, max_length=100)
    version: str = Field(..., min_length=1, max_length=20)
    control_plane: ControlPlane = Field(default_factory=ControlPlane)
    data_plane: DataPlane = Field(default_factory=DataPlane)
    shared_services: SharedServices = Field(default_factory=SharedServices)
    iam: Iam = Field(default_factory=Iam)


DEFAULT_TEMPLATE = {"name": "keel-embedded", "version": "1"}

# The control-plane store a template names, by SQLAlchemy dialect of the running store.
STORE_OF_DIALECT = {"sqlite": "embedded", "postgresql": "postgresql"}


def parse_template(raw: object) -> DeploymentTemplate:
    """Validate a template; the first error names its field path."""
    try:
        template = DeploymentTemplate.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "template." + ".".join(str(p) for p in first["loc"]) if first["loc"] else "template"
        raise InvalidInput(field, first["msg"]) from None
    provider = {p.value for p in Persona if p.is_provider}
    for role in template.iam.required_roles:
        if role not in provider:
            raise InvalidInput("template.iam.required_roles", f"'{role}' is not a provider role")
    return template


def check_fits(template: DeploymentTemplate, *, store_dialect: str) -> None:
    """Raise ``TemplateMismatch`` naming the field when the template does not describe this
    installation (checked when the deployment runs: the job fails, nothing is created)."""
    running = STORE_OF_DIALECT.get(store_dialect, store_dialect)
    declared = template.control_plane.store
    if declared is not None and declared != running:
        raise TemplateMismatch(
            "template.control_plane.store",
            f"the template deploys a '{declared}' control plane but this installation runs '{running}'",
        )
