"""National customer survey results per period (share of positive experiences, answers).

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

from engine.db import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("positive_percent", sa.Float(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("period"),
    )
    op.create_index("ix_survey_result_starts_on", "survey_result", ["starts_on"])


def downgrade() -> None:
    op.drop_index("ix_survey_result_starts_on", table_name="survey_result")
    op.drop_table("survey_result")
