"""Timers fire many instances per transaction: when one is broken, the transaction rolls back, the others fire
again without it (once in all), its timer is held back and the audit chain stays whole."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError

from engine import audit, runtime, timers
from engine.models import AuditEvent, Instance, Timer

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _reminders(sessions, deploy, count):
    """Deploy the reminder process and start `count` cases (their timers come due 14 days after T0)."""
    deploy("reminder.bpmn")
    ids = []
    for _ in range(count):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0).id)
    return ids


def _fired(s, instance_id):
    return s.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.instance_id == instance_id, AuditEvent.kind == "timer_fired"))


def test_a_broken_instance_in_a_chunk_rolls_back_alone(sessions, deploy, monkeypatch):
    ids = _reminders(sessions, deploy, 7)
    broken = ids[3]
    with sessions.begin() as s:
        s.execute(update(Instance).where(Instance.id == broken).values(state='{"not": "a workflow"}'))
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 4)  # two transactions: the broken one in the first
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 6
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1, 1, 1, 0, 1, 1, 1]
        [held] = s.scalars(select(Timer).where(Timer.instance_id == broken)).all()
        assert held.lease_until > datetime.now(UTC) + timedelta(minutes=4)  # held back, not retried at once
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.instance_id != broken)) == 0
        assert audit.verify(s).ok
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=16), worker_id="w1") == 0


def test_chunks_fire_the_same_as_one_by_one_saved_and_reloaded(sessions, deploy, monkeypatch):
    ids = _reminders(sessions, deploy, 5)
    monkeypatch.setattr(timers, "FIRE_CHUNK", 2)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15)) == 5
    runtime.forget_cache()
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=30)) == 0
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1] * 5
        assert audit.verify(s).ok


def test_a_stop_fires_no_more_and_hands_the_claimed_rest_back(sessions, deploy, monkeypatch):
    ids = _reminders(sessions, deploy, 5)
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 2)
    stop = threading.Event()
    fire = runtime.fire_instance_timers

    def fire_then_stop(*args, **kwargs):  # the worker is told to stop while it fires the first instance
        fired = fire(*args, **kwargs)
        stop.set()
        return fired

    monkeypatch.setattr(runtime, "fire_instance_timers", fire_then_stop)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1", stop=stop) == 1
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1, 0, 0, 0, 0]
        rest = s.scalars(select(Timer).where(Timer.instance_id.in_(ids[1:]))).all()
        # handed back at once, not left leased to the stopped worker for the lease's five minutes
        assert len(rest) == 4 and all(t.lease_owner is None and t.lease_until is None for t in rest)
    monkeypatch.setattr(runtime, "fire_instance_timers", fire)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w2") == 4
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1] * 5
        assert audit.verify(s).ok


def test_a_stop_while_the_rest_of_a_failed_chunk_fires_again_hands_everything_left_back(sessions, deploy,
                                                                                        monkeypatch):
    ids = _reminders(sessions, deploy, 4)
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 4)
    stop = threading.Event()
    fire = runtime.fire_instance_timers
    calls: list[int] = []

    def firing(session, iid, **kwargs):
        calls.append(iid)
        if iid == ids[2] and calls.count(iid) == 1:
            raise ValueError("broken")
        fired = fire(session, iid, **kwargs)
        if calls.count(ids[0]) == 2:  # the worker is told to stop while the chunk's first case fires again
            stop.set()
        return fired

    monkeypatch.setattr(runtime, "fire_instance_timers", firing)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1", stop=stop) == 1
    assert calls == [ids[0], ids[1], ids[2], ids[0]]
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1, 0, 0, 0]
        rest = s.scalars(select(Timer).where(Timer.instance_id.in_(ids[1:]))).all()
        # all three back at once, the failing one too (not held five minutes: it was not judged on this stop)
        assert len(rest) == 3 and all(t.lease_owner is None and t.lease_until is None for t in rest)
        assert audit.verify(s).ok


def test_a_lost_race_when_the_chunks_events_are_written_hands_the_chunk_back_at_once(sessions, deploy,
                                                                                    monkeypatch, caplog):
    ids = _reminders(sessions, deploy, 3)
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 3)
    writes: list[int] = []

    class RacingAudit:  # the chunk's audit write loses a deadlock the first time (PostgreSQL's 40P01)
        @staticmethod
        def write_pending(session):
            writes.append(1)
            if len(writes) == 1:
                raise DBAPIError("UPDATE audit_stream", {}, _Deadlock())
            audit.write_pending(session)

    monkeypatch.setattr(timers, "audit", RacingAudit)
    caplog.set_level(logging.INFO, logger="engine.timers")
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 3
    assert len(writes) == 2  # claimed again at once in the same sweep, not held
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1, 1, 1]
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
        assert audit.verify(s).ok
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        f"instances {ids[0]}, {ids[1]}, {ids[2]} changed meanwhile; their timers are taken up again on the next sweep"]


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_lost_race_when_the_chunk_is_locked_hands_all_of_it_back_at_once(sessions, deploy, monkeypatch):
    ids = _reminders(sessions, deploy, 5)
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 3)
    hold, holds = runtime.hold_instances, []

    def deadlocking(session, instance_ids):  # the first chunk's lock loses a deadlock (PostgreSQL's 40P01)
        holds.append(list(instance_ids))
        if len(holds) == 1:
            raise DBAPIError("SELECT instance FOR UPDATE", {}, _Deadlock())
        hold(session, instance_ids)

    monkeypatch.setattr(runtime, "hold_instances", deadlocking)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 5
    # the first chunk went back whole (not only what it had handled: nothing), the second fired, then a
    # new claim took the first chunk's three again
    assert holds == [ids[:3], ids[3:], ids[:3]]
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1] * 5
        assert audit.verify(s).ok


def test_the_instances_fired_again_after_a_failure_fire_at_the_sweeps_instant(sessions, deploy, monkeypatch):
    # `polku fire-timers --now`: the sweep's instant, not the real time, for the second try too
    ids = _reminders(sessions, deploy, 3)
    monkeypatch.setattr(timers, "FIRE_CHUNK", 3)
    calls = _fail_on(monkeypatch, {(ids[2], 1): ValueError("broken")})
    when = T0 + timedelta(days=15)
    assert timers.fire_due_timers(sessions, now=when, worker_id="w1") == 2
    assert calls == [ids[0], ids[1], ids[2], ids[0], ids[1]]
    with sessions.begin() as s:
        instants = s.scalars(select(AuditEvent.at).where(AuditEvent.kind == "timer_fired")).all()
    assert instants == [when, when]


def test_a_lost_race_while_the_others_fire_again_hands_that_one_back_at_once(sessions, deploy, monkeypatch):
    ids = _reminders(sessions, deploy, 3)
    monkeypatch.setattr(timers, "FIRE_CHUNK", 3)
    calls = _fail_on(monkeypatch, {
        (ids[1], 1): ValueError("broken"),  # held back five minutes
        (ids[0], 2): DBAPIError("UPDATE instance", {}, _Deadlock()),  # its second try, in the new transaction
    })
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 2
    # the lost one is handed back by this worker at once and claimed again in the same sweep
    assert calls == [ids[0], ids[1], ids[0], ids[2], ids[0]]
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1, 0, 1]
        [held] = s.scalars(select(Timer).where(Timer.instance_id == ids[1])).all()
        assert held.lease_owner is None and held.lease_until > datetime.now(UTC) + timedelta(minutes=4)


def _fail_on(monkeypatch, failures: dict[tuple[int, int], Exception]) -> list[int]:
    """Make the n-th firing of an instance raise, per (instance id, n); return the ids fired, in order."""
    fire, calls = runtime.fire_instance_timers, []

    def failing(session, iid, **kwargs):
        calls.append(iid)
        error = failures.get((iid, calls.count(iid)))
        if error is not None:
            raise error
        return fire(session, iid, **kwargs)

    monkeypatch.setattr(runtime, "fire_instance_timers", failing)
    return calls


def test_a_chunk_writes_its_instances_rows_with_one_statement_each(sessions, deploy, monkeypatch):
    """Each firing's timer, task and instance rows are queued and run together for the chunk."""
    from engine import fastsql

    ids = _reminders(sessions, deploy, 6)
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 3)
    writes: list[tuple[str, int]] = []
    real = fastsql._run

    def run(conn, plan, params, *, many, fetch):
        if not fetch and plan.sql.split()[0] in ("INSERT", "UPDATE", "DELETE"):
            writes.append((" ".join(plan.sql.split()[:3]), len(params) if many else 1))
        return real(conn, plan, params, many=many, fetch=fetch)
    monkeypatch.setattr(fastsql, "_run", run)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 6
    for statement in ("DELETE FROM timer", "INSERT INTO task", "UPDATE instance SET"):
        assert [n for s, n in writes if s == statement] == [3, 3], (statement, writes)
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1] * 6
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
        assert audit.verify(s).ok


