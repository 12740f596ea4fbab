"""Notices in the app and by e-mail: task assigned to me, contact reminders, daily digests.

`generate(session, now)` makes the notices that are due (run by every worker sweep):
- *assigned*: a task created with an assignee, claimed or reassigned for someone by another
  person (read from the audit trail after a watermark);
- *contact_due*: a contact's next contact date has come (to the customer's responsible expert,
  else whoever logged the contact);
- *digest*: once a day per user, their open tasks due within the office's lead time and overdue;
- *supervisor_digest*: once a day per supervisor, the group's overdue aftercare;
- *follow_up_invitation*: an aftercare case planned its follow-up day: the consultant gets an
  invitation e-mail, the responsible expert a notice (`engine.aftercare`).
Reminders for an absent expert go to their substitute (`engine.absences`).

Each notice has a unique `key`, so it exists once however many workers make it. A notice gets
an e-mail in `mail_outbox` when the user has an address and has not opted out; `deliver` sends
due e-mails through SMTP (`engine.config`: POLKU_SMTP_*; no host: printed to the log), each
claimed with a lease, failures retried with backoff up to MAX_ATTEMPTS and then left `failed`
for an admin (`polku mail-outbox`, /admin/mail).
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from . import absences, aftercare, contacts, kpi, office
from .config import Settings
from .db import utcnow
from .models import AuditEvent, Customer, Task, TaskStatus, User
from .outreach_models import MailOutbox, Notice, OfficeSetting, UserSetting
from .users import USERNAME_MAX

log = logging.getLogger(__name__)

MARK_KEY = "notices.audit_mark"
DIGEST_KEY = "notices.digest_day"
MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
ASSIGN_KINDS = ("task_created", "task_claimed", "task_assigned")

TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "assigned": "Sinulle on annettu tehtävä: {task}",
        "assigned_body": "Tehtävä \"{task}\" (asia #{instance}) on nyt sinulla{due}.\n{link}",
        "due": ", määräpäivä {due}",
        "contact_due": "Ota yhteyttä asiakkaaseen: {customer}",
        "contact_due_body": "Seuraava yhteydenotto asiakkaaseen {customer} ({business_id}) on sovittu {day}.\n"
                            "Edellinen yhteydenotto: {topic}.\n{link}",
        "digest": "Tehtäväsi: {overdue} myöhässä, {soon} erääntyy pian",
        "digest_body": "Myöhässä olevat ja {days} päivän sisällä erääntyvät tehtäväsi:\n{lines}\n{link}",
        "supervisor_digest": "Ryhmän myöhässä oleva jälkihoito: {count}",
        "supervisor_digest_body": "Myöhässä olevat jälkihoitotehtävät:\n{lines}\n{link}",
        "cover": " (sijaisena: {who})",
    },
    "en": {
        "assigned": "A task was assigned to you: {task}",
        "assigned_body": "The task \"{task}\" (case #{instance}) is now yours{due}.\n{link}",
        "due": ", due {due}",
        "contact_due": "Contact the customer: {customer}",
        "contact_due_body": "The next contact with {customer} ({business_id}) was agreed for {day}.\n"
                            "Last contact: {topic}.\n{link}",
        "digest": "Your tasks: {overdue} overdue, {soon} due soon",
        "digest_body": "Your overdue tasks and those due within {days} days:\n{lines}\n{link}",
        "supervisor_digest": "Overdue aftercare in the group: {count}",
        "supervisor_digest_body": "Overdue aftercare tasks:\n{lines}\n{link}",
        "cover": " (covering for {who})",
    },
}


# ---------------------------------------------------------------------------------------------
# User settings


def user_settings(session: Session, username: str) -> UserSetting:
    """Return a user's notification settings (defaults when never saved; not added to the session)."""
    row = session.get(UserSetting, username)
    return row if row is not None else UserSetting(username=username, email=None, email_opt_out=False,
                                                   digest_opt_out=False)


