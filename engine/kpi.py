"""Key figures and worklists: aftercare per expert, on-time share, customer overviews, the dashboard.

Plain read-only queries taking a `session`; the supervisor page, the aftercare worklist, the
customer page and the KPI dashboard call them. The aftercare tasks of the shipped model are named
once, in `AFTERCARE_ELEMENTS`; `AFTERCARE_CONTACT` is the contact whose punctuality is counted.

**On time** has one definition, `AftercareCase` (every figure here goes through it): an aftercare
instance covers one ended service line; its contact is on time when `aftercare_contacted_on −
service_ended_on ≤ aftercare_target_days` in whole Helsinki days, and an open contact is overdue
when today (Helsinki) is after `service_ended_on + aftercare_target_days`. A customer not reached
(`aftercare_outcome == "not_reached"`) is counted apart: neither done nor late.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, case, func, select, union_all
from sqlalchemy.orm import Session, defer

from .db import utcnow
from .models import AuditEvent, Customer, Instance, Task, TaskStatus, Variable

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
    """Aftercare contacts made in a period, how many within the office's target, and the customers
    not reached in it (apart: neither done nor late)."""

    done: int
    on_time: int
    not_reached: int = 0

    @property
    def late(self) -> int:
        """Return the contacts made after the target."""
        return self.done - self.on_time

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


ZONE = "Europe/Helsinki"
CASE_VARIABLES = ("service_line", "service_ended_on", "aftercare_target_days", "aftercare_started_at",
                  "aftercare_contacted_on", "aftercare_outcome", "aftercare_attempts")


def _day(value: Any, timezone: str = ZONE) -> date | None:
    """Return the Helsinki day of an ISO date or datetime text (None when it is not one)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(timezone)).date() if value.tzinfo else value.date()
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None and "T" in value:
        return moment.astimezone(ZoneInfo(timezone)).date()
    return moment.date()


def today(now: datetime, timezone: str = ZONE) -> date:
    """Return the Helsinki day of an instant."""
    return now.astimezone(ZoneInfo(timezone)).date()


@dataclass(frozen=True)
class AftercareCase:
    """One ended service line's aftercare, read from its instance variables: the one place that
    decides "on time", "late", "overdue" and "not reached"."""

    instance_id: int
    service_line: str | None
    ended_on: date | None  # the line's actual end (`service_ended_on`)
    target_days: int | None  # the office's target for the line, kept by the instance at its start
    contacted_on: date | None
    outcome: str | None  # "reached", "not_reached", or None while the contact part is open
    last_attempt_on: date | None = None

    @classmethod
    def from_values(cls, instance_id: int, values: dict[str, Any], timezone: str = ZONE) -> AftercareCase:
        """Build a case from its variables; an older instance without `service_ended_on` falls back to its
        latest `<line>_ended_on`, then to the day its aftercare started."""
        ended = _day(values.get("service_ended_on"), timezone)
        if ended is None:
            ends = [d for k, v in values.items() if k.endswith("_ended_on") and (d := _day(v, timezone))]
            ended = max(ends) if ends else _day(values.get("aftercare_started_at"), timezone)
        target = values.get("aftercare_target_days")
        target = int(target) if isinstance(target, int | float) and not isinstance(target, bool) else None
        line = values.get("service_line")
        attempts = values.get("aftercare_attempts")
        tried = [d for a in attempts if isinstance(a, dict) and (d := _day(a.get("on"), timezone))] \
            if isinstance(attempts, list) else []
        outcome = values.get("aftercare_outcome")
        contacted = _day(values.get("aftercare_contacted_on"), timezone)
        if outcome not in ("reached", "not_reached"):
            outcome = "reached" if contacted is not None else None  # a model without the outcome field
        return cls(instance_id, line if isinstance(line, str) else None, ended, target,
                   contacted if outcome == "reached" else None, outcome, max(tried) if tried else None)

    @property
    def deadline(self) -> date | None:
        """Return the last day the contact is on time (`service_ended_on + aftercare_target_days`)."""
        if self.ended_on is None or self.target_days is None:
            return None
        return self.ended_on + timedelta(days=self.target_days)

    @property
    def reached(self) -> bool:
        return self.outcome == "reached"

    @property
    def not_reached(self) -> bool:
        return self.outcome == "not_reached"

    @property
    def days(self) -> int | None:
        """Return the whole days from the service end to the contact (None unless reached with both days)."""
        if self.contacted_on is None or self.ended_on is None:
            return None
        return (self.contacted_on - self.ended_on).days

    @property
    def on_time(self) -> bool | None:
        """Tell whether a made contact came within the target (None when not made or not decidable)."""
        days = self.days
        return None if days is None or self.target_days is None else days <= self.target_days

    def overdue(self, on: date) -> bool:
        """Tell whether the contact is still open and the target's last day is before `on`."""
        deadline = self.deadline
        return self.outcome is None and deadline is not None and on > deadline


