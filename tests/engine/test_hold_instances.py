"""runtime.hold_instances: a chunk of instances locked and read in two statements, then acted on one by one.

The timer sweep uses it. What it read must be exactly what each action would have read itself (same
firings, same audit chain), it must never be used once an earlier action of the same transaction changed
the instance, and a state that cannot be read must fail in its own action, not in the chunk's read.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from engine import audit, inbox, runtime, spiff
from engine.models import AuditEvent, Instance, Timer

from .conftest import T0

DUE = T0 + timedelta(days=15)  # the reminder's 14-day timer has come due


def _reminders(sessions, deploy, count: int) -> list[int]:
    deploy("reminder.bpmn")
    with sessions.begin() as s:
        return [runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0).id
                for _ in range(count)]


class _Statements:
    """The SQL the database runs (SQLite's trace: statements on the cursor included)."""

    def __init__(self, sessions):
        self.seen: list[str] = []
        self.engine = sessions.kw["bind"]
        self.engine.pool.dispose()  # new connections: the listener below sees them open
        event.listen(self.engine, "connect", self._connect)

    def _connect(self, dbapi_conn, _record) -> None:
        dbapi_conn.set_trace_callback(self.seen.append)

    def matching(self, *words: str) -> list[str]:
        return [s for s in self.seen if all(w in s for w in words)]


def _fired_kinds(sessions, instance_id: int) -> list[str]:
    with sessions.begin() as s:
        return [e.kind for e in audit.history(s, instance_id)]


def test_a_held_chunk_fires_as_one_by_one_and_reads_each_instance_once(sessions, deploy):
    ids = _reminders(sessions, deploy, 4)
    alone = _reminders(sessions, deploy, 1)[0]
    runtime.forget_cache()  # as in a worker: nothing held in memory
    with sessions.begin() as s:  # the reference: one instance fired without hold_instances
        assert runtime.fire_instance_timers(s, alone, now=DUE) == ["late"]
    statements = _Statements(sessions)
    with sessions.begin() as s:
        runtime.hold_instances(s, ids)
        before = len(statements.seen)
        assert [runtime.fire_instance_timers(s, i, now=DUE) for i in ids] == [["late"]] * 4
        during = statements.seen[before:]
    # the chunk's read: one select of the instance rows, one of what they hold; none per instance after it
    assert len(statements.matching("FROM instance", "IN (")) == 1
    assert len(statements.matching("variable.instance_id IN (")) == 1
    assert not [q for q in during if "FROM instance" in q or "FROM variable" in q or "FROM audit_stream" in q]
    with sessions.begin() as s:
        assert audit.verify(s).ok
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
        for i in ids:
            assert sorted(t.element_id for t in inbox.tasks(s, instance_id=i)) == ["call", "escalate"]
    assert all(_fired_kinds(sessions, i) == _fired_kinds(sessions, alone) for i in ids)


def test_an_instance_changed_earlier_in_the_transaction_is_read_again(sessions, deploy):
    [case] = _reminders(sessions, deploy, 1)
    runtime.forget_cache()
    with sessions.begin() as s:
        runtime.hold_instances(s, [case])
        [task] = inbox.tasks(s, instance_id=case)
        runtime.complete_task(s, task.id, {"reached": True}, by="anna", now=DUE)  # takes what was held
        # the call is done: its boundary timer went with it; the held copy (before the call) is not reused
        assert runtime.fire_instance_timers(s, case, now=DUE) == []
    with sessions.begin() as s:
        assert s.get(Instance, case).status == "completed"
        assert audit.verify(s).ok
        kinds = [e.kind for e in audit.history(s, case)]
    assert "timer_fired" not in kinds and kinds[-1] == "instance_completed"


def test_a_state_that_cannot_be_read_fails_in_its_own_action(sessions, deploy, caplog):
    good, broken = _reminders(sessions, deploy, 2)
    with sessions.begin() as s:
        s.execute(update(Instance).where(Instance.id == broken).values(state='{"not": "a workflow"}'))
    runtime.forget_cache()
    caplog.set_level(logging.DEBUG, logger="engine.runtime")
    with sessions.begin() as s:
        runtime.hold_instances(s, [good, broken])  # the chunk's read does not fail for it
        [record] = [r for r in caplog.records if r.name == "engine.runtime" and r.levelno == logging.DEBUG]
        assert record.getMessage() == f"instance {broken}: its state is read again by its action"
        assert record.exc_info and isinstance(record.exc_info[1], KeyError)
        assert runtime.fire_instance_timers(s, good, now=DUE) == ["late"]
        with pytest.raises(KeyError):
            runtime.fire_instance_timers(s, broken, now=DUE)
        s.rollback()


def test_what_a_transaction_held_is_gone_after_it(sessions, deploy):
    ids = _reminders(sessions, deploy, 2)
    runtime.forget_cache()
    with sessions.begin() as s:
        runtime.hold_instances(s, ids)
        s.rollback()
    with sessions.begin() as s:  # a new transaction reads for itself: another writer may have changed them
        s.execute(update(Instance).where(Instance.id == ids[0]).values(status="cancelled"))
    with sessions.begin() as s:
        assert runtime.fire_instance_timers(s, ids[1], now=DUE) == ["late"]
        assert s.get(Instance, ids[0]).status == "cancelled"
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.kind == "timer_fired")) == 1


def test_a_workflow_held_in_memory_at_the_same_revision_is_not_read_again(sessions, deploy, monkeypatch):
    ids = _reminders(sessions, deploy, 3)  # the starts leave them held in this process
    with sessions.begin() as s:  # one changes behind the cache's back: a newer revision in the database
        s.execute(update(Instance).where(Instance.id == ids[2]).values(revision=Instance.revision + 1))
    loads: list[int] = []
    load = spiff.load_state
    monkeypatch.setattr(spiff, "load_state", lambda text, bundle: loads.append(1) or load(text, bundle))
    with sessions.begin() as s:
        s.get(Instance, ids[1])  # already in the session, at the revision the database holds
        runtime.hold_instances(s, ids)
        assert len(loads) == 1  # only the one whose revision moved
        assert [runtime.fire_instance_timers(s, i, now=DUE) for i in ids] == [["late"]] * 3
        assert len(loads) == 1  # each firing took what the chunk's read held
    with sessions.begin() as s:
        assert audit.verify(s).ok
