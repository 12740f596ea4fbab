"""Inbox: task queries for a user or role, and claim, release and reassign.

Views never build task queries themselves; they call these. Every query is served by the
indexes on `task` (state+assignee, state+role, state+due), so an inbox stays fast however many
finished instances the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import flag_modified

from . import audit
from .audit import EventKind
from .db import utcnow
from .errors import InvalidInput, TaskNotAvailable, TaskNotFound
from .fastsql import Fast, adopt
from .models import Instance, Task, TaskStatus
from .paging import Page

SORTS = {
    "due": (Task.due_at.is_(None), Task.due_at, Task.created_at),
    "-due": (Task.due_at.is_(None), Task.due_at.desc(), Task.created_at),
    "created": (Task.created_at,),
    "-created": (Task.created_at.desc(),),
    "task": (Task.name, Task.created_at),
    "customer": (Instance.business_key, Task.created_at),
    "process": (Instance.process_id, Task.created_at),
}


@dataclass(frozen=True)
class TaskFilter:
    """Which open tasks to list."""

    assignee: str | None = None         # tasks assigned to this user
    roles: frozenset[str] | None = None  # unassigned tasks of these candidate roles
    instance_id: int | None = None
    business_key: str | None = None
    process_id: str | None = None
    due_before: datetime | None = None
    overdue_at: datetime | None = None   # only tasks due before this instant
    state: TaskStatus | None = TaskStatus.READY
    # absence cover (engine.absences.cover_windows): also the tasks of (absent user, due from, due before);
    # due from None: every task due before the end (the absence has begun, overdue ones too)
    cover: tuple[tuple[str, datetime | None, datetime], ...] = ()




def _cover_clauses(flt: TaskFilter) -> list[Any]:
    """Return one clause per absence this user covers: the absent one's tasks due in the period."""
    clauses = []
    for username, start, end in flt.cover:
        due = Task.due_at < end if start is None else and_(Task.due_at >= start, Task.due_at < end)
        clauses.append(and_(Task.assignee == username, due))
    return clauses


def _query(flt: TaskFilter, *columns: Any, join: bool = True) -> Select:
    """Return the filtered select of `columns` (default: each task and its instance).

    With `join=False` the instance is joined only when a filter reads it (its business key or process).
    """
    columns = columns or (Task, Instance)
    query = select(*columns)
    if join or flt.business_key or flt.process_id:
        query = query.join(Instance, Instance.id == Task.instance_id)
    if flt.state is not None:
        query = query.where(Task.state == flt.state)
    if flt.assignee is not None and flt.roles is not None:
        query = query.where(or_(Task.assignee == flt.assignee, *_cover_clauses(flt),
                                Task.assignee.is_(None) & Task.candidate_role.in_(flt.roles)))
    elif flt.assignee is not None:
        query = query.where(or_(Task.assignee == flt.assignee, *_cover_clauses(flt)))
    elif flt.roles is not None:
        query = query.where(Task.assignee.is_(None), Task.candidate_role.in_(flt.roles))
    if flt.instance_id is not None:
        query = query.where(Task.instance_id == flt.instance_id)
    if flt.business_key:
        query = query.where(Instance.business_key == flt.business_key)
    if flt.process_id:
        query = query.where(Instance.process_id == flt.process_id)
    if flt.due_before is not None:
        query = query.where(Task.due_at <= flt.due_before)
    if flt.overdue_at is not None:
        query = query.where(Task.due_at < flt.overdue_at)
    return query


def list_tasks(session: Session, flt: TaskFilter, *, sort: str = "due", page: int = 1,
               per_page: int = 50) -> Page:
    """Return one page of tasks (with their instances) matching the filter.

    Raises:
        InvalidInput: unknown sort key or page below 1.
    """
    if sort not in SORTS:
        raise InvalidInput(f"unknown sort '{sort}' (use one of {', '.join(SORTS)})")
    if page < 1 or not 1 <= per_page <= 500:
        raise InvalidInput("page must be 1 or more and per_page between 1 and 500")
    # Count and sort the task rows alone (the instance only when a filter or the sort reads it), then
    # read the page's tasks with their instances: joining and sorting every open task's instance
    # (its serialized state too) cost more than the page itself.
    total = session.scalar(select(func.count()).select_from(_query(flt, Task.id, join=False).subquery())) or 0
    ids = list(session.scalars(_query(flt, Task.id, join=sort in ("customer", "process")).order_by(*SORTS[sort])
                               .offset((page - 1) * per_page).limit(per_page)))
    found = {t.id: (t, i) for t, i in session.execute(
        select(Task, Instance).join(Instance, Instance.id == Task.instance_id).where(Task.id.in_(ids))
        .options(defer(Instance.state)))} if ids else {}
    return Page([found[i] for i in ids if i in found], total, page, per_page)


