"""guardrails and their daily usage (stories 04, 05b)

Revision ID: 0005c
Revises: 0004
Create Date: 2026-12-07 06:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005c"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guardrails",
        sa.Column("guardrail_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("defined_by", sa.String(length=40), nullable=False),
        sa.Column("enabled_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("guardrail_id", "version", name=op.f("pk_guardrails")),
    )
    with op.batch_alter_table("guardrails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guardrails_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "guardrail_usage",
        sa.Column("guardrail_id", sa.String(length=80), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("guardrail_id", "tenant_id", "day", name=op.f("pk_guardrail_usage")),
    )


def downgrade() -> None:
    op.drop_table("guardrail_usage")
    with op.batch_alter_table("guardrails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardrails_tenant_id"))
    op.drop_table("guardrails")
