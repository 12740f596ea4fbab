"""The timer worker under database faults: a fault is not the case's fault. Nothing becomes an
incident, nothing is held back for minutes, and the leases the worker held when the database
went away are handed back as soon as it answers again (not left to run out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, select

from engine import deploy, runtime, timers
from engine.db import make_engine, make_sessions, upgrade
from engine.models import AuditEvent, Incident, Timer

MODELS = Path(__file__).parents[1] / "engine" / "bpmn"


class ReadOnlyAfter:
    """Make the `lasting` transactions after the first `allowed` read-only (SQLite `PRAGMA query_only`)."""

    def __init__(self, engine, allowed: int, lasting: int = 1_000_000):
        self.allowed, self.lasting, self.on = allowed, lasting, True
        event.listen(engine, "begin", self)  # after the engine's own BEGIN IMMEDIATE
        event.listen(engine.pool, "checkin", lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA query_only=OFF"))

    def __call__(self, conn) -> None:
        if self.on and -self.lasting < self.allowed <= 0:
            conn.connection.dbapi_connection.execute("PRAGMA query_only=ON")
        self.allowed -= 1


def test_a_database_fault_while_firing_is_retried_at_once_and_the_leases_come_back(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        deploy.deploy_files(s, {"reminder.bpmn": (MODELS / "reminder.bpmn").read_bytes()}, by="test")
        past = datetime.now(UTC) - timedelta(days=15)
        ids = [runtime.start_instance(s, "reminder", by="t", data={"due": "P7D"}, now=past).id for _ in range(5)]
    worker = timers.Worker(sessions, poll_seconds=5.0, worker_id="w1")
    fault = ReadOnlyAfter(engine, allowed=1)  # the claim goes through; firing meets a read-only database
    assert worker.sweep() == 0
    assert worker.faulted and worker.leases_to_release
    assert worker._pause() == timers.TRANSIENT_BACKOFF  # a short pause, not the poll interval
    fault.on = False
    with sessions.begin() as s:  # the claims are still there: the database refused every write
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.lease_owner == "w1")) == 5
    assert worker.sweep() == 5  # the next sweep hands its leases back and fires at once
    with sessions.begin() as s:
        fired = s.scalars(select(AuditEvent.instance_id).where(AuditEvent.kind == "timer_fired")).all()
        assert sorted(fired) == ids
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
    assert not worker.faulted and not worker.leases_to_release
    engine.dispose()


def test_a_fault_in_one_firing_does_not_hold_the_timer_back(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        deploy.deploy_files(s, {"reminder.bpmn": (MODELS / "reminder.bpmn").read_bytes()}, by="test")
        past = datetime.now(UTC) - timedelta(days=15)
        runtime.start_instance(s, "reminder", by="t", data={"due": "P7D"}, now=past)
    fault = ReadOnlyAfter(engine, allowed=1, lasting=1)  # only the firing fails; the hand-back works
    worker = timers.Worker(sessions, worker_id="w2")
    assert worker.sweep() == 0 and worker.faulted
    fault.on = False
    with sessions.begin() as s:  # handed back at once: not held for minutes like a broken instance
        assert s.execute(select(Timer.lease_owner, Timer.lease_until)).all() == [(None, None)]
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
    assert worker.sweep() == 1
    engine.dispose()
