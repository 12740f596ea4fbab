"""The optimistic lock through the public API: two sessions, one stale; the stale one gets `Conflict`.

Sessions keep what they read after a commit (`expire_on_commit=False`), as a web request that read
a case and then acts on it does. Session B reads the case and its task; session A completes the task
and commits; B then acts on what it read. B must get `Conflict` (or `TaskNotAvailable`), and nothing
is written twice: one completion, one audit event, A's data. (Every action re-reads the case under
its write lock — SQLite's BEGIN IMMEDIATE, PostgreSQL's FOR UPDATE — so what B held is checked
against the stored revision, never trusted.) The same scenarios run on PostgreSQL in
tests/postgres/test_optimistic_lock_pg.py.

B here does not keep the rows it read (the identity map holds them weakly), so it reads the task
afresh and is refused by `TaskNotAvailable` before the revision is compared: these tests pass with
the revision check removed. The revision check itself, with `Conflict` and nothing else, is proved
by tests/engine/test_revision_check.py and tests/postgres/test_revision_check_pg.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine import audit, inbox, runtime
from engine.errors import Conflict, TaskNotAvailable
from engine.models import AuditEvent, Instance, Task, TaskStatus

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _start(sessions) -> tuple[int, str]:
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "order", by="t", data={"customer": "Acme Oy", "amount": 500},
                                          business_key="0737546-2", now=T0)
        [task] = inbox.tasks(s, instance_id=instance.id)
        return instance.id, task.id


def _stale_reader(sessions, instance_id: int, task_id: str):
    stale = sessions()
    stale.get(Instance, instance_id)
    stale.get(Task, task_id)
    stale.commit()  # B keeps revision N and the READY task in memory
    return stale


def _completions(sessions, instance_id: int) -> list[AuditEvent]:
    with sessions.begin() as s:
        return [e for e in audit.history(s, instance_id) if e.kind == "task_completed"]


def test_a_stale_session_cannot_complete_a_task_already_completed(sessions, deploy):
    deploy("order.bpmn")
    instance_id, task_id = _start(sessions)
    stale = _stale_reader(sessions, instance_id, task_id)
    try:
        with sessions.begin() as s:  # A wins
            runtime.complete_task(s, task_id, {"channel": "phone", "approved_by_expert": True}, by="anna", now=T0)
        runtime.forget_cache()
        with pytest.raises((Conflict, TaskNotAvailable)):
            runtime.complete_task(stale, task_id, {"channel": "email"}, by="bertta", now=T0)
            stale.commit()
        stale.rollback()
    finally:
        stale.close()
    [event] = _completions(sessions, instance_id)
    assert event.actor == "anna"
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        assert (row.state, row.completed_by) == (TaskStatus.COMPLETED, "anna")
        assert runtime.instance_variables(s, instance_id)["channel"] == "phone"


def test_a_stale_session_cannot_complete_a_task_claimed_since_it_read_it(sessions, deploy):
    deploy("order.bpmn")
    instance_id, task_id = _start(sessions)
    stale = _stale_reader(sessions, instance_id, task_id)
    try:
        with sessions.begin() as s:  # A moves the case on without touching the task: a claim
            inbox.claim(s, task_id, by="anna", roles={"expert"})
        with pytest.raises((Conflict, TaskNotAvailable)):  # B read the task unassigned; it is anna's now
            runtime.complete_task(stale, task_id, {"channel": "email"}, by="bertta", roles={"expert"}, now=T0)
            stale.commit()
        stale.rollback()
    finally:
        stale.close()
    assert _completions(sessions, instance_id) == []
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        assert (row.state, row.assignee) == (TaskStatus.READY, "anna")
        claims = s.scalars(select(AuditEvent).where(AuditEvent.kind == "task_claimed")).all()
        assert len(claims) == 1