def aftercare_cases(session: Session, instance_ids: Iterable[int], timezone: str = ZONE) -> dict[int, AftercareCase]:
    """Return the aftercare case of each instance (by id), read from its variables."""
    ids = list(dict.fromkeys(instance_ids))
    values: dict[int, dict[str, Any]] = {i: {} for i in ids}
    for part in _chunks(ids):
        for iid, name, value in session.execute(_CASE_VALUES, {"b_ids": part}):
            values[iid][name] = value
    return {i: AftercareCase.from_values(i, values[i], timezone) for i in ids}


# built once (the supervisor view's every request, the aftercare lists)
_CASE_VALUES = select(Variable.instance_id, Variable.name, Variable.value).where(
    Variable.instance_id.in_(bindparam("b_ids", expanding=True)),
    Variable.name.in_(CASE_VARIABLES) | Variable.name.like("%\\_ended\\_on", escape="\\"))


def open_aftercare(session: Session, now: datetime, timezone: str = ZONE) -> list[tuple[Task, Instance, bool]]:
    """Return every open aftercare task with its instance and whether it is overdue: a contact by the
    case's definition, the follow-up day (and a contact without the case's days) by its due date.

    A page showing several figures reads this once and passes it on (`open_rows=`), or takes it from
    `summary`, which reads it with the month's figures."""
    rows = _open_aftercare_rows(session)
    return _lateness(rows, aftercare_cases(session, _contact_ids(rows), timezone), now, timezone)


# The supervisor view's statements are built once (their values bound parameters): building one and
# computing its cache key cost more than running it on a small office.
_OPEN_AFTERCARE = (select(Task, Instance).join(Instance, Instance.id == Task.instance_id)
                   .where(Task.state == TaskStatus.READY, Task.element_id.in_(AFTERCARE_ELEMENTS))
                   .options(defer(Instance.state)))  # the serialized workflow: not shown


def _open_aftercare_rows(session: Session) -> list[tuple[Task, Instance]]:
    return [(t, i) for t, i in session.execute(_OPEN_AFTERCARE).all()]


def _contact_ids(rows: list[tuple[Task, Instance]]) -> list[int]:
    """Return the instances of the open aftercare contacts among the rows (their case decides lateness)."""
    return [i.id for t, i in rows if t.element_id == AFTERCARE_CONTACT]


def _lateness(rows: list[tuple[Task, Instance]], cases: dict[int, AftercareCase], now: datetime,
              timezone: str) -> list[tuple[Task, Instance, bool]]:
    day = today(now, timezone)
    found = []
    for task, instance in rows:
        case_ = cases.get(instance.id) if task.element_id == AFTERCARE_CONTACT else None
        if case_ is not None and case_.deadline is not None:
            late = case_.overdue(day)
        else:
            late = task.due_at is not None and task.due_at < now
        found.append((task, instance, late))
    return found


def expert_loads(session: Session, now: datetime | None = None, timezone: str = ZONE, *,
                 open_rows: list[tuple[Task, Instance, bool]] | None = None,
                 counts: ReadyCounts | None = None) -> list[ExpertLoad]:
    """Return the open task counts of every assignee holding open tasks, by assignee (aftercare
    overdue by the one definition of `AftercareCase`). `counts`: `ready_counts`, when read already."""
    now = now or utcnow()
    counts = ready_counts(session, now) if counts is None else counts
    loads = {a: ExpertLoad(a, n, late) for a, (n, late, _any) in sorted(
        (a, c) for a, c in counts.items() if a is not None)}
    for task, _instance, late in open_rows if open_rows is not None else open_aftercare(session, now, timezone):
        load = loads.get(task.assignee) if task.assignee else None
        if load is None:
            continue
        load.overdue_tasks += int(late)
        load.aftercare_overdue += int(late)
        load.aftercare_due += int(not late)
    return list(loads.values())


