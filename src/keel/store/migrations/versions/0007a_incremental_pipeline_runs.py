"""pipeline runs say whether they were full or incremental, what they added and why (issue 5)

Revision ID: 0007a
Revises: 0006
Create Date: 2026-12-07 13:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007a"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("delta_rows", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("batches", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        for column in ("note", "batches", "delta_rows", "mode"):
            batch.drop_column(column)
