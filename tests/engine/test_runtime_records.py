"""What the runtime writes down as a case moves, stated in full: task rows, external task rows and
the history events that go with them (external_task_created, external_task_cancelled, script_output).

The model tests/engine/bpmn/records.bpmn: the script `greet` prints "hello <customer>", then a parallel
split opens the external task `lookup` (topic registry, priority `${urgency}`, with an interrupting
message boundary `withdrawn` leading to the manual task `file_away`) and the user task `check`, which
stands in a lane with no name (`Lane_desk`); after `check` the external task `notify` (topic letters,
no priority) begins. Expectations come from that model and from what callers (inboxes, workers,
the history page) rely on, not from the code.
"""

from __future__ import annotations

import pytest

from engine import audit, external, inbox, runtime
from engine.errors import TaskNotAvailable
from engine.models import ExternalTask, ExternalTaskState

from .conftest import T0, at


@pytest.fixture
def case(sessions, deploy):
    """Start a records case as anna at T0; return (instance id, version id)."""
    deploy("records.bpmn")
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "records", by="anna", data={"customer": "Acme", "urgency": 3}, now=T0)
        return instance.id, instance.version_id


def _events(sessions, instance_id, kind):
    """The instance's events of one kind, without their id, sequence number and hash."""
    with sessions.begin() as s:
        found = [audit.event_dict(e) for e in audit.history(s, instance_id) if e.kind == kind]
    return [{k: v for k, v in e.items() if k not in ("id", "seq", "hash")} for e in found]


def _external_rows(sessions, instance_id=None):
    with sessions.begin() as s:
        rows = external.list_tasks(s, instance_id=instance_id, state=None)
        return [{"id": r.id, "instance_id": r.instance_id, "task_id": r.task_id, "element_id": r.element_id,
                 "topic": r.topic, "priority": r.priority, "local_variables": r.local_variables,
                 "state": str(r.state), "created_at": r.created_at, "retries": r.retries,
                 "lock_owner": r.lock_owner, "ended_at": r.ended_at, "ended_by": r.ended_by} for r in rows]


def _task_rows(sessions, instance_id):
    with sessions.begin() as s:
        return [{"element_id": t.element_id, "name": t.name, "lane": t.lane, "candidate_role": t.candidate_role,
                 "state": str(t.state), "assignee": t.assignee, "due_at": t.due_at, "created_at": t.created_at,
                 "completed_at": t.completed_at, "completed_by": t.completed_by}
                for t in inbox.tasks(s, instance_id=instance_id, state=None)]


def _complete_check(sessions, instance_id, now):
    with sessions.begin() as s:
        [check] = inbox.tasks(s, instance_id=instance_id)
        runtime.complete_task(s, check.id, {}, by="anna", now=now)


def _withdraw(sessions, instance_id, now):
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "withdrawn", by="api", instance_id=instance_id, now=now) == [instance_id]


def test_what_a_script_prints_is_one_script_output_event_of_the_action(sessions, case):
    iid, vid = case
    assert _events(sessions, iid, "script_output") == [{
        "kind": "script_output", "at": T0.isoformat(), "actor": "anna", "instance_id": iid, "version_id": vid,
        "element_id": "greet", "task_id": None, "data": {"output": "hello Acme\n"}}]


def test_an_external_task_that_begins_gets_an_open_row_and_an_external_task_created_event(sessions, case):
    iid, vid = case
    [row] = _external_rows(sessions, iid)
    # the task's data is the case's variables: nothing of its own to hand a worker
    assert row == {"id": row["id"], "instance_id": iid, "task_id": row["task_id"], "element_id": "lookup",
                   "topic": "registry", "priority": 3, "local_variables": None, "state": "open", "created_at": T0,
                   "retries": None, "lock_owner": None, "ended_at": None, "ended_by": None}
    assert _events(sessions, iid, "external_task_created") == [{
        "kind": "external_task_created", "at": T0.isoformat(), "actor": "anna", "instance_id": iid,
        "version_id": vid, "element_id": "lookup", "task_id": row["task_id"],
        "data": {"external_task_id": row["id"], "topic": "registry", "priority": 3}}]
    with sessions.begin() as s:  # open rows are what workers fetch
        [locked] = external.fetch_and_lock(s, "w1", ["registry"], now=at(1))
    assert locked.id == row["id"]


def test_an_external_task_beginning_while_another_waits_gets_its_own_row(sessions, case):
    iid, vid = case
    _complete_check(sessions, iid, at(1))
    lookup, notify = _external_rows(sessions, iid)
    assert (lookup["element_id"], lookup["state"], lookup["created_at"]) == ("lookup", "open", T0)
    assert notify == {"id": notify["id"], "instance_id": iid, "task_id": notify["task_id"], "element_id": "notify",
                      "topic": "letters", "priority": None, "local_variables": None, "state": "open",
                      "created_at": at(1), "retries": None, "lock_owner": None, "ended_at": None, "ended_by": None}
    assert _events(sessions, iid, "external_task_created")[1] == {
        "kind": "external_task_created", "at": at(1).isoformat(), "actor": "anna", "instance_id": iid,
        "version_id": vid, "element_id": "notify", "task_id": notify["task_id"],
        "data": {"external_task_id": notify["id"], "topic": "letters", "priority": None}}


