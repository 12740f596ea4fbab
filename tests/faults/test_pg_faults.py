"""PostgreSQL faults, on the suite's own throwaway server (`scripts/postgres.sh` with another port
and data folder): the server stopped and restarted under load, connections killed while a worker
fires timers, and the check-then-act race between completing and reassigning a task.

Asserted every time: nothing lost (every committed start has its case and its timer fired),
nothing doubled (each timer fired once), no incidents from a database fault, the audit chain intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from engine import audit, deploy, runtime
from engine.db import make_engine, make_sessions
from engine.dbfaults import is_transient
from engine.errors import Conflict, TaskNotAvailable
from engine.inbox import assign
from engine.inbox import tasks as open_tasks
from engine.models import AuditEvent, Incident, Instance, Task, Timer

from .conftest import POLKU, admin_url, pg, pg_is_up

pytestmark = [pytest.mark.postgres]

MODELS = Path(__file__).parents[1] / "engine" / "bpmn"
BOUND = 60  # seconds any wait below may take


@pytest.fixture
def sessions(fault_pg_url):
    engine = make_engine(fault_pg_url)
    runtime.forget_cache()
    factory = make_sessions(engine)
    with factory.begin() as s:
        deploy.deploy_files(s, {n: (MODELS / n).read_bytes() for n in ("reminder.bpmn", "order.bpmn")}, by="test")
    yield factory
    runtime.forget_cache()
    engine.dispose()


def _start_due(sessions, count: int) -> list[int]:
    """Start reminders 15 days in the past: their 14-day timers are due at once."""
    with sessions.begin() as s:
        return [runtime.start_instance(s, "reminder", by="load", data={"due": "P7D"},
                                       now=datetime.now(UTC) - timedelta(days=15)).id for _ in range(count)]


def _worker(url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "POLKU_DATABASE_URL": url}
    with log.open("wb") as err:
        return subprocess.Popen([str(POLKU), "worker", "--poll", "0.2", "--lease", "5"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def _fired(sessions) -> list[tuple[int, str]]:
    with sessions.begin() as s:
        return list(s.execute(select(AuditEvent.instance_id, AuditEvent.element_id)
                              .where(AuditEvent.kind == "timer_fired")).all())


def _wait_fired(sessions, target: int, worker: subprocess.Popen) -> list[tuple[int, str]]:
    deadline = time.monotonic() + BOUND
    fired = _fired(sessions)
    while len(fired) < target and time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
        fired = _fired(sessions)
    return fired


def _stop(worker: subprocess.Popen, log: Path) -> str:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    return log.read_text()


def _assert_nothing_lost_or_doubled(sessions, instance_ids: list[int]) -> None:
    fired = _fired(sessions)
    assert sorted(i for i, _e in fired) == sorted(instance_ids), "a timer was lost or fired twice"
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
        assert s.scalar(select(func.count()).select_from(Instance)) == len(instance_ids)
        escalations = s.scalar(select(func.count()).select_from(Task).where(Task.element_id == "escalate"))
        assert escalations == len(instance_ids)
        assert audit.verify(s).ok


def test_connections_killed_while_the_worker_fires(sessions, fault_pg_url, tmp_path):
    instance_ids = _start_due(sessions, 5)
    log = tmp_path / "worker.log"
    worker = _worker(fault_pg_url, log)
    assert len(_wait_fired(sessions, 5, worker)) == 5  # the worker is in its loop before the killing
    instance_ids += _start_due(sessions, 150)
    database = fault_pg_url.rsplit("/", 1)[1]
    killed = 0
    try:
        with psycopg.connect(admin_url(fault_pg_url), autocommit=True) as admin:
            for _ in range(12):  # ~3 s of killing every connection of the database but this one
                killed += len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (database,)).fetchall())
                time.sleep(0.25)
        fired = _wait_fired(sessions, len(instance_ids), worker)
    finally:
        text = _stop(worker, log)
    assert killed > 0
    assert len(fired) == len(instance_ids), text[-2000:]
    assert "Traceback" not in text
    _assert_nothing_lost_or_doubled(sessions, instance_ids)


def test_postgresql_stopped_and_restarted_under_load(sessions, fault_pg_url, tmp_path):
    log = tmp_path / "worker.log"
    committed: list[int] = _start_due(sessions, 5)
    worker = _worker(fault_pg_url, log)
    assert len(_wait_fired(sessions, 5, worker)) == 5  # the worker is in its loop before the outage
    failures: list[Exception] = []
    stop = threading.Event()

    def load() -> None:  # starts with due timers, one transaction each, as fast as the server takes them
        while not stop.is_set():
            try:
                committed.extend(_start_due(sessions, 1))
            except SQLAlchemyError as err:
                failures.append(err)
                time.sleep(0.05)

    writer = threading.Thread(target=load)
    writer.start()
    try:
        time.sleep(1.5)
        pg("stop")
        assert not pg_is_up()
        outage = subprocess.run([str(POLKU), "tasks"], env={**os.environ, "POLKU_DATABASE_URL": fault_pg_url},
                                capture_output=True, text=True, timeout=60, check=False)
        time.sleep(1.0)
        pg("start")
        restarted_at = len(committed)
        time.sleep(1.5)
        stop.set()
        writer.join(timeout=BOUND)
        assert len(committed) > restarted_at, "no write went through after the restart"
        fired = _wait_fired(sessions, len(committed), worker)
    finally:
        stop.set()
        if not pg_is_up():
            pg("start")
        text = _stop(worker, log)
    assert outage.returncode == 75 and len(outage.stderr.strip().splitlines()) == 1, outage.stderr
    assert failures and all(is_transient(err) for err in failures), [str(e)[:200] for e in failures[:3]]
    assert len(fired) == len(committed), text[-2000:]
    assert "Traceback" not in text
    _assert_nothing_lost_or_doubled(sessions, committed)


def _order_task(sessions) -> str:
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 5})
        return open_tasks(s, instance_id=instance.id)[0].id


COMPLETE = {"channel": "phone", "note": "ok"}


@pytest.mark.parametrize("first", ["complete", "reassign"])
def test_completing_and_reassigning_at_once_on_postgresql(sessions, first):
    task_id = _order_task(sessions)
    holding, results = threading.Event(), {}

    def complete() -> None:
        try:
            with sessions.begin() as s:
                runtime.complete_task(s, task_id, COMPLETE, by="anna", roles={"expert"})
                if first == "complete":
                    holding.set()
                    time.sleep(0.5)  # hold the instance lock while the reassign waits for it
            results["complete"] = "done"
        except (TaskNotAvailable, Conflict) as err:  # Conflict: the reassign moved the case's revision on
            results["complete"] = f"refused: {err}"

    def reassign() -> None:
        try:
            with sessions.begin() as s:
                assign(s, task_id, "bob", by="sue")
                if first == "reassign":
                    holding.set()
                    time.sleep(0.5)
            results["reassign"] = "done"
        except TaskNotAvailable as err:
            results["reassign"] = f"refused: {err}"

    one, two = (complete, reassign) if first == "complete" else (reassign, complete)
    runner = threading.Thread(target=one)
    runner.start()
    assert holding.wait(10)
    two()  # a second session, while the first still holds its transaction open
    runner.join(timeout=30)
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        kinds = [e.kind for e in audit.history(s, row.instance_id)]
        assert audit.verify(s).ok
    if first == "complete":
        assert results == {"complete": "done", "reassign": "refused: this task was already completed"}
        assert row.state == "completed" and row.completed_by == "anna" and "task_assigned" not in kinds
    else:
        assert results["reassign"] == "done" and results["complete"].startswith("refused: ")
        assert row.state == "ready" and row.assignee == "bob" and "task_completed" not in kinds
