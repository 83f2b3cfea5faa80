"""the region a tenant's connector runs in, checked against residency guardrails (04)

Revision ID: 0007e
Revises: 0006
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007e"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("region", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.drop_column("region")
