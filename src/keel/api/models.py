"""Request bodies. Unknown fields are refused so typos never pass silently."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    storage_quota_mb: int | None = Field(None, ge=1)


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
    roles: list[str] = Field(..., min_length=1)
    password: str | None = Field(None, min_length=12, max_length=200)


class SignIn(Body):
    email: str = Field(..., min_length=3, max_length=254)
    password: str = Field(..., min_length=1, max_length=200)


class InvitationAccept(Body):
    token: str = Field(..., min_length=10, max_length=200)
    password: str = Field(..., min_length=12, max_length=200)


class TokenCreate(Body):
    name: str = Field(..., min_length=1, max_length=100)
    roles: list[str] | None = None
    ttl_days: int | None = Field(None, ge=1, le=365)


class SecretPut(Body):
    value: str = Field(..., min_length=1, max_length=65536)


class BundleDefine(Body):
    bundle: dict[str, Any] | None = Field(None, description="RBAC bundle; the matrix baseline if absent.")


class BundleReview(Body):
    approve: bool
    findings: list[dict[str, Any]] = Field(default_factory=list)


class BreakGlassRequest(Body):
    tenant_id: str = Field(..., min_length=1, max_length=40)
    actions: list[str] = Field(..., min_length=1)
    minutes: int = Field(..., ge=1, le=120)
    justification: str = Field(..., min_length=1, max_length=2000)