def save_user_settings(session: Session, username: str, *, email: str | None, email_opt_out: bool,
                       digest_opt_out: bool) -> UserSetting:
    """Save a user's e-mail address and opt-outs."""
    from .errors import FormInvalid

    email = (email or "").strip() or None
    if email is not None and ("@" not in email or len(email) > 200 or any(c.isspace() for c in email)):
        raise FormInvalid({"email": "Enter an e-mail address."}, {"email": email})
    row = session.get(UserSetting, username)
    if row is None:
        row = UserSetting(username=username)
        session.add(row)
    row.email, row.email_opt_out, row.digest_opt_out, row.updated_at = email, email_opt_out, digest_opt_out, utcnow()
    session.flush()
    return row


# ---------------------------------------------------------------------------------------------
# Making notices


def _locale(session: Session, username: str) -> str:
    locale = session.scalar(select(User.locale).where(User.username == username))
    return locale if locale in TEXTS else "fi"


def _text(locale: str, key: str, **values: Any) -> str:
    return TEXTS[locale][key].format(**values)


def notify(session: Session, key: str, username: str, kind: str, subject: str, body: str, *,
           link: str | None = None, now: datetime | None = None, digest: bool = False) -> Notice | None:
    """Add a notice (and its e-mail) unless one with this key exists; return it, or None if it did."""
    now = now or utcnow()
    if len(username) > USERNAME_MAX:  # no user has that name (a free-text --by of an older release): nobody to tell
        return None
    if session.scalar(select(Notice.id).where(Notice.key == key)) is not None:
        return None
    try:
        with session.begin_nested():
            notice = Notice(key=key, username=username, kind=kind, subject=subject[:300], body=body, link=link,
                            created_at=now)
            session.add(notice)
            session.flush()
    except IntegrityError:  # another worker made it a moment ago
        return None
    prefs = user_settings(session, username)
    if prefs.email and not prefs.email_opt_out and not (digest and prefs.digest_opt_out):
        session.add(MailOutbox(notice_id=notice.id, to_address=prefs.email, subject=notice.subject,
                               body=body, state="pending", attempts=0, next_attempt_at=now, created_at=now))
    return notice


