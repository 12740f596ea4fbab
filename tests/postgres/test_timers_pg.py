"""Timer sweeps on PostgreSQL: a lost race is retried at once, short leases, incident-blocked timers."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from engine import runtime, timers
from engine.db import make_engine, make_sessions
from engine.deploy import deploy_files
from engine.models import AuditEvent, AuditStream, Instance, Timer

from .conftest import MODELS, deploy_models

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LATE = T0 + timedelta(days=15)


@pytest.fixture
def sessions(fresh_pg_url):
    """Return sessions on a database of its own (a new URL: nothing of it is cached in this process)."""
    engine = make_engine(fresh_pg_url)
    runtime.forget_cache()
    factory = make_sessions(engine)
    deploy_models(factory, "reminder.bpmn")
    yield factory
    engine.dispose()


def _start(sessions, count=1, now=T0) -> list[int]:
    with sessions.begin() as s:
        return [runtime.start_instance(s, "reminder", by="anna", data={"due": "P1D"}, now=now).id
                for _ in range(count)]


def _fired(sessions) -> list[tuple[int, datetime, str]]:
    with sessions.begin() as s:
        return [tuple(r) for r in s.execute(select(AuditEvent.instance_id, AuditEvent.at, AuditEvent.data)
                                            .where(AuditEvent.kind == "timer_fired").order_by(AuditEvent.id))]


def _wait_until_blocked(sessions) -> None:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                 "AND datname = current_database()")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with sessions.begin() as s:
            if s.scalar(query):
                return
        time.sleep(0.02)  # the worker is another thread: poll the server for its lock wait
    raise AssertionError("the worker never waited for the instance lock")


# The rival takes one lock, waits until the worker queues behind it, then asks for the other. In the
# order opposite to the engine's own, PostgreSQL breaks the deadlock by failing the worker (it waited
# first); in the other order the two simply take turns. Either way the timer fires once, no error.
@pytest.mark.parametrize("first_lock", ["instance", "audit_stream"])
def test_worker_that_loses_a_deadlock_fires_the_timer_on_its_next_claim(sessions, caplog, first_lock):
    caplog.set_level(logging.INFO, logger="engine.timers")
    [iid] = _start(sessions)  # the start leaves the instance cached in this process, as in a worker
    locks = {"instance": select(Instance.id).where(Instance.id == iid).with_for_update(),
             "audit_stream": select(AuditStream.key).where(AuditStream.key == f"instance:{iid}").with_for_update()}
    second_lock = next(name for name in locks if name != first_lock)
    rival = sessions()
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(timers.fire_due_timers(sessions, now=LATE)))
    try:
        rival.begin()
        rival.execute(locks[first_lock]).all()
        worker.start()
        _wait_until_blocked(sessions)
        rival.execute(locks[second_lock]).all()
    finally:
        rival.rollback()
        rival.close()
        worker.join(timeout=30)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert result == [1]
    assert [f[0] for f in _fired(sessions)] == [iid]


def test_lease_shorter_than_one_firing_still_fires_everything_once(sessions):
    ids = _start(sessions, 5)
    result: list[int] = []
    sweep = threading.Thread(target=lambda: result.append(
        timers.fire_due_timers(sessions, now=LATE, lease=timedelta(microseconds=1))), daemon=True)
    sweep.start()
    sweep.join(timeout=60)
    assert result == [5], "the sweep handed back its whole batch again and again"
    assert sorted(f[0] for f in _fired(sessions)) == ids
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(Timer)) == 0


def test_real_time_sweep_records_each_firing_at_its_own_instant(sessions):
    real_start = datetime.now(UTC) - timedelta(days=15)
    ids = _start(sessions, 5, now=real_start)
    before = datetime.now(UTC)
    assert timers.fire_due_timers(sessions) == 5
    after = datetime.now(UTC)
    fired = _fired(sessions)
    assert sorted(f[0] for f in fired) == ids
    instants = [at for _, at, _ in fired]
    assert all(before <= at <= after for at in instants)
    assert len(set(instants)) == len(instants), "all fired at the sweep's instant, not their own"


def test_timers_of_instances_waiting_for_an_incident_do_not_wake_the_worker(sessions):
    [blocked, later] = _start(sessions, 2)
    with sessions.begin() as s:
        s.execute(update(Instance).where(Instance.id == later).values(started_at=T0))
        s.execute(update(Timer).where(Timer.instance_id == later).values(due_at=LATE + timedelta(days=1)))
        s.execute(update(Instance).where(Instance.id == blocked).values(open_incidents=1))
    assert timers.fire_due_timers(sessions, now=LATE) == 0
    with sessions.begin() as s:
        assert timers.next_due(s) == LATE + timedelta(days=1)


def test_a_chunk_locks_all_its_instances_before_firing_the_first(sessions):
    """hold_instances takes every row lock of the chunk in one statement (in id order, as every writer does)."""
    ids = _start(sessions, 3)
    runtime.forget_cache()
    with sessions.begin() as s:
        runtime.hold_instances(s, ids)
        # another connection cannot take the last one's lock
        with make_sessions(s.get_bind()).begin() as other, pytest.raises(OperationalError, match="obtain lock"):
            other.execute(select(Instance.id).where(Instance.id == ids[-1]).with_for_update(nowait=True)).all()
        assert runtime.fire_instance_timers(s, ids[0], now=LATE) == ["late"]
        assert runtime.fire_instance_timers(s, ids[2], now=LATE) == ["late"]
    with sessions.begin() as s:  # the third fires on its own, the locks gone with the transaction
        assert runtime.fire_instance_timers(s, ids[1], now=LATE) == ["late"]
    assert sorted(f[0] for f in _fired(sessions)) == ids


def test_a_script_naming_a_variable_longer_than_its_column_is_an_incident_not_a_stuck_sweep(sessions):
    """PostgreSQL refuses a variable name over 200 characters: the whole sweep failed at every turn."""
    model = (MODELS / "timer_script.bpmn").read_text().replace(
        "share = 100 / parts", "share = 1\nif parts == 0:\n    " + "v" * 250 + " = 1")
    with sessions.begin() as s:
        deploy_files(s, {"timer_script.bpmn": model.encode()}, by="designer")
    ids = []
    for parts in (1, 0, 1, 1):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "timer_script", by="anna", data={"parts": parts}, now=T0).id)
    assert timers.fire_due_timers(sessions, now=T0 + timedelta(days=2), worker_id="w1") == 3  # not the broken one
    with sessions.begin() as s:
        assert [len(runtime.open_incidents(s, i)) for i in ids] == [0, 1, 0, 0]
        assert s.scalar(select(func.count()).select_from(Timer)) == 1  # its timer kept for the retry
        [incident] = runtime.open_incidents(s, ids[1])
        assert "is a name of 250 characters; a variable's name can have at most 200" in incident.message
        assert [runtime.instance_summary(s, i)["status"] for i in ids] == ["running"] * 4
