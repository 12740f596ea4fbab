"""Timers: find due timers by one indexed query, fire each exactly once, on any number of workers.

Every waiting timer of every instance is a `timer` row with its `due_at` (written by the runtime
whenever an instance changes), so finding due work never reads instance states. A sweep claims a
batch of due rows with a lease (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one
writer at a time), then fires the claimed instances `FIRE_CHUNK` to a transaction (when one fails, the
transaction rolls back and the others fire again without it). Exactly-once holds
because firing happens under the instance's row lock and optimistic revision check
(`runtime.lock_instance`): a second worker that somehow fires the same instance finds the timer
gone or loses with `Conflict` and rolls back; a worker killed mid-step loses nothing,
its lease expires and another worker takes the timer. A worker hands back what is left of its batch
before its lease runs out, and a firing that lost a race (`Conflict`, a PostgreSQL deadlock or
serialization failure) is released for the next sweep at once. In real time each instance fires at
its own instant, so the audit's `at` and `lag_seconds` say when it really happened.

Run it as `polku worker` (one process per core or machine), embedded in `polku serve`, or as a
single sweep: `fire_due_timers(sessions, now=...)` / `polku fire-timers --now ISO`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from . import audit, runtime
from .dbfaults import is_transient
from .errors import Conflict
from .fastsql import QueuedWriteFailed, run_later
from .models import Instance, InstanceStatus, Timer

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=30)
TRANSIENT_BACKOFF = 0.5  # seconds between sweeps while the database is away (a restart, a killed connection)


def worker_name() -> str:
    """Return a name for this worker process: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _real_now() -> datetime:
    return datetime.now(UTC)


