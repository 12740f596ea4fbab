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


# ---------------------------------------------------------------------------------------------
# The aftercare dashboard (auditor and supervisor): every figure computed from variables and audit events

import math  # appended section: kept apart from the functions above
import statistics
from datetime import date as date_type

from .models import AuditEvent, Variable

AFTERCARE_CHARTS = ("done", "days", "channels", "ratings", "needs", "follow_up")
POSITIVE_TARGET = 0.69
_KPI_VARIABLES = ("responsible_expert", "service_line", "segment", "aftercare_target_days", "aftercare_started_at",
                  "aftercare_contacted_on", "aftercare_channel", "service_rating", "experience_positive",
                  "new_service_needs", "follow_up_new_needs", "follow_up_due")
_DAY_BUCKETS = ((7, "0-7"), (14, "8-14"), (21, "15-21"), (30, "22-30"))


@dataclass(frozen=True)
class AftercareFilter:
    """Which finished services the dashboard counts: aftercare started in [start, end), and by whom."""

    start: datetime | None = None
    end: datetime | None = None
    expert: str | None = None
    service_line: str | None = None
    segment: str | None = None


@dataclass
class AftercareReport:
    """The aftercare figures with each chart's rows (label, value)."""

    finished: int = 0
    done: int = 0
    days_median: float | None = None
    days_p90: float | None = None
    within_target: int = 0
    with_days: int = 0
    rating_mean: float | None = None
    rated: int = 0
    positive: int = 0
    answered: int = 0
    new_needs: int = 0
    new_processes: int = 0
    follow_up_due: int = 0
    follow_up_done: int = 0
    without_expert: int = 0
    charts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def done_share(self) -> float | None:
        """Return the share of finished services whose aftercare contact was made."""
        return self.done / self.finished if self.finished else None

    @property
    def within_share(self) -> float | None:
        """Return the share of contacts made within the target days."""
        return self.within_target / self.with_days if self.with_days else None

    @property
    def positive_share(self) -> float | None:
        """Return the share of positive experiences among the answered contacts."""
        return self.positive / self.answered if self.answered else None


def _day_of(value: Any, timezone: str) -> date_type | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None and "T" in value:
        return moment.astimezone(ZoneInfo(timezone)).date()
    return moment.date()


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _kpi_variables(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {i: {} for i in ids}
    named = Variable.name.in_(_KPI_VARIABLES) | Variable.name.like("%\\_ended\\_on", escape="\\")
    for part in _chunks(ids):
        for iid, name, value in session.execute(select(Variable.instance_id, Variable.name, Variable.value)
                                                .where(Variable.instance_id.in_(part), named)):
            found[iid][name] = value
    return found


def _completed(session: Session, ids: list[int], element_id: str) -> set[int]:
    done: set[int] = set()
    for part in _chunks(ids):
        done |= set(session.scalars(select(AuditEvent.instance_id).where(
            AuditEvent.kind == "task_completed", AuditEvent.element_id == element_id,
            AuditEvent.instance_id.in_(part))))
    return done


def _kept(values: dict[str, Any], f: AftercareFilter, started: date_type | None, timezone: str) -> bool:
    zone = ZoneInfo(timezone)
    if started is None:
        return False
    if f.start is not None and started < f.start.astimezone(zone).date():
        return False
    if f.end is not None and started >= f.end.astimezone(zone).date():
        return False
    if f.expert and values.get("responsible_expert") != f.expert:
        return False
    if f.segment and values.get("segment") != f.segment:
        return False
    lines = values.get("service_line")
    return not f.service_line or f.service_line in (lines if isinstance(lines, list) else [lines])


def _nearest_rank(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


def _service_end(values: dict[str, Any], timezone: str) -> date_type | None:
    ends = [d for k, v in values.items() if k.endswith("_ended_on") and (d := _day_of(v, timezone))]
    return max(ends) if ends else _day_of(values.get("aftercare_started_at"), timezone)


def _contact_figures(report: AftercareReport, done: list[dict[str, Any]], timezone: str) -> None:
    days: list[int] = []
    channels: dict[str, int] = {}
    ratings: dict[str, int] = {str(n): 0 for n in range(1, 6)}
    scores: list[int] = []
    for values in done:
        end, contact = _service_end(values, timezone), _day_of(values.get("aftercare_contacted_on"), timezone)
        if end is not None and contact is not None:
            days.append((contact - end).days)
            target = values.get("aftercare_target_days")
            report.within_target += int(isinstance(target, int | float) and (contact - end).days <= target)
        channel = values.get("aftercare_channel")
        if channel:
            channels[str(channel)] = channels.get(str(channel), 0) + 1
        rating = values.get("service_rating")
        if isinstance(rating, int) and not isinstance(rating, bool):
            scores.append(rating)
            ratings[str(rating)] = ratings.get(str(rating), 0) + 1
        if isinstance(values.get("experience_positive"), bool):
            report.answered += 1
            report.positive += int(values["experience_positive"])
        report.new_needs += int(bool(values.get("new_service_needs")))
    report.with_days = len(days)
    if days:
        report.days_median, report.days_p90 = float(statistics.median(days)), _nearest_rank(days, 0.9)
    report.rating_mean = statistics.fmean(scores) if scores else None
    report.rated = len(scores)
    buckets = [(label, sum(1 for d in days if (low < d <= high) or (low == -1 and d <= high)))
               for (low, (high, label)) in zip([-1, 7, 14, 21], _DAY_BUCKETS, strict=True)]
    report.charts.update(days=[*buckets, ("31+", sum(1 for d in days if d > 30))],
                         channels=sorted(channels.items()), ratings=list(ratings.items()))


def aftercare_report(session: Session, f: AftercareFilter, timezone: str = "Europe/Helsinki") -> AftercareReport:
    """Compute the aftercare dashboard from instance variables and audit events."""
    started = session.execute(select(Variable.instance_id, Variable.value)
                              .where(Variable.name == "aftercare_started_at")).all()
    values = _kpi_variables(session, [iid for iid, _v in started])
    ids = [iid for iid, v in started if _kept(values[iid], f, _day_of(v, timezone), timezone)]
    report = AftercareReport(finished=len(ids))
    contacted = _completed(session, ids, AFTERCARE_CONTACT)
    report.done = len(contacted)
    _contact_figures(report, [values[i] for i in ids if i in contacted], timezone)
    for part in _chunks(ids):
        report.new_processes += session.scalar(select(func.count()).select_from(Instance)
                                               .where(Instance.parent_instance_id.in_(part))) or 0
    report.follow_up_due = sum(1 for i in ids if values[i].get("follow_up_due"))
    report.follow_up_done = len(_completed(session, ids, "hold_follow_up_day"))
    report.without_expert = session.scalar(select(func.count()).select_from(Customer)
                                           .where(Customer.responsible_expert.is_(None))) or 0
    report.charts.update(done=[("done", report.done), ("not_done", report.finished - report.done)],
                         needs=[("new_needs", report.new_needs), ("new_processes", report.new_processes)],
                         follow_up=[("due", report.follow_up_due), ("done", report.follow_up_done)])
    return report
