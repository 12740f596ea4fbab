"""The revision check on real PostgreSQL, reached through `runtime.complete_task`: the loser gets `Conflict`.

Two sessions read the same task page (`runtime.task_details`: the task and its case at revision N)
and both complete the task through `runtime.complete_task`. On PostgreSQL every writer first
locks the case row (`SELECT … FOR UPDATE`, in `runtime.lock_instance`) and re-reads it; the
revision it held is compared with the stored one there, and a session that read revision N when N+1
is stored gets `Conflict` — exactly that, not `TaskNotAvailable`. Two ways: one after the other
(a stale session), and truly at once (both have read the page before either writes; one waits on
the row lock until the other commits). Nothing is written twice: one completion, one audit event,
the winner's variables, the revision the winner left, an audit chain that verifies.

Tried by hand in a copy of the tree: these tests fail if `lock_instance`'s revision check goes (its
`StaleDataError` → `Conflict`: the loser gets the raw error) or if the case row is read without
`FOR UPDATE` (no `Conflict`). Removing the conditional UPDATE's check in `runtime._save_instance`
changes nothing here: on PostgreSQL no public entry point reaches it with a stale revision, since
the row lock re-reads the revision first and holds the row until commit. On SQLite (no row lock:
one writer holds the whole database) that UPDATE is what refuses the stale session
(tests/engine/test_revision_check.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from engine import audit, inbox, runtime
from engine.errors import Conflict
from engine.models import AuditEvent, Instance, Task, TaskStatus, Variable

from .conftest import deploy_models

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def _order_model(sessions) -> None:
    deploy_models(sessions, "order.bpmn")


def _start(sessions) -> tuple[int, str, int]:
    # amount 500: the small-order path to the price script, which fails without `divisor` (an incident
    # the winner writes once)
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "order", by="t", data={"customer": "Acme Oy", "amount": 500},
                                          business_key="0737546-2", now=T0)
        [task] = inbox.tasks(s, instance_id=instance.id)
        return instance.id, task.id, instance.revision


def _stored(sessions, instance_id: int, task_id: str) -> dict:
    with sessions.begin() as s:
        task = s.get(Task, task_id)
        events = [e for e in audit.history(s, instance_id) if e.task_id == task_id]
        return {
            "task": (task.state, task.completed_by),
            "completed_by": [e.actor for e in events if e.kind == "task_completed"],
            "revision": s.get(Instance, instance_id).revision,
            "note": runtime.instance_variables(s, instance_id).get("note"),
            "variables": s.scalar(select(func.count()).select_from(Variable)
                                  .where(Variable.instance_id == instance_id)),
            "events": s.scalar(select(func.count()).select_from(AuditEvent)
                               .where(AuditEvent.instance_id == instance_id)),
            "chain_ok": audit.verify(s, instance_id).ok,
        }


def _read_page(session, task_id: str) -> None:
    details = runtime.task_details(session, task_id)
    assert details["task"].state == TaskStatus.READY
    session.info["page"] = details  # held as a request holds what it read (the identity map is weak)


@pytest.mark.parametrize("forget", [False, True], ids=["same-process", "reloaded"])
def test_a_stale_session_gets_conflict_and_writes_nothing(sessions, forget):
    instance_id, task_id, revision = _start(sessions)
    anna, bertta = sessions(), sessions()
    try:
        _read_page(anna, task_id)
        anna.commit()
        _read_page(bertta, task_id)
        bertta.commit()  # bertta keeps revision N and the READY task
        runtime.complete_task(anna, task_id, {"channel": "phone", "note": "anna"}, by="anna", roles={"expert"},
                              now=T0)
        anna.commit()
        after_anna = _stored(sessions, instance_id, task_id)
        if forget:
            runtime.forget_cache()
        with pytest.raises(Conflict, match="someone else changed this case"):
            runtime.complete_task(bertta, task_id, {"channel": "email", "note": "bertta"}, by="bertta",
                                  roles={"expert"}, now=T0)
        bertta.rollback()
    finally:
        anna.close()
        bertta.close()
    stored = _stored(sessions, instance_id, task_id)
    assert stored == after_anna
    assert stored["task"] == (TaskStatus.COMPLETED, "anna")
    assert stored["completed_by"] == ["anna"]
    assert stored["note"] == "anna"
    assert stored["revision"] > revision
    assert stored["chain_ok"]


@pytest.mark.parametrize("round_", range(3))
def test_two_sessions_at_once_exactly_one_wins_the_other_gets_conflict(sessions, round_):
    instance_id, task_id, revision = _start(sessions)
    runtime.forget_cache()
    barrier = threading.Barrier(2, timeout=20)
    outcomes: dict[str, str] = {}

    def complete(user: str) -> None:
        try:
            with sessions.begin() as s:
                _read_page(s, task_id)  # both have read the page at revision N …
                barrier.wait()  # … before either writes
                runtime.complete_task(s, task_id, {"channel": "phone", "note": user}, by=user, roles={"expert"},
                                      now=T0)
            outcomes[user] = "ok"
        except Exception as err:  # noqa: BLE001 - any other outcome is reported by the assertion below
            outcomes[user] = type(err).__name__

    threads = [threading.Thread(target=complete, args=(u,)) for u in ("anna", "bertta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["Conflict", "ok"], outcomes
    [winner] = [u for u, o in outcomes.items() if o == "ok"]
    stored = _stored(sessions, instance_id, task_id)
    assert stored["task"] == (TaskStatus.COMPLETED, winner)
    assert stored["completed_by"] == [winner]
    assert stored["note"] == winner
    assert stored["revision"] > revision
    assert stored["chain_ok"]
