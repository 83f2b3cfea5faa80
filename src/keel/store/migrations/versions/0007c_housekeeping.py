"""housekeeping: retention policies and assignments, legal holds, runs, scheduler jobs (05b)

Revision ID: 0007c
Revises: 0006
Create Date: 2026-12-07 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007c"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("table_name", sa.String(length=80), nullable=False),
        sa.Column("time_column", sa.String(length=80), nullable=False),
        sa.Column("retention_months", sa.Integer(), nullable=False),
        sa.Column("action_on_expiry", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("defined_by", sa.String(length=40), nullable=False),
        sa.Column("approved_by", sa.String(length=40), nullable=True),
        _ts("created_at", False),
        _ts("approved_at"),
        sa.PrimaryKeyConstraint("policy_id", "version", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "retention_assignments",
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("assigned_by", sa.String(length=40), nullable=False),
        _ts("assigned_at", False),
        sa.PrimaryKeyConstraint("policy_id", "tenant_id", name=op.f("pk_retention_assignments")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("layer", sa.String(length=8), nullable=True),
        sa.Column("table_name", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=40), nullable=False),
        _ts("placed_at", False),
        sa.Column("released_by", sa.String(length=40), nullable=True),
        _ts("released_at"),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_holds_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "housekeeping_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("layer", sa.String(length=8), nullable=False),
        sa.Column("table_name", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rows_tiered", sa.BigInteger(), nullable=False),
        sa.Column("rows_deleted", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=12), nullable=False),
        sa.Column("run_by", sa.String(length=40), nullable=False),
        _ts("started_at", False),
        _ts("finished_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_housekeeping_runs")),
    )
    with op.batch_alter_table("housekeeping_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_housekeeping_runs_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "scheduler_jobs",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("next_due_at", False),
        _ts("last_run_at"),
        sa.Column("last_status", sa.String(length=10), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempts", sa.Integer(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_jobs")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_jobs")
    with op.batch_alter_table("housekeeping_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_housekeeping_runs_tenant_id"))
    op.drop_table("housekeeping_runs")
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_holds_tenant_id"))
    op.drop_table("legal_holds")
    op.drop_table("retention_assignments")
    op.drop_table("retention_policies")
