"""Timer start events: new instances on schedule (a date, or a cycle `R[n]/start/period`).

Each timer start event of the latest deployed version of a process has one `start_schedule` row
with its next due time. A sweep (`start_due`, run by every worker) takes a due row with a
compare-and-set update in the same transaction that starts the instance and moves the row on, so
one instance starts per due time however many workers sweep: the losers' update finds the due
time already moved and starts nothing. After downtime a cycle starts **once** for everything
missed, then goes on from the next occurrence after now (no burst). Deploying a newer version
moves the schedule to it (keeping the due time when the timer is unchanged); the older row stops.

Timer values are Python string literals, as everywhere in the models (`"R/2027-01-01T00:00:00+02:00/P1Y"`).
"""

from __future__ import annotations

import ast
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from lxml import etree
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from . import runtime
from .db import column_length, utcnow
from .models import ModelFile, ProcessVersion
from .outreach_models import OfficeSetting, StartSchedule

log = logging.getLogger(__name__)

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ACTOR = "schedule"
FAILURE_HOLD = timedelta(minutes=5)
SYNC_KEY = "schedules.synced_version"
PERIOD = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def _literal(text: str) -> str | None:
    text = (text or "").strip()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text if text[:1] in ("R", "2") else None  # a bare ISO value is taken as written
    return value if isinstance(value, str) else None


def timer_starts(xml: str, process_id: str) -> list[tuple[str, str, str]]:
    """Return (element id, kind, value) of the top-level timer start events of a process (date/cycle)."""
    root = etree.fromstring(xml.encode(), etree.XMLParser(resolve_entities=False, no_network=True))
    found = []
    for proc in root.iter(f"{{{BPMN}}}process"):
        if proc.get("id") != process_id:
            continue
        for start in proc.findall(f"{{{BPMN}}}startEvent"):
            timer = start.find(f"{{{BPMN}}}timerEventDefinition")
            if timer is None:
                continue
            for tag, kind in (("timeCycle", "cycle"), ("timeDate", "date")):
                el = timer.find(f"{{{BPMN}}}{tag}")
                value = _literal(el.text or "") if el is not None else None
                if value:
                    found.append((start.get("id"), kind, value))
    return found


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def _step(start: datetime, period: str, times: int) -> datetime:
    match = PERIOD.fullmatch(period)
    if match is None or not any(match.groups()):
        raise ValueError(f"not an ISO 8601 period: {period}")
    y, mo, w, d, h, mi, s = (int(g or 0) for g in match.groups())
    moment = _add_months(start, (12 * y + mo) * times) if (y or mo) else start
    return moment + timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s) * times