ReadyCounts = dict[str | None, tuple[int, int, int]]


def ready_counts(session: Session, now: datetime) -> ReadyCounts:
    """Return {assignee (None: nobody yet): (open tasks, overdue ones but aftercare, overdue ones)}, one statement.

    Aftercare tasks are late by their case (`open_aftercare`), not by their due date, for an expert's
    load; the unassigned count takes every due date as it is."""
    return {a: (int(n), int(late or 0), int(late_any or 0))
            for a, n, late, late_any in session.execute(_READY_COUNTS, {"b_now": now})}


_OVERDUE = (Task.due_at.is_not(None)) & (Task.due_at < bindparam("b_now"))
_READY_COUNTS = (select(Task.assignee, func.count(),
                        func.sum(case((_OVERDUE & ~Task.element_id.in_(AFTERCARE_ELEMENTS), 1), else_=0)),
                        func.sum(case((_OVERDUE, 1), else_=0)))
                 .where(Task.state == TaskStatus.READY).group_by(Task.assignee))


def unassigned_open(session: Session, now: datetime | None = None, *,
                    counts: ReadyCounts | None = None) -> tuple[int, int]:
    """Return (open, overdue) counts of tasks nobody holds yet. `counts`: `ready_counts`, when read already."""
    counts = ready_counts(session, now or utcnow()) if counts is None else counts
    total, _late, late_any = counts.get(None, (0, 0, 0))
    return total, late_any


ON_TIME_VARIABLES = ("aftercare_contacted_on", "aftercare_outcome")  # a contact made, or closed as not reached


def aftercare_on_time(session: Session, start: datetime, end: datetime, timezone: str = ZONE) -> OnTime:
    """Count the aftercare contacts made on a day that begins in [start, end) (Helsinki midnight) and those
    within the office's target; customers whose last attempt fell in it and who were not reached, apart."""
    return _on_time(aftercare_cases(session, _ran_since(session, start, ON_TIME_VARIABLES), timezone).values(),
                    start, end, timezone)


def _on_time(cases: Iterable[AftercareCase], start: datetime, end: datetime, timezone: str) -> OnTime:
    zone = ZoneInfo(timezone)

    def within(day: date | None) -> bool:
        if day is None:
            return False
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        return start <= midnight < end

    done = good = missed = 0
    for case_ in cases:
        if case_.reached and within(case_.contacted_on):
            done += 1
            good += int(case_.on_time is True)
        elif case_.not_reached and within(case_.last_attempt_on):
            missed += 1
    return OnTime(done, good, missed)


def _ran_since(session: Session, start: datetime, names: tuple[str, ...]) -> list[int]:
    """Return the instances holding any of these variables that were still running at `start` or later.

    A contact or an attempt is recorded while its case runs, and its day cannot be later than the day
    it is recorded (the contact forms' date fields are `not_future`): a case that ended before `start`
    has none on a day from `start` on. So the month's figures read the cases open in the month, found
    by the instance's end time (indexed), instead of every aftercare case the office ever had.
    """
    return list(session.scalars(_ran_since_query(names), {"b_start": start}))


@lru_cache(maxsize=16)
def _ran_since_query(names: tuple[str, ...]) -> Any:
    # a correlated IN rather than EXISTS: PostgreSQL planned EXISTS as a parallel semi-join, 7-8 ms
    # against 2.5 ms for 2,000 running cases (SQLite: the same plan either way)
    held = Instance.id.in_(select(Variable.instance_id).where(Variable.instance_id == Instance.id,
                                                              Variable.name.in_(names)))
    running = select(Instance.id).where(Instance.ended_at.is_(None), held)
    ended = select(Instance.id).where(Instance.ended_at >= bindparam("b_start"), held)
    return union_all(running, ended)


