"""What the runtime writes down when it saves a case, stated in full as callers read it back: the
task_created event (name, role, assignee, due date, a warning when an expression fails), variable rows
and data_changed (a new None value, an update's time, a deleted variable), path_taken after a worker
completes an external task, escalation_thrown for an escalation nobody catches, and a thrown
message's correlation keys and clock.

Models: the inline WRITES model below; tests/engine/bpmn/c_throw.bpmn (throws the escalation `late`,
then a signal), records.bpmn (the external tasks `lookup` and, after the user task `check`, `notify`)
and c_correlation.bpmn (the store throws `shipped` with the key order_id; shops wait for it).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import audit, external, inbox, runtime
from engine.deploy import deploy_files
from engine.models import Variable

from .conftest import T0, at

WRITES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_writes" targetNamespace="http://polku.test/w">
  <bpmn:process id="writes" name="Writes" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="split" />
    <bpmn:parallelGateway id="split" />
    <bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="ask" />
    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="guess" />
    <bpmn:userTask id="ask" name="Ask the owner" camunda:candidateGroups="supervisor"
                   camunda:assignee="${owner}" camunda:dueDate="P3D" />
    <bpmn:sequenceFlow id="f4" sourceRef="ask" targetRef="tidy" />
    <bpmn:scriptTask id="tidy" name="Tidy" scriptFormat="python">
      <bpmn:script>n = n + 1
del gone</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f5" sourceRef="tidy" targetRef="plain" />
    <bpmn:userTask id="plain" name="Plain work" />
    <bpmn:sequenceFlow id="f6" sourceRef="plain" targetRef="done" />
    <bpmn:endEvent id="done" />
    <bpmn:userTask id="guess" name="Guess" camunda:assignee="${missing_var}" />
    <bpmn:sequenceFlow id="f7" sourceRef="guess" targetRef="guessed" />
    <bpmn:endEvent id="guessed" />
  </bpmn:process>
</bpmn:definitions>
"""


def _events(sessions, instance_id, kind):
    """The instance's events of one kind, without their id, sequence number and hash."""
    with sessions.begin() as s:
        found = [audit.event_dict(e) for e in audit.history(s, instance_id) if e.kind == kind]
    return [{k: v for k, v in e.items() if k not in ("id", "seq", "hash")} for e in found]


def _variable_rows(sessions, instance_id):
    with sessions.begin() as s:
        rows = s.scalars(select(Variable).where(Variable.instance_id == instance_id).order_by(Variable.name))
        return {v.name: (v.value, v.updated_at) for v in rows}


@pytest.fixture
def writes(sessions):
    """Start a WRITES case as anna at T0; return (instance id, version id)."""
    with sessions.begin() as s:
        deploy_files(s, {"writes.bpmn": WRITES.encode()}, by="designer")
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "writes", by="anna", now=T0,
                                          data={"owner": "olli", "n": 1, "gone": "x", "note": None})
        return instance.id, instance.version_id


def _task(sessions, instance_id, element_id):
    with sessions.begin() as s:
        [task] = [t for t in inbox.tasks(s, instance_id=instance_id) if t.element_id == element_id]
        return task.id


def test_a_new_task_is_in_the_history_with_its_name_role_assignee_and_due_date(sessions, writes):
    iid, vid = writes
    ask, guess = _task(sessions, iid, "ask"), _task(sessions, iid, "guess")
    created = sorted(_events(sessions, iid, "task_created"), key=lambda e: e["element_id"])
    warning = created[1]["data"].get("warning", "")
    # the case goes on without an assignee, and the history says why
    assert warning.startswith("assignee or due date could not be evaluated:") and "missing_var" in warning
    assert created == [
        {"kind": "task_created", "at": T0.isoformat(), "actor": "anna", "instance_id": iid, "version_id": vid,
         "element_id": "ask", "task_id": ask,
         "data": {"name": "Ask the owner", "role": "supervisor", "assignee": "olli",
                  "due_at": (T0 + timedelta(days=3)).isoformat()}},
        {"kind": "task_created", "at": T0.isoformat(), "actor": "anna", "instance_id": iid, "version_id": vid,
         "element_id": "guess", "task_id": guess,
         "data": {"name": "Guess", "role": "expert", "assignee": None, "due_at": None, "warning": warning}}]


def test_a_variable_started_as_none_gets_its_row_and_is_a_change(sessions, writes):
    iid, vid = writes
    assert _variable_rows(sessions, iid) == {"gone": ("x", T0), "n": (1, T0), "note": (None, T0),
                                             "owner": ("olli", T0)}
    [changed] = _events(sessions, iid, "data_changed")
    assert changed == {"kind": "data_changed", "at": T0.isoformat(), "actor": "anna", "instance_id": iid,
                       "version_id": vid, "element_id": None, "task_id": None,
                       "data": {"changes": {"owner": [None, "olli"], "n": [None, 1], "gone": [None, "x"],
                                            "note": [None, None]}}}


