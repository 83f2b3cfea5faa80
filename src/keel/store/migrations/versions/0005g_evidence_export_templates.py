"""evidence export templates (story 05)

Revision ID: 0005g
Revises: 0004
Create Date: 2026-12-07 06:25:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005g"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_templates",
        sa.Column("template_id", sa.String(length=60), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("retention_years", sa.Integer(), nullable=False),
        sa.Column("defined_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "version", name=op.f("pk_export_templates")),
    )


def downgrade() -> None:
    op.drop_table("export_templates")
