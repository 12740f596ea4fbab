"""Start, complete, message, incidents and retries through the engine API (scenarios run twice)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine import audit, inbox, runtime
from engine.errors import FormInvalid, TaskNotAvailable
from engine.models import Incident, InstanceStatus, Task, TaskStatus

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _start(sessions, **data):
    payload = {"customer": "Acme Oy", "amount": 500, **data.pop("start", {})}
    with sessions.begin() as s:
        inst = runtime.start_instance(s, "order", by="anna", data=payload, business_key="0737546-2", now=T0)
        return inst.id


def _open_tasks(sessions, instance_id):
    with sessions.begin() as s:
        return [(t.id, t.element_id, t.assignee, t.candidate_role) for t in inbox.tasks(s, instance_id=instance_id)]


def test_order_happy_path_runs_to_completion(sessions, deploy, step):
    deploy("order.bpmn")
    iid = _start(sessions)
    step()
    [(tid, element, assignee, role)] = _open_tasks(sessions, iid)
    assert (element, role, assignee) == ("review", "expert", None)
    with sessions.begin() as s:
        s.execute(select(Task)).all()
        runtime.complete_task(s, tid, {"channel": "phone", "approved_by_expert": True}, by="anna", now=T0)
    step()
    with sessions.begin() as s:
        # divisor is missing: the script fails, an incident is opened, the case waits at the script
        incidents = runtime.open_incidents(s, iid)
        assert len(incidents) == 1 and incidents[0].element_id == "compute"
        assert "divisor" in incidents[0].message
        assert runtime.get_instance(s, iid).status == InstanceStatus.RUNNING
    step()
    with sessions.begin() as s:
        incident = runtime.retry_incident(s, incidents[0].id, by="admin", data={"divisor": 2}, now=T0)
        assert str(incident.status) == "resolved"
    step()
    with sessions.begin() as s:
        assert runtime.instance_variables(s, iid)["price"] == 310.0
        assert runtime.deliver_message(s, "payment_received", by="bank", data={"paid": True},
                                       business_key="0737546-2", now=T0) == [iid]
    step()
    with sessions.begin() as s:
        inst = runtime.get_instance(s, iid)
        assert inst.status == InstanceStatus.COMPLETED
        assert runtime.instance_variables(s, iid)["paid"] is True
        kinds = [e.kind for e in audit.history(s, iid)]
        assert kinds[0] == "instance_started" and kinds[-1] == "instance_completed"
        for expected in ("task_created", "task_completed", "data_changed", "incident_raised",
                         "incident_resolved", "message_received"):
            assert expected in kinds
        assert audit.verify(s, iid).ok


def test_large_order_goes_to_supervisor_lane(sessions, deploy, step):
    deploy("order.bpmn")
    iid = _start(sessions, start={"amount": 5000})
    step()
    [(tid, *_)] = _open_tasks(sessions, iid)
    with sessions.begin() as s:
        runtime.complete_task(s, tid, {"channel": "email"}, by="anna", now=T0)
    step()
    [(tid2, element, _assignee, role)] = _open_tasks(sessions, iid)
    assert (element, role) == ("approve", "supervisor")
    with sessions.begin() as s, pytest.raises(TaskNotAvailable):
        runtime.complete_task(s, tid2, {"approved": True}, by="anna", roles={"expert"}, now=T0)
    with sessions.begin() as s:
        runtime.complete_task(s, tid2, {"approved": True}, by="sam", roles={"supervisor"}, now=T0)
        assert runtime.instance_variables(s, iid)["approved"] is True


def test_form_errors_name_every_field_and_store_nothing(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s, pytest.raises(FormInvalid) as err:
        runtime.start_instance(s, "order", by="anna", data={"customer": "A", "amount": 0, "x": 1})
    assert set(err.value.errors) == {"customer", "amount", "x"}
    iid = _start(sessions)
    [(tid, *_)] = _open_tasks(sessions, iid)
    with sessions.begin() as s, pytest.raises(FormInvalid) as err:
        runtime.complete_task(s, tid, {"channel": "fax", "note": "x" * 21}, by="anna")
    assert set(err.value.errors) == {"channel", "note"}
    assert err.value.values["note"] == "x" * 21
    with sessions.begin() as s:
        assert s.get(Task, tid).state == TaskStatus.READY


def test_completed_task_cannot_be_completed_again(sessions, deploy):
    deploy("order.bpmn")
    iid = _start(sessions, start={"amount": 5000})
    [(tid, *_)] = _open_tasks(sessions, iid)
    with sessions.begin() as s:
        runtime.complete_task(s, tid, {"channel": "phone"}, by="anna")
    with sessions.begin() as s, pytest.raises(TaskNotAvailable):
        runtime.complete_task(s, tid, {"channel": "phone"}, by="bob")


def test_assignee_expression_and_due_date_fill_the_task_row(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        # owner is not a start-form field: pass it unvalidated, as a parent process would
        inst = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 3, "owner": "eeva"},
                                      now=T0, validate_form=False)
        [task] = inbox.tasks(s, instance_id=inst.id)
        assert task.assignee == "eeva"
        assert task.due_at == T0.replace(day=5)


def test_script_sandbox_violation_becomes_incident(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        inst = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 3,
                                      "divisor": "__import__('os')"}, validate_form=False)
        [task] = inbox.tasks(s, instance_id=inst.id)
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna")
    with sessions.begin() as s:
        [incident] = s.scalars(select(Incident)).all()
        assert incident.element_id == "compute"
