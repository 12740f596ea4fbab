"""Name the process of each task row: a called process may use the same element ids as the process
that calls it, and a task's name, role, form and documentation are those of its own process.
Rows written before stay NULL (their element is looked up in any process of the version, as before).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("process_id")
