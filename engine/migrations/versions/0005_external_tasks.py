"""External tasks: service tasks waiting for a worker (fetch and lock, retries, lock expiry).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

from engine.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("element_id", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("local_variables", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=True),
        sa.Column("lock_owner", sa.String(length=200), nullable=True),
        sa.Column("lock_expires_at", UTCDateTime(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("external_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_external_task_instance_id"), ["instance_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_external_task_task_id"), ["task_id"], unique=False)
        batch_op.create_index("ix_external_task_fetch", ["state", "topic", "lock_expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("external_task")
