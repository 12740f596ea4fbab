"""Timers: due rows in the database, fired once at the engine's instant, overdue tasks, cycles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from engine import audit, inbox, runtime, timers
from engine.models import AuditEvent, Timer

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _start(sessions, step):
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0).id
    step()
    return iid


def test_boundary_timer_row_has_due_time_and_fires_once(sessions, deploy, step):
    deploy("reminder.bpmn")
    iid = _start(sessions, step)
    with sessions.begin() as s:
        [row] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        assert row.element_id == "late" and row.due_at == T0 + timedelta(days=14)
        [task] = inbox.tasks(s, instance_id=iid)
        assert task.due_at == T0 + timedelta(days=7)
        assert inbox.overdue(s, now=T0 + timedelta(days=8)) == [task]
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=13)) == 0
    step()
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=14, seconds=1)) == 1
    step()
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=30)) == 0
    with sessions.begin() as s:
        open_tasks = {t.element_id: t.candidate_role for t in inbox.tasks(s, instance_id=iid)}
        assert open_tasks == {"call": "expert", "escalate": "supervisor"}
        fired = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "timer_fired"))
        assert fired == 1
        assert audit.verify(s).ok


def test_completing_before_due_removes_the_timer(sessions, deploy, step):
    deploy("reminder.bpmn")
    iid = _start(sessions, step)
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        runtime.complete_task(s, task.id, {"reached": True}, by="anna", now=T0 + timedelta(days=1))
    step()
    with sessions.begin() as s:
        assert s.scalars(select(Timer)).all() == []
        assert str(runtime.get_instance(s, iid).status) == "completed"
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=30)) == 0


def test_overdue_timers_fire_in_due_order_after_a_long_gap(sessions, deploy):
    deploy("reminder.bpmn")
    ids = []
    for offset in (3, 1, 2):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "reminder", by="anna", data={"due": "P1D"},
                                              now=T0 + timedelta(hours=offset)).id)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=60)) == 3
    with sessions.begin() as s:
        order = [e.instance_id for e in s.scalars(select(AuditEvent).where(AuditEvent.kind == "timer_fired")
                                                  .order_by(AuditEvent.id))]
    assert order == [ids[1], ids[2], ids[0]]


def _checks(sessions, iid):
    with sessions.begin() as s:
        return [t for t in inbox.tasks(s, instance_id=iid) if t.element_id == "check"]


def test_cycle_fires_every_period_and_does_not_replay_missed_cycles(sessions, deploy, step):
    deploy("progress.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "progress", by="anna", now=T0).id
        [row] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        first_due = row.due_at
    assert timedelta(days=89) <= first_due - T0 <= timedelta(days=92)
    step()
    assert timers.fire_due_timers(sessions, now=first_due + timedelta(seconds=1)) == 1
    assert len(_checks(sessions, iid)) == 1
    step()
    # the machine was off for a year: one catch-up check, not four, and the next one is in the future
    late = first_due + timedelta(days=365)
    assert timers.fire_due_timers(sessions, now=late) == 1
    assert len(_checks(sessions, iid)) == 2
    with sessions.begin() as s:
        [row] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        assert late < row.due_at <= late + timedelta(days=92)


def test_timer_start_event_with_an_expression_and_an_intermediate_timer(sessions, deploy, step):
    deploy("wakeup.bpmn")
    day = T0 + timedelta(days=30)
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "wakeup", by="anna", data={"follow_up_on": day.isoformat()}, now=T0).id
        [row] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        assert (row.element_id, row.kind, row.due_at) == ("at_date", "date", day)
    step()
    assert timers.fire_due_timers(sessions, now=day) == 1
    step()
    with sessions.begin() as s:
        [row] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        assert (row.element_id, row.kind, row.due_at) == ("a_week_later", "duration", day + timedelta(days=7))
    assert timers.fire_due_timers(sessions, now=day + timedelta(days=7)) == 1
    with sessions.begin() as s:
        assert [t.element_id for t in inbox.tasks(s, instance_id=iid)] == ["call"]


def test_a_failing_step_after_a_timer_is_an_incident_not_a_firing(sessions, deploy, step):
    deploy("timer_script.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "timer_script", by="anna", data={"parts": 0}, now=T0).id
    step()
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=2)) == 0
    step()
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        assert incident.element_id == "compute" and incident.action == {"kind": "timers"}
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "timer_fired")) == 0
        assert len(s.scalars(select(Timer).where(Timer.instance_id == iid)).all()) == 1  # kept, still due
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=3)) == 0  # blocked by the incident
    with sessions.begin() as s:
        runtime.retry_incident(s, incident.id, by="admin", data={"parts": 4}, now=T0 + timedelta(days=3))
    step()
    with sessions.begin() as s:
        assert runtime.open_incidents(s, iid) == []
        assert runtime.instance_variables(s, iid)["share"] == 25.0
        assert [t.element_id for t in inbox.tasks(s, instance_id=iid)] == ["report"]
        assert s.scalars(select(Timer).where(Timer.instance_id == iid)).all() == []
