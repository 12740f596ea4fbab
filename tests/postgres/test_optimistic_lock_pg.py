"""The optimistic lock on real PostgreSQL, through the public API: two sessions truly at once.

Unlike SQLite, PostgreSQL lets both transactions run together: both read the READY task, both try
to complete it. Exactly one wins; the other gets `Conflict` or `TaskNotAvailable`; one completion
and one audit event are written. A stale session (read before the other committed) is refused too.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from engine import audit, inbox, runtime
from engine.errors import Conflict, TaskNotAvailable
from engine.models import Instance, Task, TaskStatus

from .conftest import deploy_models

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DATA = {"channel": "phone", "approved_by_expert": True}


@pytest.fixture(scope="module", autouse=True)
def _order_model(sessions) -> None:
    deploy_models(sessions, "order.bpmn")


def _start(sessions) -> tuple[int, str]:
    with sessions.begin() as s:
        instance = runtime.start_instance(s, "order", by="t", data={"customer": "Acme Oy", "amount": 500},
                                          business_key="0737546-2", now=T0)
        [task] = inbox.tasks(s, instance_id=instance.id)
        return instance.id, task.id


def _completions(sessions, instance_id: int) -> list[str]:
    with sessions.begin() as s:
        return [e.actor for e in audit.history(s, instance_id) if e.kind == "task_completed"]


@pytest.mark.parametrize("round_", range(3))
def test_two_sessions_completing_one_task_exactly_one_wins(sessions, round_):
    instance_id, task_id = _start(sessions)
    runtime.forget_cache()
    barrier = threading.Barrier(2, timeout=20)
    outcomes: dict[str, str] = {}

    def complete(user: str) -> None:
        try:
            with sessions.begin() as s:
                s.get(Task, task_id)  # both have read the READY task …
                barrier.wait()  # … before either writes
                runtime.complete_task(s, task_id, {**DATA, "note": user}, by=user, now=T0)
            outcomes[user] = "ok"
        except (Conflict, TaskNotAvailable) as err:
            outcomes[user] = type(err).__name__

    threads = [threading.Thread(target=complete, args=(u,)) for u in ("anna", "bertta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) in (["Conflict", "ok"], ["TaskNotAvailable", "ok"]), outcomes
    [winner] = [u for u, o in outcomes.items() if o == "ok"]
    assert _completions(sessions, instance_id) == [winner]
    with sessions.begin() as s:
        row = s.get(Task, task_id)
        assert (row.state, row.completed_by) == (TaskStatus.COMPLETED, winner)
        assert runtime.instance_variables(s, instance_id)["note"] == winner


def test_a_stale_session_cannot_complete_a_completed_task(sessions):
    instance_id, task_id = _start(sessions)
    stale = sessions()
    try:
        stale.get(Instance, instance_id)
        stale.get(Task, task_id)
        stale.commit()
        with sessions.begin() as s:
            runtime.complete_task(s, task_id, DATA, by="anna", now=T0)
        with pytest.raises((Conflict, TaskNotAvailable)):
            runtime.complete_task(stale, task_id, {"channel": "email"}, by="bertta", now=T0)
            stale.commit()
        stale.rollback()
    finally:
        stale.close()
    assert _completions(sessions, instance_id) == ["anna"]
