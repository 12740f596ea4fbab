"""Tables for customer work outside single processes: contact log, imported companies, office
settings, user notification settings, absences, notices with their e-mail outbox, and the
schedules of timer start events.

Registered with the other tables by `engine.models` (which imports this module at its end).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, intpk, str40, str200, utcnow


class OfficeSetting(Base):
    """One office-wide setting (yearly visit target, lead time of reminders, …) as a JSON value."""

    __tablename__ = "office_setting"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str200]


class Contact(Base):
    """One contact with a customer outside (or beside) a service process."""

    __tablename__ = "contact"
    __table_args__ = (Index("ix_contact_next", "next_contact_on", "reminded"),)
    id: Mapped[intpk]
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    contacted_on: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(20))  # visit | phone | email | event | web
    participants: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str200]
    notes: Mapped[str | None] = mapped_column(Text)
    next_contact_on: Mapped[date | None] = mapped_column(Date)
    reminded: Mapped[bool] = mapped_column(default=False)  # the next-contact reminder was made
    prospecting: Mapped[bool] = mapped_column(default=False)  # a visit with no active customership
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"))  # a process started from it
    created_by: Mapped[str200] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportedCompany(Base):
    """A company that posted its first vacancy in the web service: a worklist row for the group."""

    __tablename__ = "imported_company"
    id: Mapped[intpk]
    business_id: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str200]
    first_posting_on: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str200]
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(200))


class UserSetting(Base):
    """A user's notification settings: e-mail address and opt-outs (the language is the user's locale)."""

    __tablename__ = "user_setting"
    username: Mapped[str] = mapped_column(String(80), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(200))
    email_opt_out: Mapped[bool] = mapped_column(default=False)
    digest_opt_out: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Absence(Base):
    """An expert's absence period and the substitute who covers their tasks due in it."""

    __tablename__ = "absence"
    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(80), index=True)
    substitute: Mapped[str] = mapped_column(String(80), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str200]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]


class Notice(Base):
    """An in-app notification for one user; `key` makes each notice exist once, whoever makes it."""

    __tablename__ = "notice"
    __table_args__ = (Index("ix_notice_user_read", "username", "read_at"),)
    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(200), unique=True)
    username: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str40]  # assigned | digest | supervisor_digest | contact_due
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class MailOutbox(Base):
    """One e-mail to send for a notice: claimed with a lease, sent once, failures retried with backoff."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "state", "next_attempt_at"),)
    id: Mapped[intpk]
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"), unique=True)
    to_address: Mapped[str200]
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StartSchedule(Base):
    """The next due time of one timer start event of one deployed process version."""

    __tablename__ = "start_schedule"
    __table_args__ = (UniqueConstraint("version_id", "element_id"),)
    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id"))
    process_id: Mapped[str200] = mapped_column(index=True)
    element_id: Mapped[str200]
    kind: Mapped[str40]  # date | cycle
    expression: Mapped[str] = mapped_column(String(300))
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)  # None: no more starts
    active: Mapped[bool] = mapped_column(default=True)  # False once a newer version replaced it
    last_started_at: Mapped[datetime | None]
    last_instance_id: Mapped[int | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