def next_occurrence(kind: str, value: str, after: datetime, *, inclusive: bool) -> datetime | None:
    """Return the first occurrence at/after `after` (strictly after unless `inclusive`), or None."""
    def fits(moment: datetime) -> bool:
        return moment >= after if inclusive else moment > after

    if kind == "date":
        moment = _aware(value).astimezone(UTC)
        return moment if fits(moment) else None
    parts = value.split("/")
    if len(parts) != 3 or not parts[0].startswith("R"):
        raise ValueError(f"not a cycle R[n]/start/period: {value}")
    repeats = int(parts[0][1:]) if parts[0][1:] else None
    start = _aware(parts[1])
    approx = (_step(start, parts[2], 1) - start).total_seconds()
    if approx <= 0:
        raise ValueError(f"the period of {value} is empty")
    k = max(0, int((after - start).total_seconds() // approx) - 2)
    while True:
        if repeats is not None and k >= repeats:
            return None
        moment = _step(start, parts[2], k)
        if fits(moment):
            return moment.astimezone(UTC)
        k += 1


def _latest_versions(session: Session) -> list[ProcessVersion]:
    newest = (select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("v"))
              .where(ProcessVersion.kind == "process").group_by(ProcessVersion.process_id).subquery())
    return list(session.scalars(select(ProcessVersion).join(
        newest, (newest.c.process_id == ProcessVersion.process_id) & (newest.c.v == ProcessVersion.version))))


def sync(session: Session, *, now: datetime | None = None, force: bool = False) -> int:
    """Give the latest version of every process its schedules; stop older versions'. Return rows added."""
    now = now or utcnow()
    top = session.scalar(select(func.max(ProcessVersion.id))) or 0
    mark = session.get(OfficeSetting, SYNC_KEY)
    if not force and mark is not None and mark.value == top:
        return 0
    added = 0
    for pv in _latest_versions(session):
        session.execute(update(StartSchedule).where(StartSchedule.process_id == pv.process_id,
                                                    StartSchedule.version_id != pv.id, StartSchedule.active)
                        .values(active=False))
        if session.scalar(select(func.count(StartSchedule.id)).where(StartSchedule.version_id == pv.id)):
            continue
        content = session.scalar(select(ModelFile.content).where(ModelFile.id == pv.file_id)) or ""
        for element_id, kind, value in timer_starts(content, pv.process_id):
            too_long = _too_long(element_id, value)
            if too_long:  # a model deployed before deploy checked lengths: PostgreSQL would refuse the row
                log.warning("timer start event %s of %s is not scheduled: %s", element_id[:200], pv.process_id, too_long)
                continue
            older = session.scalar(select(StartSchedule).where(
                StartSchedule.process_id == pv.process_id, StartSchedule.element_id == element_id,
                StartSchedule.expression == value).order_by(StartSchedule.id.desc()).limit(1))
            try:
                due = older.next_due_at if older is not None else next_occurrence(kind, value, now, inclusive=True)
            except ValueError as err:
                log.warning("timer start event %s of %s: %s", element_id, pv.process_id, err)
                continue
            try:
                with session.begin_nested():
                    session.add(StartSchedule(version_id=pv.id, process_id=pv.process_id, element_id=element_id,
                                              kind=kind, expression=value, next_due_at=due, active=True))
                added += 1
            except IntegrityError:  # another worker added it a moment ago
                continue
    if mark is None:
        try:
            with session.begin_nested():
                session.add(OfficeSetting(key=SYNC_KEY, value=top, updated_by=ACTOR, updated_at=now))
        except IntegrityError:
            pass
    else:
        mark.value, mark.updated_at = top, now
    return added


def _too_long(element_id: str, expression: str) -> str | None:
    """Say which of a schedule's texts from the model is longer than its column holds, or None when both
    fit (the process id comes from its version's row, a column of the same size)."""
    for column, text in (("element_id", element_id), ("expression", expression)):
        limit = column_length(StartSchedule, column)
        if len(text) > limit:
            return f"its {column.replace('_', ' ')} has {len(text):,} characters, more than {limit}"
    return None


def _real_now() -> datetime:
    return datetime.now(UTC)


def start_due(sessions: sessionmaker, *, now: datetime | None = None, worker_id: str = "worker") -> list[int]:
    """Start an instance for every schedule due at `now` (once each); return the new instance ids."""
    started: list[int] = []
    with sessions.begin() as session:
        sync(session, now=now)
    while True:
        moment = now or utcnow()
        with sessions.begin() as session:
            real = _real_now()
            row = session.execute(select(StartSchedule.id, StartSchedule.next_due_at).where(
                StartSchedule.active, StartSchedule.next_due_at <= moment,
                or_(StartSchedule.lease_until.is_(None), StartSchedule.lease_until < real))
                .order_by(StartSchedule.next_due_at, StartSchedule.id).limit(1)).first()
        if row is None:
            return started
        try:
            with sessions.begin() as session:
                instance_id = _start_one(session, row.id, row.next_due_at, moment, worker_id)
        except Exception:  # a broken model must not stop the sweep: hold the schedule a while
            log.exception("starting the scheduled process of schedule %s failed", row.id)
            with sessions.begin() as session:
                session.execute(update(StartSchedule).where(StartSchedule.id == row.id)
                                .values(lease_owner=worker_id, lease_until=_real_now() + FAILURE_HOLD))
            continue
        if instance_id is not None:
            started.append(instance_id)


def _start_one(session: Session, schedule_id: int, due: datetime, now: datetime, worker_id: str) -> int | None:
    # compare-and-set: only the transaction that moves this due time on starts the instance
    claimed = cast(Any, session.execute(update(StartSchedule).where(
        StartSchedule.id == schedule_id, StartSchedule.next_due_at == due, StartSchedule.active)
        .values(lease_owner=worker_id, lease_until=None))).rowcount
    if claimed != 1:
        return None
    schedule = session.get(StartSchedule, schedule_id)
    assert schedule is not None
    version = session.get(ProcessVersion, schedule.version_id)
    assert version is not None
    instance = runtime.start_instance(session, schedule.process_id, by=ACTOR, version=version.version, now=now,
                                      validate_form=False, start_timer=schedule.element_id,
                                      data={"scheduled_for": due.isoformat()})
    schedule.next_due_at = (next_occurrence(schedule.kind, schedule.expression, now, inclusive=False)
                            if schedule.kind == "cycle" else None)
    schedule.last_started_at, schedule.last_instance_id, schedule.lease_owner = now, instance.id, None
    return instance.id


def list_schedules(session: Session) -> list[StartSchedule]:
    """Return the active schedules, soonest first (for `polku schedules` and the admin page)."""
    return list(session.scalars(select(StartSchedule).where(StartSchedule.active)
                                .order_by(StartSchedule.next_due_at, StartSchedule.id)))