def test_an_interrupted_external_task_is_cancelled_with_an_event_and_the_other_branch_keeps_its_own(sessions,
                                                                                                     case):
    iid, vid = case
    _complete_check(sessions, iid, at(1))
    with sessions.begin() as s:  # a worker holds the task when the case is withdrawn
        [locked] = external.fetch_and_lock(s, "w1", ["registry"], now=at(2))
    _withdraw(sessions, iid, at(3))
    lookup, notify = _external_rows(sessions, iid)
    assert lookup == {"id": locked.id, "instance_id": iid, "task_id": lookup["task_id"], "element_id": "lookup",
                      "topic": "registry", "priority": 3, "local_variables": None, "state": "cancelled",
                      "created_at": T0, "retries": None, "lock_owner": None, "ended_at": at(3), "ended_by": "api"}
    assert (notify["element_id"], notify["state"], notify["ended_at"]) == ("notify", "open", None)
    assert _events(sessions, iid, "external_task_cancelled") == [{
        "kind": "external_task_cancelled", "at": at(3).isoformat(), "actor": "api", "instance_id": iid,
        "version_id": vid, "element_id": "lookup", "task_id": lookup["task_id"],
        "data": {"external_task_id": locked.id, "topic": "registry"}}]


def test_an_interruption_touches_only_the_cases_own_open_row_of_the_task(sessions, case):
    """Task ids are unique in practice: the other rows are written by hand to pin which rows may change."""
    iid, _vid = case
    with sessions.begin() as s:
        other = runtime.start_instance(s, "records", by="anna", data={"customer": "Beta", "urgency": 1}, now=T0).id
    [lookup] = _external_rows(sessions, iid)
    with sessions.begin() as s:
        s.add(ExternalTask(instance_id=other, task_id=lookup["task_id"], element_id="lookup", topic="registry",
                           state=ExternalTaskState.OPEN, created_at=T0))
        s.add(ExternalTask(instance_id=iid, task_id=lookup["task_id"], element_id="lookup", topic="registry",
                           state=ExternalTaskState.COMPLETED, created_at=T0, ended_at=T0, ended_by="w0"))
    _withdraw(sessions, iid, at(3))
    by_row = {(r["instance_id"], r["id"]): (r["state"], r["ended_by"]) for r in _external_rows(sessions)
              if r["task_id"] == lookup["task_id"]}
    assert sorted(by_row.values()) == [("cancelled", "api"), ("completed", "w0"), ("open", None)]
    assert by_row[(iid, lookup["id"])] == ("cancelled", "api")
    assert len(_events(sessions, iid, "external_task_cancelled")) == 1
    assert _events(sessions, other, "external_task_cancelled") == []


def test_task_rows_take_the_models_name_the_lanes_id_when_unnamed_and_the_expert_role_by_default(sessions, case):
    iid, _vid = case
    assert _task_rows(sessions, iid) == [
        {"element_id": "check", "name": "Check the papers", "lane": "Lane_desk", "candidate_role": "expert",
         "state": "ready", "assignee": None, "due_at": None, "created_at": T0, "completed_at": None,
         "completed_by": None}]
    _withdraw(sessions, iid, at(3))
    # a manual task: no candidate groups, no lane
    assert _task_rows(sessions, iid)[1] == {
        "element_id": "file_away", "name": "File the papers away", "lane": None, "candidate_role": "expert",
        "state": "ready", "assignee": None, "due_at": None, "created_at": at(3), "completed_at": None,
        "completed_by": None}


def test_a_completed_external_task_is_not_cancelled_and_cannot_be_completed_again(sessions, case):
    iid, _vid = case
    with sessions.begin() as s:
        [locked] = external.fetch_and_lock(s, "w1", ["registry"], now=at(1))
    with sessions.begin() as s:
        external.complete(s, locked.id, "w1", {"found": True}, now=at(2))
    [lookup] = _external_rows(sessions, iid)
    assert (lookup["state"], lookup["ended_at"], lookup["ended_by"]) == ("completed", at(2), "w1")
    assert _events(sessions, iid, "external_task_cancelled") == []
    with sessions.begin() as s:
        row = external.get(s, locked.id)
        with pytest.raises(TaskNotAvailable, match="^this external task is no longer waiting for a worker$"):
            runtime.complete_external_task(s, row, {}, by="w1", now=at(3))


def test_retrying_the_incident_of_an_external_task_cancelled_meanwhile_leaves_its_row_as_it_was(sessions, case):
    iid, _vid = case
    with sessions.begin() as s:
        [locked] = external.fetch_and_lock(s, "w1", ["registry"], now=at(1))
    with sessions.begin() as s:
        external.fail(s, locked.id, "w1", "registry down", retries=0, now=at(2))
    _withdraw(sessions, iid, at(3))  # messages still reach a case with an open incident
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        assert str(runtime.retry_incident(s, incident.id, by="admin", now=at(4)).status) == "resolved"
    [lookup] = _external_rows(sessions, iid)
    assert (lookup["state"], lookup["retries"], lookup["ended_at"], lookup["ended_by"]) == \
        ("cancelled", 0, at(3), "api")
