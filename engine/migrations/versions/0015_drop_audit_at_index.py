"""Drop the index of the audit events' time alone (`ix_audit_event_at`): no query filters or sorts the
events by time alone (the KPIs find them by instance, an instance's history by its stream, the XES
export its completions by kind, `ix_audit_kind_at`). Every event written paid for it: about one and a half of the 22 database pages a task
completion writes on SQLite, and an entry per event in the largest table's indexes.

Revision ID: 0015
Revises: 0014
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_event_at", table_name="audit_event")


def downgrade() -> None:
    op.create_index("ix_audit_event_at", "audit_event", ["at"], unique=False)
