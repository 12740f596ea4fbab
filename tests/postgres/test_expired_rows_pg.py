"""On PostgreSQL too, a completion whose task and instance objects were expired takes them from its own
statements (the instance from its `FOR UPDATE` read): no one-by-one reload, no revision check against
a revision the session no longer holds (tests/engine/test_expired_rows.py)."""

from __future__ import annotations

from ..engine.test_expired_rows import completes_expired_rows_without_reading_them_again


def test_a_completion_takes_expired_task_and_instance_rows_from_its_own_read_on_postgresql(sessions):
    completes_expired_rows_without_reading_them_again(sessions)
