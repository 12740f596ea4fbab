"""The revision check itself, reached through `runtime.complete_task`: the loser gets `Conflict`, exactly.

Two sessions load the same task through the public reader a task page uses (`runtime.task_details`)
and both complete it through `runtime.complete_task`. Sessions keep what they read after a commit
(`expire_on_commit=False`), as a web request that read a case and then acts on it does. A wins and
commits; B still holds the task as READY and the case at the old revision, so every check before
the save passes for B, and only the stored revision can refuse it: the conditional UPDATE of the
instance row (`... WHERE revision = <what B read>`) matches no row and B gets `Conflict` — not
`TaskNotAvailable`, which a fresh read would give. Nothing is written twice: one completion, one
audit event, A's variables, the revision A left, an audit chain that verifies.

These tests fail if the revision check in `runtime._save_instance` is removed (tried by hand in a
copy of the tree: B then fails later with SQLAlchemy's raw `StaleDataError` instead of `Conflict`),
while tests/engine/test_optimistic_lock.py still passes then: its stale sessions do not hold what
they read, read the task afresh and get `TaskNotAvailable`. PostgreSQL takes a row lock first and
checks the revision there: tests/postgres/test_revision_check_pg.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import audit, inbox, runtime
from engine.errors import Conflict
from engine.models import AuditEvent, Instance, Task, TaskStatus, Variable

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _start(sessions) -> tuple[int, str, int]:
    # amount 500 takes the small-order path to the price script, which fails without `divisor`: the
    # winner's completion leaves an incident at the script, which the loser must not write again
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "order", by="t", data={"customer": "Acme Oy", "amount": 500},
                                          business_key="0737546-2", now=T0)
        [task] = inbox.tasks(s, instance_id=instance.id)
        return instance.id, task.id, instance.revision


def _reader(sessions, task_id: str):
    """Open a session that has read the task page (the task, its case, the case's data) and committed.

    The page's objects are kept on the session (`info`), as a request holds them while it runs: the
    identity map holds rows weakly, and a row no longer held would be read afresh.
    """
    reader = sessions()
    details = runtime.task_details(reader, task_id)
    assert details["task"].state == TaskStatus.READY
    reader.info["page"] = details
    reader.commit()
    return reader


def _stored(sessions, instance_id: int, task_id: str) -> dict:
    with sessions.begin() as s:
        task = s.get(Task, task_id)
        events = [e for e in audit.history(s, instance_id) if e.task_id == task_id]
        return {
            "task": (task.state, task.completed_by),
            "completed_by": [e.actor for e in events if e.kind == "task_completed"],
            "revision": s.get(Instance, instance_id).revision,
            "channel": runtime.instance_variables(s, instance_id).get("channel"),
            "variables": s.scalar(select(func.count()).select_from(Variable)
                                  .where(Variable.instance_id == instance_id)),
            "events": s.scalar(select(func.count()).select_from(AuditEvent)
                               .where(AuditEvent.instance_id == instance_id)),
            "chain_ok": audit.verify(s, instance_id).ok,
        }


@pytest.mark.parametrize("forget", [False, True], ids=["same-process", "reloaded"])
def test_two_sessions_complete_one_task_the_second_gets_conflict_from_the_revision(sessions, deploy, forget):
    deploy("order.bpmn")
    instance_id, task_id, revision = _start(sessions)
    anna, bertta = _reader(sessions, task_id), _reader(sessions, task_id)
    try:
        runtime.complete_task(anna, task_id, {"channel": "phone", "approved_by_expert": True}, by="anna",
                              roles={"expert"}, now=T0 + timedelta(minutes=1))
        anna.commit()
        after_anna = _stored(sessions, instance_id, task_id)
        if forget:
            runtime.forget_cache()
        with pytest.raises(Conflict, match="^someone else changed this case at the same time; reload and try again$"):
            runtime.complete_task(bertta, task_id, {"channel": "email"}, by="bertta", roles={"expert"},
                                  now=T0 + timedelta(minutes=2))
        bertta.rollback()
    finally:
        anna.close()
        bertta.close()
    stored = _stored(sessions, instance_id, task_id)
    assert stored == after_anna  # B wrote nothing: not a row, not an event
    assert stored["task"] == (TaskStatus.COMPLETED, "anna")
    assert stored["completed_by"] == ["anna"]
    assert stored["channel"] == "phone"
    assert stored["revision"] > revision
    assert stored["chain_ok"]


def test_after_the_conflict_a_fresh_read_says_the_task_is_done(sessions, deploy):
    """What the loser sees next: the task reloaded is COMPLETED by A and leaves the inbox."""
    deploy("order.bpmn")
    instance_id, task_id, _revision = _start(sessions)
    anna, bertta = _reader(sessions, task_id), _reader(sessions, task_id)
    try:
        runtime.complete_task(anna, task_id, {"channel": "phone"}, by="anna", now=T0)
        anna.commit()
        with pytest.raises(Conflict):
            runtime.complete_task(bertta, task_id, {"channel": "email"}, by="bertta", now=T0)
        bertta.rollback()
    finally:
        anna.close()
        bertta.close()
    with sessions.begin() as s:
        assert runtime.task_details(s, task_id)["task"].completed_by == "anna"
        assert inbox.tasks(s, instance_id=instance_id) == []
