"""Key figures and worklists over task rows: aftercare per expert, on-time share, customer overviews.

Plain read-only queries taking a `session`; the supervisor page, the aftercare worklist and the
customer page call them. The aftercare tasks of the shipped model are named once, in
`AFTERCARE_ELEMENTS`; `AFTERCARE_CONTACT` is the one whose punctuality the on-time share counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .db import utcnow
from .models import Customer, Instance, Task, TaskStatus

AFTERCARE_CONTACT = "aftercare_contact"
AFTERCARE_ELEMENTS = (AFTERCARE_CONTACT, "hold_follow_up_day")  # user tasks of bpmn/aftercare.bpmn


@dataclass
class ExpertLoad:
    """One expert's open work: tasks, and aftercare tasks due (not yet late) and overdue."""

    assignee: str
    open_tasks: int = 0
    overdue_tasks: int = 0
    aftercare_due: int = 0
    aftercare_overdue: int = 0


@dataclass(frozen=True)
class OnTime:
    """Aftercare contacts completed in a period, and how many of them by their due date."""

    done: int
    on_time: int

    @property
    def share(self) -> float | None:
        """Return the on-time share between 0 and 1 (None when nothing was done)."""
        return self.on_time / self.done if self.done else None


@dataclass
class ProcessStep:
    """A customer's service process as the customer page shows it."""

    instance: Instance
    open_tasks: list[Task] = field(default_factory=list)
    aftercare: list[Task] = field(default_factory=list)


def expert_loads(session: Session, now: datetime | None = None) -> list[ExpertLoad]:
    """Return the open task counts of every assignee holding open tasks, by assignee."""
    now = now or utcnow()
    overdue = (Task.due_at.is_not(None)) & (Task.due_at < now)
    aftercare = Task.element_id.in_(AFTERCARE_ELEMENTS)
    query = (select(Task.assignee, func.count(),
                    func.sum(case((overdue, 1), else_=0)),
                    func.sum(case((aftercare & ~overdue, 1), else_=0)),
                    func.sum(case((aftercare & overdue, 1), else_=0)))
             .where(Task.state == TaskStatus.READY, Task.assignee.is_not(None))
             .group_by(Task.assignee).order_by(Task.assignee))
    return [ExpertLoad(a, n, int(o or 0), int(d or 0), int(ao or 0)) for a, n, o, d, ao in session.execute(query)]


def unassigned_open(session: Session, now: datetime | None = None) -> tuple[int, int]:
    """Return (open, overdue) counts of tasks nobody holds yet."""
    now = now or utcnow()
    overdue = (Task.due_at.is_not(None)) & (Task.due_at < now)
    query = select(func.count(), func.sum(case((overdue, 1), else_=0))).where(
        Task.state == TaskStatus.READY, Task.assignee.is_(None))
    total, late = session.execute(query).one()
    return int(total or 0), int(late or 0)


def aftercare_on_time(session: Session, start: datetime, end: datetime) -> OnTime:
    """Count aftercare contacts completed in [start, end) and those completed by their due date."""
    on_time = (Task.due_at.is_(None)) | (Task.completed_at <= Task.due_at)
    query = select(func.count(), func.sum(case((on_time, 1), else_=0))).where(
        Task.element_id == AFTERCARE_CONTACT, Task.state == TaskStatus.COMPLETED,
        Task.completed_at >= start, Task.completed_at < end)
    done, good = session.execute(query).one()
    return OnTime(int(done or 0), int(good or 0))


def aftercare_tasks(session: Session, assignee: str) -> list[tuple[Task, Instance]]:
    """Return the open aftercare tasks assigned to a user, earliest due first."""
    query = (select(Task, Instance).join(Instance, Instance.id == Task.instance_id)
             .where(Task.state == TaskStatus.READY, Task.assignee == assignee,
                    Task.element_id.in_(AFTERCARE_ELEMENTS))
             .order_by(Task.due_at.is_(None), Task.due_at, Task.created_at))
    return [(t, i) for t, i in session.execute(query).all()]


def overdue_aftercare(session: Session, now: datetime | None = None) -> list[tuple[Task, Instance]]:
    """Return every open aftercare task past its due date, most overdue first."""
    now = now or utcnow()
    query = (select(Task, Instance).join(Instance, Instance.id == Task.instance_id)
             .where(Task.state == TaskStatus.READY, Task.element_id.in_(AFTERCARE_ELEMENTS),
                    Task.due_at < now)
             .order_by(Task.due_at))
    return [(t, i) for t, i in session.execute(query).all()]


def customer_names(session: Session, business_ids: Iterable[str | None]) -> dict[str, str]:
    """Return {business ID: customer name} for the given business IDs that are registered."""
    wanted = {b for b in business_ids if b}
    if not wanted:
        return {}
    query = select(Customer.business_id, Customer.name).where(Customer.business_id.in_(wanted))
    return {bid: name for bid, name in session.execute(query)}


def process_steps(session: Session, instances: list[Instance]) -> list[ProcessStep]:
    """Return each instance with its open tasks (current steps) and its aftercare tasks, open or done."""
    steps = {i.id: ProcessStep(i) for i in instances}
    if not steps:
        return []
    query = (select(Task).where(Task.instance_id.in_(steps))
             .where((Task.state == TaskStatus.READY) | Task.element_id.in_(AFTERCARE_ELEMENTS))
             .order_by(Task.created_at))
    for task in session.scalars(query):
        step = steps[task.instance_id]
        if task.element_id in AFTERCARE_ELEMENTS and task.state != TaskStatus.CANCELLED:
            step.aftercare.append(task)
        if task.state == TaskStatus.READY:
            step.open_tasks.append(task)
    return list(steps.values())


def month_start(now: datetime, timezone: str = "Europe/Helsinki") -> datetime:
    """Return the first instant of `now`'s calendar month in the given time zone."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def summary(session: Session, now: datetime | None = None, timezone: str = "Europe/Helsinki") -> dict[str, Any]:
    """Return the supervisor's headline figures: expert loads, unassigned work, this month's on-time share."""
    now = now or utcnow()
    return {"loads": expert_loads(session, now), "unassigned": unassigned_open(session, now),
            "on_time": aftercare_on_time(session, month_start(now, timezone), now)}
