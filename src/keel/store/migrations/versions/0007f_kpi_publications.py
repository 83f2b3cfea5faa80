"""KPI publications with their evidence references (story 06)

Revision ID: 0007f
Revises: 0006
Create Date: 2026-12-07 13:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007f"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_publications",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kpi_id", sa.String(length=200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=40), nullable=False),
        sa.Column("build_table", sa.String(length=200), nullable=False),
        sa.Column("lineage_record_ids", sa.JSON(), nullable=False),
        sa.Column("dq_outcome", sa.JSON(), nullable=False),
        sa.Column("previous_id", sa.String(length=40), nullable=True),
        sa.Column("rolled_back_from", sa.String(length=40), nullable=True),
        sa.Column("receipt_id", sa.String(length=40), nullable=False),
        sa.Column("published_by", sa.String(length=40), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_by", sa.String(length=40), nullable=True),
        sa.Column("ended_receipt_id", sa.String(length=40), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_publications")),
        sa.UniqueConstraint("tenant_id", "kpi_id", "number", name="uq_kpi_publications_tenant_kpi_number"),
    )


def downgrade() -> None:
    op.drop_table("kpi_publications")
