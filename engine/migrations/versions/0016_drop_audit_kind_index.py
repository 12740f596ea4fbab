"""Drop the audit events' index on (kind, time) (`ix_audit_kind_at`): no read needs it, and every event
written paid for it.

Who reads audit events by kind, and what finds them without the index (plans checked on SQLite and
PostgreSQL with 1.5 million events of 100,000 cases):
- the XES export of the whole log (`task_completed`, ordered by case and sequence) walks
  `ix_audit_event_instance_id` in order; SQLite sorted every completion of the office read through the
  index instead (1.7 s without it, 1.9 s with it; PostgreSQL reads by case either way); the export of a
  set of cases finds them by case, as before;
- the assignment notices read the events written since their last pass by primary key (`id > ?`); with
  the index SQLite and PostgreSQL both chose it, reading every event of those kinds ever written;
- a customer's events, joined from the business key, come through `ix_instance_business_key` and
  `ix_audit_event_instance_id` (1 ms); with the index SQLite walked every event of the kinds asked for
  in that join written by hand (0.9 s);
- the settings' history reads its own stream (the unique `(stream, seq)`); the KPIs read by case.
Each event wrote an entry to the index, a different leaf page per kind: 4.3 of the 20 SQLite pages a task
completion writes. Without it `bench/engine.py`'s warm completion did 4-10 % more per CPU second in six
runs, each with both schemas in turns in one process (the same schema against itself: 0-7 %, in four).

Revision ID: 0016
Revises: 0015
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_kind_at", table_name="audit_event")


def downgrade() -> None:
    op.create_index("ix_audit_kind_at", "audit_event", ["kind", "at"], unique=False)
