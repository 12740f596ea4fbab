"""External tasks on PostgreSQL: several workers fetching at once each get different tasks.

Fetch-and-lock takes free rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers (threads here,
then OS processes) never lock the same task, and every task is completed exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from engine import audit, external, runtime
from engine.db import make_engine, make_sessions
from engine.models import ExternalTask, ExternalTaskState, Instance, InstanceStatus, Task

from .conftest import ROOT, deploy_models

pytestmark = [pytest.mark.postgres]

CASES = 40


@pytest.fixture
def factory(fresh_pg_url):
    """Return sessions on a database of this test's own, with CASES cases waiting at a service task."""
    engine = make_engine(fresh_pg_url)
    runtime.forget_cache()
    sessions = make_sessions(engine)
    deploy_models(sessions, "external_service.bpmn")
    with sessions.begin() as s:
        for n in range(CASES):
            runtime.start_instance(s, "external_service", by="load", data={"n": n}, business_key=str(n))
    runtime.forget_cache()
    yield sessions
    runtime.forget_cache()
    engine.dispose()


def _run_threads(count: int, target) -> list:
    results: list = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as err:  # noqa: BLE001 - reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_workers_fetching_at_the_same_time_lock_disjoint_tasks(factory):
    def fetch(i: int) -> list[int]:
        with factory.begin() as s:
            return [t.id for t in external.fetch_and_lock(s, f"w{i}", [("registry", 600)], max_tasks=15)]

    got = _run_threads(4, fetch)
    every = [task_id for ids in got for task_id in ids]
    assert len(every) == len(set(every)) == CASES  # 4 x 15 asked for, 40 exist: each locked once
    with factory.begin() as s:
        owners = dict(s.execute(select(ExternalTask.id, ExternalTask.lock_owner)).all())
    for i, ids in enumerate(got):
        assert all(owners[task_id] == f"w{i}" for task_id in ids)


def test_threads_complete_every_task_exactly_once(factory):
    def work(i: int) -> list[int]:
        done = []
        while True:
            with factory.begin() as s:
                batch = external.fetch_and_lock(s, f"w{i}", [("registry", 600)], max_tasks=3)
            if not batch:
                return done
            for task in batch:
                with factory.begin() as s:
                    external.complete(s, task.id, f"w{i}", {"status": "active", "by": f"w{i}"})
                done.append(task.id)

    got = _run_threads(4, work)
    counts = Counter(task_id for ids in got for task_id in ids)
    assert len(counts) == CASES and set(counts.values()) == {1}
    _assert_all_completed(factory)


WORKER = """
import json, sys
from engine import external
from engine.db import make_engine, make_sessions
sessions = make_sessions(make_engine(sys.argv[1]))
done = []
while True:
    with sessions.begin() as s:
        batch = external.fetch_and_lock(s, sys.argv[2], [("registry", 600)], max_tasks=2)
    if not batch:
        break
    for task in batch:
        with sessions.begin() as s:
            external.complete(s, task.id, sys.argv[2], {"status": "active"})
        done.append(task.id)
print(json.dumps(done))
"""


def test_worker_processes_complete_every_task_exactly_once(factory, fresh_pg_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, fresh_pg_url, f"proc{i}"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _out, err in outputs]
    counts = Counter(task_id for out, _err in outputs for task_id in json.loads(out))
    assert len(counts) == CASES and set(counts.values()) == {1}
    _assert_all_completed(factory)


def _assert_all_completed(factory) -> None:
    with factory.begin() as s:
        states = Counter(s.scalars(select(ExternalTask.state)))
        assert states == {ExternalTaskState.COMPLETED: CASES}
        reviews = s.scalar(select(func.count()).select_from(Task).where(Task.element_id == "review"))
        assert reviews == CASES
        assert s.scalar(select(func.count()).select_from(Instance)
                        .where(Instance.status == InstanceStatus.RUNNING)) == CASES
        assert audit.verify(s).ok
