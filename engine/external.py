"""External tasks: service tasks done by workers outside the engine (the Camunda 7 pattern).

A service task (or send task, or business rule task) with `camunda:type="external"` and a
`camunda:topic` does not run in the engine: when the case reaches it, the runtime opens an
`ExternalTask` row and the case waits there. A worker polls:

    fetch_and_lock(session, "mailer-1", [("send-letter", 60)], max_tasks=5)  -> tasks + variables
    complete(session, task_id, "mailer-1", {"sent": True})    -> the case runs on
    fail(session, task_id, "mailer-1", "SMTP down", retries=2, retry_timeout_seconds=300)
    extend_lock(session, task_id, "mailer-1", 120)

A task is free when it is open, unlocked or its lock expired, and its retries are not used up.
On PostgreSQL free tasks are taken with `SELECT … FOR UPDATE SKIP LOCKED` (the instance row
too, so an action on the case and a fetch never interleave): several workers fetching at the same
time each get different tasks. Only the lock owner, while its lock lives, may complete, fail or
extend. A failure with retries left makes the task fetchable again after the retry timeout; when
the retries reach 0 an incident opens ("external task failed: …"); retrying that incident
(`runtime.retry_incident`) gives the task to workers again with one retry.

Like every engine function these take the session first and never commit. Each change is audited
on the instance's hash chain and bumps the instance's revision (the optimistic lock).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from . import audit, runtime, values
from .audit import EventKind
from .db import utcnow
from .errors import Conflict, ExternalTaskNotAvailable, ExternalTaskNotFound, InvalidInput
from .models import (
    ExternalTask,
    ExternalTaskState,
    Incident,
    Instance,
    InstanceStatus,
    Variable,
)

__all__ = ["LockedTask", "Topic", "complete", "extend_lock", "fail", "fetch_and_lock", "get",
           "list_tasks", "open_for_instance", "task_dict", "unlock"]

MAX_TASKS = 100  # per fetch
MAX_LOCK_SECONDS = 7 * 24 * 3600
MAX_MESSAGE = 2_000  # characters of a failure message
MAX_DETAILS = 64_000  # characters of failure details (a stack trace, a response body)


@dataclass(frozen=True)
class Topic:
    """What a worker asks for: a topic, how long to lock its tasks, and which variables (None: all)."""

    name: str
    lock_seconds: float
    variables: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LockedTask:
    """A task handed to a worker: where it is, its case's variables and the lock the worker holds."""

    id: int
    topic: str
    instance_id: int
    process_id: str
    element_id: str
    business_key: str | None
    variables: dict[str, Any]
    priority: int | None
    retries: int | None
    worker_id: str
    lock_expires_at: datetime
    error_message: str | None
    error_details: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return the task as plain JSON-able data (what the CLI prints and the API sends)."""
        return {"id": self.id, "topic": self.topic, "instance_id": self.instance_id,
                "process_id": self.process_id, "element_id": self.element_id, "business_key": self.business_key,
                "variables": self.variables, "priority": self.priority, "retries": self.retries,
                "worker_id": self.worker_id, "lock_expires_at": self.lock_expires_at.isoformat(),
                "error_message": self.error_message, "error_details": self.error_details}


def _topics(topics: Iterable[Topic | tuple[Any, ...] | str], default_lock_seconds: float) -> dict[str, Topic]:
    """Normalise topics given as Topic, (name, lock_seconds[, variables]) or a bare name."""
    found: dict[str, Topic] = {}
    for item in topics:
        if isinstance(item, str):
            item = Topic(item, default_lock_seconds)
        elif not isinstance(item, Topic):
            name, seconds, *rest = item
            item = Topic(name, seconds, tuple(rest[0]) if rest and rest[0] is not None else None)
        if not item.name or not str(item.name).strip():
            raise InvalidInput("a topic name cannot be empty")
        _check_seconds(item.lock_seconds, "the lock duration")
        found[item.name] = item
    if not found:
        raise InvalidInput("name at least one topic to fetch tasks from")
    return found


def _check_seconds(seconds: float, what: str, *, zero: bool = False) -> None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        raise InvalidInput(f"{what} must be a number of seconds")
    if seconds < 0 or (seconds == 0 and not zero) or seconds > MAX_LOCK_SECONDS:
        low = "0" if zero else "more than 0"
        raise InvalidInput(f"{what} must be {low} and at most {MAX_LOCK_SECONDS} seconds, not {seconds}")


def _check_worker(worker_id: str) -> None:
    if not worker_id or not worker_id.strip() or len(worker_id) > 200:
        raise InvalidInput("a worker id (1 to 200 characters) is required")


def fetch_and_lock(session: Session, worker_id: str, topics: Iterable[Topic | tuple[Any, ...] | str], *,
                   max_tasks: int = 1, lock_seconds: float = 60, now: datetime | None = None) -> list[LockedTask]:
    """Lock up to `max_tasks` free tasks of the topics for `worker_id`; return them with their variables.

    Tasks come highest priority first, then oldest first. A topic given as a bare name is locked
    for `lock_seconds`.

    Raises:
        InvalidInput: no topic, a bad lock duration or task count, no worker id.
    """
    now = now or utcnow()
    _check_worker(worker_id)
    wanted = _topics(topics, lock_seconds)
    if not isinstance(max_tasks, int) or not 1 <= max_tasks <= MAX_TASKS:
        raise InvalidInput(f"max tasks must be a whole number from 1 to {MAX_TASKS}, not {max_tasks}")
    query = (select(ExternalTask, Instance)
             .join(Instance, Instance.id == ExternalTask.instance_id)
             .where(ExternalTask.state == ExternalTaskState.OPEN, ExternalTask.topic.in_(list(wanted)),
                    or_(ExternalTask.lock_expires_at.is_(None), ExternalTask.lock_expires_at <= now),
                    or_(ExternalTask.retries.is_(None), ExternalTask.retries > 0),
                    Instance.status == InstanceStatus.RUNNING)
             .order_by(func.coalesce(ExternalTask.priority, 0).desc(), ExternalTask.created_at, ExternalTask.id)
             .limit(max_tasks)
             .execution_options(populate_existing=True))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # rows another worker or a case action holds are skipped
    rows = session.execute(query).all()
    found = _variables(session, {instance.id for _row, instance in rows})
    locked: list[LockedTask] = []
    touched: dict[int, Instance] = {}
    for row, instance in rows:
        topic = wanted[row.topic]
        row.lock_owner, row.lock_expires_at = worker_id, now + timedelta(seconds=topic.lock_seconds)
        names = topic.variables
        variables = {**found.get(instance.id, {}), **(row.local_variables or {})}  # the task's own win
        if names is not None:
            variables = {k: v for k, v in variables.items() if k in names}
        _audit(session, row, instance, EventKind.EXTERNAL_TASK_LOCKED, worker_id, now,
               worker=worker_id, lock_expires_at=row.lock_expires_at.isoformat())
        touched[instance.id] = instance
        locked.append(_locked(row, instance, variables))
    for instance in touched.values():
        _touch(session, instance)
    return locked


def _variables(session: Session, instance_ids: set[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {i: {} for i in instance_ids}
    if instance_ids:
        query = select(Variable).where(Variable.instance_id.in_(instance_ids)).order_by(Variable.name)
        for var in session.scalars(query):
            found[var.instance_id][var.name] = var.value
    return found


def _locked(row: ExternalTask, instance: Instance, variables: dict[str, Any]) -> LockedTask:
    assert row.lock_owner is not None and row.lock_expires_at is not None
    return LockedTask(row.id, row.topic, instance.id, instance.process_id, row.element_id, instance.business_key,
                      variables, row.priority, row.retries, row.lock_owner, row.lock_expires_at,
                      row.error_message, row.error_details)


def complete(session: Session, external_task_id: int, worker_id: str, variables: dict[str, Any] | None = None,
             *, now: datetime | None = None) -> ExternalTask:
    """Complete a task this worker holds, with its result variables, and run the case on.

    Raises:
        ExternalTaskNotFound, ExternalTaskNotAvailable (not this worker's lock, lock expired,
        already completed or cancelled), DataInvalid (variables not JSON-plain or too large),
        Conflict.
    """
    now = now or utcnow()
    data = values.check_plain(dict(variables or {}), what="external task variables")
    row, instance = _owned(session, external_task_id, worker_id, now)
    row.state, row.ended_at, row.ended_by = ExternalTaskState.COMPLETED, now, worker_id
    row.lock_owner, row.lock_expires_at = None, None
    _audit(session, row, instance, EventKind.EXTERNAL_TASK_COMPLETED, worker_id, now, worker=worker_id,
           variables=data)
    runtime.complete_external_task(session, row, data, by=worker_id, now=now)
    return row


def fail(session: Session, external_task_id: int, worker_id: str, message: str, details: str | None = None,
         retries: int | None = None, retry_timeout_seconds: float = 0, *,
         now: datetime | None = None) -> ExternalTask:
    """Report that the worker could not do a task it holds; `retries` is how many tries are left.

    Without `retries`, one fewer than before (none at the first failure). With retries left the
    task is fetchable again after `retry_timeout_seconds`; at 0 an incident opens on the case.

    Raises:
        ExternalTaskNotFound, ExternalTaskNotAvailable, InvalidInput (no message, bad retries or
        timeout, details too long), Conflict.
    """
    now = now or utcnow()
    message = (message or "").strip()
    if not message:
        raise InvalidInput("say why the task failed: the failure message cannot be empty")
    if details is not None and len(details) > MAX_DETAILS:
        raise InvalidInput(f"the failure details are longer than {MAX_DETAILS:,} characters")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool) or retries < 0):
        raise InvalidInput(f"retries must be a whole number of 0 or more, not {retries}")
    _check_seconds(retry_timeout_seconds, "the retry timeout", zero=True)
    row, instance = _owned(session, external_task_id, worker_id, now)
    left = retries if retries is not None else max(0, (row.retries or 1) - 1)
    row.retries, row.error_message, row.error_details = left, message[:MAX_MESSAGE], details
    row.lock_owner = None
    row.lock_expires_at = now + timedelta(seconds=retry_timeout_seconds) if left and retry_timeout_seconds else None
    _audit(session, row, instance, EventKind.EXTERNAL_TASK_FAILED, worker_id, now, worker=worker_id,
           message=row.error_message, details=details, retries_left=left,
           retry_at=row.lock_expires_at.isoformat() if row.lock_expires_at else None)
    if left == 0:
        _raise_incident(session, row, instance, by=worker_id, now=now)
    else:
        _touch(session, instance)
    return row


def extend_lock(session: Session, external_task_id: int, worker_id: str, new_seconds: float, *,
                now: datetime | None = None) -> ExternalTask:
    """Keep a task this worker holds for `new_seconds` from now.

    Raises:
        ExternalTaskNotFound, ExternalTaskNotAvailable, InvalidInput (bad duration).
    """
    now = now or utcnow()
    _check_seconds(new_seconds, "the lock duration")
    row, instance = _owned(session, external_task_id, worker_id, now)
    row.lock_expires_at = now + timedelta(seconds=new_seconds)
    _audit(session, row, instance, EventKind.EXTERNAL_TASK_LOCK_EXTENDED, worker_id, now, worker=worker_id,
           lock_expires_at=row.lock_expires_at.isoformat())
    _touch(session, instance)
    return row


def unlock(session: Session, external_task_id: int, *, by: str, now: datetime | None = None) -> ExternalTask:
    """Take the lock off an open task (an administrator's action): any worker may fetch it at once.

    Raises:
        ExternalTaskNotFound, ExternalTaskNotAvailable (completed or cancelled).
    """
    now = now or utcnow()
    row, instance = _row_for_update(session, external_task_id)
    _check_open(row)
    previous = row.lock_owner
    row.lock_owner, row.lock_expires_at = None, None
    _audit(session, row, instance, EventKind.EXTERNAL_TASK_UNLOCKED, by, now, previous_worker=previous)
    _touch(session, instance)
    return row


def get(session: Session, external_task_id: int) -> ExternalTask:
    """Return one external task row.

    Raises:
        ExternalTaskNotFound: no such task.
    """
    row = session.get(ExternalTask, external_task_id)
    if row is None:
        raise ExternalTaskNotFound(f"there is no external task {external_task_id}")
    return row


def list_tasks(session: Session, *, topic: str | None = None, instance_id: int | None = None,
               state: ExternalTaskState | None = ExternalTaskState.OPEN) -> list[ExternalTask]:
    """List external tasks (open ones unless `state` says otherwise; None: all), oldest first."""
    query = select(ExternalTask).order_by(ExternalTask.created_at, ExternalTask.id)
    if state is not None:
        query = query.where(ExternalTask.state == state)
    if topic is not None:
        query = query.where(ExternalTask.topic == topic)
    if instance_id is not None:
        query = query.where(ExternalTask.instance_id == instance_id)
    return list(session.scalars(query))


def open_for_instance(session: Session, instance_id: int) -> int:
    """Count the external tasks a case is waiting on (a reason to wait, like a timer or a message)."""
    query = select(func.count()).select_from(ExternalTask).where(
        ExternalTask.instance_id == instance_id, ExternalTask.state == ExternalTaskState.OPEN)
    return int(session.scalar(query) or 0)


def task_dict(row: ExternalTask, *, now: datetime | None = None) -> dict[str, Any]:
    """Return an external task row as plain data, with whether its lock is live at `now`."""
    now = now or utcnow()
    live = row.lock_owner is not None and row.lock_expires_at is not None and row.lock_expires_at > now
    return {"id": row.id, "topic": row.topic, "instance_id": row.instance_id, "element_id": row.element_id,
            "state": str(row.state), "priority": row.priority, "retries": row.retries,
            "worker_id": row.lock_owner, "locked": live,
            "lock_expires_at": row.lock_expires_at.isoformat() if row.lock_expires_at else None,
            "error_message": row.error_message, "error_details": row.error_details,
            "created_at": row.created_at.isoformat(),
            "ended_at": row.ended_at.isoformat() if row.ended_at else None, "ended_by": row.ended_by}


# ---------------------------------------------------------------------------------------------


def _row_for_update(session: Session, external_task_id: int) -> tuple[ExternalTask, Instance]:
    """Lock the task's instance (every writer takes it first), then the task row; fresh values."""
    row = get(session, external_task_id)
    instance = runtime.lock_instance(session, row.instance_id)
    if session.get_bind().dialect.name == "postgresql":
        session.refresh(row, with_for_update=True)
    else:  # SQLite: the one writer already holds the database
        session.refresh(row)
    return row, instance


def _check_open(row: ExternalTask) -> None:
    if row.state == ExternalTaskState.COMPLETED:
        raise ExternalTaskNotAvailable(f"external task {row.id} was already completed by worker {row.ended_by}")
    if row.state == ExternalTaskState.CANCELLED:
        raise ExternalTaskNotAvailable(f"external task {row.id} was cancelled: its case no longer waits for it")


def _owned(session: Session, external_task_id: int, worker_id: str, now: datetime) -> tuple[ExternalTask, Instance]:
    """Return the task and its instance, both locked, if `worker_id` holds a live lock on it."""
    _check_worker(worker_id)
    row, instance = _row_for_update(session, external_task_id)
    _check_open(row)
    if row.lock_owner is None:
        raise ExternalTaskNotAvailable(f"external task {row.id} is not locked by worker {worker_id}: "
                                       "fetch and lock it first")
    if row.lock_owner != worker_id:
        raise ExternalTaskNotAvailable(f"external task {row.id} is locked by worker {row.lock_owner}, "
                                       f"not by {worker_id}")
    assert row.lock_expires_at is not None
    if row.lock_expires_at <= now:
        raise ExternalTaskNotAvailable(f"the lock of worker {worker_id} on external task {row.id} expired at "
                                       f"{row.lock_expires_at.isoformat()}; fetch it again")
    return row, instance


def _audit(session: Session, row: ExternalTask, instance: Instance, kind: EventKind, actor: str, now: datetime,
           **data: Any) -> None:
    audit.append(session, kind, actor=actor, instance_id=instance.id, version_id=instance.version_id,
                 element_id=row.element_id, task_id=row.task_id,
                 data={"external_task_id": row.id, "topic": row.topic, **data}, at=now)


_INSTANCES = cast(Table, Instance.__table__)


def _touch(session: Session, instance: Instance) -> None:
    """Bump the instance's revision: its audit chain moved, so what any process holds of it is stale."""
    revision = instance.revision
    result = session.execute(update(_INSTANCES).where(_INSTANCES.c.id == instance.id,
                                                      _INSTANCES.c.revision == revision)
                             .values(revision=revision + 1))
    if cast(Any, result).rowcount != 1:
        raise Conflict("someone else changed this case at the same time; try again")
    set_committed_value(instance, "revision", revision + 1)


def _raise_incident(session: Session, row: ExternalTask, instance: Instance, *, by: str, now: datetime) -> Incident:
    """Open an incident for a task whose retries are used up; retrying it gives the task one retry."""
    message = f"external task failed: {row.error_message}"
    incident = Incident(instance_id=instance.id, element_id=row.element_id, message=message,
                        action={"kind": "external", "external_task_id": row.id}, created_at=now)
    session.add(incident)
    instance.open_incidents += 1  # an ORM change of the instance row: bumps its revision too
    session.flush()
    audit.append(session, EventKind.INCIDENT_RAISED, actor=by, instance_id=instance.id,
                 version_id=instance.version_id, element_id=row.element_id,
                 data={"incident_id": incident.id, "message": message}, at=now)
    return incident


def process_ids(session: Session, rows: Sequence[ExternalTask]) -> dict[int, tuple[str, str | None]]:
    """Return instance id -> (process id, business key) for rows (one query)."""
    ids = {r.instance_id for r in rows}
    if not ids:
        return {}
    query = select(Instance.id, Instance.process_id, Instance.business_key).where(Instance.id.in_(ids))
    return {i: (p, b) for i, p, b in session.execute(query)}

