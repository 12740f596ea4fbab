"""Firing a case's timers and moving a case onto another version, as a caller relies on them.

`runtime.fire_instance_timers(session, id, now=…, actor=…)` fires every timer of one case due at
`now` and returns the element ids it fired. Each firing is one `timer_fired` event: who fired it
(the timer worker is "timer"), the case, its version, the timer's element and task, `at` the firing
instant, `data.due_at` the ISO text of when it was due and `data.lag_seconds` how late it fired, in
seconds to the millisecond. What a firing writes belongs to the caller's transaction: committed, the
next action (in a new transaction) works from the fired case; rolled back, nothing of it is left, and
the timer fires again. A case with nothing due is left as it was.

`engine.migrate.migrate_instance` (`runtime.change_version`) records one `instance_migrated` event:
the migrating user, the migration instant, the target version's id, and in its data a message and the
two versions (ids and numbers). Rows the migration changes carry the same user and instant. A case
SpiffWorkflow cannot move or save is refused with "instance N cannot migrate: …" and left untouched.

Models: tests/engine/bpmn/reminder.bpmn (user task `call`, due `${due}`, with the non-interrupting
boundary timer `late` after 14 days, leading to the user task `escalate`), order.bpmn and
c_receiver.bpmn (a receive task `wait_ready` for the message `order_ready`, then the user task `handle`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from engine import audit, deploy, inbox, migrate, runtime, timers
from engine.errors import NotAllowed
from engine.models import Instance, ProcessVersion, Task, TaskStatus, Timer

from .conftest import MODELS, T0

LATE = T0 + timedelta(days=14)  # reminder's boundary timer `late`, for a case started at T0
REMINDER = (MODELS / "reminder.bpmn").read_text()
# a second boundary timer on `call`: `later`, after 20 days, to an end event
TWO_TIMERS = REMINDER.replace(
    '    <bpmn:userTask id="escalate"',
    '    <bpmn:boundaryEvent id="later" name="Later" attachedToRef="call" cancelActivity="false">\n'
    '      <bpmn:outgoing>f_later</bpmn:outgoing>\n'
    '      <bpmn:timerEventDefinition id="ted2"><bpmn:timeDuration>\'P20D\'</bpmn:timeDuration>'
    '</bpmn:timerEventDefinition>\n'
    '    </bpmn:boundaryEvent>\n'
    '    <bpmn:endEvent id="later_end"><bpmn:incoming>f_later</bpmn:incoming></bpmn:endEvent>\n'
    '    <bpmn:sequenceFlow id="f_later" sourceRef="later" targetRef="later_end" />\n'
    '    <bpmn:userTask id="escalate"')
ORDER = (MODELS / "order.bpmn").read_text()
ORDER_RENAMED = ORDER.replace('name="Review order"', 'name="Check the order"') \
    .replace('name="Approve large order"', 'name="Sign off large order"')
RECEIVER = (MODELS / "c_receiver.bpmn").read_text()
# the version before c_receiver.bpmn: someone confirmed by hand what the message now says
RECEIVER_BY_HAND = RECEIVER.replace(
    '<bpmn:receiveTask id="wait_ready" name="Wait until ready" messageRef="m_ready">',
    '<bpmn:userTask id="wait_ready" name="Confirm ready" camunda:candidateGroups="clerk">') \
    .replace("</bpmn:receiveTask>", "</bpmn:userTask>")
REMINDER_WITHOUT_LATE = REMINDER.split('    <bpmn:boundaryEvent id="late"')[0] + \
    '    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>\n' \
    '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />\n' \
    '    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />\n' \
    "  </bpmn:process>\n</bpmn:definitions>\n"


def _deploy(sessions, name: str, text: str) -> int:
    with sessions.begin() as s:
        return deploy.deploy_files(s, {name: text.encode()}, by="dora").created[0].id


def _start_reminder(sessions) -> int:
    with sessions.begin() as s:
        return runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0).id


def _event(event) -> dict[str, Any]:
    return {"kind": event.kind, "actor": event.actor, "instance_id": event.instance_id,
            "version_id": event.version_id, "element_id": event.element_id, "task_id": event.task_id,
            "data": json.loads(event.data), "at": event.at}


def _events(sessions, instance_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    with sessions.begin() as s:
        return [_event(e) for e in audit.history(s, instance_id) if kind is None or e.kind == kind]


def _timer_rows(sessions, instance_id: int) -> dict[str, tuple[str, datetime]]:
    with sessions.begin() as s:
        return {t.element_id: (t.task_id, t.due_at)
                for t in s.scalars(select(Timer).where(Timer.instance_id == instance_id))}


def _open_tasks(sessions, instance_id: int) -> list[str]:
    with sessions.begin() as s:
        return sorted(t.element_id for t in inbox.tasks(s, instance_id=instance_id))


# --- firing ------------------------------------------------------------------------------------


def test_a_due_timer_fires_once_and_its_event_says_who_when_and_how_late(sessions):
    version = _deploy(sessions, "reminder.bpmn", REMINDER)
    iid = _start_reminder(sessions)
    [(timer_task, due)] = _timer_rows(sessions, iid).values()
    assert due == LATE
    before = len(_events(sessions, iid))
    now = LATE + timedelta(seconds=90, microseconds=123456)  # 90.123456 s late: 90.123, not 90.1235 or 90
    with sessions.begin() as s:
        assert runtime.fire_instance_timers(s, iid, now=now, actor="night shift") == ["late"]
    events = _events(sessions, iid)[before:]
    # the firing's own records first (the path it took, the task it opened), then its timer_fired
    assert [e["kind"] for e in events] == ["path_taken", "task_created", "timer_fired"]
    assert events[-1] == {
        "kind": "timer_fired", "actor": "night shift", "instance_id": iid, "version_id": version,
        "element_id": "late", "task_id": timer_task,
        "data": {"due_at": "2026-03-16T08:00:00+00:00", "lag_seconds": 90.123}, "at": now}
    assert all(e["actor"] == "night shift" and e["at"] == now for e in events)
    assert _open_tasks(sessions, iid) == ["call", "escalate"]
    assert _timer_rows(sessions, iid) == {}
    with sessions.begin() as s:
        assert runtime.fire_instance_timers(s, iid, now=now + timedelta(days=30)) == []  # fired once
        assert audit.verify(s, iid).ok


def test_the_timer_worker_fires_as_timer_at_its_instant(sessions):
    version = _deploy(sessions, "reminder.bpmn", REMINDER)
    iid = _start_reminder(sessions)
    [(timer_task, _due)] = _timer_rows(sessions, iid).values()
    now = LATE + timedelta(milliseconds=2500)
    assert timers.fire_due_timers(sessions, now=now, worker_id="w1") == 1
    assert _events(sessions, iid, "timer_fired") == [{
        "kind": "timer_fired", "actor": "timer", "instance_id": iid, "version_id": version,
        "element_id": "late", "task_id": timer_task,
        "data": {"due_at": "2026-03-16T08:00:00+00:00", "lag_seconds": 2.5}, "at": now}]


def test_two_timers_of_a_case_due_at_once_both_fire_each_with_its_own_lag(sessions):
    version = _deploy(sessions, "reminder.bpmn", TWO_TIMERS)
    iid = _start_reminder(sessions)
    rows = _timer_rows(sessions, iid)
    assert {element: due for element, (_task, due) in rows.items()} == {
        "late": LATE, "later": T0 + timedelta(days=20)}
    now = T0 + timedelta(days=30)
    with sessions.begin() as s:
        assert sorted(runtime.fire_instance_timers(s, iid, now=now, actor="ops")) == ["late", "later"]
    fired = sorted(_events(sessions, iid, "timer_fired"), key=lambda e: e["element_id"])
    assert fired == [
        {"kind": "timer_fired", "actor": "ops", "instance_id": iid, "version_id": version, "element_id": "late",
         "task_id": rows["late"][0], "data": {"due_at": "2026-03-16T08:00:00+00:00", "lag_seconds": 1382400.0},
         "at": now},
        {"kind": "timer_fired", "actor": "ops", "instance_id": iid, "version_id": version, "element_id": "later",
         "task_id": rows["later"][0], "data": {"due_at": "2026-03-22T08:00:00+00:00", "lag_seconds": 864000.0},
         "at": now},
    ]
    assert _open_tasks(sessions, iid) == ["call", "escalate"]


def test_a_case_with_nothing_due_is_left_as_it_was(sessions):
    _deploy(sessions, "reminder.bpmn", REMINDER)
    iid = _start_reminder(sessions)
    rows = _timer_rows(sessions, iid)
    before = _events(sessions, iid)
    with sessions.begin() as s:
        revision = s.get(Instance, iid).revision
    for _attempt in range(2):  # twice: the second works from what the first left
        with sessions.begin() as s:
            assert runtime.fire_instance_timers(s, iid, now=LATE - timedelta(microseconds=1)) == []
    with sessions.begin() as s:
        assert s.get(Instance, iid).revision == revision
    assert _events(sessions, iid) == before
    assert _timer_rows(sessions, iid) == rows
    with sessions.begin() as s:  # due exactly now: it fires
        assert runtime.fire_instance_timers(s, iid, now=LATE) == ["late"]
    assert _open_tasks(sessions, iid) == ["call", "escalate"]


def test_the_next_action_works_from_the_fired_case(sessions):
    _deploy(sessions, "reminder.bpmn", REMINDER)
    iid = _start_reminder(sessions)
    with sessions.begin() as s:
        runtime.fire_instance_timers(s, iid, now=LATE)
    with sessions.begin() as s:
        [escalate] = [t for t in inbox.tasks(s, instance_id=iid) if t.element_id == "escalate"]
        runtime.complete_task(s, escalate.id, {"handled": True}, by="sam", now=LATE + timedelta(hours=1))
    assert _open_tasks(sessions, iid) == ["call"]
    assert [(e["kind"], e["actor"]) for e in _events(sessions, iid)][-4:] == [
        ("timer_fired", "timer"), ("task_completed", "sam"), ("path_taken", "sam"), ("data_changed", "sam")]
    with sessions.begin() as s:
        assert audit.verify(s, iid).ok


def test_a_firing_rolled_back_leaves_nothing_and_fires_again(sessions):
    _deploy(sessions, "reminder.bpmn", REMINDER)
    iid = _start_reminder(sessions)
    rows = _timer_rows(sessions, iid)
    before = _events(sessions, iid)
    with pytest.raises(RuntimeError), sessions.begin() as s:
        assert runtime.fire_instance_timers(s, iid, now=LATE) == ["late"]
        raise RuntimeError("the caller gives up")
    assert _events(sessions, iid) == before
    assert _timer_rows(sessions, iid) == rows
    assert _open_tasks(sessions, iid) == ["call"]
    with sessions.begin() as s:
        assert runtime.fire_instance_timers(s, iid, now=LATE + timedelta(minutes=1)) == ["late"]
    assert [e["at"] for e in _events(sessions, iid, "timer_fired")] == [LATE + timedelta(minutes=1)]
    assert _open_tasks(sessions, iid) == ["call", "escalate"]
    with sessions.begin() as s:
        assert audit.verify(s, iid).ok


# --- migrating ---------------------------------------------------------------------------------

MIGRATED = T0 + timedelta(days=3, seconds=7)


def test_a_migration_is_recorded_in_full_and_the_next_action_uses_the_new_version(sessions):
    _deploy(sessions, "reminder.bpmn", REMINDER)  # another process first: version ids are not version numbers
    v1 = _deploy(sessions, "order.bpmn", ORDER)
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 5000},
                                     now=T0).id
    v2 = _deploy(sessions, "order.bpmn", ORDER_RENAMED)
    assert (v1, v2) == (2, 3)
    before = len(_events(sessions, iid))
    with sessions.begin() as s:
        migrate.migrate_instance(s, iid, v2, by="dora", source_id=v1, now=MIGRATED)
    assert _events(sessions, iid)[before:] == [{
        "kind": "instance_migrated", "actor": "dora", "instance_id": iid, "version_id": v2,
        "element_id": None, "task_id": None,
        "data": {"message": "migrated from v1 to v2", "from_version_id": v1, "to_version_id": v2,
                 "from": 1, "to": 2},
        "at": MIGRATED}]
    with sessions.begin() as s:
        assert audit.verify(s, iid).ok
        [review] = inbox.tasks(s, instance_id=iid)
        assert review.name == "Check the order"
        runtime.complete_task(s, review.id, {"channel": "phone"}, by="anna", now=MIGRATED)
    with sessions.begin() as s:
        [approve] = inbox.tasks(s, instance_id=iid)
        assert (approve.element_id, approve.name) == ("approve", "Sign off large order")
    [created] = [e for e in _events(sessions, iid, "task_created") if e["element_id"] == "approve"]
    assert (created["version_id"], created["data"]["name"]) == (v2, "Sign off large order")


def test_a_task_the_new_version_no_longer_has_is_cancelled_by_the_migration(sessions):
    _deploy(sessions, "c_receiver.bpmn", RECEIVER_BY_HAND)
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "c_receiver", by="anna", now=T0).id
        [confirm] = inbox.tasks(s, instance_id=iid)
    v2 = _deploy(sessions, "c_receiver.bpmn", RECEIVER)
    before = len(_events(sessions, iid))
    with sessions.begin() as s:
        migrate.migrate_instance(s, iid, v2, by="dora", now=MIGRATED)
    assert [e["kind"] for e in _events(sessions, iid)[before:]] == ["instance_migrated", "task_cancelled"]
    assert _events(sessions, iid, "task_cancelled") == [{
        "kind": "task_cancelled", "actor": "dora", "instance_id": iid, "version_id": v2,
        "element_id": "wait_ready", "task_id": confirm.id, "data": {}, "at": MIGRATED}]
    with sessions.begin() as s:
        row = s.get(Task, confirm.id)
        assert (row.state, row.completed_at, row.completed_by) == (TaskStatus.CANCELLED, MIGRATED, None)
        assert inbox.tasks(s, instance_id=iid) == []
    with sessions.begin() as s:  # the case now waits for the message instead
        assert runtime.deliver_message(s, "order_ready", by="erp", now=MIGRATED + timedelta(hours=1)) == [iid]
    assert _open_tasks(sessions, iid) == ["handle"]


def test_a_case_the_engine_cannot_move_is_refused_by_name_and_left_untouched(sessions):
    v1 = _deploy(sessions, "reminder.bpmn", REMINDER)
    iid = _start_reminder(sessions)
    v2 = _deploy(sessions, "reminder.bpmn", REMINDER_WITHOUT_LATE)  # the waiting timer `late` is gone
    before = _events(sessions, iid)
    with sessions.begin() as s:
        state = s.get(Instance, iid).state
    for _attempt in range(2):
        with pytest.raises(NotAllowed) as refused, sessions.begin() as s:
            runtime.change_version(s, iid, s.get(ProcessVersion, v2), lambda _instance, _workflow: None,
                                   by="dora", now=MIGRATED)
        message = str(refused.value)
        assert message.startswith(f"instance {iid} cannot migrate: ") and len(message) > len(
            f"instance {iid} cannot migrate: ")
    with sessions.begin() as s:
        row = s.get(Instance, iid)
        assert (row.version_id, row.state) == (v1, state)
    assert _events(sessions, iid) == before
    with sessions.begin() as s:  # its timer still fires, on the version it stayed on
        assert runtime.fire_instance_timers(s, iid, now=LATE) == ["late"]
    assert [e["version_id"] for e in _events(sessions, iid, "timer_fired")] == [v1]


def test_a_case_waiting_for_a_message_cannot_move_where_that_step_is_a_user_task(sessions):
    # the other way round from the test above: SpiffWorkflow would keep the user task among its message
    # waits and every later step of the case would fail, so the migration is refused before anything moves
    v1 = _deploy(sessions, "c_receiver.bpmn", RECEIVER)
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "c_receiver", by="anna", now=T0).id
    v2 = _deploy(sessions, "c_receiver.bpmn", RECEIVER_BY_HAND)
    with sessions.begin() as s:
        [candidate] = migrate.preview(s, v1, v2)
    assert candidate.blocked == [("it waits at 'Wait until ready' (wait_ready), a receiveTask that v2 makes a "
                                  "userTask: a step a case waits at cannot change its kind")]
    runtime.forget_cache()  # the refusal comes from the stored state, not from an instance held in memory
    with pytest.raises(NotAllowed, match="cannot change its kind"), sessions.begin() as s:
        migrate.migrate_instance(s, iid, v2, by="dora", now=MIGRATED)
    with sessions.begin() as s:  # still on v1, and the message still moves it on
        assert s.get(Instance, iid).version_id == v1
        assert runtime.deliver_message(s, "order_ready", by="erp", now=MIGRATED) == [iid]
    assert _open_tasks(sessions, iid) == ["handle"]