def test_what_a_firing_queued_is_read_back_in_its_transaction(sessions, deploy):
    from engine import inbox

    [iid] = _reminders(sessions, deploy, 1)
    runtime.forget_cache()
    with sessions.begin() as s:
        before = s.scalar(select(Instance.revision).where(Instance.id == iid))
        assert runtime.fire_instance_timers(s, iid, now=T0 + timedelta(days=15))
        assert "polku_fast_later" in s.info  # queued, not yet run
        assert s.scalar(select(Instance.revision).where(Instance.id == iid)) == before + 1
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.instance_id == iid)) == 0
        assert [t.name for t in inbox.tasks(s, instance_id=iid)]  # the task the timer opened
        assert "polku_fast_later" not in s.info


def test_a_chunk_with_cases_that_end_and_cases_that_go_on_writes_each_as_it_should(sessions, deploy, monkeypatch):
    """An ending case's instance row also sets its status and end: its update names more columns."""
    deploy("c_timer_then_end_or_task.bpmn")
    ends = [False, True, False, True, True, False]  # ending cases before and after going-on ones
    ids = []
    for done in ends:
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "c_timer_then_end_or_task", by="anna", data={"done": done},
                                              now=T0, validate_form=False).id)
    runtime.forget_cache()
    monkeypatch.setattr(timers, "FIRE_CHUNK", 6)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=2), worker_id="w1") == 6
    with sessions.begin() as s:
        rows = [s.get(Instance, i) for i in ids]
        assert [(r.status, r.ended_at is not None) for r in rows] == [
            ("completed", True) if done else ("running", False) for done in ends]
        assert all(r.revision == rows[0].revision for r in rows)
        assert audit.verify(s).ok


