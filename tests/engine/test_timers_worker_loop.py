"""The timer worker's own loop, run in this process: `Worker.run`, `Worker.start_thread`, `run_worker`.

`polku worker` and the web server's embedded worker run these; here they run in the test's process
(a thread, or the test itself), so what they promise is checked where a mutation tool sees it:
one sweep and back with `once`; otherwise sweep, sleep until the next timer (within the poll),
sweep again, until `stop()` or SIGTERM; Ctrl-C ends the foreground worker quietly.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from engine import audit, runtime, timers
from engine.models import AuditEvent, Instance, Timer

WAIT = 15.0  # seconds a test waits for the worker before calling it stuck (a loaded machine is slow)


@pytest.fixture
def reminders(sessions, deploy):
    """Start reminder cases whose 14-day timer is due `ago` before the real now; return their ids."""
    deploy("reminder.bpmn")

    def _start(count: int = 1, ago: timedelta = timedelta(days=1)) -> list[int]:
        ids = []
        with sessions.begin() as s:
            for _ in range(count):
                started = datetime.now(UTC) - timedelta(days=14) - ago
                ids.append(runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=started).id)
        return ids

    return _start


def _waiting(sessions) -> int:
    with sessions.begin() as s:
        return s.scalar(select(func.count()).select_from(Timer))


def _until(condition, seconds: float = WAIT) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _counting(worker: timers.Worker) -> list[float]:
    """Record the monotonic time at which each of the worker's sweeps ended."""
    sweeps: list[float] = []
    sweep = worker.sweep

    def counted() -> int:
        fired = sweep()
        sweeps.append(time.monotonic())
        return fired

    worker.sweep = counted  # type: ignore[method-assign]
    return sweeps


# ---------------------------------------------------------------------------------------------
# Worker.run and Worker.start_thread


def test_run_once_sweeps_once_and_returns(sessions, reminders):
    reminders(3)
    worker = timers.Worker(sessions, poll_seconds=30.0, worker_id="w1")
    sweeps = _counting(worker)
    thread = threading.Thread(target=worker.run, kwargs={"once": True}, daemon=True)
    thread.start()
    thread.join(WAIT)
    alive = thread.is_alive()
    worker.stop()
    assert not alive and len(sweeps) == 1  # back after one sweep, not after the 30 s poll
    assert _waiting(sessions) == 0


def test_a_stopped_worker_does_not_sweep_even_once(sessions, reminders):
    reminders(1)
    worker = timers.Worker(sessions, worker_id="w1")
    sweeps = _counting(worker)
    worker.stop()
    worker.run(once=True)
    worker.run()
    assert sweeps == [] and _waiting(sessions) == 1


def test_a_worker_thread_is_the_named_daemon_and_ends_on_stop(sessions, reminders):
    worker = timers.Worker(sessions, poll_seconds=30.0, worker_id="w1")
    sweeps = _counting(worker)
    thread = worker.start_thread()
    try:
        assert isinstance(thread, threading.Thread) and thread.is_alive()
        assert thread.name == "polku-timer-worker" and thread.daemon is True
        assert _until(lambda: len(sweeps) == 1)
    finally:
        stopped_at = time.monotonic()
        worker.stop()
        thread.join(WAIT)
    # the stop wakes the worker from its 30 s wait at once, and no sweep follows it
    assert not thread.is_alive() and time.monotonic() - stopped_at < 5.0 and len(sweeps) == 1


def test_a_worker_thread_sweeps_again_and_fires_what_came_due_meanwhile(sessions, reminders):
    worker = timers.Worker(sessions, poll_seconds=0.2, worker_id="w1")
    sweeps = _counting(worker)
    thread = worker.start_thread()
    try:
        assert _until(lambda: len(sweeps) >= 1)  # the first sweep ended, having found nothing
        [case] = reminders(1)  # overdue from now on
        assert _until(lambda: _waiting(sessions) == 0)
    finally:
        worker.stop()
        thread.join(WAIT)
    assert not thread.is_alive() and len(sweeps) >= 2
    with sessions.begin() as s:
        assert [e.kind for e in audit.history(s, case)].count("timer_fired") == 1


def test_a_worker_sleeps_only_until_the_next_timer_not_its_whole_poll(sessions, reminders):
    [case] = reminders(1)
    with sessions.begin() as s:  # due in a second and a half; the poll is a minute
        s.execute(update(Timer).values(due_at=datetime.now(UTC) + timedelta(seconds=1.5)))
    worker = timers.Worker(sessions, poll_seconds=60.0, worker_id="w1")
    sweeps = _counting(worker)
    thread = worker.start_thread()
    try:
        assert _until(lambda: _waiting(sessions) == 0, 20.0)
    finally:
        worker.stop()
        thread.join(WAIT)
    assert len(sweeps) >= 2 and sweeps[1] - sweeps[0] < 10.0
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.instance_id == case, AuditEvent.kind == "timer_fired")) == 1


# ---------------------------------------------------------------------------------------------
# run_worker: the foreground worker of `polku worker`