def _setting_row(session: Session, key: str, now: datetime) -> OfficeSetting:
    row = session.get(OfficeSetting, key, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(OfficeSetting(key=key, value=None, updated_by="notices", updated_at=now))
        except IntegrityError:
            pass
        row = session.get(OfficeSetting, key, with_for_update=True)
    assert row is not None
    return row


def _today(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


def _assignment_notices(session: Session, now: datetime, tz: str) -> int:
    mark = _setting_row(session, MARK_KEY, now)  # the row lock makes workers take turns
    last = int(mark.value or 0)
    if mark.value is None:  # first run: start from now, not from the whole history
        mark.value = session.scalar(select(func.max(AuditEvent.id))) or 0
        return 0
    events = list(session.scalars(select(AuditEvent).where(AuditEvent.id > last, AuditEvent.kind.in_(ASSIGN_KINDS))
                                  .order_by(AuditEvent.id).limit(500)))
    made = 0
    for event in events:
        data = json.loads(event.data)
        assignee = data.get("assignee")
        actor = event.actor.split(" (")[0]
        if not assignee or assignee == actor or not event.task_id:
            continue
        task = session.get(Task, event.task_id)
        if task is None or task.state != TaskStatus.READY or task.assignee != assignee:
            continue
        to = absences.recipient(session, assignee, _today(now, tz))
        locale = _locale(session, to)
        due = _text(locale, "due", due=task.due_at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")) if task.due_at else ""
        cover = _text(locale, "cover", who=assignee) if to != assignee else ""
        link = f"/tasks/{task.id}"
        if notify(session, f"assigned:{event.id}", to, "assigned", _text(locale, "assigned", task=task.name) + cover,
                  _text(locale, "assigned_body", task=task.name, instance=task.instance_id, due=due, link=link),
                  link=link, now=now):
            made += 1
    top = session.scalar(select(func.max(AuditEvent.id))) or last
    mark.value = max(last, events[-1].id if len(events) == 500 else top)
    return made


def _contact_notices(session: Session, now: datetime, tz: str) -> int:
    today = _today(now, tz)
    made = 0
    for contact, customer in contacts.due_reminders(session, today):
        owner = customer.responsible_expert or contact.created_by
        to = absences.recipient(session, owner, today)
        locale = _locale(session, to)
        cover = _text(locale, "cover", who=owner) if to != owner else ""
        link = f"/customers/{customer.id}"
        if notify(session, f"contact:{contact.id}", to, "contact_due",
                  _text(locale, "contact_due", customer=customer.name) + cover,
                  _text(locale, "contact_due_body", customer=customer.name, business_id=customer.business_id,
                        day=str(contact.next_contact_on), topic=contact.topic, link=link),
                  link=link, now=now):
            made += 1
        contact.reminded = True
    return made


def _digests(session: Session, now: datetime, tz: str) -> int:
    today = _today(now, tz)
    mark = _setting_row(session, DIGEST_KEY, now)
    if mark.value == today.isoformat():
        return 0
    mark.value = today.isoformat()
    lead = office.get(session, "reminder_lead_days")
    horizon = now + timedelta(days=lead)
    zone = ZoneInfo(tz)
    made = 0
    rows = session.scalars(select(Task).where(Task.state == TaskStatus.READY, Task.assignee.is_not(None),
                                              Task.due_at.is_not(None), Task.due_at <= horizon)
                           .order_by(Task.due_at))
    per_user: dict[str, list[Task]] = {}
    for task in rows:
        per_user.setdefault(absences.recipient(session, task.assignee or "", today), []).append(task)
    for username, tasks in per_user.items():
        locale = _locale(session, username)
        overdue = sum(1 for t in tasks if t.due_at and t.due_at < now)
        lines = "\n".join(f"- {t.due_at.astimezone(zone).strftime('%Y-%m-%d') if t.due_at else ''} {t.name} "
                          f"(#{t.instance_id})" for t in tasks)
        if notify(session, f"digest:{username}:{today.isoformat()}", username, "digest",
                  _text(locale, "digest", overdue=overdue, soon=len(tasks) - overdue),
                  _text(locale, "digest_body", days=lead, lines=lines, link="/tasks/"), link="/tasks/",
                  now=now, digest=True):
            made += 1
    overdue_care = kpi.overdue_aftercare(session, now)
    if overdue_care:
        supervisors = [u for u in session.scalars(select(User).where(User.active.is_(True)))
                       if "supervisor" in u.role_set]
        for user in supervisors:
            locale = _locale(session, user.username)
            lines = "\n".join(f"- {t.due_at.astimezone(zone).strftime('%Y-%m-%d') if t.due_at else ''} {t.name} "
                              f"#{i.id} {i.business_key or ''} ({t.assignee or '-'})" for t, i in overdue_care)
            if notify(session, f"supdigest:{user.username}:{today.isoformat()}", user.username, "supervisor_digest",
                      _text(locale, "supervisor_digest", count=len(overdue_care)),
                      _text(locale, "supervisor_digest_body", lines=lines, link="/supervisor/"),
                      link="/supervisor/", now=now, digest=True):
                made += 1
    return made


def generate(session: Session, *, now: datetime | None = None, tz: str = "Europe/Helsinki") -> int:
    """Make every notice due at `now`; return how many were made."""
    now = now or utcnow()
    return (_assignment_notices(session, now, tz) + _contact_notices(session, now, tz) + _digests(session, now, tz)
            + aftercare.invite_consultants(session, now=now))


# ---------------------------------------------------------------------------------------------
# Reading


def unread_count_of_user() -> Any:
    """Return the count of `User`'s unread notices as a scalar subquery (read with the sign-in's row)."""
    return (select(func.count(Notice.id)).where(Notice.username == User.username, Notice.read_at.is_(None))
            .correlate(User).scalar_subquery())


def unread_count(session: Session, username: str) -> int:
    """Return how many of the user's notices are unread."""
    return session.scalar(select(func.count(Notice.id)).where(Notice.username == username,
                                                              Notice.read_at.is_(None))) or 0


def for_user(session: Session, username: str, limit: int = 100) -> list[Notice]:
    """Return the user's newest notices."""
    return list(session.scalars(select(Notice).where(Notice.username == username)
                                .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit)))


def mark_read(session: Session, username: str, notice_id: int | None = None) -> int:
    """Mark one (or every) unread notice of the user read; return how many."""
    query = update(Notice).where(Notice.username == username, Notice.read_at.is_(None))
    if notice_id is not None:
        query = query.where(Notice.id == notice_id)
    return cast(Any, session.execute(query.values(read_at=utcnow()))).rowcount


def outbox(session: Session, states: tuple[str, ...] = ("pending", "failed"), limit: int = 200) -> list[MailOutbox]:
    """Return e-mails in these states, newest first (the admin's view)."""
    return list(session.scalars(select(MailOutbox).where(MailOutbox.state.in_(states))
                                .order_by(MailOutbox.id.desc()).limit(limit)))


def retry_failed(session: Session, mail_id: int | None = None) -> int:
    """Put failed e-mails (one or all) back in the queue for the next sweep."""
    query = update(MailOutbox).where(MailOutbox.state == "failed")
    if mail_id is not None:
        query = query.where(MailOutbox.id == mail_id)
    return cast(Any, session.execute(query.values(state="pending", attempts=0, next_attempt_at=utcnow(),
                                                  lease_owner=None, lease_until=None))).rowcount


# ---------------------------------------------------------------------------------------------
# Sending


def smtp_sender(settings: Settings) -> Callable[[EmailMessage], None]:
    """Return a function that sends one message by the configured SMTP server (or logs it)."""
    if not settings.smtp_host:
        def to_console(message: EmailMessage) -> None:
            text = f"--- e-mail (POLKU_SMTP_HOST not set) ---\n{message}\n--- end of e-mail ---"
            log.info("%s", text)
            print(text, flush=True)  # `make run` shows notices on the console
        return to_console

    def send(message: EmailMessage) -> None:
        port = settings.smtp_port or (587 if settings.smtp_starttls else 25)
        with smtplib.SMTP(settings.smtp_host, port, timeout=30) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    return send


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try after `attempts` failures: 1, 2, 4 … minutes, at most 6 h."""
    return min(timedelta(minutes=2 ** max(0, attempts - 1)), timedelta(hours=6))


def deliver(sessions: sessionmaker, *, settings: Settings, now: datetime | None = None,
            worker_id: str = "worker", limit: int = 50,
            send: Callable[[EmailMessage], None] | None = None) -> int:
    """Send the e-mails due at `now`; return how many were sent."""
    send = send or smtp_sender(settings)
    moment = now or utcnow()
    real = datetime.now(UTC)
    with sessions.begin() as session:
        query = (select(MailOutbox.id).where(MailOutbox.state == "pending", MailOutbox.next_attempt_at <= moment,
                                              or_(MailOutbox.lease_until.is_(None), MailOutbox.lease_until < real))
                 .order_by(MailOutbox.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if not ids:
            return 0
        # the conditional update is the claim: on SQLite another worker's read may be older
        session.execute(update(MailOutbox).where(MailOutbox.id.in_(ids), or_(
            MailOutbox.lease_until.is_(None), MailOutbox.lease_until < real))
            .values(lease_owner=worker_id, lease_until=real + LEASE))
    sent = 0
    for mail_id in ids:
        with sessions.begin() as session:
            mail = session.get(MailOutbox, mail_id)
            if mail is None or mail.lease_owner != worker_id or mail.state != "pending":
                continue
            message = EmailMessage()
            message["From"] = settings.smtp_from
            message["To"] = mail.to_address
            message["Subject"] = mail.subject
            message["Message-ID"] = f"<polku-notice-{mail.notice_id}@{settings.smtp_from.split('@')[-1]}>"
            message.set_content(mail.body)
            try:
                send(message)
            except (OSError, smtplib.SMTPException) as err:
                mail.attempts += 1
                mail.last_error = f"{type(err).__name__}: {err}"[:2000]
                mail.lease_owner, mail.lease_until = None, None
                if mail.attempts >= MAX_ATTEMPTS:
                    mail.state = "failed"
                    log.error("e-mail %s to %s failed for good: %s", mail.id, mail.to_address, mail.last_error)
                else:
                    mail.next_attempt_at = moment + backoff(mail.attempts)
                    log.warning("e-mail %s to %s failed (try %s): %s", mail.id, mail.to_address, mail.attempts,
                                mail.last_error)
                continue
            mail.state, mail.sent_at, mail.lease_owner, mail.lease_until = "sent", moment, None, None
            mail.attempts += 1
            sent += 1
    return sent


def customer_of(session: Session, customer_id: int) -> Customer | None:
    """Return a customer by id (for templates)."""
    return session.get(Customer, customer_id)
