"""Sign-in state shared by every server process: failed sign-ins and stashed forms.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from engine.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_failure_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failure_at"), ["at"], unique=False)
    op.create_table(
        "stashed_form",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("stashed_form", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stashed_form_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("stashed_form")
    op.drop_table("login_failure")
