"""The timer worker (engine.timers), stated from what it promises, not from its code.

A worker claims due timers of running cases without an open incident whose lease is free or has
run out, earliest due first (ties by age), at most `limit` timers a claim, leasing each to itself
for `lease` of real time; it gets the cases back in that order, each once. `next_due` is the
earliest such timer's due time: what the worker sleeps towards, no shorter than 50 ms and no longer
than its poll interval, and only half a second after a database fault. `fire_due_timers` fires
every due timer, however small its batch or lease, and says how many fired.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from engine import audit, inbox, runtime, timers
from engine.db import make_engine, make_sessions
from engine.errors import Conflict
from engine.models import Instance, InstanceStatus, Timer

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=14)  # the reminder process's boundary timer


@pytest.fixture
def cases(sessions, deploy):
    """Five reminder cases started an hour apart: their timers come due an hour apart from DUE."""
    deploy("reminder.bpmn")
    ids = []
    for hour in range(5):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"},
                                              now=T0 + timedelta(hours=hour)).id)
    return ids


def _timers(sessions):
    with sessions.begin() as s:
        return {t.instance_id: (t.lease_owner, t.lease_until) for t in s.scalars(select(Timer))}


def _claim(sessions, now, worker="w1", limit=100, lease=timedelta(seconds=30)):
    with sessions.begin() as s:
        return timers.claim_due(s, now=now, worker_id=worker, limit=limit, lease=lease)


def test_a_claim_takes_what_is_due_earliest_first_and_leases_it(sessions, cases):
    before = datetime.now(UTC)
    assert _claim(sessions, DUE + timedelta(hours=2), lease=timedelta(minutes=3)) == cases[:3]
    after = datetime.now(UTC)
    held = _timers(sessions)
    assert all(held[i][0] == "w1" and before + timedelta(minutes=3) <= held[i][1] <= after + timedelta(minutes=3)
               for i in cases[:3])
    assert [held[i] for i in cases[3:]] == [(None, None), (None, None)]


def test_a_timer_due_exactly_now_is_due(sessions, cases):
    assert _claim(sessions, DUE) == cases[:1]
    assert _claim(sessions, DUE - timedelta(microseconds=1), worker="w2") == []


def test_a_claim_takes_at_most_limit_timers(sessions, cases):
    assert _claim(sessions, DUE + timedelta(days=1), limit=2) == cases[:2]
    assert _claim(sessions, DUE + timedelta(days=1), worker="w2", limit=2) == cases[2:4]


def test_a_case_with_two_due_timers_comes_back_once_in_its_earliest_place(sessions, cases):
    with sessions.begin() as s:
        first = s.scalar(select(Timer).where(Timer.instance_id == cases[4]))
        s.add(Timer(instance_id=cases[4], task_id=first.task_id, element_id="other", kind="duration",
                    due_at=DUE - timedelta(hours=1)))
    assert _claim(sessions, DUE + timedelta(days=1)) == [cases[4], *cases[:4]]
    with sessions.begin() as s:
        assert {t.lease_owner for t in s.scalars(select(Timer).where(Timer.instance_id == cases[4]))} == {"w1"}


def test_equal_due_times_are_claimed_oldest_timer_first(sessions, cases):
    with sessions.begin() as s:
        s.execute(update(Timer).values(due_at=DUE))
    assert _claim(sessions, DUE, limit=3) == cases[:3]


def test_a_live_lease_is_not_claimed_again_and_a_lapsed_one_is(sessions, cases):
    assert _claim(sessions, DUE + timedelta(days=1), limit=1) == cases[:1]
    assert _claim(sessions, DUE + timedelta(days=1), worker="w2", limit=1) == cases[1:2]
    with sessions.begin() as s:  # w1's lease ran out a moment ago
        s.execute(update(Timer).where(Timer.instance_id == cases[0])
                  .values(lease_until=datetime.now(UTC) - timedelta(milliseconds=1)))
    assert _claim(sessions, DUE + timedelta(days=1), worker="w3", limit=1) == cases[:1]
    assert _timers(sessions)[cases[0]][0] == "w3"


def test_cases_that_are_not_running_or_wait_on_an_incident_are_not_claimed(sessions, cases):
    with sessions.begin() as s:
        s.execute(update(Instance).where(Instance.id == cases[0]).values(open_incidents=1))
        s.execute(update(Instance).where(Instance.id == cases[1]).values(status=InstanceStatus.COMPLETED))
        s.execute(update(Instance).where(Instance.id == cases[2]).values(status=InstanceStatus.CANCELLED))
    assert _claim(sessions, DUE + timedelta(days=1)) == cases[3:]
    with sessions.begin() as s:
        assert timers.next_due(s) is None  # the rest are leased now


def test_next_due_is_the_earliest_timer_a_worker_could_claim(sessions, cases):
    with sessions.begin() as s:
        assert timers.next_due(s) == DUE
        s.execute(update(Instance).where(Instance.id == cases[0]).values(open_incidents=2))
        s.execute(update(Instance).where(Instance.id == cases[1]).values(status=InstanceStatus.COMPLETED))
        assert timers.next_due(s) == DUE + timedelta(hours=2)
    _claim(sessions, DUE + timedelta(hours=2))
    with sessions.begin() as s:
        assert timers.next_due(s) == DUE + timedelta(hours=3)


def test_nothing_due_is_no_claim_and_no_write(sessions, cases):
    assert _claim(sessions, T0) == []
    assert set(_timers(sessions).values()) == {(None, None)}


def test_every_due_timer_fires_whatever_the_batch(sessions, cases):
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(hours=3), batch=2, worker_id="w1") == 4
    assert list(_timers(sessions)) == [cases[4]]
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), batch=1, worker_id="w1") == 1
    assert _timers(sessions) == {}


def test_a_lease_too_short_for_a_batch_still_fires_every_timer(sessions, cases):
    # each claim's deadline has passed before its second case: one fires, the rest go back, claimed again
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), lease=timedelta(0), worker_id="w1") == 5
    assert _timers(sessions) == {}


def test_the_worker_sleeps_towards_the_next_timer_within_its_poll(sessions, deploy):
    deploy("reminder.bpmn")
    worker = timers.Worker(sessions, poll_seconds=7.0, worker_id="w1")
    assert worker._pause() == 7.0  # nothing waits
    with sessions.begin() as s:
        runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0)
    soon = datetime.now(UTC) + timedelta(seconds=3)
    with sessions.begin() as s:
        s.execute(update(Timer).values(due_at=soon))
    assert 1.0 < worker._pause() <= 3.0  # towards the timer (a loaded machine may take a moment to ask)
    with sessions.begin() as s:
        s.execute(update(Timer).values(due_at=soon + timedelta(hours=1)))
    assert worker._pause() == 7.0
    with sessions.begin() as s:
        s.execute(update(Timer).values(due_at=soon - timedelta(hours=1)))
    assert worker._pause() == 0.05  # overdue: at once, yet not a busy loop
    worker.faulted = True
    assert worker._pause() == timers.TRANSIENT_BACKOFF == 0.5
    quick = timers.Worker(sessions, poll_seconds=0.2)
    quick.faulted = True
    assert quick._pause() == 0.2  # a fault never makes a worker slower than its poll


def test_a_worker_whose_database_is_away_polls_at_its_pace(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/missing/dir/polku.db")
    worker = timers.Worker(make_sessions(engine), poll_seconds=3.0, worker_id="w1")
    try:
        assert worker._pause() == 3.0
        assert worker.sweep() == 0 and worker.faulted and worker.leases_to_release
        assert worker._pause() == 0.5
        # still away: the leases could not be handed back, so the next sweep tries again
        assert worker.sweep() == 0 and worker.leases_to_release
    finally:
        engine.dispose()


def test_a_worker_is_named_by_host_and_process(sessions):
    name = timers.Worker(sessions).worker_id
    assert name == timers.worker_name() and name == f"{socket.gethostname()}:{os.getpid()}"
    assert timers.Worker(sessions, worker_id="mine").worker_id == "mine"


def test_a_worker_made_without_settings_polls_every_second_with_the_default_lease(sessions):
    worker = timers.Worker(sessions)
    assert worker.poll_seconds == 1.0 and worker.lease == timers.DEFAULT_LEASE == timedelta(seconds=30)


# ---------------------------------------------------------------------------------------------
# When firing fails: the other writer's turn, the database away, or the case itself broken


class SilentFault(OperationalError):
    def __str__(self) -> str:
        return ""


class _Orig(Exception):
    def __init__(self, sqlstate=None):
        if sqlstate is not None:
            self.sqlstate = sqlstate


def _fail_for(monkeypatch, instance_id, error, *, after_firing=False):
    """Make the first firing of `instance_id` raise `error` (after its real firing when `after_firing`)."""
    fire = runtime.fire_instance_timers
    calls: list[int] = []

    def failing(session, iid, **kwargs):
        calls.append(iid)
        if iid == instance_id and calls.count(iid) == 1:
            if after_firing:
                fire(session, iid, **kwargs)
            raise error
        return fire(session, iid, **kwargs)

    monkeypatch.setattr(runtime, "fire_instance_timers", failing)
    return calls


def _fired_events(sessions, iid):
    with sessions.begin() as s:
        return [e for e in audit.history(s, iid) if e.kind == "timer_fired"]


@pytest.mark.parametrize("error", [Conflict("someone else changed this case"),
                                   DBAPIError("UPDATE instance", {}, _Orig("40001")),
                                   DBAPIError("UPDATE instance", {}, _Orig("40P01"))],
                         ids=["conflict", "serialization", "deadlock"])
def test_a_lost_race_hands_the_timer_back_at_once_and_says_so(sessions, cases, monkeypatch, caplog, error):
    calls = _fail_for(monkeypatch, cases[1], error)
    caplog.set_level(logging.INFO, logger="engine.timers")
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1") == 5
    # the chunk's transaction rolled back: the case before fires again without the failing one (once in
    # all: see its events); the failing one is back at once, not held: claimed again in the same sweep
    assert calls == [cases[0], cases[1], cases[0], cases[2], cases[3], cases[4], cases[1]]
    assert _timers(sessions) == {} and all(len(_fired_events(sessions, i)) == 1 for i in cases)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        f"instance {cases[1]} changed meanwhile; its timers are taken up again on the next sweep"]


@pytest.mark.parametrize("sqlstate", [None, "23505"], ids=["no-sqlstate", "other-sqlstate"])
def test_a_broken_case_is_held_back_five_minutes_and_logged(sessions, cases, monkeypatch, caplog, sqlstate):
    error = DBAPIError("SELECT", {}, _Orig(sqlstate)) if sqlstate else ValueError("bad state")
    _fail_for(monkeypatch, cases[1], error)
    before = datetime.now(UTC)
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1") == 4
    [(owner, until)] = _timers(sessions).values()
    assert owner is None and before + timedelta(minutes=5) <= until <= datetime.now(UTC) + timedelta(minutes=5)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == f"firing the timers of instance {cases[1]} failed" and record.exc_info


def test_what_a_rolled_back_firing_wrote_is_forgotten(sessions, cases, monkeypatch):
    # the case fires (events pending, instance held), then fails: the chunk's transaction goes, and all of it
    # with it; the others fire again without it
    _fail_for(monkeypatch, cases[1], ValueError("after the firing"), after_firing=True)
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1") == 4
    assert _fired_events(sessions, cases[1]) == []
    assert all(len(_fired_events(sessions, i)) == 1 for i in cases if i != cases[1])
    with sessions.begin() as s:
        assert audit.verify(s).ok
        s.execute(update(Timer).values(lease_owner=None, lease_until=None))  # the hold is over
    monkeypatch.undo()
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1") == 1
    assert len(_fired_events(sessions, cases[1])) == 1
    with sessions.begin() as s:
        assert audit.verify(s).ok
        assert sorted(t.element_id for t in inbox.tasks(s, instance_id=cases[1])) == ["call", "escalate"]


@pytest.mark.parametrize("error, shown", [
    (OperationalError("UPDATE timer", {}, Exception("disk I/O error\nwhile writing")),
     "(builtins.Exception) disk I/O error"),
    (SilentFault("SELECT", {}, Exception()), "SilentFault"),  # a fault without a message is named by its kind
], ids=["first-line", "no-message"])
def test_a_database_fault_gives_the_claims_back_and_names_the_fault(sessions, cases, monkeypatch, caplog,
                                                                     error, shown):
    _fail_for(monkeypatch, cases[2], error)
    with pytest.raises(SQLAlchemyError):
        timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1")
    # the chunk (all five, one transaction) rolled back; every claim went back at once
    assert _timers(sessions) == {i: (None, None) for i in cases}
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == f"database fault while firing the timers of instance {cases[2]}: {shown}"


@pytest.mark.parametrize("error, shown", [
    (OperationalError("SELECT", {}, Exception("database is locked\nsecond line")),
     "(builtins.Exception) database is locked"),
    (SilentFault("SELECT", {}, Exception()), "SilentFault"),
], ids=["first-line", "no-message"])
def test_a_sweep_names_the_database_fault(sessions, monkeypatch, caplog, error, shown):
    worker = timers.Worker(sessions, worker_id="w1")

    def fault(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(timers, "fire_due_timers", fault)
    assert worker.sweep() == 0 and worker.faulted and worker.leases_to_release
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (warning.levelno, warning.getMessage()) == (
        logging.WARNING, f"timer sweep: the database is not available ({shown}); retrying in 0.5 s")


def test_a_sweep_failing_for_another_reason_is_logged_with_its_trace(sessions, monkeypatch, caplog):
    worker = timers.Worker(sessions, worker_id="w1")

    def bug(*_args, **_kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(timers, "fire_due_timers", bug)
    assert worker.sweep() == 0 and worker.faulted
    [error] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (error.levelno, error.getMessage(), bool(error.exc_info)) == (
        logging.ERROR, "timer sweep failed; retrying in 0.5 s", True)


def test_a_stopped_worker_fires_nothing_more(sessions, cases):
    worker = timers.Worker(sessions, worker_id="w1")
    worker.stop()
    assert worker.sweep() == 0
    assert len(_timers(sessions)) == 5
    assert timers.Worker(sessions, worker_id="w2").sweep() == 5


def test_a_broken_first_case_of_a_chunk_is_held_back_and_the_rest_fire(sessions, cases, monkeypatch):
    # nothing of the chunk's transaction was buffered yet when the first case fails
    _fail_for(monkeypatch, cases[0], ValueError("bad state"))
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1") == 4
    [(owner, until)] = _timers(sessions).values()
    assert list(_timers(sessions)) == [cases[0]] and owner is None and until > datetime.now(UTC)
    with sessions.begin() as s:
        assert audit.verify(s).ok


@pytest.mark.parametrize("error", [Conflict("someone else changed this case"), ValueError("bad state")],
                         ids=["lost-race", "broken"])
def test_handing_one_case_back_leaves_the_rest_of_the_batch_leased(sessions, cases, monkeypatch, error):
    fire = runtime.fire_instance_timers
    owners: dict[int, str | None] = {}

    def failing(session, iid, **kwargs):
        if iid == cases[1] and not owners:
            raise error
        if iid == cases[3] and not owners:  # while the batch is being fired, after cases[1] went back
            owners.update(session.execute(select(Timer.instance_id, Timer.lease_owner)
                                          .where(Timer.instance_id.in_(cases[3:]))).tuples().all())
        return fire(session, iid, **kwargs)

    monkeypatch.setattr(runtime, "fire_instance_timers", failing)
    timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1")
    assert owners == {cases[3]: "w1", cases[4]: "w1"}


def test_holding_a_broken_case_back_leaves_another_workers_lease_on_it_alone(sessions, cases, monkeypatch):
    theirs = datetime.now(UTC) + timedelta(minutes=1)
    with sessions.begin() as s:
        first = s.scalar(select(Timer).where(Timer.instance_id == cases[4]))
        s.add(Timer(instance_id=cases[4], task_id=first.task_id, element_id="other", kind="duration",
                    due_at=DUE, lease_owner="w2", lease_until=theirs))
    _fail_for(monkeypatch, cases[4], ValueError("bad state"))
    assert timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1") == 4
    with sessions.begin() as s:
        rows = s.execute(select(Timer.element_id, Timer.lease_owner, Timer.lease_until)
                         .where(Timer.instance_id == cases[4])).tuples().all()
    leases = {element: (owner, until) for element, owner, until in rows}
    assert leases["other"] == ("w2", theirs) and leases[first.element_id][0] is None


def test_leases_that_could_not_be_handed_back_are_tried_again_on_the_next_sweep(sessions, cases):
    _claim(sessions, DUE + timedelta(days=1), lease=timedelta(minutes=10))  # before a fault, w1 held them
    worker = timers.Worker(sessions, worker_id="w1")
    worker.leases_to_release = True
    refused: list[str] = []

    def refuse_once(_conn, _cursor, statement, *_args):
        if statement.startswith("UPDATE timer SET lease_owner") and "instance_id IN" not in statement and not refused:
            refused.append(statement)
            raise OperationalError(statement, {}, Exception("database is locked"))

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", refuse_once)
    try:
        assert worker.sweep() == 0  # the hand-back failed; its own live leases keep the timers from it
        assert refused and worker.leases_to_release and not worker.faulted
        assert worker.sweep() == 5  # handed back this time, and fired
        assert not worker.leases_to_release
    finally:
        event.remove(engine, "before_cursor_execute", refuse_once)


def test_a_worker_leases_what_it_claims_for_its_own_lease(sessions, cases, monkeypatch):
    fire = runtime.fire_instance_timers
    leases: list[tuple[str | None, datetime | None]] = []

    def recording(session, iid, **kwargs):
        leases.extend(session.execute(select(Timer.lease_owner, Timer.lease_until)
                                      .where(Timer.instance_id == iid)).tuples().all())
        return fire(session, iid, **kwargs)

    monkeypatch.setattr(runtime, "fire_instance_timers", recording)
    before = datetime.now(UTC)
    assert timers.Worker(sessions, worker_id="w1", lease=timedelta(minutes=7)).sweep() == 5
    after = datetime.now(UTC)
    assert len(leases) == 5
    assert all(owner == "w1" and before + timedelta(minutes=7) <= until <= after + timedelta(minutes=7)
               for owner, until in leases)


def test_a_sweep_runs_the_workers_other_jobs_on_its_database_under_its_name(sessions, monkeypatch):
    from engine import jobs

    rounds: list[tuple[object, str]] = []
    monkeypatch.setattr(jobs, "run_jobs", lambda got, *, worker_id, settings=None: rounds.append((got, worker_id)))
    assert timers.Worker(sessions, worker_id="w1").sweep() == 0
    assert rounds == [(sessions, "w1")]


# ---------------------------------------------------------------------------------------------
# The lease deadline: a worker fires a claimed batch only while 80 % of its lease lasts (measured on
# the monotonic clock), the first case of each claim always, and hands the rest back


class _Clock:
    """A monotonic clock for engine.timers that moves only when a case fires (and refuses to spin)."""

    def __init__(self, step: float):
        self.now, self.step, self.reads = 0.0, step, 0

    def monotonic(self) -> float:
        self.reads += 1
        assert self.reads < 200, "the sweep does not end"
        return self.now


def _run_on_clock(sessions, monkeypatch, clock: _Clock, **kwargs) -> tuple[int, list[list[int]]]:
    """Fire with one case per chunk, the clock moving `clock.step` a firing; return (fired, each claim's cases)."""
    fire, claim = runtime.fire_instance_timers, timers.claim_due
    claims: list[list[int]] = []

    def firing(session, iid, **kw):
        clock.now += clock.step
        return fire(session, iid, **kw)

    def claiming(session, **kw):
        claims.append(claim(session, **kw))
        return claims[-1]

    monkeypatch.setattr(runtime, "fire_instance_timers", firing)
    monkeypatch.setattr(timers, "claim_due", claiming)
    monkeypatch.setattr(timers, "time", clock)
    monkeypatch.setattr(timers, "FIRE_CHUNK", 1)
    fired = timers.fire_due_timers(sessions, now=DUE + timedelta(days=1), worker_id="w1", **kwargs)
    return fired, claims


def test_a_batch_is_fired_while_80_percent_of_the_lease_lasts_and_the_rest_goes_back(sessions, cases, monkeypatch):
    # lease 10 s: the deadline is 8 s after the claim; a case takes 4 s. A case starting exactly at the
    # deadline still fires; the one after goes back with the rest, and is claimed again at once.
    assert 10 * 0.8 == 8.0
    fired, claims = _run_on_clock(sessions, monkeypatch, _Clock(step=4.0), lease=timedelta(seconds=10))
    assert fired == 5
    assert claims == [cases, cases[3:], []]


def test_the_first_case_of_a_claim_fires_however_short_the_lease(sessions, cases, monkeypatch):
    # lease 0: every deadline has passed when its first case starts; each claim still fires one
    fired, claims = _run_on_clock(sessions, monkeypatch, _Clock(step=1.0), lease=timedelta(0))
    assert fired == 5
    assert claims == [cases, cases[1:], cases[2:], cases[3:], cases[4:], []]


def test_a_batch_never_claims_more_than_its_size(sessions, cases, monkeypatch):
    fired, claims = _run_on_clock(sessions, monkeypatch, _Clock(step=0.0), batch=2)
    assert fired == 5
    assert claims == [cases[:2], cases[2:4], cases[4:], []]


def test_a_lease_lasts_up_to_and_including_its_last_instant(sessions, cases, monkeypatch):
    lapse = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with sessions.begin() as s:
        s.execute(update(Timer).values(lease_owner="w0", lease_until=lapse))
    monkeypatch.setattr(timers, "_real_now", lambda: lapse)
    assert _claim(sessions, DUE + timedelta(days=1), worker="w1") == []
    with sessions.begin() as s:
        assert timers.next_due(s) is None
    monkeypatch.setattr(timers, "_real_now", lambda: lapse + timedelta(microseconds=1))
    assert _claim(sessions, DUE + timedelta(days=1), worker="w1") == cases
