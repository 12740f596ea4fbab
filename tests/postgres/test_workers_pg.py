"""Three `polku worker` processes on one PostgreSQL database fire 1,000 due timers exactly once.

The instances are started 15 days in the past, so their 14-day boundary timers are due the moment
the workers start; the workers run at real time, as in production. The second test kills one
worker with SIGKILL mid-run: its leased timers are taken up by the others once the lease expires.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import audit, runtime
from engine.db import make_engine, make_sessions
from engine.models import AuditEvent, Incident, Task, Timer

from .conftest import deploy_models

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INSTANCES = 1000
WAIT_SECONDS = 120
POLKU = Path(sys.executable).with_name("polku")


@pytest.fixture
def sessions(fresh_pg_url):
    """Return sessions on a database of its own for this test, holding 1,000 due reminders."""
    engine = make_engine(fresh_pg_url)
    runtime.forget_cache()
    factory = make_sessions(engine)
    deploy_models(factory, "reminder.bpmn")
    started = datetime.now(UTC) - timedelta(days=15)
    for _ in range(INSTANCES // 100):
        with factory.begin() as s:  # one transaction per hundred starts
            for _ in range(100):
                runtime.start_instance(s, "reminder", by="load", data={"due": "P7D"}, now=started)
    runtime.forget_cache()
    yield factory
    engine.dispose()


def _start_workers(url: str, logs: Path, count: int, *extra: str) -> list[tuple[subprocess.Popen, Path]]:
    env = {**os.environ, "POLKU_DATABASE_URL": url}
    workers = []
    for n in range(count):
        log = logs / f"worker-{n}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen([str(POLKU), "worker", "--poll", "0.2", *extra], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
        workers.append((proc, log))
    return workers


def _fired(sessions) -> int:
    with sessions.begin() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "timer_fired"))


def _wait_for_fired(sessions, target: int, workers: list) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    fired = _fired(sessions)
    while fired < target and time.monotonic() < deadline:
        crashed = [log.read_text() for proc, log in workers if proc.poll() not in (None, -signal.SIGKILL)]
        assert not crashed, crashed
        time.sleep(0.25)  # the workers are other processes: poll the database for their progress
        fired = _fired(sessions)
    return fired


def _wait_until_leasing(sessions, pid: int) -> None:
    """Return as soon as the worker with this pid holds a lease (its claimed batch, not yet fired)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        with sessions.begin() as s:
            if s.scalar(select(func.count()).select_from(Timer).where(Timer.lease_owner.endswith(f":{pid}"))):
                return
        time.sleep(0.005)
    raise AssertionError(f"worker {pid} never held a lease")


def _stop(workers) -> list[str]:
    problems = []
    for proc, log in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, log in workers:
        code = proc.wait(timeout=30)
        text = log.read_text()
        if code not in (0, -signal.SIGKILL):
            problems.append(f"worker {proc.pid} exited with {code}")
        for bad in ("Traceback", "deadlock", "Error"):
            if bad in text:
                problems.append(f"worker {proc.pid} logged {bad!r}:\n{text[-3000:]}")
    return problems


def _assert_every_timer_fired_once(sessions) -> None:
    with sessions.begin() as s:
        fired = s.execute(select(AuditEvent.instance_id, AuditEvent.element_id)
                          .where(AuditEvent.kind == "timer_fired")).all()
        assert len(fired) == INSTANCES
        assert len(set(fired)) == INSTANCES, "a timer fired twice"
        assert {element for _, element in fired} == {"late"}
        escalations = s.scalar(select(func.count()).select_from(Task).where(Task.element_id == "escalate"))
        assert escalations == INSTANCES
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
        assert audit.verify(s).ok


def test_three_worker_processes_fire_a_thousand_due_timers_exactly_once(sessions, fresh_pg_url, tmp_path):
    assert _fired(sessions) == 0
    workers = _start_workers(fresh_pg_url, tmp_path, 3)
    try:
        fired = _wait_for_fired(sessions, INSTANCES, workers)
    finally:
        problems = _stop(workers)
    assert fired == INSTANCES
    assert not problems, "\n".join(problems)
    _assert_every_timer_fired_once(sessions)


def test_killed_worker_loses_nothing_and_fires_nothing_twice(sessions, fresh_pg_url, tmp_path):
    workers = _start_workers(fresh_pg_url, tmp_path, 3, "--lease", "3")
    try:
        assert _wait_for_fired(sessions, INSTANCES // 4, workers) >= INSTANCES // 4
        victim = workers[0][0]
        _wait_until_leasing(sessions, victim.pid)  # a batch takes a worker a fraction of a second: catch it in one
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        with sessions.begin() as s:
            orphaned = s.scalar(select(func.count()).select_from(Timer)
                                .where(Timer.lease_owner.endswith(f":{victim.pid}")))
        fired = _wait_for_fired(sessions, INSTANCES, workers)
    finally:
        problems = _stop(workers)
    assert orphaned > 0, "the killed worker held no lease: the test did not prove lease expiry"
    assert fired == INSTANCES
    assert not problems, "\n".join(problems)
    _assert_every_timer_fired_once(sessions)


def test_terminated_worker_hands_back_its_batch_and_exits_at_once(sessions, fresh_pg_url, tmp_path):
    workers = _start_workers(fresh_pg_url, tmp_path, 1)
    [(proc, _log)] = workers
    try:
        assert _wait_for_fired(sessions, 10, workers) >= 10
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - asked
    finally:
        problems = _stop(workers)
    assert code == 0 and not problems, problems
    assert took < 5, f"the worker took {took:.1f} s to stop: it went on with the burst"
    with sessions.begin() as s:
        fired = _fired(sessions)
        assert 10 <= fired < INSTANCES
        left = s.scalars(select(Timer)).all()
        assert len(left) == INSTANCES - fired
        assert all(t.lease_owner is None for t in left), "the stopped worker kept leases"
