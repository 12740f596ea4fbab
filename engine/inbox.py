"""Inbox: task queries for a user or role, and claim, release and reassign.

Views never build task queries themselves; they call these. Every query is served by the
indexes on `task` (state+assignee, state+role, state+due), so an inbox stays fast however many
finished instances the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, false, func, or_, select
from sqlalchemy.orm import Session
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




def _query(flt: TaskFilter, *columns: Any, join: bool = True) -> Select:
    """Return the filtered select of `columns` (default: each task and its instance), the filter's
    values in it (the criteria are `list_tasks`' own, `_criteria`).

    With `join=False` the instance is joined only when a filter reads it (its business key or process).
    """
    columns = columns or (Task, Instance)
    query = select(*columns)
    if join or flt.business_key or flt.process_id:
        query = query.join(Instance, Instance.id == Task.instance_id)
    return query.where(*_criteria(_shape(flt), _values(flt)))


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
    # (its serialized state too) cost more than the page itself. The three statements run on the
    # cursor (engine.fastsql), each built once per shape of filter, every value a bound parameter.
    shape, values = _shape(flt), _values(flt)
    total = _listing("count", shape).first(session, values, autoflush=True)[0] or 0  # type: ignore[index]
    ids = [row[0] for row in _listing(sort, shape).all(session, {**values, "page_limit": per_page,
                                                                 "page_offset": (page - 1) * per_page})]
    found = {}
    if ids:
        for row in _page_rows(len(ids)).all(session, {f"id{n}": task_id for n, task_id in enumerate(ids)}):
            task = adopt(session, Task, row[:_ROW_INSTANCE_AT])
            found[task.id] = (task, adopt(session, Instance, row[_ROW_INSTANCE_AT:], keys=_ROW_INSTANCE_KEYS))
    return Page([found[i] for i in ids if i in found], total, page, per_page)


# A filter's shape: what decides the statement's text (which criteria, how many roles and cover windows).
_Shape = tuple[bool, bool, int | None, tuple[bool, ...], bool, bool, bool, bool, bool]


def _shape(flt: TaskFilter) -> _Shape:
    return (flt.state is not None, flt.assignee is not None, None if flt.roles is None else len(flt.roles),
            tuple(start is None for _user, start, _end in flt.cover), flt.instance_id is not None,
            bool(flt.business_key), bool(flt.process_id), flt.due_before is not None, flt.overdue_at is not None)


def _values(flt: TaskFilter) -> dict[str, Any]:
    """Return the filter's values by the names `_criteria` binds them to."""
    values: dict[str, Any] = {"state": flt.state, "assignee": flt.assignee, "instance_id": flt.instance_id,
                              "business_key": flt.business_key, "process_id": flt.process_id,
                              "due_before": flt.due_before, "overdue_at": flt.overdue_at}
    for n, role in enumerate(sorted(flt.roles or ())):
        values[f"role{n}"] = role
    for n, (user, start, end) in enumerate(flt.cover):
        values.update({f"cover_user{n}": user, f"cover_start{n}": start, f"cover_end{n}": end})
    return values


def _criteria(shape: _Shape, values: dict[str, Any] | None = None) -> list[Any]:
    """Return the WHERE criteria of a filter of this shape, each value a bound parameter named as in
    `_values`: without `values` to be given at each execution (`list_tasks`' statements, built once
    per shape), with them holding those values (`_query`: a statement for this filter alone)."""
    state, assignee, roles, cover, instance_id, business_key, process_id, due_before, overdue_at = shape

    def bound(name: str, column: Any) -> Any:
        if values is None:
            return bindparam(name, type_=column.type)
        return bindparam(name, values[name], type_=column.type, unique=True)

    criteria: list[Any] = [Task.state == bound("state", Task.state)] if state else []
    covered = [and_(Task.assignee == bound(f"cover_user{n}", Task.assignee),
                    Task.due_at < bound(f"cover_end{n}", Task.due_at) if open_start else
                    and_(Task.due_at >= bound(f"cover_start{n}", Task.due_at),
                         Task.due_at < bound(f"cover_end{n}", Task.due_at)))
               for n, open_start in enumerate(cover)]
    of_roles = (Task.candidate_role.in_([bound(f"role{n}", Task.candidate_role) for n in range(roles)])
                if roles else false())
    if assignee and roles is not None:
        criteria.append(or_(Task.assignee == bound("assignee", Task.assignee), *covered,
                            Task.assignee.is_(None) & of_roles))
    elif assignee:
        criteria.append(or_(Task.assignee == bound("assignee", Task.assignee), *covered))
    elif roles is not None:
        criteria += [Task.assignee.is_(None), of_roles]
    for present, column in ((instance_id, Task.instance_id), (business_key, Instance.business_key),
                            (process_id, Instance.process_id)):
        if present:
            criteria.append(column == bound(column.key, column))
    if due_before:
        criteria.append(Task.due_at <= bound("due_before", Task.due_at))
    if overdue_at:
        criteria.append(Task.due_at < bound("overdue_at", Task.due_at))
    return criteria


@lru_cache(maxsize=256)
def _listing(kind: str, shape: _Shape) -> Fast:
    """Return the count ("count") or a page of ids in a sort's order, for a filter of this shape."""
    join = kind in ("customer", "process") or shape[5] or shape[6]  # a sort or a filter reads the instance
    ids = select(Task.id)
    if join:
        ids = ids.join(Instance, Instance.id == Task.instance_id)
    ids = ids.where(*_criteria(shape))
    if kind == "count":
        return Fast(select(func.count()).select_from(ids.subquery()))
    return Fast(ids.order_by(*SORTS[kind]).limit(bindparam("page_limit", type_=Integer))
                .offset(bindparam("page_offset", type_=Integer)))


_ROW_INSTANCE_COLUMNS = tuple(c for c in Instance.__table__.columns if c.key != "state")  # not the serialized state
_ROW_INSTANCE_KEYS = tuple(c.key for c in _ROW_INSTANCE_COLUMNS)
_ROW_INSTANCE_AT = len(Task.__table__.columns)


@lru_cache(maxsize=512)
def _page_rows(count: int) -> Fast:
    """Return the select of `count` tasks by id (id0, id1, ...) with their instances, the state left out."""
    return Fast(select(*Task.__table__.columns, *_ROW_INSTANCE_COLUMNS).join(Instance, Instance.id == Task.instance_id)
                .where(Task.id.in_([bindparam(f"id{n}", type_=Task.id.type) for n in range(count)])))


def tasks(session: Session, *, instance_id: int | None = None, assignee: str | None = None,
          state: TaskStatus | None = TaskStatus.READY) -> list[Task]:
    """List tasks of an instance or of an assignee (all matching, oldest first)."""
    if instance_id is not None and assignee is None and state is not None:  # a case's open tasks: after every step
        rows = _TASKS_OF_INSTANCE.all(session, {"instance_id": instance_id, "state": state}, autoflush=True)
        return [adopt(session, Task, row) for row in rows]
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
