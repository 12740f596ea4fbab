"""Two writers on one instance: exactly one wins, the other gets a clear refusal."""

from __future__ import annotations

import threading

from engine import inbox, runtime
from engine.errors import Conflict, TaskNotAvailable
from engine.models import Instance


def test_two_sessions_completing_the_same_task_exactly_one_succeeds(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 5000}).id
        [task] = inbox.tasks(s, instance_id=iid)
    barrier = threading.Barrier(2, timeout=10)
    outcomes: list[str] = []

    def complete(user: str) -> None:
        try:
            barrier.wait()
            with sessions.begin() as s:
                runtime.complete_task(s, task.id, {"channel": "phone"}, by=user)
            outcomes.append("ok")
        except (Conflict, TaskNotAvailable) as err:
            outcomes.append(type(err).__name__)

    threads = [threading.Thread(target=complete, args=(u,)) for u in ("anna", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(outcomes) == "ok" and outcomes.count("ok") == 1, outcomes
    with sessions.begin() as s:
        assert [t.element_id for t in inbox.tasks(s, instance_id=iid)] == ["approve"]


def test_stale_revision_raises_conflict(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 5000}).id
    stale = sessions()
    try:
        held = stale.get(Instance, iid)
        stale.commit()  # we hold revision N in memory …
        with sessions.begin() as s:  # … while another writer moves the row to N+1
            s.get(Instance, iid).started_by = "other"
        held.started_by = "late writer"
        try:
            runtime._flush(stale)
        except Conflict:
            stale.rollback()
        else:
            raise AssertionError("the stale write was not refused")
    finally:
        stale.close()
