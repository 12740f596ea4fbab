"""Index variables by name: the supervisor's on-time figure and the auditor's expert filter look
variables up by name across every case (a full scan of the table with 100,000 cases).

Revision ID: 0012
Revises: 0011
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_variable_name", "variable", ["name", "instance_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_variable_name", table_name="variable")