def tasks(session: Session, *, instance_id: int | None = None, assignee: str | None = None,
          state: TaskStatus | None = TaskStatus.READY) -> list[Task]:
    """List tasks of an instance or of an assignee (all matching, oldest first)."""
    if instance_id is not None and assignee is None and state is not None:  # a case's open tasks: after every step
        if session.autoflush:  # what the ORM's autoflush did before its select
            session.flush()
        return [adopt(session, Task, row) for row in _TASKS_OF_INSTANCE.all(session, {"instance_id": instance_id,
                                                                                       "state": state})]
    query = _query(TaskFilter(assignee=assignee, instance_id=instance_id, state=state), Task, join=False)
    return list(session.scalars(query.order_by(Task.created_at)))


# on the cursor (engine.fastsql), every column in table order for `adopt`: the rows are the session's
# objects as the ORM's select would give them, at a third of its CPU (no cache key, no result object)
_TASKS_OF_INSTANCE = Fast(select(*Task.__table__.columns)
                          .where(Task.instance_id == bindparam("instance_id"), Task.state == bindparam("state"))
                          .order_by(Task.created_at))


def overdue(session: Session, now: datetime | None = None) -> list[Task]:
    """List open tasks whose due date has passed."""
    now = now or utcnow()
    query = _query(TaskFilter(overdue_at=now)).order_by(Task.due_at)
    return [t for t, _i in session.execute(query).all()]


def due_soon(task: Task, now: datetime | None = None, within: timedelta = timedelta(days=2)) -> bool:
    """Tell whether an open task falls due within `within` (and is not yet overdue)."""
    now = now or utcnow()
    return task.due_at is not None and now <= task.due_at <= now + within


def is_overdue(task: Task, now: datetime | None = None) -> bool:
    """Tell whether an open task is past its due date."""
    return task.due_at is not None and task.due_at < (now or utcnow()) and task.state == TaskStatus.READY


def _open_task(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    from .runtime import lock_instance  # the instance lock first, as every writer takes it

    lock_instance(session, task.instance_id)
    session.refresh(task)
    if task.state != TaskStatus.READY:
        raise TaskNotAvailable(f"this task was already {task.state}")
    return task


def _record(session: Session, task: Task, kind: EventKind, by: str, data: dict[str, Any]) -> None:
    instance = session.get(Instance, task.instance_id)
    if instance is not None:
        flag_modified(instance, "state")  # a claim changes the case: bump its revision (optimistic lock)
    audit.append(session, kind, actor=by, instance_id=task.instance_id,
                 version_id=instance.version_id if instance else None, element_id=task.element_id,
                 task_id=task.id, data=data)


def claim(session: Session, task_id: str, *, by: str, roles: set[str] | None = None) -> Task:
    """Take an unassigned task for yourself.

    Raises:
        TaskNotAvailable: already assigned to someone, done, or not your role's.
    """
    task = _open_task(session, task_id)
    if task.assignee == by:
        return task
    if task.assignee is not None:
        raise TaskNotAvailable(f"this task is already assigned to {task.assignee}")
    if roles is not None and task.candidate_role not in roles and "admin" not in roles:
        raise TaskNotAvailable(f"this task belongs to the {task.candidate_role} role")
    task.assignee = by
    _record(session, task, EventKind.TASK_CLAIMED, by, {"assignee": by})
    return task


def release(session: Session, task_id: str, *, by: str) -> Task:
    """Give a task you hold back to its group.

    Raises:
        TaskNotAvailable: the task is not yours.
    """
    task = _open_task(session, task_id)
    if task.assignee != by:
        raise TaskNotAvailable("only the assignee can release this task")
    task.assignee = None
    _record(session, task, EventKind.TASK_RELEASED, by, {"previous": by})
    return task


def assign(session: Session, task_id: str, assignee: str | None, *, by: str) -> Task:
    """Reassign an open task to a named user (a supervisor's action); None returns it to the group."""
    task = _open_task(session, task_id)
    previous = task.assignee
    if previous == assignee:
        return task
    task.assignee = assignee
    _record(session, task, EventKind.TASK_ASSIGNED, by, {"previous": previous, "assignee": assignee})
    return task
