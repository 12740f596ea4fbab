"""Index task rows by element: the provider pages find the cases that had a task with a provider
field through it (asked by kind and element, the audit trail was walked through every completion).

Revision ID: 0014
Revises: 0013
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_element", "task", ["element_id"])


def downgrade() -> None:
    op.drop_index("ix_task_element", table_name="task")
