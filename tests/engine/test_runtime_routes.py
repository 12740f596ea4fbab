"""What happens around a delivered message or a thrown signal besides the catch itself.

- A message that changes the case data (R2: the customer's responsible expert changed) re-evaluates
  the `camunda:assignee` expressions of the case's open user tasks: a task whose expression now
  gives someone else moves to them, with a `task_assigned` event saying why; fixed assignees,
  finished tasks, other cases and expressions that cannot be evaluated are left as they were.
- A signal a case throws reaches every other case waiting for it and starts the processes with a
  signal start event, as children of the thrower; the thrower records whom it reached.
Expectations come from the models (tests/engine/bpmn/reassign.bpmn, c_throw.bpmn, c_signal.bpmn,
c_signal_start.bpmn), not from the code.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import audit, inbox, runtime
from engine import deploy as deploy_mod
from engine.models import AuditEvent, Instance, InstanceStatus

from .conftest import MODELS, T0

LATER = T0 + timedelta(hours=5)


def _start(sessions, expert="aino", backups=("ben",)):
    with sessions.begin() as s:
        return runtime.start_instance(s, "reassign", by="anna", now=T0,
                                      data={"responsible_expert": expert, "backups": list(backups)}).id


def _assignees(sessions, instance_id):
    with sessions.begin() as s:
        return {t.element_id: t.assignee for t in inbox.tasks(s, instance_id=instance_id)}


def _events(sessions, instance_id, kind):
    with sessions.begin() as s:
        return [e for e in audit.history(s, instance_id) if e.kind == kind]


def _changed(sessions, instance_id, **payload):
    with sessions.begin() as s:
        return runtime.deliver_message(s, "expert_changed", by="sami", data=payload, instance_id=instance_id,
                                       now=LATER)


@pytest.fixture
def reassign(deploy):
    deploy("reassign.bpmn")


def test_a_new_expert_in_the_case_data_takes_over_the_task_their_expression_names(sessions, reassign):
    case = _start(sessions)
    assert _assignees(sessions, case) == {"work": "aino", "plain": "carl", "backup": "ben"}
    _changed(sessions, case, responsible_expert="bea", backups=[])
    # work follows its expression; plain has a fixed assignee; backup's `${backups[0]}` cannot be
    # evaluated on an empty list: its assignee stays
    assert _assignees(sessions, case) == {"work": "bea", "plain": "carl", "backup": "ben"}
    [event] = _events(sessions, case, "task_assigned")
    with sessions.begin() as s:
        work = next(t for t in inbox.tasks(s, instance_id=case) if t.element_id == "work")
        version_id = runtime.get_instance(s, case).version_id
    assert (event.actor, event.at, event.instance_id, event.version_id, event.element_id, event.task_id) == (
        "sami", LATER, case, version_id, "work", work.id)
    assert json.loads(event.data) == {"previous": "aino", "assignee": "bea", "reason": "case data changed"}


def test_an_assignee_that_cannot_be_evaluated_or_is_no_user_name_stays_and_the_log_says_why(
        sessions, reassign, caplog):
    case = _start(sessions)
    with caplog.at_level(logging.WARNING, logger="engine.runtime"):
        _changed(sessions, case, responsible_expert="x" * 201, backups=[])
    assert _assignees(sessions, case) == {"work": "aino", "plain": "carl", "backup": "ben"}
    assert _events(sessions, case, "task_assigned") == []
    said = [r.getMessage() for r in caplog.records]
    assert any(f"instance {case}, task work: " in m and "gave a text of 201 characters, not a user name; "
               "the assignee stays aino" in m for m in said), said
    assert any(f"instance {case}, task backup: " in m and "could not be evaluated, the assignee stays ben" in m
               for m in said), said


def test_the_same_expert_again_changes_nothing_and_writes_no_event(sessions, reassign):
    case = _start(sessions)
    _changed(sessions, case, responsible_expert="aino")
    assert _assignees(sessions, case) == {"work": "aino", "plain": "carl", "backup": "ben"}
    assert _events(sessions, case, "task_assigned") == []


def test_an_expression_that_gives_nobody_leaves_the_task_to_its_group(sessions, reassign):
    case = _start(sessions)
    _changed(sessions, case, responsible_expert="")
    assert _assignees(sessions, case)["work"] is None
    [event] = _events(sessions, case, "task_assigned")
    assert json.loads(event.data) == {"previous": "aino", "assignee": None, "reason": "case data changed"}


def test_a_backup_list_with_someone_new_moves_that_task_too(sessions, reassign):
    case = _start(sessions)
    _changed(sessions, case, backups=["cecilia", "dan"])
    assert _assignees(sessions, case) == {"work": "aino", "plain": "carl", "backup": "cecilia"}
    assert [e.element_id for e in _events(sessions, case, "task_assigned")] == ["backup"]


def test_a_finished_task_keeps_who_it_had(sessions, reassign):
    case = _start(sessions)
    with sessions.begin() as s:
        backup = next(t for t in inbox.tasks(s, instance_id=case) if t.element_id == "backup")
        runtime.complete_task(s, backup.id, {}, by="ben", now=T0 + timedelta(hours=1))
    _changed(sessions, case, responsible_expert="bea", backups=["zed"])
    with sessions.begin() as s:
        summary = runtime.instance_summary(s, case)
    by_element = {t["element_id"]: (t["state"], t["assignee"]) for t in summary["tasks"]}
    assert by_element == {"work": ("ready", "bea"), "plain": ("ready", "carl"), "backup": ("completed", "ben")}
    assert [e.element_id for e in _events(sessions, case, "task_assigned")] == ["work"]


def test_another_cases_tasks_stay_with_their_expert(sessions, reassign):
    first, second = _start(sessions), _start(sessions, expert="aino", backups=("ben",))
    assert _changed(sessions, first, responsible_expert="bea") == [first]
    assert _assignees(sessions, first)["work"] == "bea"
    assert _assignees(sessions, second) == {"work": "aino", "plain": "carl", "backup": "ben"}
    assert _events(sessions, second, "task_assigned") == []


def test_a_thrown_signal_reaches_the_waiting_case_and_starts_a_child_of_the_thrower(sessions, deploy):
    deploy("c_throw.bpmn", "c_signal.bpmn", "c_signal_start.bpmn")
    with sessions.begin() as s:
        waiting = runtime.start_instance(s, "c_signal", by="olli", now=T0).id
    with sessions.begin() as s:
        thrower = runtime.start_instance(s, "c_throw", by="anna", data={"secret": "stays here"}, now=LATER)
        thrower_id, thrower_version = thrower.id, thrower.version_id
    with sessions.begin() as s:
        [started] = s.scalars(select(Instance).where(Instance.process_id == "c_signal_start"))
        assert (started.parent_instance_id, started.started_by, started.started_at) == (thrower_id, "anna", LATER)
        assert "secret" not in runtime.instance_variables(s, started.id)
        assert [t.element_id for t in inbox.tasks(s, instance_id=started.id)] == ["react"]
        assert [t.element_id for t in inbox.tasks(s, instance_id=waiting)] == ["work"]
        assert runtime.get_instance(s, thrower_id).status == InstanceStatus.COMPLETED
        started_id = started.id
    [received] = _events(sessions, waiting, "signal_received")
    assert (received.actor, received.at) == ("anna", LATER)
    assert json.loads(received.data) == {"name": "go", "payload": {}}
    [thrown] = _events(sessions, thrower_id, "signal_thrown")
    assert (thrown.actor, thrown.at, thrown.version_id, thrown.instance_id) == ("anna", LATER, thrower_version,
                                                                                thrower_id)
    assert json.loads(thrown.data) == {"name": "go", "delivered_to": [waiting], "started": [started_id]}


def test_a_thrown_signal_nobody_waits_for_is_still_recorded(sessions, deploy):
    deploy("c_throw.bpmn")
    with sessions.begin() as s:
        thrower = runtime.start_instance(s, "c_throw", by="anna", now=LATER).id
    [thrown] = _events(sessions, thrower, "signal_thrown")
    assert json.loads(thrown.data) == {"name": "go", "delivered_to": [], "started": []}
    with sessions.begin() as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.kind == "signal_received")) is None


def test_older_versions_and_decisions_listed_first_do_not_hide_the_process_a_throw_starts(sessions, deploy):
    # deployed versions are searched by process id, newest first: `c_deadlock` v1 (not the newest) and the
    # decision `aftercare_target` come before the processes started by c_sender's message and c_throw's signal
    deploy("c_deadlock.bpmn", "c_send.bpmn", "c_msg_start.bpmn", "c_throw.bpmn", "c_signal_start.bpmn")
    second = (MODELS / "c_deadlock.bpmn").read_bytes().replace(b'name="Exclusive split into', b'name="v2: Exclusive split into', 1)
    decision = (MODELS.parents[2] / "bpmn" / "aftercare_target.dmn").read_bytes()
    with sessions.begin() as s:
        assert deploy_mod.deploy_files(s, {"c_deadlock.bpmn": second}, by="designer").created
        deploy_mod.deploy_files(s, {"aftercare_target.dmn": decision}, by="designer")
    with sessions.begin() as s:
        sender = runtime.start_instance(s, "c_sender", by="anna", data={"amount": 1}, now=T0).id
        thrower = runtime.start_instance(s, "c_throw", by="anna", now=LATER).id
    with sessions.begin() as s:
        started = {i.process_id: i.parent_instance_id for i in s.scalars(
            select(Instance).where(Instance.process_id.in_(["c_msg_start", "c_signal_start"])))}
    assert started == {"c_msg_start": sender, "c_signal_start": thrower}
