"""room for the longer data-quality check names (referential_integrity); quarantine reviews (04)

Revision ID: 0007q
Revises: 0006
Create Date: 2026-12-07 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007q"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dq_rules") as batch:
        batch.alter_column("check", existing_type=sa.String(length=20), type_=sa.String(length=40))
    op.create_table(
        "dq_reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("dataset", sa.String(length=80), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("false_positive", sa.Boolean(), nullable=False),
        sa.Column("released_by", sa.String(length=40), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dq_reviews")),
    )
    op.create_index("ix_dq_reviews_tenant_rule", "dq_reviews", ["tenant_id", "rule_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dq_reviews_tenant_rule", table_name="dq_reviews")
    op.drop_table("dq_reviews")
    with op.batch_alter_table("dq_rules") as batch:
        batch.alter_column("check", existing_type=sa.String(length=40), type_=sa.String(length=20))