def claim_due(session: Session, *, now: datetime, worker_id: str, limit: int = 100,
              lease: timedelta = DEFAULT_LEASE) -> list[int]:
    """Lease up to `limit` due timers; return their instance ids in due order (each once)."""
    real_now = _real_now()
    query = (_fireable(select(Timer.id, Timer.instance_id), real_now)
             .where(Timer.due_at <= now).order_by(Timer.due_at, Timer.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Timer, skip_locked=True)
    rows = session.execute(query).all()
    if not rows:
        return []
    session.execute(update(Timer).where(Timer.id.in_([r.id for r in rows]))
                    .values(lease_owner=worker_id, lease_until=real_now + lease))
    ordered: list[int] = []
    for row in rows:
        if row.instance_id not in ordered:
            ordered.append(row.instance_id)
    return ordered


def _fireable(query: Select, real_now: datetime) -> Select:
    # the same filter for claiming and for sleeping: a timer of an instance that waits for an
    # incident to be resolved is not work, and must not keep the worker awake
    return (query.join(Instance, Instance.id == Timer.instance_id)
            .where(Instance.status == InstanceStatus.RUNNING, Instance.open_incidents == 0,
                   or_(Timer.lease_until.is_(None), Timer.lease_until < real_now)))


def next_due(session: Session) -> datetime | None:
    """Return the earliest due time of any timer a worker could claim."""
    return session.scalar(_fireable(select(func.min(Timer.due_at)), _real_now()))


def fire_due_timers(sessions: sessionmaker, *, now: datetime | None = None, worker_id: str | None = None,
                    batch: int = 100, lease: timedelta = DEFAULT_LEASE,
                    stop: threading.Event | None = None) -> int:
    """Fire every timer due at `now` (default: the real time), until `stop` is set; return how many fired."""
    worker_id = worker_id or worker_name()
    stop = stop or threading.Event()
    fired = 0
    while not stop.is_set():
        with sessions.begin() as session:
            instance_ids = claim_due(session, now=now or _real_now(), worker_id=worker_id, limit=batch,
                                     lease=lease)
        if not instance_ids:
            return fired
        # stop well before the lease runs out: past it, another worker may take the same timers
        deadline = time.monotonic() + lease.total_seconds() * 0.8
        position = 0
        while position < len(instance_ids):
            # the first always fires (progress at any lease); on stop, the rest go back at once
            if position and (time.monotonic() > deadline or stop.is_set()):
                _release(sessions, instance_ids[position:], worker_id)
                break
            chunk = instance_ids[position:position + FIRE_CHUNK]
            try:
                done, count = _fire_chunk(sessions, chunk, now, worker_id, stop)
            except SQLAlchemyError:  # a database fault (see _fire_chunk): the rest of the batch goes back
                _release_quietly(sessions, instance_ids[position:], worker_id)
                raise
            fired += done
            position += count
    return fired


# Instances fired per transaction: one commit (one WAL flush, one insert of all their audit events) per
# chunk instead of per instance. No savepoint per instance: a SAVEPOINT and its RELEASE cost a fifth of a
# firing. When one instance fails, the chunk's transaction rolls back whole and the instances before it
# fire again in a new one (see _after_failure): failures are rare, and the common case pays nothing.
FIRE_CHUNK = 25


class _InstanceFailed(Exception):
    """Firing the instance at `position` of a chunk raised `error` (the chunk's transaction is rolled back)."""

    def __init__(self, position: int, error: Exception):
        super().__init__(position, error)
        self.position, self.error = position, error


class _QueueFailed(Exception):
    """The queued writes of the chunk's first `count` instances failed with `error`; whose is not known."""

    def __init__(self, count: int, error: Exception):
        super().__init__(count, error)
        self.count, self.error = count, error


def _fire_chunk(sessions: sessionmaker, instance_ids: list[int], now: datetime | None, worker_id: str,
                stop: threading.Event) -> tuple[int, int]:
    """Fire instances in one transaction; return (timers fired, instances handled) - a stop may end it early.

    Raises:
        SQLAlchemyError: a database fault (server away, disk full): nothing of the chunk is kept.
    """
    fired = handled = 0
    try:
        with sessions.begin() as session:
            _chunk_step(runtime.hold_instances, session, instance_ids)  # locked and read in two statements
            for instance_id in instance_ids:
                if handled and stop.is_set():
                    break
                try:  # in real time, fire at the instant of firing (the audit's `at` and lag say when it happened)
                    count = len(runtime.fire_instance_timers(session, instance_id, now=now or _real_now()))
                except QueuedWriteFailed as err:  # the rows of an instance before this one
                    raise _QueueFailed(handled, err.error) from err
                except Exception as err:  # one broken instance must not stop the others
                    raise _InstanceFailed(handled, err) from err
                fired += count
                handled += 1
            try:
                run_later(session)  # the last instance's rows, here rather than at the commit
                _chunk_step(audit.write_pending, session)  # the chunk's audit events and stream heads
            except QueuedWriteFailed as err:
                raise _QueueFailed(handled, err.error) from err
    except _InstanceFailed as failed:  # the whole transaction was rolled back
        return _after_failure(sessions, instance_ids, failed.position, failed.error, now, worker_id, stop)
    except _QueueFailed as failed:  # rolled back too
        return _after_queue_failure(sessions, instance_ids[:failed.count], failed.error, now, worker_id, stop)
    except _ChunkLostRace:  # rolled back too: the whole chunk goes back for the next claim, at once
        log.info("instances %s changed meanwhile; their timers are taken up again on the next sweep",
                 ", ".join(map(str, instance_ids)))
        _release(sessions, instance_ids, worker_id)
        return 0, len(instance_ids)
    return fired, handled


class _ChunkLostRace(Exception):
    """A step for the whole chunk (its locks, its audit events) lost a race: the transaction is rolled back."""


def _chunk_step(step: Callable[..., None], *args: Any) -> None:
    """Run a step for the whole chunk; a lost race there (a deadlock) is the chunk's, not one instance's."""
    try:
        step(*args)
    except Exception as err:
        if _lost_race(err):
            raise _ChunkLostRace from err
        raise


def _after_failure(sessions: sessionmaker, instance_ids: list[int], position: int, err: Exception,
                   now: datetime | None, worker_id: str, stop: threading.Event) -> tuple[int, int]:
    """Fire again the instances of a rolled-back chunk before the failing one; then deal with that one.

    A lost race hands its timers back for the next sweep at once; a database fault goes up (the whole
    chunk goes back, the sweep pauses); anything else is the case's own fault: its timers are held back
    five minutes and logged. Return (timers fired, instances handled), the failing one counted.
    """
    instance_id = instance_ids[position]
    if not _lost_race(err) and is_transient(err):  # the database, not the case: the caller gives the chunk back
        log.warning("database fault while firing the timers of instance %s: %s", instance_id,
                    str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise err
    fired, handled = _fire_chunk(sessions, instance_ids[:position], now, worker_id, stop) if position else (0, 0)
    if handled < position:  # stopped meanwhile: the failing one goes back with the rest
        return fired, handled
    if _lost_race(err):  # a deadlock or serialization loss is the other writer's turn, not a fault
        log.info("instance %s changed meanwhile; its timers are taken up again on the next sweep", instance_id)
        _release(sessions, [instance_id], worker_id)
    else:
        log.error("firing the timers of instance %s failed", instance_id, exc_info=err)
        _release(sessions, [instance_id], worker_id, hold=timedelta(minutes=5))
    return fired, position + 1


def _after_queue_failure(sessions: sessionmaker, suspects: list[int], err: Exception, now: datetime | None,
                         worker_id: str, stop: threading.Event) -> tuple[int, int]:
    """Deal with queued writes that failed: the rows of one of `suspects` (a chunk's first instances).

    The failure surfaced at a later statement, so it names none of them. A lost race hands them back
    for the next sweep and a database fault goes up, as for one instance; otherwise each fires again in
    a transaction of its own, where its rows run before its commit and a failure is its own: its
    timers are held back five minutes and logged (without this, such a row, say a text too long for
    its column on PostgreSQL, failed the chunk at every sweep and the other instances never fired).
    Return (timers fired, instances handled).
    """
    if not suspects or (not _lost_race(err) and is_transient(err)):  # (none: nothing was queued by them)
        raise err
    if _lost_race(err):
        log.info("instances %s changed meanwhile; their timers are taken up again on the next sweep",
                 ", ".join(map(str, suspects)))
        _release(sessions, suspects, worker_id)
        return 0, len(suspects)
    if len(suspects) == 1:
        log.error("writing what firing the timers of instance %s changed failed", suspects[0], exc_info=err)
        _release(sessions, suspects, worker_id, hold=timedelta(minutes=5))
        return 0, 1
    fired = handled = 0
    for instance_id in suspects:
        if handled and stop.is_set():
            break
        done, count = _fire_chunk(sessions, [instance_id], now, worker_id, stop)
        fired, handled = fired + done, handled + count
    return fired, handled


# PostgreSQL's "serialization failure" and "deadlock detected": the other transaction went on
LOST_RACE_SQLSTATES = ("40001", "40P01")


def _lost_race(err: Exception) -> bool:
    """Tell whether firing failed only because someone else wrote the same instance at that moment."""
    if isinstance(err, (Conflict, StaleDataError)):  # StaleDataError: the optimistic lock, via an autoflush
        return True
    return isinstance(err, DBAPIError) and getattr(err.orig, "sqlstate", None) in LOST_RACE_SQLSTATES


def _release_quietly(sessions: sessionmaker, instance_ids: list[int] | None, worker_id: str) -> bool:
    """Hand back this worker's leases (all of them when `instance_ids` is None); False if the database is away."""
    try:
        with sessions.begin() as session:
            query = update(Timer).where(Timer.lease_owner == worker_id)
            if instance_ids is not None:
                query = query.where(Timer.instance_id.in_(instance_ids))
            session.execute(query.values(lease_owner=None, lease_until=None))
        return True
    except SQLAlchemyError:
        return False


def _release(sessions: sessionmaker, instance_ids: list[int], worker_id: str,
             hold: timedelta = timedelta(0)) -> None:
    """Hand back this worker's leases on these instances' timers (or hold them back a while)."""
    with sessions.begin() as session:
        _release_in(session, instance_ids, worker_id, hold)


def _release_in(session: Session, instance_ids: list[int], worker_id: str, hold: timedelta = timedelta(0)) -> None:
    session.execute(update(Timer).where(Timer.instance_id.in_(instance_ids), Timer.lease_owner == worker_id)
                    .values(lease_owner=None, lease_until=_real_now() + hold if hold else None))


class Worker:
    """A loop that fires due timers until stopped; punctual to within `poll_seconds`."""

    def __init__(self, sessions: sessionmaker, *, poll_seconds: float = 1.0, worker_id: str | None = None,
                 lease: timedelta = DEFAULT_LEASE):
        self.sessions = sessions
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or worker_name()
        self.lease = lease
        self.stopping = threading.Event()
        self.faulted = False  # the last sweep met a database fault: the next comes after a short pause
        self.leases_to_release = False

    def sweep(self) -> int:
        """Fire everything due now; never raise.

        A database fault (server restarting, connection killed, disk full, lock timeout) pauses
        the worker for `TRANSIENT_BACKOFF` only; the leases it held are handed back as soon as the
        database answers again, so no timer waits for a lease of a lost connection to run out.
        """
        self.faulted = False
        if self.leases_to_release and _release_quietly(self.sessions, None, self.worker_id):
            self.leases_to_release = False
        try:
            fired = fire_due_timers(self.sessions, worker_id=self.worker_id, lease=self.lease, stop=self.stopping)
            from .jobs import run_jobs_quietly  # scheduled starts, notices, e-mail (engine.jobs)

            run_jobs_quietly(self.sessions, worker_id=self.worker_id)
            return fired
        except Exception as err:  # the database may be away for a moment: keep the worker alive
            self.faulted = self.leases_to_release = True
            if is_transient(err):
                log.warning("timer sweep: the database is not available (%s); retrying in %.1f s",
                            str(err).splitlines()[0] if str(err) else type(err).__name__, TRANSIENT_BACKOFF)
            else:
                log.exception("timer sweep failed; retrying in %.1f s", TRANSIENT_BACKOFF)
            return 0

    def run(self, once: bool = False) -> None:
        """Sweep until `stop()`; on start-up everything overdue fires first, in due order."""
        while not self.stopping.is_set():
            self.sweep()
            if once:
                return
            self.stopping.wait(self._pause())

    def _pause(self) -> float:
        if self.faulted:
            return min(self.poll_seconds, TRANSIENT_BACKOFF)
        try:
            with self.sessions.begin() as session:
                upcoming = next_due(session)
        except SQLAlchemyError:  # the database is away a moment: keep polling at the normal pace
            return self.poll_seconds
        if upcoming is None:
            return self.poll_seconds
        return max(0.05, min(self.poll_seconds, (upcoming - _real_now()).total_seconds()))

    def stop(self) -> None:
        """Ask the loop to end once the instance being fired is done; the rest of its batch goes back."""
        self.stopping.set()

    def start_thread(self) -> threading.Thread:
        """Run the loop in a daemon thread (the web server's embedded worker)."""
        thread = threading.Thread(target=self.run, name="polku-timer-worker", daemon=True)
        thread.start()
        return thread


def run_worker(sessions: sessionmaker, *, poll_seconds: float = 1.0, once: bool = False,
               lease: timedelta = DEFAULT_LEASE) -> None:
    """Run a worker in the foreground until SIGTERM/SIGINT."""
    worker = Worker(sessions, poll_seconds=poll_seconds, lease=lease)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    log.info("timer worker %s started (poll %.1f s)", worker.worker_id, poll_seconds)
    try:
        worker.run(once=once)
    except KeyboardInterrupt:
        worker.stop()
    time.sleep(0)
