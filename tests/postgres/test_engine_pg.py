"""The engine on PostgreSQL: the order round trip, timers, one winner of two writers, audit, UTC."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from engine import audit, inbox, runtime, timers
from engine.errors import Conflict, TaskNotAvailable
from engine.models import AuditEvent, Instance, InstanceStatus, Task, Timer

from .conftest import deploy_models

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module", autouse=True)
def _models(sessions):
    deploy_models(sessions, "order.bpmn", "reminder.bpmn")


def _open_tasks(sessions, instance_id):
    with sessions.begin() as s:
        return [(t.id, t.element_id) for t in inbox.tasks(s, instance_id=instance_id)]


def test_database_is_postgresql(sessions):
    with sessions.begin() as s:
        assert s.get_bind().dialect.name == "postgresql"
        assert s.scalar(text("SELECT current_database()")).startswith("polku_test_")


def test_order_round_trip_with_incident_retry_and_message(sessions):
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 500},
                                     business_key="rt-1", now=T0).id
    runtime.forget_cache()
    [(tid, element)] = _open_tasks(sessions, iid)
    assert element == "review"
    with sessions.begin() as s:
        runtime.complete_task(s, tid, {"channel": "phone", "approved_by_expert": True}, by="anna", now=T0)
    runtime.forget_cache()
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        assert incident.element_id == "compute" and "divisor" in incident.message
        assert runtime.get_instance(s, iid).open_incidents == 1
    with sessions.begin() as s:
        assert str(runtime.retry_incident(s, incident.id, by="admin", data={"divisor": 2}, now=T0).status) \
            == "resolved"
    runtime.forget_cache()
    with sessions.begin() as s:
        assert runtime.instance_variables(s, iid)["price"] == 310.0
        assert runtime.deliver_message(s, "payment_received", by="bank", data={"paid": True, "ref": "ä€"},
                                       business_key="rt-1", now=T0) == [iid]
    with sessions.begin() as s:
        instance = runtime.get_instance(s, iid)
        assert instance.status == InstanceStatus.COMPLETED and instance.open_incidents == 0
        assert runtime.instance_variables(s, iid)["ref"] == "ä€"
        kinds = [e.kind for e in audit.history(s, iid)]
        assert kinds[0] == "instance_started" and kinds[-1] == "instance_completed"
        for expected in ("task_completed", "incident_raised", "incident_resolved", "message_received"):
            assert expected in kinds
        assert audit.verify(s, iid).ok


def test_boundary_timer_fires_once_into_an_escalation_task(sessions):
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0).id
    with sessions.begin() as s:
        [row] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        assert row.due_at == T0 + timedelta(days=14)
    runtime.forget_cache()
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=13)) == 0
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=14, seconds=1)) == 1
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=30)) == 0
    assert sorted(e for _, e in _open_tasks(sessions, iid)) == ["call", "escalate"]
    with sessions.begin() as s:
        fired = s.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid,
                                                   AuditEvent.kind == "timer_fired")).all()
        assert len(fired) == 1 and '"lag_seconds":1.0' in fired[0].data
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.instance_id == iid)) == 0


def test_two_sessions_completing_the_same_task_exactly_one_succeeds(sessions):
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 5000}).id
        [task] = inbox.tasks(s, instance_id=iid)
    runtime.forget_cache()
    loaded = threading.Barrier(2, timeout=20)
    outcomes: list[str] = []

    def complete(user: str) -> None:
        try:
            with sessions.begin() as s:
                s.get(Instance, iid)
                s.get(Task, task.id)  # both hold the task as READY before either commits
                loaded.wait()
                runtime.complete_task(s, task.id, {"channel": "phone"}, by=user)
            outcomes.append("ok")
        except (Conflict, TaskNotAvailable) as err:
            outcomes.append(type(err).__name__)
        except Exception as err:  # anything else fails the test below, with its name
            outcomes.append(repr(err))

    threads = [threading.Thread(target=complete, args=(u,)) for u in ("anna", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count("ok") == 1 and len(outcomes) == 2, outcomes
    assert set(outcomes) - {"ok"} <= {"Conflict", "TaskNotAvailable"}, outcomes
    assert [e for _, e in _open_tasks(sessions, iid)] == ["approve"]
    with sessions.begin() as s:
        completed = s.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid,
                                                       AuditEvent.kind == "task_completed")).all()
        assert len(completed) == 1
        assert audit.verify(s, iid).ok


def test_audit_chains_of_the_whole_database_verify(sessions):
    with sessions.begin() as s:
        result = audit.verify(s)
        assert result.ok and result.events > 0


def test_aware_datetimes_come_back_in_utc(sessions):
    helsinki = timezone(timedelta(hours=2))
    started = datetime(2026, 3, 2, 10, 30, 15, 123456, tzinfo=helsinki)
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "reminder", by="anna", data={"due": "P1D"}, now=started).id
    with sessions() as s, s.begin():
        s.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))  # the session zone must not leak in
        instance = s.get(Instance, iid)
        [task] = inbox.tasks(s, instance_id=iid)
        [timer] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        values = [instance.started_at, task.created_at, task.due_at, timer.due_at]
    for value in values:
        assert value.utcoffset() == timedelta(0) and value.tzinfo == timezone.utc, value
    assert instance.started_at == started and instance.started_at.hour == 8
    assert task.due_at == started + timedelta(days=1)
    assert timer.due_at == started + timedelta(days=14)
