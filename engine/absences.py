"""Absence cover: an expert's absence period and the substitute who takes their due tasks.

Tasks of the absent expert due within the period show in the substitute's "my tasks", marked as
cover (`cover_tasks`), and reminders for the absent expert go to the substitute (`recipient`).
Every change is audited in the `users` stream.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .errors import FormInvalid, InvalidInput
from .models import Instance, Task, TaskStatus, User
from .outreach_models import Absence
from .users import N_

AUDIT_STREAM = "users"


def _day(value: Any, field: str, errors: dict[str, str]) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value or "").strip())
    except ValueError:
        errors[field] = N_("Enter the date as YYYY-MM-DD.")
        return None


def record_absence(session: Session, username: str, substitute: str, starts_on: Any, ends_on: Any, *,
                   by: str, note: str = "") -> Absence:
    """Record an absence period with a substitute.

    Raises:
        FormInvalid: a date is wrong, the period ends before it starts, or the substitute is not
            an active user other than the absent one.
    """
    errors: dict[str, str] = {}
    start, end = _day(starts_on, "starts_on", errors), _day(ends_on, "ends_on", errors)
    if start and end and end < start:
        errors["ends_on"] = N_("The absence cannot end before it starts.")
    active = set(session.scalars(select(User.username).where(User.active.is_(True))))
    if username not in active:
        errors["username"] = N_("Choose an active user.")
    if substitute not in active or substitute == username:
        errors["substitute"] = N_("Choose another active user as the substitute.")
    if errors or start is None or end is None:
        raise FormInvalid(errors, {"username": username, "substitute": substitute, "starts_on": str(starts_on),
                                   "ends_on": str(ends_on), "note": note})
    absence = Absence(username=username, substitute=substitute, starts_on=start, ends_on=end,
                      note=note.strip() or None, created_by=by, created_at=utcnow())
    session.add(absence)
    session.flush()
    audit.append(session, "absence_recorded", actor=by, stream=AUDIT_STREAM,
                 data={"absence_id": absence.id, "username": username, "substitute": substitute,
                       "starts_on": start.isoformat(), "ends_on": end.isoformat()})
    return absence


def cancel_absence(session: Session, absence_id: int, *, by: str) -> Absence:
    """End an absence record early (it no longer redirects anything)."""
    absence = session.get(Absence, absence_id)
    if absence is None or absence.cancelled_at is not None:
        raise InvalidInput(N_("No such absence."))
    absence.cancelled_at = utcnow()
    audit.append(session, "absence_cancelled", actor=by, stream=AUDIT_STREAM,
                 data={"absence_id": absence.id, "username": absence.username})
    return absence


def current_and_coming(session: Session, today: date) -> list[Absence]:
    """Return absences that have not ended, soonest first (who covers whom)."""
    return list(session.scalars(_NOT_ENDED, {"b_today": today}))


# built once (the supervisor view's every request)
_NOT_ENDED = (select(Absence).where(Absence.cancelled_at.is_(None), Absence.ends_on >= bindparam("b_today"))
              .order_by(Absence.starts_on, Absence.id))


def absent_on(session: Session, username: str, day: date) -> Absence | None:
    """Return the absence covering `username` on `day`, if any."""
    return session.scalar(select(Absence).where(
        Absence.username == username, Absence.cancelled_at.is_(None), Absence.starts_on <= day,
        Absence.ends_on >= day).order_by(Absence.id.desc()).limit(1))


def recipient(session: Session, username: str, day: date) -> str:
    """Return who receives reminders meant for `username` on `day` (the substitute while absent)."""
    seen = {username}
    while True:
        absence = absent_on(session, username, day)
        if absence is None or absence.substitute in seen:
            return username
        username = absence.substitute
        seen.add(username)


def _bounds(absence: Absence, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(absence.starts_on, time.min, zone)
    end = datetime.combine(absence.ends_on + timedelta(days=1), time.min, zone)
    return start, end


def cover_tasks(session: Session, substitute: str, today: date, tz: str = "Europe/Helsinki") -> list[tuple[Task, Absence]]:
    """Return open tasks of experts this user covers that are due within the absence period.

    Overdue tasks of an expert absent today count too: they are due in the period from today on.
    """
    absences = list(session.scalars(select(Absence).where(
        Absence.substitute == substitute, Absence.cancelled_at.is_(None), Absence.ends_on >= today)))
    found: list[tuple[Task, Absence]] = []
    for absence in absences:
        start, end = _bounds(absence, tz)
        due_in = and_(Task.due_at >= start, Task.due_at < end)
        if absence.starts_on <= today:
            due_in = or_(due_in, Task.due_at < end)
        query = (select(Task).join(Instance, Instance.id == Task.instance_id)
                 .where(Task.state == TaskStatus.READY, Task.assignee == absence.username, due_in)
                 .order_by(Task.due_at))
        found.extend((task, absence) for task in session.scalars(query))
    return found


def cover_windows(session: Session, substitute: str, today: date,
                  tz: str = "Europe/Helsinki") -> tuple[tuple[str, datetime | None, datetime], ...]:
    """Return (absent user, due from, due before) for every absence this user covers, for `inbox.TaskFilter`.

    `due from` is None once the absence has begun: the absent one's overdue tasks are covered too.
    """
    rows = session.scalars(select(Absence).where(
        Absence.substitute == substitute, Absence.cancelled_at.is_(None), Absence.ends_on >= today))
    windows = []
    for absence in rows:
        start, end = _bounds(absence, tz)
        windows.append((absence.username, None if absence.starts_on <= today else start, end))
    return tuple(windows)
