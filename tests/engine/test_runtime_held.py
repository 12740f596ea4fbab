"""What the runtime does with what it holds: rows a session read earlier, and instances kept between actions.

A web request reads a task (its page) and then acts on it in the same session; the engine keeps an
instance between actions in memory, and `forget_instance` drops it after someone changed the case's
rows behind the engine's back. Each test states what a caller sees, not how the engine keeps it:
- an action on a task the session already holds still applies the task's assignee and state, names
  the task in its event, and leaves the session's object showing the completion;
- after `forget_instance` (in a later transaction, or in the same one before it commits) the next
  action reads the case's rows again and puts them back in step with the case; with the whole cache
  dropped, an action records exactly the variables it changed, as with the case held.

The model is tests/engine/bpmn/order.bpmn: `review` (assigned to `${owner}`, a form with
`approved_by_expert`, `channel` and `note`), then `approve` for large orders.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine import audit, inbox, runtime
from engine.audit import EventKind
from engine.errors import InstanceNotFound, TaskNotAvailable, TaskNotFound
from engine.models import Task, TaskStatus, Variable

from .conftest import T0


def _start(sessions, *, owner: str | None = None, amount: int = 500) -> int:
    # `divisor` (no start-form field, so passed unvalidated as a parent process would) lets the price script
    # run: no incident, whose recovery reads the case from the database whatever the engine held
    data: dict[str, object] = {"customer": "Acme Oy", "amount": amount, "divisor": 2}
    if owner is not None:
        data["owner"] = owner
    with sessions.begin() as s:
        return runtime.start_instance(s, "order", by="anna", data=data, business_key="0737546-2", now=T0,
                                      validate_form=False).id


def _events(sessions, instance_id: int, kind: EventKind) -> list:
    with sessions.begin() as s:
        return [e for e in audit.history(s, instance_id) if e.kind == kind]


def _variable_rows(sessions, instance_id: int) -> dict:
    with sessions.begin() as s:
        return {v.name: v.value for v in s.scalars(select(Variable).where(Variable.instance_id == instance_id))}


def _change_row_behind_the_engine(session, instance_id: int, name: str, value: object) -> None:
    session.execute(update(Variable).where(Variable.instance_id == instance_id, Variable.name == name)
                    .values(value=value))


# --- a task the session already holds -----------------------------------------------------------


def test_completing_a_task_the_session_holds_updates_that_object(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions)
    done_at = T0 + timedelta(hours=1)
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)  # the task page read it in this session
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna", now=done_at)
        assert (task.state, task.completed_by, task.completed_at, task.assignee) == (
            TaskStatus.COMPLETED, "anna", done_at, "anna")
    [completed] = _events(sessions, instance_id, EventKind.TASK_COMPLETED)
    assert (completed.element_id, completed.task_id, completed.actor) == ("review", task.id, "anna")
    assert json.loads(completed.data) == {"name": "Review order", "submitted": {
        "approved_by_expert": False, "channel": "phone", "note": None}}


def test_a_held_task_assigned_to_someone_else_is_refused(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions, owner="anna")
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)
        assert task.assignee == "anna"
        with pytest.raises(TaskNotAvailable, match="^this task is assigned to anna$"):
            runtime.complete_task(s, task.id, {"channel": "phone"}, by="ben", roles={"expert"}, now=T0)
    assert _events(sessions, instance_id, EventKind.TASK_COMPLETED) == []


def test_a_held_task_already_completed_names_who_completed_it(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions)
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna", now=T0)
    with sessions.begin() as s:
        held = s.get(Task, task.id)  # the page of a completed task read it in this session
        assert held.state == TaskStatus.COMPLETED
        with pytest.raises(TaskNotAvailable, match="^this task was already completed by anna$"):
            runtime.complete_task(s, held.id, {"channel": "email"}, by="ben", now=T0)
    assert len(_events(sessions, instance_id, EventKind.TASK_COMPLETED)) == 1


def test_an_unknown_task_is_not_found_by_name(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        with pytest.raises(TaskNotFound, match="^no task nope$"):
            runtime.complete_task(s, "nope", {}, by="anna", now=T0)
        with pytest.raises(TaskNotFound, match="^no task nope$"):
            runtime.task_details(s, "nope")
        with pytest.raises(TaskNotFound, match="^no task nope$"):
            runtime.task_form(s, "nope")


# --- instances kept between actions ---------------------------------------------------------------


def test_with_the_cache_dropped_an_action_records_only_what_it_changed(sessions, deploy):
    deploy("order.bpmn")
    held_case, cold_case = _start(sessions), _start(sessions)
    changes = {}
    for instance_id in (held_case, cold_case):
        if instance_id == cold_case:
            runtime.forget_cache()
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=instance_id)
            runtime.complete_task(s, task.id, {"channel": "phone", "note": "soitettu"}, by="anna", now=T0)
        [*_, changed] = _events(sessions, instance_id, EventKind.DATA_CHANGED)
        changes[instance_id] = json.loads(changed.data)["changes"]
    assert changes[cold_case] == changes[held_case]
    assert changes[cold_case]["channel"] == [None, "phone"] and changes[cold_case]["note"] == [None, "soitettu"]
    assert "customer" not in changes[cold_case] and "amount" not in changes[cold_case]


def test_forgetting_an_instance_makes_the_next_action_read_its_rows_again(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions)
    with sessions.begin() as s:  # an operator's fix wrote the row, not the case's state
        _change_row_behind_the_engine(s, instance_id, "customer", "Beta Oy")
        runtime.forget_instance(s, instance_id)
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna", now=T0)
    assert _variable_rows(sessions, instance_id)["customer"] == "Acme Oy"  # back in step with the case
    [*_, changed] = _events(sessions, instance_id, EventKind.DATA_CHANGED)
    assert json.loads(changed.data)["changes"]["customer"] == ["Beta Oy", "Acme Oy"]


def test_forgetting_an_instance_in_the_transaction_that_acted_on_it(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions, amount=5000)
    with sessions.begin() as s:  # the action's instance waits for the commit to be kept: forgotten before it
        [task] = inbox.tasks(s, instance_id=instance_id)
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna", now=T0)
        _change_row_behind_the_engine(s, instance_id, "customer", "Beta Oy")
        runtime.forget_instance(s, instance_id)
    with sessions.begin() as s:
        [approve] = inbox.tasks(s, instance_id=instance_id)
        runtime.complete_task(s, approve.id, {"approved": False}, by="sami", now=T0)
    assert _variable_rows(sessions, instance_id)["customer"] == "Acme Oy"


def test_an_unknown_instance_is_not_found_by_number(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        with pytest.raises(InstanceNotFound, match="^no instance 999$"):
            runtime.cancel_instance(s, 999, by="sami")
        with pytest.raises(InstanceNotFound, match="^no instance 999$"):
            runtime.fire_instance_timers(s, 999, now=T0)


def test_the_last_action_ends_the_case_and_records_its_end_and_changes_in_full(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions)  # 500: no approval; the price script runs, then the case waits for payment
    done_at, paid_at = T0 + timedelta(hours=2), T0 + timedelta(days=3)
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)
        version_id = runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna", now=done_at).version_id
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "payment_received", by="erp", instance_id=instance_id, now=paid_at) == [instance_id]
    with sessions.begin() as s:
        ended = runtime.get_instance(s, instance_id)
        assert (ended.status, ended.ended_at) == ("completed", paid_at)
        events = list(audit.history(s, instance_id))
    [completed] = [e for e in events if e.kind == EventKind.INSTANCE_COMPLETED]
    assert (completed.actor, completed.instance_id, completed.version_id, completed.at) == (
        "erp", instance_id, version_id, paid_at)
    [changed] = [e for e in events if e.kind == EventKind.DATA_CHANGED and e.at == done_at]
    assert (changed.actor, changed.instance_id, changed.version_id) == ("anna", instance_id, version_id)
    assert json.loads(changed.data)["changes"]["price"] == [None, 310.0]


def test_an_action_that_leaves_the_case_stuck_opens_its_incident_as_that_user_at_that_time(sessions, deploy):
    deploy("c_deadlock.bpmn")  # the branch `a` of an exclusive split runs into a parallel join: stuck
    done_at = T0 + timedelta(hours=4)
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "c_deadlock", by="anna", data={"pick": "a"}, now=T0).id
        [task] = inbox.tasks(s, instance_id=instance_id)
    with sessions.begin() as s:
        runtime.complete_task(s, task.id, {}, by="ben", now=done_at)
    with sessions.begin() as s:
        [stuck] = runtime.open_incidents(s, instance_id)
        [raised] = [e for e in audit.history(s, instance_id) if e.kind == EventKind.INCIDENT_RAISED]
    assert (stuck.element_id, stuck.created_at) == ("join", done_at)
    assert (raised.actor, raised.at) == ("ben", done_at)
