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
    region: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="Region the connector runs in (default: the tenant's); residency guardrails apply.",
    )


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
        default_factory=dict,
        description="stream → {column: type}: what the handshake checks streams no Raw contract covers.",
    )
    raw_contract: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Id of the Raw contract (global or the tenant's) its streams are checked against.",
    )


class SourceRawContract(Body):
    raw_contract: str = Field(
        ..., min_length=1, max_length=128, description="Id of the Raw contract to check the streams against."
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


# -- schema contracts (00c, 03a-03g) ------------------------------------------------------------

Document = dict[str, Any] | Annotated[str, Field(min_length=1, max_length=1_000_000)]


class ContractDraft(Body):
    document: Document = Field(..., description="The contract: an object, or its YAML/JSON text.")
    layer: str | None = Field(None, pattern="^(raw|gdp|kpi)$", description="Overrides keelLayer (ODCS).")
    tenant_id: str | None = Field(None, max_length=40, description="A tenant's own contract; unset: global.")


class ContractLint(Body):
    document: Document
    based_on: list[Document] = Field(default_factory=list, max_length=50)
    layer: str | None = Field(None, pattern="^(raw|gdp|kpi)$")


class ContractComplianceReview(Body):
    approve: bool
    findings: str = Field("", max_length=4000, description="What is missing (required to reject).")


class Reason(Body):
    reason: str = Field(..., min_length=1, max_length=2000)


# -- schema change requests (03d) and rollouts (03f) --------------------------------------------


class ChangeRequest(Body):
    schema_id: str = Field(..., min_length=1, max_length=128)
    change: str = Field(..., min_length=1, max_length=4000, description="What changes, e.g. add field x.")
    justification: str = Field(..., min_length=1, max_length=4000)
    rollback_plan: str = Field("", max_length=4000)


class ChangeClarification(Body):
    question: str = Field(..., min_length=1, max_length=4000)


class ChangeAmendment(Body):
    justification: str = Field("", max_length=4000)
    rollback_plan: str = Field("", max_length=4000)


class ChangeValidation(Body):
    proposed_version: str = Field(..., min_length=5, max_length=40)
    risk: str = Field(..., pattern="^(low|medium|high)$")


class ChangeDecision(Body):
    approve: bool
    reason: str = Field("", max_length=2000)


class ChangeWindow(Body):
    window_start: str = Field(..., min_length=10, max_length=40, description="ISO 8601 date-time.")
    window_end: str = Field(..., min_length=10, max_length=40, description="ISO 8601 date-time.")


class RolloutStage(Body):
    name: str = Field(..., min_length=1, max_length=40)
    tenants: list[str] | None = Field(None, max_length=1000, description="Tenant ids of this stage.")
    share: float | None = Field(None, gt=0, le=1, description="Share of all tenants reached by this stage.")


class RolloutCondition(Body):
    signal: str = Field(..., pattern="^(error_rate|dq_failure_rate|latency_ratio)$")
    op: str = Field(">", pattern="^(>|>=)$")
    limit: float = Field(..., ge=0)


class RolloutPlan(Body):
    schema_id: str = Field(..., min_length=1, max_length=128)
    to_version: str = Field(..., min_length=5, max_length=40)
    stages: list[RolloutStage] = Field(..., max_length=20)
    rollback_on: list[RolloutCondition] = Field(..., max_length=20)
    change_id: str | None = Field(None, max_length=40)


# -- impact and notifications (03g) -------------------------------------------------------------

SubjectId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$",
        description="The change the notice is about: a change request, a rollout, CONTRACT@VERSION.",
    ),
]
FieldName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
Fields = list[FieldName] | None


class ImpactAnalysis(Body):
    subject_id: SubjectId | None = Field(None, description="Default: the contract id.")
    fields: Fields = Field(
        None,
        min_length=1,
        max_length=200,
        description="Changed fields (column-level); unset: the whole contract.",
    )


class ConsumerRegister(Body):
    kind: str = Field(..., pattern="^(dashboard|kpi_view|workflow|report|export)$")
    name: str = Field(..., min_length=1, max_length=200)
    depends_on: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        ..., min_length=1, max_length=50, description="Contract ids it reads."
    )
    recipients: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=100, description="User ids told about changes."
    )
    webhook_url: str | None = Field(
        None, min_length=1, max_length=2000, description="Second channel for its recipients; kept sealed."
    )
    tenant_id: str | None = Field(
        None, max_length=40, description="Unset: the caller's tenant, or platform-wide."
    )


class NoticeSend(Body):
    subject_id: SubjectId
    schema_id: str = Field(..., min_length=1, max_length=128, description="The changed contract.")
    fields: Fields = Field(None, min_length=1, max_length=200)
    subject: str | None = Field(None, min_length=1, max_length=200, description="Default: names the change.")
    body: str | None = Field(
        None, min_length=1, max_length=20_000, description="Default: the impact in brief."
    )


class SignOff(Body):
    subject_id: SubjectId
    approve: bool
    note: str = Field("", max_length=4000, description="Kept by the signer; the ledger holds its hash.")


class PostChangeIncident(Body):
    subject_id: SubjectId
    summary: str = Field(..., min_length=1, max_length=2000)
    severity: str = Field("SEV2", pattern="^SEV[1-4]$")
    schema_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Also inform the current blast radius of this contract.",
    )
    fields: Fields = Field(None, min_length=1, max_length=200)


# -- tenant extensions (03e) ---------------------------------------------------------------------


class ExtensionFieldBody(Body):
    name: str = Field(..., min_length=1, max_length=60, description="Stored as x_<namespace>_<name>.")
    type: str = Field(..., min_length=1, max_length=20, description="One of Keel's field types.")
    expression: str = Field(
        ..., min_length=1, max_length=4000, description="SQL over the columns the base mapping reads."
    )
    classification: str | None = Field(None, max_length=20)
    pii: bool | None = None
    description: str = Field("", max_length=2000)
    required: bool = Field(False, description="Refused: an extension cannot change base guarantees.")
    unique: bool = Field(False, description="Refused, like required.")
    primary_key: bool = Field(False, description="Refused, like required.")


class ExtensionProposal(Body):
    schema_id: str = Field(..., min_length=1, max_length=128, description="A published Raw or GDP contract.")
    version: str = Field(..., min_length=5, max_length=40)
    dataset: str | None = Field(None, min_length=1, max_length=200, description="Default: its only one.")
    namespace: str = Field(..., min_length=1, max_length=40)
    fields: list[ExtensionFieldBody] = Field(..., min_length=1, max_length=50)
    business_case: str = Field(..., min_length=1, max_length=4000)


class BuildRequest(Body):
    schema_id: str = Field(..., min_length=1, max_length=128)


class TicketResolution(Body):
    note: str = Field(
        ..., min_length=1, max_length=4000, description="How it was resolved; the ledger holds its hash."
    )
