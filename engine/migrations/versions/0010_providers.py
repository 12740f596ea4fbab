"""Providers registry: service providers (training organisations, consultants, partners) and the
feedback they give the office.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from engine.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("business_id", sa.String(length=9), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("contact_person", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("business_id"),
    )
    op.create_index("ix_provider_name", "provider", ["name"])
    op.create_table(
        "provider_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("given_on", sa.Date(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_provider_feedback_provider_id", "provider_feedback", ["provider_id"])


def downgrade() -> None:
    op.drop_table("provider_feedback")
    op.drop_table("provider")
