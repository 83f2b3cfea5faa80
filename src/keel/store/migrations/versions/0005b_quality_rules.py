"""data-quality rules (story 04)

Revision ID: 0005b
Revises: 0004
Create Date: 2026-12-07 06:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005b"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dq_rules",
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=True),
        sa.Column("layer", sa.String(length=8), nullable=False),
        sa.Column("dataset", sa.String(length=80), nullable=False),
        sa.Column("field", sa.String(length=80), nullable=False),
        sa.Column("check", sa.String(length=20), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("on_fail", sa.String(length=12), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("defined_by", sa.String(length=40), nullable=False),
        sa.Column("enabled_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("rule_id", "version", name=op.f("pk_dq_rules")),
    )
    with op.batch_alter_table("dq_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dq_rules_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dq_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dq_rules_tenant_id"))
    op.drop_table("dq_rules")
