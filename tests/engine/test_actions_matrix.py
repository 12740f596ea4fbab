"""Engine actions × roles × ownership, written out as a table and compared with what the engine does.

The table is the specification (it is not read from the code). The task is the `review` user task
of tests/engine/bpmn/order.bpmn, whose candidate role is `expert`; the actor is always `anna`
holding one role; "someone else" is `bertta`. A refused action raises `TaskNotAvailable` and
changes nothing: the task row and the audit trail are as before.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from engine import inbox, runtime
from engine.errors import TaskNotAvailable
from engine.models import AuditEvent, Task, TaskStatus

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
E, S, AU, AD, D = "expert", "supervisor", "auditor", "admin", "designer"
OK, NO = "ok", "refused"
DATA = {"channel": "phone", "approved_by_expert": True}

# (action, who holds the task before, {role of anna: outcome})
MATRIX = [
    ("complete", "nobody", {E: OK, S: NO, AU: NO, AD: OK, D: NO}),
    ("complete", "anna", {E: OK, S: OK, AU: OK, AD: OK, D: OK}),
    ("complete", "bertta", {E: NO, S: OK, AU: NO, AD: OK, D: NO}),
    ("complete", "completed", {E: NO, S: NO, AU: NO, AD: NO, D: NO}),
    ("claim", "nobody", {E: OK, S: NO, AU: NO, AD: OK, D: NO}),
    ("claim", "anna", {E: OK, S: OK, AU: OK, AD: OK, D: OK}),
    ("claim", "bertta", {E: NO, S: NO, AU: NO, AD: NO, D: NO}),
    ("claim", "completed", {E: NO, S: NO, AU: NO, AD: NO, D: NO}),
    ("release", "nobody", {E: NO, S: NO, AU: NO, AD: NO, D: NO}),
    ("release", "anna", {E: OK, S: OK, AU: OK, AD: OK, D: OK}),
    ("release", "bertta", {E: NO, S: NO, AU: NO, AD: NO, D: NO}),
    ("release", "completed", {E: NO, S: NO, AU: NO, AD: NO, D: NO}),
]
CASES = [(action, holder, role, outcome) for action, holder, row in MATRIX for role, outcome in row.items()]


def _prepare(sessions, holder: str) -> str:
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "order", by="t", data={"customer": "Acme Oy", "amount": 500},
                                          business_key="0737546-2", now=T0)
        [task] = inbox.tasks(s, instance_id=instance.id)
        if holder in ("anna", "bertta"):
            inbox.assign(s, task.id, holder, by="esimies")
        elif holder == "completed":
            runtime.complete_task(s, task.id, DATA, by="bertta", now=T0)
        return task.id


def _snapshot(sessions, task_id: str) -> tuple:
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        events = s.scalar(select(func.count()).select_from(AuditEvent))
        return row.state, row.assignee, row.completed_by, events


def _act(s, action: str, task_id: str, role: str) -> None:
    if action == "complete":
        runtime.complete_task(s, task_id, DATA, by="anna", roles={role}, now=T0)
    elif action == "claim":
        inbox.claim(s, task_id, by="anna", roles={role})
    else:
        inbox.release(s, task_id, by="anna")


@pytest.mark.parametrize("action, holder, role, outcome", CASES)
def test_engine_action_by_role_and_owner(sessions, deploy, action, holder, role, outcome):
    deploy("order.bpmn")
    task_id = _prepare(sessions, holder)
    before = _snapshot(sessions, task_id)
    try:
        with sessions.begin() as s:
            _act(s, action, task_id, role)
        found = OK
    except TaskNotAvailable:
        found = NO
    assert found == outcome, (action, holder, role)
    after = _snapshot(sessions, task_id)
    if outcome == NO:
        assert after == before  # a refused action writes nothing, not even an audit event
    elif action == "complete":
        assert (after[0], after[2]) == (TaskStatus.COMPLETED, "anna")
    elif action == "claim":
        assert after[1] == "anna"
    else:
        assert after[1] is None and after[3] == before[3] + 1


def test_every_role_is_in_every_row():
    roles = {E, S, AU, AD, D}
    assert all(set(row) == roles for _a, _h, row in MATRIX)


def test_a_resolved_incident_cannot_be_retried_again(sessions, deploy):
    deploy("order.bpmn")
    task_id = _prepare(sessions, "nobody")
    with sessions.begin() as s:
        instance_id = s.get(Task, task_id).instance_id
        runtime.complete_task(s, task_id, DATA, by="anna", now=T0)  # no divisor: the script fails
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, instance_id)
        incident_id = incident.id
        assert str(runtime.retry_incident(s, incident_id, by="admin", data={"divisor": 2}, now=T0).status) \
            == "resolved"
    before = _snapshot(sessions, task_id)
    with sessions.begin() as s, pytest.raises(TaskNotAvailable, match="already resolved"):
        runtime.retry_incident(s, incident_id, by="admin", data={"divisor": 4}, now=T0)
    assert _snapshot(sessions, task_id) == before
    runtime.forget_cache()
    with sessions.begin() as s:
        assert runtime.instance_variables(s, instance_id)["price"] == 310.0  # the second retry ran nothing