@pytest.fixture
def made(monkeypatch) -> list[timers.Worker]:
    """Record the workers run_worker makes (the same class, only remembered)."""
    workers: list[timers.Worker] = []

    class Remembered(timers.Worker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            workers.append(self)

    monkeypatch.setattr(timers, "Worker", Remembered)
    return workers


@pytest.fixture
def handlers(monkeypatch) -> list[tuple[int, object]]:
    """Record the signal handlers installed (instead of installing them: run_worker runs in a thread here)."""
    installed: list[tuple[int, object]] = []
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append((signum, handler)))
    return installed


def test_run_worker_once_builds_its_worker_from_its_arguments_and_says_so(sessions, reminders, made, handlers,
                                                                           caplog):
    reminders(2)
    caplog.set_level(logging.INFO, logger="engine.timers")
    thread = threading.Thread(target=timers.run_worker, args=(sessions,),
                              kwargs={"poll_seconds": 0.3, "once": True, "lease": timedelta(seconds=42)},
                              daemon=True)
    thread.start()
    thread.join(WAIT)
    alive = thread.is_alive()
    for worker in made:
        worker.stop()
    assert not alive  # once: one sweep and back
    [worker] = made
    assert worker.sessions is sessions and worker.poll_seconds == 0.3 and worker.lease == timedelta(seconds=42)
    assert worker.worker_id == timers.worker_name()
    assert _waiting(sessions) == 0
    assert [signum for signum, _ in handlers] == [signal.SIGTERM]
    assert [r.getMessage() for r in caplog.records if r.name == "engine.timers" and r.levelno == logging.INFO] == [
        f"timer worker {timers.worker_name()} started (poll 0.3 s)"]


def test_run_worker_keeps_sweeping_until_its_sigterm_handler_runs(sessions, reminders, made, handlers):
    thread = threading.Thread(target=timers.run_worker, args=(sessions,), daemon=True)  # the defaults
    thread.start()
    try:
        assert _until(lambda: len(made) == 1 and len(handlers) == 1)
        [worker] = made
        assert worker.poll_seconds == 1.0 and worker.lease == timers.DEFAULT_LEASE == timedelta(seconds=30)
        [case] = reminders(1)  # a sweep after the first fires it: the worker runs on
        assert _until(lambda: _waiting(sessions) == 0)
        assert thread.is_alive() and not worker.stopping.is_set()
        [(signum, handler)] = handlers
        assert signum == signal.SIGTERM
        handler(signal.SIGTERM, None)  # what the process gets on `kill`
        assert worker.stopping.is_set()
        thread.join(WAIT)
        assert not thread.is_alive()
    finally:
        for worker in made:
            worker.stop()
        thread.join(WAIT)
    with sessions.begin() as s:
        assert s.scalar(select(Instance.revision).where(Instance.id == case)) > 1


def test_run_worker_stops_on_a_real_sigterm(sessions, made):
    # in the test's main thread, as `polku worker` runs it: the signal really arrives
    previous = signal.getsignal(signal.SIGTERM)
    kill = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    rescue = threading.Timer(WAIT, lambda: [w.stop() for w in made])  # a handler that does not stop
    started = time.monotonic()
    kill.start()
    rescue.start()
    try:
        timers.run_worker(sessions, poll_seconds=30.0)
    finally:
        kill.cancel()
        rescue.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - started < WAIT - 1
    assert made[0].stopping.is_set()


def test_ctrl_c_ends_the_foreground_worker_quietly_and_at_once(sessions, monkeypatch, made, handlers):
    def interrupted(self, once=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(timers.Worker, "run", interrupted)
    started = time.monotonic()
    timers.run_worker(sessions, poll_seconds=5.0)  # no KeyboardInterrupt comes out
    assert time.monotonic() - started < 0.9  # nothing waits after the loop ends
    [worker] = made
    assert worker.stopping.is_set()


# ---------------------------------------------------------------------------------------------
# a rolled-back firing leaves nothing behind in the session's buffers or the process's cache


def test_a_firing_rolled_back_after_it_ran_is_not_promoted_to_the_instance_cache(sessions, reminders, monkeypatch):
    ids = reminders(3)
    fire = runtime.fire_instance_timers

    def fails_after_firing(session, iid, **kwargs):
        fired = fire(session, iid, **kwargs)
        if iid == ids[1]:
            raise ValueError("after the firing")
        return fired

    monkeypatch.setattr(runtime, "fire_instance_timers", fails_after_firing)
    assert timers.fire_due_timers(sessions, worker_id="w1") == 2
    with sessions.begin() as s:
        revision = s.scalar(select(Instance.revision).where(Instance.id == ids[1]))
        cached = runtime._cache.get(runtime._cache_key(s, ids[1]))
        assert [e.kind for e in audit.history(s, ids[1])].count("timer_fired") == 0
        assert audit.verify(s).ok
    # what the process holds of the case is at most what the database has, never the rolled-back firing
    assert cached is None or cached[0] == revision
