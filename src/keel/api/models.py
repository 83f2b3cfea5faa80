"""Request bodies. Unknown fields are refused so typos never pass silently.

Types are strict: ``"5"`` is not a number and ``"yes"`` or ``1`` is not a boolean, so a
client that sends the wrong type hears about it instead of being guessed at. Lists and
numbers are bounded so one request cannot ask for unbounded work or overflow a column,
and no string may hold a NUL character (PostgreSQL text cannot store one).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Name = Annotated[str, Field(min_length=1, max_length=100)]


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys of nested objects included) holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


class DeploymentRequest(Body):
    template: dict[str, Any] | None = Field(
        None, description="Declarative deployment template; default if absent."
    )


class Rejection(Body):
    reason: str = Field(..., min_length=1, max_length=2000)


class TenantCreate(Body):
    slug: str = Field(..., min_length=3, max_length=63)
    name: str = Field(..., min_length=1, max_length=200)
    admin_email: str = Field(..., min_length=3, max_length=254)
    admin_name: str = Field("Tenant Admin", min_length=1, max_length=200)
    region: str = Field("local", min_length=1, max_length=40)
    storage_quota_mb: int | None = Field(None, ge=1, le=1_073_741_824)  # 1 PiB; fits a 32-bit column


class OffboardingCreate(Body):
    reason: str = Field(..., min_length=1, max_length=2000)


class Decision(Body):
    approve: bool
    reason: str = Field("", max_length=2000)


class Decommission(Body):
    request_id: str = Field(..., min_length=1, max_length=40)


class UserCreate(Body):
    email: str = Field(..., min_length=3, max_length=254)
    display_name: str = Field(..., min_length=1, max_length=200)
    roles: list[Name] = Field(..., min_length=1, max_length=20)
    password: str | None = Field(None, min_length=12, max_length=200)


class SignIn(Body):
    email: str = Field(..., min_length=3, max_length=254)
    password: str = Field(..., min_length=1, max_length=200)


class InvitationAccept(Body):
    token: str = Field(..., min_length=10, max_length=200)
    password: str = Field(..., min_length=12, max_length=200)


class TokenCreate(Body):
    name: str = Field(..., min_length=1, max_length=100)
    roles: list[Name] | None = Field(None, min_length=1, max_length=20)
    ttl_days: int | None = Field(None, ge=1, le=365)


class SecretPut(Body):
    value: str = Field(..., min_length=1, max_length=65536)


class BundleDefine(Body):
    bundle: dict[str, Any] | None = Field(None, description="RBAC bundle; the matrix baseline if absent.")


class BundleReview(Body):
    approve: bool
    findings: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


class BreakGlassRequest(Body):
    tenant_id: str = Field(..., min_length=1, max_length=40)
    actions: list[Name] = Field(..., min_length=1, max_length=20)
    minutes: int = Field(..., ge=1, le=120)
    justification: str = Field(..., min_length=1, max_length=2000)


class ComplianceReview(Body):
    approve: bool
    findings: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=200
    )


# -- connectors, sources, ingestion (00b, 02, 02b, 13) ------------------------------------------

Ref = Annotated[str, Field(min_length=1, max_length=200)]


class TemplatePublish(Body):
    name: str = Field(..., min_length=1, max_length=80, pattern=r"^[a-z][a-z0-9-]*$")
    version: str = Field(..., min_length=5, max_length=40)
    connector: Name
    description: str = Field("", max_length=2000)
    defaults: dict[str, Any] = Field(default_factory=dict)


class ConnectorDeploy(Body):
    template: Ref = Field(..., description="Template id, or name@version (name alone: its newest version).")
    name: str = Field(..., min_length=1, max_length=80)


class ConnectorConfigure(Body):
    config: dict[str, Any] = Field(
        ...,
        description="Settings per the template's spec, credentials inline; '***' keeps a stored credential.",
    )
    reason: str = Field("", max_length=2000)


class ConnectorUpgrade(Body):
    template: Ref


class SourceRequest(Body):
    name: str = Field(..., min_length=1, max_length=80)
    streams: list[Ref] = Field(..., min_length=1, max_length=200)
    justification: str = Field(..., min_length=1, max_length=2000)
    connector_id: str | None = Field(None, max_length=40)
    expected_schemas: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="stream → {column: type}: the Raw contract the handshake checks."
    )


class SourceRegister(Body):
    connector_id: str | None = Field(None, max_length=40)


class SourceValidation(Body):
    compliant: bool = True
    reason: str = Field("", max_length=2000)


class IngestionWindow(Body):
    cursor_field: Ref
    start: str = Field(..., min_length=4, max_length=40)
    end: str = Field(..., min_length=4, max_length=40)


class IngestionStart(Body):
    kind: str = Field("sync", pattern="^(sync|rerun|replay|backfill)$")
    stream: Ref | None = None
    window: IngestionWindow | None = None
    rerun_of: str | None = Field(None, max_length=40)
