"""lineage run events (story 05)

Revision ID: 0005e
Revises: 0004
Create Date: 2026-12-07 06:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005e"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lineage_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=10), nullable=False),
        sa.Column("layer", sa.String(length=8), nullable=False),
        sa.Column("contract", sa.String(length=200), nullable=False),
        sa.Column("table_name", sa.String(length=200), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("sent", sa.String(length=10), nullable=True),
        sa.Column("send_error", sa.Text(), nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_events")),
    )
    with op.batch_alter_table("lineage_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lineage_events_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lineage_events_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            "ix_lineage_events_tenant_job", ["tenant_id", "job", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("lineage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lineage_events_tenant_job")
        batch_op.drop_index(batch_op.f("ix_lineage_events_run_id"))
        batch_op.drop_index(batch_op.f("ix_lineage_events_tenant_id"))
    op.drop_table("lineage_events")