def test_an_updated_variable_takes_the_actions_time_and_a_deleted_one_loses_its_row(sessions, writes):
    iid, vid = writes
    with sessions.begin() as s:  # the other branch ends first: its data would keep `gone` alive
        runtime.complete_task(s, _task(sessions, iid, "guess"), {}, by="anna", now=at(30))
    with sessions.begin() as s:
        runtime.complete_task(s, _task(sessions, iid, "ask"), {}, by="olli", roles={"supervisor"}, now=at(60))
    assert _variable_rows(sessions, iid) == {"n": (2, at(60)), "note": (None, T0), "owner": ("olli", T0)}
    with sessions.begin() as s:
        assert runtime.instance_variables(s, iid) == {"n": 2, "note": None, "owner": "olli"}
    changed = _events(sessions, iid, "data_changed")[-1]
    assert changed == {"kind": "data_changed", "at": at(60).isoformat(), "actor": "olli", "instance_id": iid,
                       "version_id": vid, "element_id": None, "task_id": None,
                       "data": {"changes": {"n": [1, 2], "gone": ["x", None]}}}


def test_an_uncaught_escalation_is_in_the_throwers_history(sessions, deploy):
    deploy("c_throw.bpmn")
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "c_throw", by="anna", now=at(5))
        iid, vid = instance.id, instance.version_id
    assert _events(sessions, iid, "escalation_thrown") == [{
        "kind": "escalation_thrown", "at": at(5).isoformat(), "actor": "anna", "instance_id": iid,
        "version_id": vid, "element_id": None, "task_id": None, "data": {"kind": "escalation", "code": "late"}}]


def _complete_external(sessions, topic, now):
    with sessions.begin() as s:
        [locked] = external.fetch_and_lock(s, "w1", [topic], now=now)
        external.complete(s, locked.id, "w1", {}, now=now)


def test_each_external_task_a_worker_completes_is_a_path_taken_event_of_its_own(sessions, deploy):
    deploy("records.bpmn")
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "records", by="anna", data={"customer": "Acme", "urgency": 3}, now=T0)
        iid, vid = instance.id, instance.version_id
    with sessions.begin() as s:
        [check] = inbox.tasks(s, instance_id=iid)
        runtime.complete_task(s, check.id, {}, by="anna", now=at(1))
    before = len(_events(sessions, iid, "path_taken"))
    _complete_external(sessions, "registry", at(2))  # the case stays in memory between the two
    _complete_external(sessions, "letters", at(3))
    paths = _events(sessions, iid, "path_taken")[before:]
    assert paths == [
        {"kind": "path_taken", "at": at(2).isoformat(), "actor": "w1", "instance_id": iid, "version_id": vid,
         "element_id": None, "task_id": None, "data": {"elements": ["lookup", "looked_up"]}},
        {"kind": "path_taken", "at": at(3).isoformat(), "actor": "w1", "instance_id": iid, "version_id": vid,
         "element_id": None, "task_id": None, "data": {"elements": ["notify", "notified"]}}]


def test_a_thrown_message_goes_by_its_keys_and_reaches_the_receiver_at_the_throwers_time(sessions, deploy):
    deploy("c_correlation.bpmn")
    with sessions.begin() as s:
        shop_a = runtime.start_instance(s, "c_corr_shop", by="anna", data={"order_id": "A-1"},
                                        business_key="0737546-2", now=T0).id
        shop_b = runtime.start_instance(s, "c_corr_shop", by="anna", data={"order_id": "B-2"},
                                        business_key="0737546-2", now=T0).id
    with sessions.begin() as s:  # another customer's store: only the keys lead to the shop
        runtime.start_instance(s, "c_corr_store", by="bert", data={"order_id": "B-2", "parcel": "P9"},
                               business_key="2617416-4", now=at(30))
    assert _events(sessions, shop_a, "message_received") == []
    [received] = _events(sessions, shop_b, "message_received")
    assert (received["at"], received["actor"]) == (at(30).isoformat(), "bert")


def test_an_assignee_longer_than_any_user_name_leaves_the_task_to_the_group_and_says_why(sessions):
    with sessions.begin() as s:
        deploy_files(s, {"writes.bpmn": WRITES.encode()}, by="designer")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "writes", by="anna", now=T0, data={"owner": "o" * 201, "n": 1}).id
    [ask] = [e for e in _events(sessions, iid, "task_created") if e["element_id"] == "ask"]
    assert ask["data"]["assignee"] is None
    assert ask["data"]["warning"] == "the assignee expression gave a text of 201 characters, not a user name"
    with sessions.begin() as s:
        [task] = [t for t in inbox.tasks(s, instance_id=iid) if t.element_id == "ask"]
        assert task.assignee is None
