"""The estimates history: one row per published model version, one per figure.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "er_estimate_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("model_file", sa.String(255), nullable=False),
        sa.Column("template_version", sa.String(32), nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("price_date", sa.Date, nullable=False),
        sa.Column("target_price", sa.Double, nullable=True),
        sa.Column("rating", sa.String(32), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ticker", "version", name="uq_er_estimate_versions_ticker_version"),
        sa.UniqueConstraint("model_sha256", name="uq_er_estimate_versions_model_sha256"),
    )
    op.create_table(
        "er_estimate_figures",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("er_estimate_versions.id", ondelete="CASCADE",
                                                          name="fk_er_estimate_figures_version_id"),
                  primary_key=True),
        sa.Column("year", sa.String(16), primary_key=True),
        sa.Column("line", sa.String(64), primary_key=True),
        sa.Column("value", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("er_estimate_figures")
    op.drop_table("er_estimate_versions")
