"""merge the issue-5 branches: quality rules, guardrails, lineage, evidence export templates

Revision ID: 0006
Revises: 0005b, 0005c, 0005e, 0005g
Create Date: 2026-12-07 06:50:00
"""

revision = "0006"
down_revision = ("0005b", "0005c", "0005e", "0005g")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
