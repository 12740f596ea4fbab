"""Aftercare helpers beyond the model: one contact covering several lines, the consultant's invitation.

**One contact for several lines.** Each ended service line has its own aftercare instance (same
business key, the service process as parent). When other lines of the same service process have
ended too and their contacts are open and due within this contact's window (their due time no
more than this line's `aftercare_target_days` from this contact's), `coverable_contacts` lists
them on the contact and `complete_covering` completes this contact and theirs with the same
conversation: each covered case records `aftercare_covered_by` (this case's id) and keeps its own
consultant, new needs are left to the covering case (one new service process, not one per line),
and this case records `aftercare_covers` (their ids).

The follow-up day (bpmn/aftercare.bpmn, `plan_follow_up_day`) is held about a year after the
consulting ended, with the consultant who delivered it. When an aftercare case waits for its
follow-up day (`wait_follow_up_day`) and has the consultant's e-mail address
(`service_consultant_email`, from the service line's data, editable on the contact form),
`invite_consultants` queues one invitation e-mail to the consultant in the mail outbox and tells the
responsible expert with a notice (`follow_up_invitation`). Each case is invited once (the
notice key). `engine.notices.generate` calls it on every worker sweep (`polku run-jobs` too);
`engine.notices.deliver` sends the mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import runtime, spiff
from .db import utcnow
from .errors import FormInvalid, TaskNotFound
from .models import Instance, InstanceStatus, Task, TaskStatus, Timer, User, Variable
from .outreach_models import MailOutbox, Notice

PROCESS = "aftercare"
CONTACT = "aftercare_contact"
KEEP_OWN = ("service_consultant_name", "service_consultant_email")  # each line keeps its own consultant
LEFT_TO_COVERING = {"new_service_needs": [], "new_needs_description": ""}  # one new process, not one per line
WAIT_ELEMENT = "wait_follow_up_day"
KEY = "followup-invite:"
WANTED = ("service_consultant_name", "service_consultant_email", "follow_up_due", "company_name", "business_id",
          "responsible_expert")

TEXTS = {
    "subject": "Kutsu seurantapäivään: {company}",
    "body": ("Hei {consultant},\n\n"
             "toteutit yritykselle {company} ({business_id}) palvelun, jonka TE-toimisto järjesti. Pidämme "
             "yrityksen kanssa seurantapäivän noin vuoden kuluttua palvelun päättymisestä, {day}, ja toivomme, "
             "että olet mukana. Vastuuasiantuntija {expert} sopii kanssasi tarkemman ajan.\n\n"
             "Ystävällisin terveisin\n{expert}\nTE-toimisto, yrityspalvelut\n"),
    "notice": "Konsultti kutsuttu seurantapäivään: {company}",
    "notice_body": "Kutsu seurantapäivään ({day}) lähetettiin konsultille {consultant} <{email}>.",
}


def _waiting(session: Session) -> list[int]:
    """Return the running aftercare cases that wait for their follow-up day, not yet invited."""
    invited = {int(k.removeprefix(KEY)) for k in session.scalars(select(Notice.key).where(Notice.key.like(KEY + "%")))}
    query = (select(Instance.id).join(Timer, Timer.instance_id == Instance.id)
             .where(Instance.process_id == PROCESS, Instance.status == InstanceStatus.RUNNING,
                    Timer.element_id == WAIT_ELEMENT).distinct().order_by(Instance.id))
    return [i for i in session.scalars(query) if i not in invited]


def _values(session: Session, instance_id: int) -> dict[str, Any]:
    rows = session.execute(select(Variable.name, Variable.value).where(Variable.instance_id == instance_id,
                                                                       Variable.name.in_(WANTED)))
    return {name: value for name, value in rows}


def _day(value: Any) -> str:
    """Return a follow-up date as people in Finland write it (1.3.2027)."""
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value or "")
    return f"{day.day}.{day.month}.{day.year}"


def invite_consultants(session: Session, *, now: datetime) -> int:
    """Queue the follow-up day invitation of every case that has just planned one; return how many."""
    made = 0
    for instance_id in _waiting(session):
        data = _values(session, instance_id)
        email = str(data.get("service_consultant_email") or "").strip()
        expert = str(data.get("responsible_expert") or "")
        if not email or not expert:
            continue  # no address: the follow-up day task shows the consultant's name for a phone call
        shown = session.scalar(select(User.display_name).where(User.username == expert)) or expert
        values = {"company": data.get("company_name") or data.get("business_id") or "",
                  "business_id": data.get("business_id") or "", "day": _day(data.get("follow_up_due")),
                  "consultant": data.get("service_consultant_name") or email, "expert": shown, "email": email}
        notice = Notice(key=f"{KEY}{instance_id}", username=expert, kind="follow_up_invitation",
                        subject=TEXTS["notice"].format(**values)[:300], body=TEXTS["notice_body"].format(**values),
                        link=None, created_at=now)
        try:
            with session.begin_nested():
                session.add(notice)
                session.flush()
        except IntegrityError:  # another worker invited this case a moment ago
            continue
        session.add(MailOutbox(notice_id=notice.id, to_address=email, subject=TEXTS["subject"].format(**values)[:300],
                               body=TEXTS["body"].format(**values), state="pending", attempts=0,
                               next_attempt_at=now, created_at=now))
        made += 1
    return made


@dataclass(frozen=True)
class Coverable:
    """An open aftercare contact of another ended line of the same service process."""

    task_id: str
    instance_id: int
    service_line: str | None
    service_ended_on: str | None
    due_at: datetime | None


def coverable_contacts(session: Session, task: Task | str) -> list[Coverable]:
    """Return the other lines' open contacts this contact may cover (none for any other task).

    `task`: the task's row when the caller holds it (the task page: no lookup for a task that is not a
    contact), or its id.
    """
    row = task if isinstance(task, Task) else session.get(Task, task)
    if row is None or row.element_id != CONTACT or row.state != TaskStatus.READY or row.due_at is None:
        return []
    instance = session.get(Instance, row.instance_id)
    if instance is None or instance.parent_instance_id is None:
        return []
    window = timedelta(days=int(runtime.instance_variables(session, instance.id).get("aftercare_target_days") or 0))
    query = (select(Task, Instance).join(Instance, Instance.id == Task.instance_id)
             .where(Instance.parent_instance_id == instance.parent_instance_id, Instance.id != instance.id,
                    Instance.process_id == PROCESS, Instance.status == InstanceStatus.RUNNING,
                    Task.element_id == CONTACT, Task.state == TaskStatus.READY).order_by(Task.due_at, Task.id))
    found = []
    for candidate, other in session.execute(query):
        if candidate.due_at is None or abs(candidate.due_at - row.due_at) > window:
            continue
        data = runtime.instance_variables(session, other.id)
        found.append(Coverable(candidate.id, other.id, data.get("service_line"), data.get("service_ended_on"),
                               candidate.due_at))
    return found


def complete_covering(session: Session, task_id: str, data: dict[str, Any], covered: list[str], *, by: str,
                      roles: set[str] | None = None, now: datetime | None = None) -> Instance:
    """Complete a contact and the other lines' contacts it covers with the same conversation.

    Raises:
        TaskNotFound: no such contact task.
        FormInvalid: a covered task is not one `coverable_contacts` offers (or the form is wrong);
        what `runtime.complete_task` raises, for this contact or a covered one.
    """
    if session.get(Task, task_id) is None:
        raise TaskNotFound(f"no task {task_id}")
    offered = {c.task_id: c for c in coverable_contacts(session, task_id)}
    if any(t not in offered for t in covered):
        raise FormInvalid({"covered_contacts": "this contact cannot cover that one"}, data)
    row = session.get(Task, task_id)
    assert row is not None
    covering = row.instance_id
    if covered:
        _merge(session, covering, {"aftercare_covers": [offered[t].instance_id for t in covered]}, by=by, now=now)
    instance = runtime.complete_task(session, task_id, data, by=by, roles=roles, now=now)
    for other_task in covered:
        other = offered[other_task].instance_id
        own = runtime.instance_variables(session, other)
        same = {**data, **LEFT_TO_COVERING, **{k: own.get(k) for k in KEEP_OWN if k in data}}
        _merge(session, other, {"aftercare_covered_by": covering}, by=by, now=now)
        runtime.complete_task(session, other_task, same, by=by, roles=roles, now=now)
    return instance


def _merge(session: Session, instance_id: int, values: dict[str, Any], *, by: str, now: datetime | None) -> None:
    """Put values into a running case's data (where its open tasks and what follows see them)."""
    loaded = runtime._load(session, instance_id)
    runtime._act(session, loaded, lambda wf: spiff.update_live_data(wf, values), actor=by,
                 now=now or utcnow(), steps=False)
