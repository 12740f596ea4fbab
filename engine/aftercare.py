"""Aftercare helpers beyond the model: inviting the consultant to the follow-up day.

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

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Instance, InstanceStatus, Timer, User, Variable
from .outreach_models import MailOutbox, Notice

PROCESS = "aftercare"
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
