"""The action catalog: every action Keel authorizes, in one table.

Each action names the matrix cell that grants it (service area and level), so a
persona holds an action exactly when its matrix cell covers that level
(``keel.identity.personas.grants``). The flags feed the Cedar guard policies:
``tenant_data`` actions are never granted to provider personas, ``dual_control``
actions need two independent approvals, ``break_glass`` actions may be used under an
approved elevation, and change actions (``kind`` + ``phase``) are subject to
separation of duties. Every ``approve`` action, with a kind or not (PO's sign-off on
a deployment or an offboarding), may not be taken on one's own request.

Why some cells sit where they do (the matrix alone would break a separation-of-duties
rule, and the stories say which persona does the step):

* Drafting and approving schemas and KPIs needs Manage of their area (SS, KA): the
  schema and KPI columns hold no Approve, and Configure is also held by SA, whom
  the SoD rules keep away from business contracts. Approval is therefore a second
  steward or author; the Cedar guard stops anyone approving their own draft.
* Publishing and deploying schema/KPI/workflow changes is a control-plane step that
  the stories give to PA ("Register (PA)", "Publish ... (PA)", "Apply, enable (PA)",
  "stage from canaries (PA)"): it needs Manage of PHS control APIs. So no persona
  holds draft, approve and deploy of one kind.
* No action needs Configure of PHS control APIs: SS and KA hold that cell, but
  "never touch infrastructure" and tenant personas make "no control-plane changes".
* ``connector:Deploy`` needs Approve of connectors, which only PA holds ("Deploy from
  a template (PA only)", 00b); the 00d artifact listing ``connector.deploy`` for a
  TenantAdmin conflicts with 00b and is not followed. TA and DE configure connectors
  and supply their credentials (Manage of connectors).
* ``workflow:Execute`` needs Approve of workflows (TP, BO launch governed actions);
  anyone else only under break-glass.
* ``breakglass:Approve`` needs Approve of IAM (PO); requesting it is incident work
  (Configure of observability: PA, SRE, TP).
* ``rbac:Review`` is the compliance review of 00d (Manage of evidence: CO) and counts
  as the approval of an RBAC change; ``rbac:Apply`` is Configure of IAM (PA, TP).

Grants the matrix cannot express (``EXTRA_GRANTS``): the Integration Operator, who has
no matrix column, replays, backfills and reruns ingestion; the Tenant Admin "owns
membership" although the matrix gives TA only Read on IAM — and owns it alone
(``explicit_only``): a provider holding IAM Configure could otherwise mint an account
inside a tenant and read its data through it, and a Tenant Approver could make itself
a Tenant Admin; the Schema Steward and the Observability Engineer, and they alone,
resolve review tickets (``ticket:Resolve``, see below). Tenant data is never
granted to provider personas, even where their Read cell would cover it ("Deny
cross-tenant reads"; PA "never reads tenant data").
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.identity.personas import Level, Persona, ServiceArea, grants

KINDS = ("platform", "schema", "kpi", "workflow", "rbac", "breakglass")
PHASES = ("draft", "approve", "deploy")


@dataclass(frozen=True, slots=True)
class Action:
    """One authorizable action and the matrix cell that grants it."""

    name: str
    area: ServiceArea
    level: Level
    tenant_data: bool = False
    kind: str | None = None
    phase: str | None = None
    break_glass: bool = False
    dual_control: bool = False
    self_service: bool = False  # only on a resource the caller owns (its own user record)
    explicit_only: bool = False  # held only through EXTRA_GRANTS, never by a matrix cell alone

    @property
    def requirement(self) -> str:
        """The matrix cell needed, e.g. ``"platform:M"``."""
        return f"{self.area.value}:{self.level.value}"

    @property
    def read_only(self) -> bool:
        return self.level is Level.R and not self.self_service


# Short names for the table below, in enum order.
PLATFORM, IAM, SCHEMA, KPI, WORKFLOW, CONNECTOR, OBSERVABILITY, EVIDENCE = ServiceArea
M, A, C, R = Level

_CATALOG = (
    # name                         area           level, flags
    # -- platform deployment (00a)
    Action("platform:Read",               PLATFORM,      R),
    Action("platform:Deploy",             PLATFORM,      M, kind="platform", phase="deploy"),
    Action("platform:ApproveDeployment",  PLATFORM,      A, kind="platform", phase="approve"),
    Action("platform:ValidateDeployment", IAM,           M, kind="platform", phase="approve"),  # SA sign-off
    # -- tenants (01, 01c)
    Action("tenant:Read",                 PLATFORM,      R),
    Action("tenant:Provision",            PLATFORM,      M),
    Action("tenant:Validate",             IAM,           M),
    Action("tenant:ManageMembers",        IAM,           C, explicit_only=True),  # TA only
    Action("tenant:RequestOffboarding",   PLATFORM,      M),
    Action("tenant:ApproveOffboarding",   PLATFORM,      A, phase="approve"),
    Action("tenant:Decommission",         PLATFORM,      M),
    Action("tenant:ValidateWipe",         IAM,           M),
    Action("tenant:ArchiveEvidence",      EVIDENCE,      M),
    Action("tenant:ReviewCompliance",     EVIDENCE,      M),  # CO reviews the receipts (01 step 6)
    Action("tenant:AuditDecommissioning", EVIDENCE,      R, explicit_only=True),  # AU (01c step 6)
    # -- identity, secrets, RBAC (00d)
    Action("user:Read",                   IAM,           R),
    Action("user:Manage",                 IAM,           M),  # provider identities: SA
    Action("token:Create",                IAM,           R, self_service=True),
    Action("secret:Write",                IAM,           M),  # provider secrets / KMS
    Action("rbac:Read",                   IAM,           R),
    Action("rbac:Define",                 IAM,           M, kind="rbac", phase="draft"),
    Action("rbac:Review",                 EVIDENCE,      M, kind="rbac", phase="approve"),
    Action("rbac:Apply",                  IAM,           C, kind="rbac", phase="deploy"),
    Action("breakglass:Request",          OBSERVABILITY, C, kind="breakglass", phase="draft"),
    Action("breakglass:Approve",          IAM,           A, kind="breakglass", phase="approve"),
    # -- schema contracts (03a-03g)
    Action("schema:Read",                 SCHEMA,        R),
    Action("schema:Draft",                SCHEMA,        M, kind="schema", phase="draft"),
    Action("schema:Approve",              SCHEMA,        M, kind="schema", phase="approve"),
    Action("schema:Publish",              PLATFORM,      M, kind="schema", phase="deploy", dual_control=True),
    Action("schema:Deploy",               PLATFORM,      M, kind="schema", phase="deploy"),
    Action("schema:Rollback",             PLATFORM,      M, kind="schema", break_glass=True),
    Action("schema:Register",             PLATFORM,      M),  # PA registers a draft (03a-03c step 2)
    Action("schema:LoadTemplates",        PLATFORM,      M),  # PA only (00c step 1)
    Action("schema:Validate",             SCHEMA,        M, kind="schema", phase="approve"),  # SS checks
    Action("schema:ReviewCompliance",     EVIDENCE,      M, kind="schema", phase="approve"),  # CO (00c, 03b)
    Action("schema:Deprecate",            SCHEMA,        M),
    Action("schema:Retire",               SCHEMA,        M),
    # impact analysis and notices (03g)
    Action("impact:Analyse",              SCHEMA,        M),  # SS computes the blast radius (step 1)
    Action("impact:Read",                 SCHEMA,        R),  # consumers, deliveries, sign-offs
    Action("consumer:Register",           CONNECTOR,     M),  # a tenant's own consumers: TA, DE only
    Action("consumer:RegisterPlatform",   PLATFORM,      M),  # platform-wide consumers: PA only
    Action("notice:Send",                 PLATFORM,      M),  # "notify all affected (PA)" (step 2)
    Action("notice:SignOff",              SCHEMA,        R, self_service=True),  # one's own sign-off
    Action("notice:ReportIncident",       OBSERVABILITY, M),  # post-change incident: SRE (OE), PA
    # review tickets opened by drift detection (03a) and impact analysis (03g)
    Action("ticket:Read",                 SCHEMA,        R),  # everyone; tenant people their tenant's
    Action("ticket:Resolve",              OBSERVABILITY, M, explicit_only=True),  # SS and SRE only
    # -- tenant change requests (03d) and rollouts (03f)
    Action("schema:RequestChange",        SCHEMA,        C, explicit_only=True),  # TA files (+ DE)
    Action("schema:ValidateChange",       SCHEMA,        M),  # SS: impact and risk attached
    Action("schema:ApproveChange",        SCHEMA,        C, kind="schema", phase="approve", explicit_only=True),  # noqa: E501 (table row)
    Action("schema:ReadyRollout",         SCHEMA,        M, kind="schema", phase="approve"),  # SS readiness
    # -- tenant extensions (03e): SS checks with schema:Validate, PA deploys with schema:Deploy
    Action("schema:ProposeExtension",     SCHEMA,        C, explicit_only=True),  # TA (03e step 1)
    # -- KPIs (03c, 06, 07)
    Action("kpi:Read",                    KPI,           R),
    Action("kpi:Draft",                   KPI,           M, kind="kpi", phase="draft"),
    Action("kpi:Approve",                 KPI,           M, kind="kpi", phase="approve"),
    Action("kpi:Publish",                 PLATFORM,      M, kind="kpi", phase="deploy", dual_control=True),
    Action("kpi:GetResults",              KPI,           R, tenant_data=True),
    # -- workflows (08a-08e)
    Action("workflow:Read",               WORKFLOW,      R),
    Action("workflow:Draft",              WORKFLOW,      M, kind="workflow", phase="draft"),
    Action("workflow:Approve",            WORKFLOW,      A, kind="workflow", phase="approve"),
    Action("workflow:Publish",            PLATFORM,      M, kind="workflow", phase="deploy", dual_control=True),  # noqa: E501 (table row)
    Action("workflow:Execute",            WORKFLOW,      A, kind="workflow", break_glass=True),
    # -- connectors and ingestion (00b, 02, 13)
    Action("connector:Read",              CONNECTOR,     R),
    Action("connector:Deploy",            CONNECTOR,     A),
    Action("connector:Configure",         CONNECTOR,     M),
    Action("connector:SetCredentials",    CONNECTOR,     M),  # tenant connector credentials: TA, DE
    Action("connector:Validate",          IAM,           M),  # SA: secret storage and scope (00b step 3)
    Action("connector:Preflight",         CONNECTOR,     A),  # PA opens the handshake (02b step 1)
    Action("connector:Recover",           CONNECTOR,     A),  # PA's manual recovery (13 step 3)
    Action("connector:HealthCheck",       OBSERVABILITY, M),  # OE/SRE and PA monitor (00b step 4)
    Action("connector:PublishTemplate",   CONNECTOR,     A),  # PA adds a template version
    Action("source:Request",              CONNECTOR,     M),  # DE/TA ask for onboarding (02 step 1)
    Action("source:Register",             CONNECTOR,     A),  # PA (02 step 2)
    Action("source:Validate",             IAM,           M),  # SA checks auth and scope (02 step 4)
    Action("ingestion:Run",               CONNECTOR,     M),  # + IO
    Action("ingestion:Replay",            CONNECTOR,     M),  # + IO
    Action("ingestion:Backfill",          CONNECTOR,     M),  # + IO
    Action("ingestion:Rerun",             CONNECTOR,     M),  # + IO
    Action("pipeline:Run",                CONNECTOR,     M),  # + IO: build GDP tables and KPIs (issue 5 seam)
    Action("data:Read",                   CONNECTOR,     R, tenant_data=True),
    # -- observability and cost (10, 05b)
    Action("observability:Read",          OBSERVABILITY, R),
    Action("observability:Manage",        OBSERVABILITY, M),
    # -- evidence and lineage (05, 09b)
    Action("evidence:Read",               EVIDENCE,      R),
    Action("evidence:Verify",             EVIDENCE,      R),
    Action("evidence:Export",             EVIDENCE,      M),
    Action("evidence:DefineTemplate",     EVIDENCE,      M),  # CO: export templates (05 step 4)
    # -- issue 5: pipeline
    Action("pipeline:ReadRuns",           CONNECTOR,     R),  # the record of a tenant's pipeline runs
    # -- issue 5: quality
    Action("rule:Read",                   SCHEMA,        R),  # data-quality rules (04)
    Action("rule:Define",                 SCHEMA,        M),  # SS defines and versions rules
    Action("rule:Enable",                 PLATFORM,      M),  # PA enforces them ("Enforce ... (PA)")
    Action("quarantine:Release",          CONNECTOR,     M),  # DE/TA fix and release rows (tenant guard)
    # -- issue 5: guardrails
    Action("guardrail:Read",              OBSERVABILITY, R),  # guardrails and spend (04, 05b)
    Action("guardrail:Define",            IAM,           M),  # SA sets quotas, residency, caps
    Action("guardrail:Enable",            PLATFORM,      M),  # PA enforces them
    Action("guardrail:Evaluate",          WORKFLOW,      C),  # check an action before running it
    # -- issue 5: housekeeping
    Action("housekeeping:Read",           OBSERVABILITY, R),  # policies, holds, runs (05b)
    Action("housekeeping:DefinePolicy",   PLATFORM,      M),  # PA sets retention and tiering (step 1)
    Action("housekeeping:ApprovePolicy",  EVIDENCE,      M, phase="approve"),  # CO; never the author
    Action("housekeeping:Run",            PLATFORM,      M),  # PA runs retention now (deletes, tiers)
    Action("housekeeping:Compact",        OBSERVABILITY, M),  # PA, SRE: compaction and vacuum (step 2)
    Action("housekeeping:PlaceHold",      IAM,           M),  # SA excludes protected data (step 4)
    Action("housekeeping:ReleaseHold",    IAM,           M),
    Action("scheduler:Read",              OBSERVABILITY, R),  # the scheduler's jobs
    Action("scheduler:Manage",            OBSERVABILITY, M),  # PA, SRE: intervals, tick now
    # -- issue 5: lineage
    Action("lineage:Read",                EVIDENCE,      R),  # lineage records and graph (05)
    # -- issue 5: kpis
    Action("kpi:Export",                  KPI,           R, tenant_data=True),  # snapshots (07 step 3)
    # publication (06): kpi:Publish (PA, dual-signed) above; withdrawing and rolling back are PA's
    # control-plane steps too ("Publish ... (PA)"), not dual-signed: each returns to a state that was
    Action("kpi:Unpublish",               PLATFORM,      M),  # withdraw: invisible again (06 step 5)
    Action("kpi:RollbackPublication",     PLATFORM,      M),  # back to the previous publication
)  # fmt: skip

ACTIONS: dict[str, Action] = {a.name: a for a in _CATALOG}

EXTRA_GRANTS: dict[Persona, frozenset[str]] = {
    Persona.IO: frozenset(
        {"ingestion:Run", "ingestion:Replay", "ingestion:Backfill", "ingestion:Rerun", "pipeline:Run"}
    ),
    # "Accept TA's proposal with business case" (03e step 1): TA proposes its tenant's
    # extensions with Read of schema services only; the tenant guard keeps them to its tenant.
    Persona.TA: frozenset({"tenant:ManageMembers", "schema:RequestChange", "schema:ProposeExtension"}),
    # "Accept DE's schema" (03a): a Data Engineer drafts its own tenant's Raw contracts; the
    # tenant guard keeps it from drafting a platform-wide one.
    Persona.DE: frozenset({"schema:Draft", "schema:RequestChange"}),
    # "Accept TA's justified request" (03d step 1): TA files schema requests with Read of
    # schema services only; the Tenant Approver gives the business sign-off ("risky changes").
    Persona.TP: frozenset({"schema:ApproveChange"}),
    # The Auditor checks policy adherence; a Read cell alone would hand that to every persona.
    Persona.AU: frozenset({"tenant:AuditDecommissioning"}),
    # Review tickets (drift 03a, impact 03g) are resolved by the Schema Steward, who judges the
    # contract, and the Observability Engineer, whom the drift alert goes to (03a step 5). No
    # cell holds exactly those two: schema Manage is SS alone, observability Manage is SRE and
    # PA, and SRE may hold nothing of schema services beyond Read (sod-sre-no-business). So the
    # action names observability Manage (the alert's follow-up), is explicit_only, and goes here
    # to SS and SRE.
    Persona.SS: frozenset({"ticket:Resolve"}),
    Persona.SRE: frozenset({"ticket:Resolve"}),
}


def actions_granted(persona: Persona) -> set[str]:
    """The actions ``persona`` holds in the baseline: its matrix cells plus its extra grants."""
    granted = {
        a.name
        for a in ACTIONS.values()
        if grants(persona, a.area, a.level)
        and not a.explicit_only
        and not (a.tenant_data and persona.is_provider)
    }
    return granted | EXTRA_GRANTS.get(persona, frozenset())