def aftercare_tasks(session: Session, assignee: str) -> list[tuple[Task, Instance]]:
    """Return the open aftercare tasks assigned to a user, earliest due first."""
    query = (select(Task, Instance).join(Instance, Instance.id == Task.instance_id)
             .where(Task.state == TaskStatus.READY, Task.assignee == assignee,
                    Task.element_id.in_(AFTERCARE_ELEMENTS))
             .order_by(Task.due_at.is_(None), Task.due_at, Task.created_at).options(defer(Instance.state)))
    return [(t, i) for t, i in session.execute(query).all()]


def overdue_aftercare(session: Session, now: datetime | None = None, timezone: str = ZONE, *,
                      open_rows: list[tuple[Task, Instance, bool]] | None = None) -> list[tuple[Task, Instance]]:
    """Return every open aftercare task that is overdue (`AftercareCase.overdue`), most overdue first."""
    now = now or utcnow()
    rows = [(t, i) for t, i, late in (open_rows if open_rows is not None else open_aftercare(session, now, timezone))
            if late]
    far = datetime.max.replace(tzinfo=ZoneInfo("UTC"))
    return sorted(rows, key=lambda row: (row[0].due_at or far, row[0].created_at))


def customer_names(session: Session, business_ids: Iterable[str | None]) -> dict[str, str]:
    """Return {business ID: customer name} for the given business IDs that are registered."""
    wanted = {b for b in business_ids if b}
    if not wanted:
        return {}
    return {bid: name for bid, name in session.execute(_CUSTOMER_NAMES, {"b_ids": sorted(wanted)})}


_CUSTOMER_NAMES = select(Customer.business_id, Customer.name).where(  # built once (every task table)
    Customer.business_id.in_(bindparam("b_ids", expanding=True)))


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


def summary(session: Session, now: datetime | None = None, timezone: str = "Europe/Helsinki", *,
            open_rows: list[tuple[Task, Instance, bool]] | None = None) -> dict[str, Any]:
    """Return the supervisor's headline figures: expert loads, unassigned work, this month's on-time share,
    and the open aftercare tasks they count (`open_rows`, as `open_aftercare` gives them, or as given).

    Four statements: the month's cases, the open aftercare tasks, the variables of both at once, and the
    open tasks counted by assignee."""
    now = now or utcnow()
    start = month_start(now, timezone)
    since = _ran_since(session, start, ON_TIME_VARIABLES)
    rows = _open_aftercare_rows(session) if open_rows is None else []
    cases = aftercare_cases(session, [*since, *_contact_ids(rows)], timezone)
    open_rows = _lateness(rows, cases, now, timezone) if open_rows is None else open_rows
    counts = ready_counts(session, now)
    return {"loads": expert_loads(session, now, timezone, open_rows=open_rows, counts=counts),
            "unassigned": unassigned_open(session, now, counts=counts),
            "on_time": _on_time((cases[i] for i in dict.fromkeys(since)), start, now, timezone),
            "open_rows": open_rows}


# ---------------------------------------------------------------------------------------------
# The aftercare dashboard (auditor and supervisor): every figure computed from variables and audit events

AFTERCARE_CHARTS = ("done", "days", "channels", "ratings", "needs", "follow_up")
POSITIVE_TARGET = 0.69
_KPI_VARIABLES = ("responsible_expert", "service_line", "segment", "service_ended_on", "aftercare_target_days",
                  "aftercare_started_at", "aftercare_outcome", "aftercare_attempts", "aftercare_contacted_on",
                  "aftercare_channel", "service_rating", "experience_positive", "new_service_needs",
                  "follow_up_new_needs", "follow_up_due")
_DAY_BUCKETS = ((7, "0-7"), (14, "8-14"), (21, "15-21"), (30, "22-30"))


@dataclass(frozen=True)
class AftercareFilter:
    """Which ended service lines the dashboard counts: ended (Helsinki day) in [start, end), and by whom."""

    start: datetime | None = None
    end: datetime | None = None
    expert: str | None = None
    service_line: str | None = None
    segment: str | None = None


