"""A published version records the warning publish gave, such as a price older than the
workbook's 'Quotes Max Age Days' (NULL when there was none).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("er_estimate_versions") as batch:
        batch.add_column(sa.Column("warning", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("er_estimate_versions") as batch:
        batch.drop_column("warning")
