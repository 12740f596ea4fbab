"""Indexes for the auditor's search by status and period, and for processes started from aftercare.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index("ix_instance_status_started", ["status", "started_at"], unique=False)
        batch_op.create_index("ix_instance_parent", ["parent_instance_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index("ix_instance_parent")
        batch_op.drop_index("ix_instance_status_started")