@pytest.mark.parametrize("position", [1, 3])  # its rows fail as the next instance fires / at the chunk's end
def test_an_instance_whose_queued_rows_fail_is_held_back_alone(sessions, deploy, monkeypatch, caplog, position):
    ids = _reminders(sessions, deploy, 6)
    broken = ids[position]
    new_task_row = runtime._new_task_row

    def bad_row_for_broken(loaded, ready, now):  # a row the database refuses (NOT NULL), for one instance only
        row, warning = new_task_row(loaded, ready, now)
        return ({**row, "name": None} if loaded.instance.id == broken else row), warning

    monkeypatch.setattr(runtime, "_new_task_row", bad_row_for_broken)
    monkeypatch.setattr(timers, "FIRE_CHUNK", 4)
    with caplog.at_level(logging.ERROR, logger="engine.timers"):
        assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 5
    assert [r.getMessage() for r in caplog.records] == [
        f"writing what firing the timers of instance {broken} changed failed"]
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [int(i != broken) for i in ids]
        [held] = s.scalars(select(Timer).where(Timer.instance_id == broken)).all()
        assert held.lease_until > datetime.now(UTC) + timedelta(minutes=4)
        assert audit.verify(s).ok
    monkeypatch.setattr(runtime, "_new_task_row", new_task_row)  # mended: it fires once its hold is over
    with sessions.begin() as s:
        s.execute(update(Timer).where(Timer.instance_id == broken).values(lease_owner=None, lease_until=None))
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=15), worker_id="w1") == 1
    with sessions.begin() as s:
        assert [_fired(s, i) for i in ids] == [1] * 6 and audit.verify(s).ok