@dataclass
class AftercareReport:
    """The aftercare figures with each chart's rows (label, value)."""

    finished: int = 0  # service lines ended (one aftercare each)
    done: int = 0  # aftercare contacts made (the customer was reached)
    not_reached: int = 0  # closed as not reached: counted apart, neither done nor late
    overdue: int = 0  # still open and past the office's target today
    late: int = 0  # contacts made after the office's target
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
        """Return the share of made contacts (with a target) that came within the office's target."""
        judged = self.within_target + self.late
        return self.within_target / judged if judged else None

    @property
    def positive_share(self) -> float | None:
        """Return the share of positive impressions the experts recorded (not the national survey)."""
        return self.positive / self.answered if self.answered else None


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _kpi_variables(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {i: {} for i in ids}
    table = cast(Table, Variable.__table__).c  # the table's columns, not the entity's: no ORM loading per row
    named = table.name.in_(_KPI_VARIABLES) | table.name.like("%\\_ended\\_on", escape="\\")
    for part in _chunks(ids):
        for iid, name, value in session.execute(select(table.instance_id, table.name, table.value)
                                                .where(table.instance_id.in_(part), named)):
            found[iid][name] = value
    return found


def _completed(session: Session, ids: list[int], element_id: str) -> set[int]:
    done: set[int] = set()
    for part in _chunks(ids):  # the kind is compared here: in SQL it led SQLite to walk every completion (kind index)
        done |= {iid for iid, kind in session.execute(select(AuditEvent.instance_id, AuditEvent.kind).where(
            AuditEvent.instance_id.in_(part), AuditEvent.element_id == element_id)) if kind == "task_completed"}
    return done


def _kept(values: dict[str, Any], f: AftercareFilter, ended: date | None, timezone: str) -> bool:
    zone = ZoneInfo(timezone)
    if ended is None:
        return False
    if f.start is not None and ended < f.start.astimezone(zone).date():
        return False
    if f.end is not None and ended >= f.end.astimezone(zone).date():
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


def _contact_figures(report: AftercareReport, done: list[tuple[AftercareCase, dict[str, Any]]]) -> None:
    """Add the figures of the made contacts (each case and its variables): days, on time by
    `AftercareCase`, channels, ratings where given, the experts' recorded impressions, new needs."""
    days: list[int] = []
    channels: dict[str, int] = {}
    ratings: dict[str, int] = {str(n): 0 for n in range(1, 6)}
    scores: list[int] = []
    for case_, values in done:
        if case_.days is not None:
            days.append(case_.days)
        report.within_target += int(case_.on_time is True)
        report.late += int(case_.on_time is False)
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


def aftercare_report(session: Session, f: AftercareFilter, timezone: str = "Europe/Helsinki",
                     now: datetime | None = None) -> AftercareReport:
    """Compute the aftercare dashboard from instance variables and audit events (`now` decides what is
    overdue)."""
    if f.start is None:
        started = list(session.scalars(select(Variable.instance_id).where(Variable.name == "aftercare_started_at")))
    else:  # a line that ended from the period's first day on: its case ran then (its end day is not_future)
        first = f.start.astimezone(ZoneInfo(timezone)).date()
        started = sorted(_ran_since(session, datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(timezone)),
                                    ("aftercare_started_at",)))
    values = _kpi_variables(session, list(started))
    cases = {iid: AftercareCase.from_values(iid, values[iid], timezone) for iid in started}
    ids = [iid for iid in started if _kept(values[iid], f, cases[iid].ended_on, timezone)]
    report = AftercareReport(finished=len(ids))
    contacted = {i for i in ids if cases[i].reached}
    report.done, report.not_reached = len(contacted), sum(1 for i in ids if cases[i].not_reached)
    day = today(now or utcnow(), timezone)
    report.overdue = sum(1 for i in ids if cases[i].overdue(day))
    _contact_figures(report, [(cases[i], values[i]) for i in ids if i in contacted])
    for part in _chunks(ids):
        report.new_processes += session.scalar(select(func.count()).select_from(Instance)
                                               .where(Instance.parent_instance_id.in_(part))) or 0
    report.follow_up_due = sum(1 for i in ids if values[i].get("follow_up_due"))
    report.follow_up_done = len(_completed(session, ids, "hold_follow_up_day"))
    report.without_expert = session.scalar(select(func.count()).select_from(Customer)
                                           .where(Customer.responsible_expert.is_(None))) or 0
    report.charts.update(done=[("done", report.done), ("not_reached", report.not_reached),
                               ("not_done", report.finished - report.done - report.not_reached)],
                         needs=[("new_needs", report.new_needs), ("new_processes", report.new_processes)],
                         follow_up=[("due", report.follow_up_due), ("done", report.follow_up_done)])
    return report
