"""Engine actions (engine.runtime) stated from what they promise: completing, refusing, cancelling,
retrying and delivering, with the rows and audit events each leaves.

The model is tests/engine/bpmn/order.bpmn: `review` (expert, assignee `${owner}`) → `compute`
(a script dividing by `divisor`, which fails without it) → waits for `payment_received` → end.
Receivers of thrown messages: c_receiver.bpmn / c_send.bpmn.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import audit, external, runtime
from engine.deploy import deploy_files
from engine.errors import InstanceNotFound, InvalidInput, NotFound, TaskNotAvailable
from engine.models import (
    ExternalTask,
    ExternalTaskState,
    Incident,
    IncidentStatus,
    InstanceStatus,
    MessageWait,
    Task,
    TaskStatus,
)

from .conftest import MODELS

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
KEY = "0737546-2"
DATA = {"channel": "phone", "approved_by_expert": True}


def _start(sessions, key=KEY, **start):
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 500, **start},
                                     business_key=key, now=T0, validate_form=False).id
        [task_id] = s.scalars(select(Task.id).where(Task.instance_id == iid))
    return iid, task_id


def _events(s, iid, kind):
    return [audit.event_dict(e) for e in audit.history(s, iid) if e.kind == kind]


def _at_payment(sessions, key=KEY):
    """Return an instance waiting for payment_received (its script incident resolved)."""
    iid, task_id = _start(sessions, key, divisor=2)
    with sessions.begin() as s:
        runtime.complete_task(s, task_id, DATA, by="anna", now=T0)
    return iid


def test_completing_records_who_when_and_what_was_submitted(sessions, deploy):
    deploy("order.bpmn")
    iid, task_id = _start(sessions, divisor=2)
    with sessions.begin() as s:
        runtime.complete_task(s, task_id, DATA, by="anna", roles={"expert"}, now=T1)
    runtime.forget_cache()
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        assert (row.state, row.completed_by, row.completed_at, row.assignee) == (
            TaskStatus.COMPLETED, "anna", T1, "anna")
        [event] = _events(s, iid, "task_completed")
        assert (event["actor"], event["element_id"], event["task_id"]) == ("anna", "review", task_id)
        assert event["data"] == {"name": "Review order", "submitted": {**DATA, "note": None}}  # the form's clean values
        assert runtime.instance_variables(s, iid)["channel"] == "phone"


def test_a_supervisor_completing_someone_elses_task_leaves_it_theirs(sessions, deploy):
    deploy("order.bpmn")
    _iid, task_id = _start(sessions, owner="bertta", divisor=2)
    with sessions.begin() as s:
        assert s.get(Task, task_id).assignee == "bertta"
        runtime.complete_task(s, task_id, DATA, by="sanna", roles={"supervisor"}, now=T1)
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        assert (row.completed_by, row.assignee) == ("sanna", "bertta")


@pytest.mark.parametrize("holder, by, roles, message", [
    ("bertta", "anna", {"expert"}, "this task is assigned to bertta"),
    ("bertta", "anna", {"expert", "auditor"}, "this task is assigned to bertta"),
    (None, "anna", {"designer"}, "this task belongs to the expert role"),
    (None, "anna", set(), "this task belongs to the expert role"),
])
def test_refusals_say_why(sessions, deploy, holder, by, roles, message):
    deploy("order.bpmn")
    _iid, task_id = _start(sessions, **({"owner": holder} if holder else {}))
    with sessions.begin() as s, pytest.raises(TaskNotAvailable) as refused:
        runtime.complete_task(s, task_id, DATA, by=by, roles=roles, now=T1)
    assert str(refused.value) == message
    with sessions.begin() as s:
        assert s.get(Task, task_id).state == TaskStatus.READY


def test_assigned_to_the_actor_or_done_by_an_admin_or_the_cli_is_allowed(sessions, deploy):
    deploy("order.bpmn")
    for holder, by, roles in (("anna", "anna", {"designer"}), ("bertta", "anna", {"admin"}),
                              (None, "anna", {"admin"}), ("bertta", "anna", None)):
        _iid, task_id = _start(sessions, **({"owner": holder} if holder else {}), divisor=2)
        with sessions.begin() as s:
            runtime.complete_task(s, task_id, DATA, by=by, roles=roles, now=T1)
        with sessions.begin() as s:
            assert s.get(Task, task_id).completed_by == "anna"


def test_a_done_task_says_by_whom_and_a_cancelled_one_says_so(sessions, deploy):
    deploy("order.bpmn")
    iid, task_id = _start(sessions, divisor=2)
    with sessions.begin() as s:
        runtime.complete_task(s, task_id, DATA, by="anna", now=T1)
    with sessions.begin() as s, pytest.raises(TaskNotAvailable) as refused:
        runtime.complete_task(s, task_id, DATA, by="anna", now=T1)
    assert str(refused.value) == "this task was already completed by anna"
    iid, task_id = _start(sessions)
    with sessions.begin() as s:
        runtime.cancel_instance(s, iid, by="sanna", now=T1)
    with sessions.begin() as s, pytest.raises(TaskNotAvailable) as refused:
        runtime.complete_task(s, task_id, DATA, by="anna", now=T1)
    assert str(refused.value) == "this task was already cancelled"


def test_cancelling_ends_the_case_its_tasks_and_waits_once(sessions, deploy):
    deploy("order.bpmn")
    waiting = _at_payment(sessions)
    iid, task_id = _start(sessions, "2617416-4")
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(MessageWait).where(MessageWait.instance_id == waiting)) == 1
        runtime.cancel_instance(s, waiting, by="sanna", reason="customer left", now=T1)
    with sessions.begin() as s:
        instance = runtime.get_instance(s, waiting)
        assert (instance.status, instance.ended_at) == (InstanceStatus.CANCELLED, T1)
        assert s.scalar(select(func.count()).select_from(MessageWait).where(MessageWait.instance_id == waiting)) == 0
        [event] = _events(s, waiting, "instance_cancelled")
        assert (event["actor"], event["data"]) == ("sanna", {"reason": "customer left"})
        assert (event["at"], event["version_id"]) == (T1.isoformat(), instance.version_id)
        [done] = s.scalars(select(Task).where(Task.instance_id == waiting))  # completed before: stays so
        assert (done.state, done.completed_at) == (TaskStatus.COMPLETED, T0)
        assert runtime.get_instance(s, iid).status == InstanceStatus.RUNNING
        assert s.get(Task, task_id).state == TaskStatus.READY  # another case's task is untouched
    with sessions.begin() as s, pytest.raises(NotFound):
        runtime.deliver_message(s, "payment_received", by="bank", instance_id=waiting, now=T1)
    with sessions.begin() as s, pytest.raises(TaskNotAvailable, match=f"instance {waiting} is already cancelled"):
        runtime.cancel_instance(s, waiting, by="sanna", now=T1)
    with sessions.begin() as s, pytest.raises(InstanceNotFound):
        runtime.cancel_instance(s, 999, by="sanna", now=T1)
    with sessions.begin() as s:
        runtime.cancel_instance(s, iid, by="sanna", now=T1)
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        assert (row.state, row.completed_at) == (TaskStatus.CANCELLED, T1)
        assert _events(s, iid, "instance_cancelled")[0]["data"] == {"reason": ""}


def test_cancelling_ends_the_cases_open_worker_tasks_and_no_others(sessions, deploy):
    deploy("external_service.bpmn")
    with sessions.begin() as s:
        done, held, other = (runtime.start_instance(s, "external_service", by="anna", data={"company": "Acme"},
                                                    business_key=KEY, now=T0).id for _ in range(3))
    with sessions.begin() as s:
        tasks = {t.instance_id: t.id for t in external.fetch_and_lock(s, "w1", ["registry"], max_tasks=3, now=T0)}
    with sessions.begin() as s:
        external.complete(s, tasks[done], "w1", {"status": "active"}, now=T0)  # the case goes on to its review
    for iid in (done, held):
        with sessions.begin() as s:
            runtime.cancel_instance(s, iid, by="sanna", now=T1)
    with sessions.begin() as s:
        rows = {iid: s.get(ExternalTask, tasks[iid]) for iid in (done, held, other)}
        assert [(r.state, r.ended_at, r.ended_by, r.lock_owner, r.lock_expires_at) for r in rows.values()] == [
            (ExternalTaskState.COMPLETED, T0, "w1", None, None),
            (ExternalTaskState.CANCELLED, T1, "sanna", None, None),
            (ExternalTaskState.OPEN, None, None, "w1", T0 + timedelta(seconds=60)),
        ]


def _incident(sessions):
    iid, task_id = _start(sessions)
    with sessions.begin() as s:
        runtime.complete_task(s, task_id, DATA, by="anna", now=T0)
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        return iid, incident.id


def test_a_retry_that_fails_again_keeps_the_incident_open(sessions, deploy):
    deploy("order.bpmn")
    iid, incident_id = _incident(sessions)
    with sessions.begin() as s:  # the script's error with its line, retried by running the steps again
        first = s.get(Incident, incident_id)
        assert (first.element_id, first.action, first.created_at) == ("compute", {"kind": "steps"}, T0)
        assert first.message.startswith("NameError:name 'divisor' is not defined") and \
            first.message.endswith(" (line 1)")
        incident = runtime.retry_incident(s, incident_id, by="admin", now=T1)
        assert incident.status == IncidentStatus.OPEN and "divisor" in incident.message
    runtime.forget_cache()
    with sessions.begin() as s:
        assert s.get(Incident, incident_id).status == IncidentStatus.OPEN
        assert runtime.get_instance(s, iid).open_incidents == 1
        assert _events(s, iid, "incident_resolved") == []
    with sessions.begin() as s, pytest.raises(NotFound, match="no incident 999"):
        runtime.retry_incident(s, 999, by="admin", now=T1)
    with sessions.begin() as s, pytest.raises(InvalidInput, match=r"^retry data: divisor is a object object"):
        runtime.retry_incident(s, incident_id, by="admin", data={"divisor": object()}, now=T1)


def test_a_successful_retry_resolves_and_records_who_when_and_the_data(sessions, deploy):
    deploy("order.bpmn")
    iid, incident_id = _incident(sessions)
    with sessions.begin() as s:
        runtime.retry_incident(s, incident_id, by="admin", data={"divisor": 2}, now=T1)
    runtime.forget_cache()
    with sessions.begin() as s:
        incident = s.get(Incident, incident_id)
        assert (incident.status, incident.resolved_by, incident.resolved_at) == (IncidentStatus.RESOLVED, "admin", T1)
        assert runtime.get_instance(s, iid).open_incidents == 0
        [event] = _events(s, iid, "incident_resolved")
        assert (event["actor"], event["element_id"]) == ("admin", "compute")
        assert (event["at"], event["version_id"]) == (T1.isoformat(), runtime.get_instance(s, iid).version_id)
        assert event["data"] == {"incident_id": incident_id, "data": {"divisor": 2}}
        assert runtime.instance_variables(s, iid)["price"] == 310.0
        assert runtime.deliver_message(s, "payment_received", by="bank", instance_id=iid, now=T1) == [iid]


def test_a_message_reaches_the_waiting_cases_it_is_narrowed_to(sessions, deploy):
    deploy("order.bpmn")
    first, second = _at_payment(sessions), _at_payment(sessions, "2617416-4")
    _idle, _task = _start(sessions, "5678901-2")  # not waiting: never a target
    with sessions.begin() as s, pytest.raises(InvalidInput, match="cannot start with 'signal:'"):
        runtime.deliver_message(s, "signal:payment_received", by="bank", now=T1)
    with sessions.begin() as s, pytest.raises(NotFound, match="waiting for message 'nothing'"):
        runtime.deliver_message(s, "nothing", by="bank", now=T1)
    with sessions.begin() as s, pytest.raises(NotFound):
        runtime.deliver_message(s, "payment_received", by="bank", instance_id=first, business_key="2617416-4",
                                now=T1)
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "payment_received", by="bank", instance_id=second, data={"paid": 1},
                                       now=T1) == [second]
    runtime.forget_cache()
    with sessions.begin() as s:
        assert runtime.get_instance(s, first).status == InstanceStatus.RUNNING
        assert runtime.get_instance(s, second).status == InstanceStatus.COMPLETED
        [event] = _events(s, second, "message_received")
        assert (event["actor"], event["data"]) == ("bank", {"name": "payment_received", "payload": {"paid": 1}})
        assert runtime.instance_variables(s, second)["paid"] == 1
    third = _at_payment(sessions, "2617416-4")
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "payment_received", by="bank", now=T1) == [first, third]


def test_a_thrown_message_goes_only_to_running_cases_of_its_customer_not_back_to_itself(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn")
    with sessions.begin() as s:
        same = runtime.start_instance(s, "c_receiver", by="t", business_key=KEY, now=T0).id
        gone = runtime.start_instance(s, "c_receiver", by="t", business_key=KEY, now=T0).id
        runtime.start_instance(s, "c_receiver", by="t", now=T0)  # no customer: never reached by a keyed throw
        runtime.cancel_instance(s, gone, by="t", now=T0)
    with sessions.begin() as s:
        sender = runtime.start_instance(s, "c_sender", by="t", data={"amount": 1}, business_key=KEY, now=T1).id
    with sessions.begin() as s:
        [thrown] = [e["data"] for e in _events(s, sender, "message_thrown") if e["data"]["name"] == "order_ready"]
        assert (thrown["delivered_to"], thrown["started"]) == ([same], [])
        assert thrown["payload"] == {"amount": 1}  # a send task without a payload sends the case's data
        [opened] = [e["data"] for e in _events(s, sender, "message_thrown") if e["data"]["name"] == "new_case"]
        assert (opened["payload"], opened["delivered_to"], opened["started"]) == ({"amount": 2}, [], [])
        [received] = _events(s, same, "message_received")
        assert received["actor"] == "t"


def test_a_case_without_a_customer_throws_to_nobody(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn")
    with sessions.begin() as s:
        waiting = runtime.start_instance(s, "c_receiver", by="t", now=T0).id
        sender = runtime.start_instance(s, "c_sender", by="t", data={"amount": 1}, now=T1).id
    with sessions.begin() as s:
        [thrown] = [e["data"] for e in _events(s, sender, "message_thrown") if e["data"]["name"] == "order_ready"]
        assert thrown["delivered_to"] == []
        assert _events(s, waiting, "message_received") == []


def test_retrying_a_timer_incident_fires_the_timer_again(sessions, deploy):
    deploy("timer_script.bpmn")  # waits a day, then `share = 100 / parts`
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "timer_script", by="anna", data={"parts": 0}, now=T0).id
    due = T0 + timedelta(days=1)
    with sessions.begin() as s:
        assert runtime.fire_instance_timers(s, iid, now=due) == []
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        assert incident.action == {"kind": "timers"}
        runtime.retry_incident(s, incident.id, by="admin", data={"parts": 4}, now=due)  # due at that instant
    with sessions.begin() as s:
        assert s.get(Incident, incident.id).status == IncidentStatus.RESOLVED
        assert runtime.instance_variables(s, iid)["share"] == 25.0
        assert [t["element_id"] for t in runtime.instance_summary(s, iid)["tasks"] if t["state"] == "ready"] == [
            "report"]


def test_retrying_a_worker_incident_gives_the_task_back_to_workers_with_one_retry(sessions, deploy):
    deploy("external_service.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "external_service", by="anna", data={"company": "Acme"}, now=T0).id
    with sessions.begin() as s:
        [task] = external.fetch_and_lock(s, "w1", ["registry"], lock_seconds=600, now=T0)
    with sessions.begin() as s:
        external.fail(s, task.id, "w1", "registry down", retries=0, now=T0)
    with sessions.begin() as s:
        assert external.fetch_and_lock(s, "w2", ["registry"], now=T1) == []  # no retries left
        [incident] = runtime.open_incidents(s, iid)
        runtime.retry_incident(s, incident.id, by="sanna", now=T1)
    with sessions.begin() as s:
        [again] = external.fetch_and_lock(s, "w2", ["registry"], now=T1)
        assert (again.id, again.retries) == (task.id, 1)


def test_a_retry_that_leaves_the_case_stuck_opens_an_incident_saying_so(sessions, caplog):
    # c_deadlock with a script that needs `suffix` on the branch into the parallel join
    model = (MODELS / "c_deadlock.bpmn").read_text(encoding="utf-8").replace('went = "a"', 'went = "a" + suffix')
    with sessions.begin() as s:
        deploy_files(s, {"c_deadlock.bpmn": model.encode()}, by="designer")
        iid = runtime.start_instance(s, "c_deadlock", by="anna", data={"pick": "a"}, now=T0).id
        [task_id] = s.scalars(select(Task.id).where(Task.instance_id == iid))
    with sessions.begin() as s:
        runtime.complete_task(s, task_id, {}, by="anna", now=T0)
    with sessions.begin() as s:
        [failed] = runtime.open_incidents(s, iid)
        assert failed.element_id == "a"
        runtime.retry_incident(s, failed.id, by="admin", data={"suffix": "!"}, now=T1)
    with sessions.begin() as s:
        [stuck] = runtime.open_incidents(s, iid)
        assert (stuck.element_id, stuck.created_at, stuck.action) == ("join", T1, {"kind": "steps"})
        assert stuck.message == ("the case cannot go on: it waits at join, and nothing (no task, timer, message, "
                                 "signal or worker) can move it on")  # no script's error: no line
        raised = _events(s, iid, "incident_raised")[-1]
        assert (raised["actor"], raised["at"], raised["version_id"], raised["element_id"], raised["data"]) == (
            "admin", T1.isoformat(), runtime.get_instance(s, iid).version_id, "join",
            {"incident_id": stuck.id, "message": stuck.message})
    assert f"incident {stuck.id} on instance {iid} at join: the case cannot go on" in caplog.text


def test_a_cases_variables_are_read_as_stored_with_this_sessions_changes(sessions, deploy):
    from engine.models import Variable

    deploy("order.bpmn")
    iid, _task_id = _start(sessions, divisor=2)
    with sessions.begin() as s:
        held = s.scalars(select(Variable).where(Variable.instance_id == iid, Variable.name == "amount")).one()
        held.value = 650  # changed in this session, not yet flushed
        s.add(Variable(instance_id=iid, name="note", value={"text": "soitettu"}, updated_at=T1))
        found = runtime.instance_variables(s, iid)
        assert (found["amount"], found["note"], found["customer"]) == (650, {"text": "soitettu"}, "Acme Oy")
        s.rollback()
    with sessions.begin() as s:
        assert runtime.instance_variables(s, iid)["amount"] == 500 and "note" not in runtime.instance_variables(s, iid)
    with sessions.begin() as s:
        held = s.scalars(select(Variable).where(Variable.instance_id == iid, Variable.name == "amount")).one()
        with s.no_autoflush:  # the caller holds its changes back: the read gives what is stored
            held.value = 900
            assert runtime.instance_variables(s, iid)["amount"] == 500
        s.rollback()
