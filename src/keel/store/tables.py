"""Control-plane tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Columns holding JSON use the portable ``JSON`` type; timestamps are stored in UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, nullable: bool = True) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("region", String(40), nullable=False),
    Column("storage_quota_mb", Integer, nullable=False),
    Column("data_path", Text),
    Column("created_by", String(40), nullable=False),
    Column("validated_by", String(40)),
    _ts("created_at", False),
    _ts("decommissioned_at"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), index=True),
    Column("status", String(20), nullable=False),  # INVITED, ACTIVE, DISABLED
    Column("password_hash", Text),
    _ts("created_at", False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("role", String(60), primary_key=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    _ts("created_at", False),
    _ts("expires_at", False),
    _ts("revoked_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("tenant_id", String(40), index=True),
    Column("name", String(100), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    _ts("created_at", False),
    _ts("expires_at", False),
    _ts("revoked_at"),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    _ts("created_at", False),
    _ts("expires_at", False),
    _ts("accepted_at"),
    _ts("revoked_at"),
)

tenant_keys = Table(
    "tenant_keys",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("wrapped_key", LargeBinary),  # NULL once crypto-shredded
    Column("key_check", LargeBinary, nullable=False),  # ciphertext used to prove the shred
    _ts("created_at", False),
    _ts("destroyed_at"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), index=True),  # NULL: platform secret (master-key wrapped)
    Column("name", String(200), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_by", String(40), nullable=False),
    _ts("created_at", False),
    UniqueConstraint("tenant_id", "name", name="uq_secrets_tenant_name"),
)

platform_keys = Table(
    "platform_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("purpose", String(40), nullable=False),
    Column("public_pem", Text, nullable=False),
    Column("private_ciphertext", LargeBinary, nullable=False),
    Column("active", Boolean, nullable=False),
    _ts("created_at", False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("template", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("parts", JSON, nullable=False),
    Column("requested_by", String(40), nullable=False),
    Column("approved_by", String(40)),
    Column("deployed_by", String(40)),
    Column("validated_by", String(40)),
    Column("failure", Text),
    _ts("created_at", False),
    _ts("updated_at", False),
)

# Approval requests of every kind: deployments, offboarding, break-glass tickets.
requests = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("tenant_id", String(40), index=True),
    Column("subject_id", String(40)),
    Column("body", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # PENDING, APPROVED, REJECTED, USED, CANCELLED
    Column("requested_by", String(40), nullable=False),
    Column("decided_by", String(40)),
    Column("decision_reason", Text),
    _ts("created_at", False),
    _ts("decided_at"),
)

rbac_bundles = Table(
    "rbac_bundles",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", JSON, nullable=False),
    Column("policies", Text, nullable=False),
    Column("status", String(20), nullable=False),  # DEFINED, APPLIED, REVIEWED, REJECTED, SUPERSEDED
    Column("findings", JSON, nullable=False),
    Column("defined_by", String(40), nullable=False),
    Column("applied_by", String(40)),
    Column("reviewed_by", String(40)),
    _ts("created_at", False),
    _ts("applied_at"),
    _ts("reviewed_at"),
    UniqueConstraint("name", "version", name="uq_rbac_bundles_name_version"),
)

break_glass_grants = Table(
    "break_glass_grants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(40), nullable=False),
    Column("user_id", String(40), nullable=False, index=True),
    Column("tenant_id", String(40), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("approved_by", String(40), nullable=False),
    _ts("starts_at", False),
    _ts("expires_at", False),
    _ts("revoked_at"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("tenant_id", String(40), index=True),
    Column("subject_id", String(40), index=True),
    Column("body", JSON, nullable=False),
    _ts("created_at", False),
)

# Evidence export templates (05): the sections a pack holds and how long it is kept; a fix is a new version.
export_templates = Table(
    "export_templates",
    metadata,
    Column("template_id", String(60), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("sections", JSON, nullable=False),
    Column("retention_years", Integer, nullable=False),
    Column("defined_by", String(40), nullable=False),
    _ts("created_at", False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), index=True),
    Column("kind", String(60), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("summary", Text, nullable=False),
    Column("details", JSON, nullable=False),
    _ts("created_at", False),
)

archives = Table(
    "evidence_archives",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("entries", Integer, nullable=False),
    Column("archived_by", String(40), nullable=False),
    _ts("created_at", False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("event_type", String(80), nullable=False),
    Column("tenant_id", String(40)),
    Column("actor_id", String(40)),
    Column("event_json", Text, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    _ts("recorded_at", False),
    Index("ix_ledger_entries_tenant_type", "tenant_id", "event_type"),
)

ledger_tree_heads = Table(
    "ledger_tree_heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("key_id", String(64), nullable=False),
)

# One row; writers lock it so ledger sequence numbers are assigned one transaction at a time.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(40), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("method", String(10), nullable=False),
    Column("path", Text, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    _ts("created_at", False),
)

metric_samples = Table(
    "metric_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(80), nullable=False, index=True),
    Column("tenant_id", String(40)),
    Column("value", JSON, nullable=False),  # number or {"success": bool} outcome
    Column("labels", JSON, nullable=False),
    _ts("recorded_at", False),
)

# -- connectors, sources and ingestion (00b, 02, 02b, 13) -------------------------------------

# The versioned catalog a Platform Admin deploys connectors from.
connector_templates = Table(
    "connector_templates",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("version", String(40), nullable=False),
    Column("connector", String(80), nullable=False),  # registry name of the connector class
    Column("description", Text, nullable=False),
    Column("defaults", JSON, nullable=False),  # configuration preset merged under the tenant's
    Column("created_by", String(40), nullable=False),
    _ts("created_at", False),
    UniqueConstraint("name", "version", name="uq_connector_templates_name_version"),
)

# A connector deployed for one tenant; ``config`` never holds a secret value, only references.
connectors = Table(
    "connectors",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("name", String(80), nullable=False),
    Column("template_id", String(40), nullable=False),
    Column("connector", String(80), nullable=False),
    Column("region", String(40)),  # where it runs and its data flows; None before 0007e (the tenant's)
    Column("status", String(20), nullable=False),
    Column("config_version", Integer, nullable=False),
    Column("config", JSON, nullable=False),
    Column("secret_refs", JSON, nullable=False),  # config path -> tenant secret name
    Column("secrets_validated_by", String(40)),
    Column("validated_by", String(40)),
    _ts("validated_at"),
    Column("preflight", JSON),  # the last preflight report, with the config_version it tested
    Column("last_error", JSON),  # {"failure", "message", "at"} of the last failed step
    Column("breaker", JSON, nullable=False),  # circuit-breaker state, see onboarding.health
    Column("deployed_by", String(40), nullable=False),
    Column("configured_by", String(40)),
    _ts("created_at", False),
    _ts("updated_at", False),
    UniqueConstraint("tenant_id", "name", name="uq_connectors_tenant_name"),
)

# Every configuration a connector has had, for ``connector.updated`` and rollback of a bad update.
connector_versions = Table(
    "connector_versions",
    metadata,
    Column("connector_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("config", JSON, nullable=False),
    Column("secret_refs", JSON, nullable=False),
    Column("changed_by", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    _ts("created_at", False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("name", String(80), nullable=False),
    Column("key", String(63), nullable=False),  # prefix of the source's Raw tables
    Column("connector_id", String(40), nullable=False),
    Column("streams", JSON, nullable=False),  # stream names to ingest
    Column("expected_schemas", JSON, nullable=False),  # stream -> {column: type}; the Raw contract seam
    Column("raw_contract_id", String(128)),  # the Raw contract its streams are checked against (03a)
    Column("justification", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("requested_by", String(40), nullable=False),
    Column("registered_by", String(40)),
    Column("validated_by", String(40)),
    Column("last_error", JSON),
    Column("preflight", JSON),  # the last preflight report
    _ts("created_at", False),
    _ts("updated_at", False),
    UniqueConstraint("tenant_id", "name", name="uq_sources_tenant_name"),
    UniqueConstraint("tenant_id", "key", name="uq_sources_tenant_key"),
)

ingestion_runs = Table(
    "ingestion_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("source_id", String(40), nullable=False, index=True),
    Column("stream", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # sync, replay, backfill, recovery
    Column("window", JSON),
    Column("status", String(20), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("batches", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", JSON),
    Column("started_by", String(40), nullable=False),
    _ts("started_at", False),
    _ts("finished_at"),
)

# Messages to tenant members (in-app); later issues add e-mail and webhook delivery.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("recipient_id", String(40), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", JSON, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    _ts("created_at", False),
)

# -- schema contracts (issue 4: 00c, 03a-03g) ---------------------------------------------------

# One row per version of a contract. A contract id is unique across the platform; a
# tenant-scoped contract (a tenant's own Raw contract, a tenant extension) carries its tenant.
contract_versions = Table(
    "contract_versions",
    metadata,
    Column("contract_id", String(128), primary_key=True),
    Column("version", String(40), primary_key=True),
    Column("tenant_id", String(40), index=True),  # None: a global contract
    Column("layer", String(8), nullable=False),  # raw, gdp, kpi
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("document", JSON, nullable=False),  # the document exactly as imported
    Column("document_sha256", String(64), nullable=False),
    Column("based_on", JSON, nullable=False),  # ["ID@VERSION", ...] resolved at registration
    Column("template", Boolean, nullable=False),  # seeded with Keel (00c)
    Column("drafted_by", String(40), nullable=False),
    Column("registered_by", String(40)),
    Column("validated_by", String(40)),
    Column("compliance_by", String(40)),
    Column("published_by", String(40)),
    Column("validation", JSON),  # {"passed", "problems", "compatibility"} of the SS validation
    Column("compliance", JSON),  # {"passed", "problems", "findings_sha256"} of the CO review
    Column("reason", Text),  # why it was rejected, deprecated or retired
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("published_at"),
)

# Column-level lineage of a contract version: target column <- source column.
contract_lineage = Table(
    "contract_lineage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("contract_id", String(128), nullable=False),
    Column("version", String(40), nullable=False),
    Column("target", String(300), nullable=False),  # layer.table.column
    Column("source", String(300), nullable=False),  # layer.table.column
    Index("ix_contract_lineage_version", "contract_id", "version"),
)

# Which version of a contract each tenant runs (safe rollout moves these, stage by stage).
tenant_contracts = Table(
    "tenant_contracts",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("contract_id", String(128), primary_key=True),
    Column("version", String(40), nullable=False),
    Column("previous_version", String(40)),
    Column("rollout_id", String(40)),
    _ts("updated_at", False),
)

# Review tickets opened by the registry: schema drift (03a), incomplete impact graphs (03g).
review_tickets = Table(
    "review_tickets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), index=True),
    Column("kind", String(30), nullable=False),  # drift, impact_graph
    Column("subject", String(300), nullable=False),
    Column("details", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # OPEN, RESOLVED
    Column("opened_by", String(40), nullable=False),
    Column("resolved_by", String(40)),
    _ts("opened_at", False),
    _ts("resolved_at"),
)

# Who consumes contracts beyond other contracts: dashboards, published KPI views, workflows,
# exports (03g). Impact analysis reads them; issue 5 and the workflow engine register theirs.
contract_consumers = Table(
    "contract_consumers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), index=True),  # None: a platform-wide consumer
    Column("kind", String(20), nullable=False),  # dashboard, kpi_view, workflow, report, export
    Column("name", String(200), nullable=False),
    Column("depends_on", JSON, nullable=False),  # contract ids
    Column("recipients", JSON, nullable=False),  # user ids told about changes
    Column("created_by", String(40), nullable=False),
    _ts("created_at", False),
)

# A tenant's schema change request (03d), from request to rollout.
change_requests = Table(
    "change_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("contract_id", String(128), nullable=False),
    Column("base_version", String(40), nullable=False),
    Column("proposed_version", String(40)),  # the registered version that carries the change
    Column("change", JSON, nullable=False),  # what changes, e.g. {"summary": "add field payment_terms"}
    Column("justification", Text, nullable=False),
    Column("rollback_plan", Text),
    Column("status", String(24), nullable=False),
    Column("risk", String(10)),  # low, medium, high (SS)
    Column("impact", JSON),  # the impact analysis attached by the SS (03g)
    Column("recommendation", Text),
    Column("clarification", Text),  # what the SS asks when the request is incomplete
    Column("requested_by", String(40), nullable=False),
    Column("validated_by", String(40)),
    Column("approved_by", String(40)),
    Column("scheduled_by", String(40)),
    _ts("window_start"),
    _ts("window_end"),
    Column("rollout_id", String(40)),
    _ts("created_at", False),
    _ts("updated_at", False),
)

# A tenant's namespaced fields on a published contract (03e).
contract_extensions = Table(
    "contract_extensions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("contract_id", String(128), nullable=False),
    Column("base_version", String(40), nullable=False),
    Column("namespace", String(40), nullable=False),
    Column("fields", JSON, nullable=False),  # [{name, type, expression, classification, pii, required}]
    Column("business_case", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("problems", JSON),
    Column("proposed_by", String(40), nullable=False),
    Column("checked_by", String(40)),
    Column("applied_by", String(40)),
    _ts("created_at", False),
    _ts("updated_at", False),
)

# A staged rollout of a contract version (03f): stages, rollback conditions, what was measured.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("change_id", String(40)),
    Column("contract_id", String(128), nullable=False),
    Column("from_version", String(40), nullable=False),
    Column("to_version", String(40), nullable=False),
    Column("stages", JSON, nullable=False),  # [{"name", "tenants": [...]}]
    Column("conditions", JSON, nullable=False),  # [{"signal", "op", "limit", "baseline"}]
    Column("status", String(20), nullable=False),
    Column("current_stage", Integer, nullable=False),
    Column("readiness_by", String(40)),  # the SS's readiness sign-off
    Column("started_by", String(40), nullable=False),
    Column("measurements", JSON, nullable=False),  # per stage: per tenant signals
    Column("reason", Text),
    Column("rollback_seconds", JSON),
    _ts("created_at", False),
    _ts("updated_at", False),
    _ts("finished_at"),
)

# Every delivery attempt of a notification, per recipient and channel (03g).
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, index=True),
    Column("subject_id", String(200), nullable=False, index=True),  # a change, rollout or contract
    Column("tenant_id", String(40)),
    Column("recipient_id", String(40), nullable=False),
    Column("channel", String(20)),
    Column("status", String(10), nullable=False),  # sent, failed, skipped
    Column("detail", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    _ts("attempted_at", False),
)

# Sign-offs recorded against a change (03g step 4).
signoffs = Table(
    "signoffs",
    metadata,
    Column("subject_id", String(200), primary_key=True),
    Column("user_id", String(40), primary_key=True),
    Column("roles", JSON, nullable=False),
    Column("decision", String(10), nullable=False),  # approve, reject
    Column("note_sha256", String(64)),
    _ts("recorded_at", False),
)

# Every build of a tenant's GDP table or KPI (the pipeline seam; issue 5 grows it): what was built
# from which contract version, how many rows, type errors and constraint failures, how long it took.
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("layer", String(8), nullable=False),
    Column("name", String(80), nullable=False),  # the view's name: invoice, kpi_dso
    Column("contract", String(200), nullable=False),  # ID@VERSION that drove the build
    Column("version", String(40), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("error_rows", BigInteger, nullable=False),
    Column("dq_failures", BigInteger, nullable=False),
    Column("duration_seconds", JSON, nullable=False),
    Column("error", Text),
    Column("purpose", String(20), nullable=False),  # build, dry_run, rollout, baseline
    Column("run_by", String(40), nullable=False),
    # 0007a: "full" or "incremental" (None: before 0007a, full); rows the run added or recomputed;
    # the Raw batches it folded in; why a refresh ran in full.
    Column("mode", String(12)),
    Column("delta_rows", BigInteger),
    Column("batches", JSON),
    Column("note", Text),
    _ts("started_at", False),
    _ts("finished_at", False),
    Index("ix_pipeline_runs_tenant_name", "tenant_id", "layer", "name", "version"),
)

# == issue 5: pipeline tables ==

# == issue 5: quality tables ==
# Data-quality rules (04): every version of every rule; ``current`` marks the newest one, the only
# one that may be enabled. tenant_id None: a global rule.
dq_rules = Table(
    "dq_rules",
    metadata,
    Column("rule_id", String(80), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("tenant_id", String(40), index=True),
    Column("layer", String(8), nullable=False),
    Column("dataset", String(80), nullable=False),
    Column("field", String(80), nullable=False),
    Column("check", String(40), nullable=False),
    Column("params", JSON, nullable=False),
    Column("on_fail", String(12), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("defined_by", String(40), nullable=False),
    Column("enabled_by", String(40)),
    _ts("created_at", False),
    _ts("enabled_at"),
)

# Quarantine reviews (04): each release of quarantined rows, per rule that quarantined them;
# false positives among them feed false_positive_rate and the over-blocking review ticket.
dq_reviews = Table(
    "dq_reviews",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("rule_id", String(80), nullable=False),
    Column("dataset", String(80), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("false_positive", Boolean, nullable=False),
    Column("released_by", String(40), nullable=False),
    _ts("released_at", False),
    Index("ix_dq_reviews_tenant_rule", "tenant_id", "rule_id"),
)

# == issue 5: guardrails tables ==
# Guardrails (04, 05b): every version of every guardrail; ``current`` marks the newest, the only one
# that may be enabled. tenant_id None: every tenant. ``spec`` holds the kind's fields.
guardrails = Table(
    "guardrails",
    metadata,
    Column("guardrail_id", String(80), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("tenant_id", String(40), index=True),
    Column("description", Text, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("defined_by", String(40), nullable=False),
    Column("enabled_by", String(40)),
    _ts("created_at", False),
    _ts("enabled_at"),
)

# What each guardrail counted for a tenant on one UTC day: allowed uses, exported rows and bytes,
# refusals (the first refusal of a day fires the alert).
guardrail_usage = Table(
    "guardrail_usage",
    metadata,
    Column("guardrail_id", String(80), primary_key=True),
    Column("tenant_id", String(40), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("uses", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("breaches", Integer, nullable=False),
    _ts("updated_at", False),
)

# == issue 5: housekeeping tables ==
# Retention policies (05b): every version of every policy; ``current`` marks the newest. A version
# is in effect once a Compliance Officer other than its author approved it (``approved_by``); the
# newest approved version is the one applied.
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("policy_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("scope", String(8), nullable=False),  # gdp, raw
    Column("table_name", String(80), nullable=False),
    Column("time_column", String(80), nullable=False),
    Column("retention_months", Integer, nullable=False),
    Column("action_on_expiry", String(20), nullable=False),  # tier_to_cold, delete
    Column("description", Text, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("defined_by", String(40), nullable=False),
    Column("approved_by", String(40)),
    _ts("created_at", False),
    _ts("approved_at"),
)

# Which tenants a policy applies to: tenant_id "*" is every tenant.
retention_assignments = Table(
    "retention_assignments",
    metadata,
    Column("policy_id", String(64), primary_key=True),
    Column("tenant_id", String(40), primary_key=True),
    Column("assigned_by", String(40), nullable=False),
    _ts("assigned_at", False),
)

# Legal holds (05b step 4): placed and released by a Security Admin, on a tenant, optionally
# narrowed to a layer and a table; while not released, no housekeeping job touches what it covers.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("layer", String(8)),
    Column("table_name", String(80)),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(40), nullable=False),
    _ts("placed_at", False),
    Column("released_by", String(40)),
    _ts("released_at"),
    Column("release_reason", Text),
)

# Every housekeeping job on a tenant's table: retention (tier or delete), compaction, vacuum.
housekeeping_runs = Table(
    "housekeeping_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("kind", String(12), nullable=False),  # retention, compaction
    Column("policy_id", String(64)),
    Column("policy_version", Integer),
    Column("layer", String(8), nullable=False),
    Column("table_name", String(80), nullable=False),
    Column("status", String(10), nullable=False),  # SUCCEEDED, FAILED, BLOCKED, SKIPPED
    Column("reason", Text, nullable=False),
    Column("rows_tiered", BigInteger, nullable=False),
    Column("rows_deleted", BigInteger, nullable=False),
    Column("files", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("trigger", String(12), nullable=False),  # manual, scheduler
    Column("run_by", String(40), nullable=False),
    _ts("started_at", False),
    _ts("finished_at", False),
)

# The scheduler's periodic jobs (``keel.scheduling``): one row per registered job name, with the
# interval in force and when it last ran; ``next_due_at`` is claimed by compare-and-set, so a job
# runs once per due time however many processes tick.
scheduler_jobs = Table(
    "scheduler_jobs",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("every_seconds", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    _ts("next_due_at", False),
    _ts("last_run_at"),
    Column("last_status", String(10)),  # SUCCEEDED, FAILED
    Column("last_error", Text),
    Column("last_attempts", Integer),
    Column("runs", Integer, nullable=False),
    Column("updated_by", String(40)),
    _ts("updated_at", False),
)

# == issue 5: lineage tables ==
# OpenLineage run events (05): one row per START/COMPLETE/FAIL event of a pipeline run; ``event`` is
# the event as sent (OpenLineage JSON); ``sent`` is None (no endpoint), "sent" or "failed".
lineage_events = Table(
    "lineage_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False, index=True),
    Column("run_id", String(40), nullable=False, index=True),  # OpenLineage run id (uuid)
    Column("job", String(200), nullable=False),  # "gdp.invoice", "kpi.kpi_dso"
    Column("event_type", String(10), nullable=False),  # START, COMPLETE, FAIL
    Column("layer", String(8), nullable=False),
    Column("contract", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("event", JSON, nullable=False),
    Column("columns", Integer, nullable=False),  # output fields with column lineage
    Column("sent", String(10)),
    Column("send_error", Text),
    _ts("event_time", False),
    _ts("created_at", False),
    Index("ix_lineage_events_tenant_job", "tenant_id", "job", "created_at"),
)

# == issue 5: kpis tables ==
# KPI publications (06): every publication of a KPI contract version to a tenant's people, with the
# evidence it was checked against (the pipeline run, its lineage records, the data-quality outcome).
# ``number`` counts a KPI's publications per tenant; at most one row per tenant and KPI is PUBLISHED.
kpi_publications = Table(
    "kpi_publications",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("kpi_id", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("status", String(20), nullable=False),  # PUBLISHED, SUPERSEDED, UNPUBLISHED, ROLLED_BACK
    Column("pipeline_run_id", String(40), nullable=False),  # the validated build in pipeline_runs
    Column("build_table", String(200), nullable=False),
    Column("lineage_record_ids", JSON, nullable=False),  # its START/COMPLETE rows in lineage_events
    Column("dq_outcome", JSON, nullable=False),  # the GDP builds it read and their rule outcomes
    Column("previous_id", String(40)),  # the publication this one replaced (a rollback returns to it)
    Column("rolled_back_from", String(40)),  # set on a publication made by rolling another back
    Column("receipt_id", String(40), nullable=False),
    Column("published_by", String(40), nullable=False),
    _ts("published_at", False),
    Column("ended_by", String(40)),
    Column("ended_receipt_id", String(40)),
    _ts("ended_at"),
    UniqueConstraint("tenant_id", "kpi_id", "number", name="uq_kpi_publications_tenant_kpi_number"),
)
