"""Typed tables: deployed models, instances, tasks, variables, timers, incidents, audit, users, customers.

Schema changes go through Alembic migrations in `engine/migrations/versions/`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, intpk, str40, str200, utcnow
from .values import NAME_MAX


class ModelKind(enum.StrEnum):
    PROCESS = "process"
    DECISION = "decision"


class InstanceStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class TaskStatus(enum.StrEnum):
    READY = "ready"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Deployment(Base):
    """A set of .bpmn/.dmn files deployed together."""

    __tablename__ = "deployment"
    id: Mapped[intpk]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str200]
    note: Mapped[str | None] = mapped_column(Text)


class ModelFile(Base):
    """One file of a deployment, kept byte for byte."""

    __tablename__ = "model_file"
    id: Mapped[intpk]
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    filename: Mapped[str200]
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


class ProcessVersion(Base):
    """One version of one process (or DMN decision), bound to the deployment that created it."""

    __tablename__ = "process_version"
    __table_args__ = (UniqueConstraint("process_id", "version"),)
    id: Mapped[intpk]
    process_id: Mapped[str200] = mapped_column(index=True)
    kind: Mapped[ModelKind] = mapped_column(String(20), default=ModelKind.PROCESS)
    name: Mapped[str200]
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("model_file.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str200]
    catalogue: Mapped[dict[str, Any]] = mapped_column(default=dict)  # element id -> name, lane, form, …


class Instance(Base):
    """A running or finished case of a process version."""

    __tablename__ = "instance"
    __table_args__ = (
        Index("ix_instance_status_started", "status", "started_at"),  # auditor search by status + period
        Index("ix_instance_parent", "parent_instance_id"),  # new processes started from aftercare
        # the running cases' ids, read without their rows (the supervisor's on-time share, kpi._ran_since)
        Index("ix_instance_running", "id", sqlite_where=text("ended_at IS NULL"),
              postgresql_where=text("ended_at IS NULL")),
    )
    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id"), index=True)
    process_id: Mapped[str200] = mapped_column(index=True)
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[InstanceStatus] = mapped_column(String(20), default=InstanceStatus.RUNNING, index=True)
    revision: Mapped[int] = mapped_column(default=1)  # optimistic lock, +1 per saved change
    state: Mapped[str] = mapped_column(Text)  # SpiffWorkflow's serialized workflow
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_by: Mapped[str200]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    parent_instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"))
    open_incidents: Mapped[int] = mapped_column(default=0)

    __mapper_args__ = {"version_id_col": revision}  # noqa: RUF012 - SQLAlchemy mapper options


class Task(Base):
    """A user task as inboxes see it; written on every change of the instance."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_state_assignee", "state", "assignee"),
        Index("ix_task_state_role", "state", "candidate_role"),
        Index("ix_task_state_due", "state", "due_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # SpiffWorkflow task id
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    element_id: Mapped[str200]
    # the process whose element it is (a called process may use the main process's element ids);
    # NULL on rows written before the column existed
    process_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str200]
    lane: Mapped[str | None] = mapped_column(String(200))
    candidate_role: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[TaskStatus] = mapped_column(String(20), default=TaskStatus.READY)
    assignee: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(200))


class Variable(Base):
    """One instance variable's current value, for queries and KPIs."""

    __tablename__ = "variable"
    __table_args__ = (Index("ix_variable_name", "name", "instance_id"),)  # KPIs and filters by variable name
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)  # longer names refused (check_plain)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Timer(Base):
    """A waiting timer of an instance with its due time; workers find due work by `due_at`."""

    __tablename__ = "timer"
    id: Mapped[intpk]
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str200]
    kind: Mapped[str40]  # date | duration | cycle
    due_at: Mapped[datetime] = mapped_column(index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]


class MessageWait(Base):
    """A message an instance is waiting for, so delivery is one indexed query."""

    __tablename__ = "message_wait"
    id: Mapped[intpk]
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    name: Mapped[str200] = mapped_column(index=True)
    element_id: Mapped[str200]


class ExternalTaskState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ExternalTask(Base):
    """A service task waiting for a worker outside the engine (camunda:type="external").

    Free for fetching when open, not locked (or its lock expired) and retries are not used up.
    After a failure `lock_owner` is cleared and `lock_expires_at` is when it may be fetched again.
    """

    __tablename__ = "external_task"
    __table_args__ = (Index("ix_external_task_fetch", "state", "topic", "lock_expires_at"),)
    id: Mapped[intpk]
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)  # SpiffWorkflow task id
    element_id: Mapped[str200]
    topic: Mapped[str200]
    priority: Mapped[int | None]
    local_variables: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the task's own (multi-instance item)
    state: Mapped[ExternalTaskState] = mapped_column(String(20), default=ExternalTaskState.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retries: Mapped[int | None]  # None until a worker reports a failure
    lock_owner: Mapped[str | None] = mapped_column(String(200))
    lock_expires_at: Mapped[datetime | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(200))


class Incident(Base):
    """A failure inside an instance that needs a person: the state stays as before the failing step."""

    __tablename__ = "incident"
    id: Mapped[intpk]
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    element_id: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    action: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what to retry
    status: Mapped[IncidentStatus] = mapped_column(String(20), default=IncidentStatus.OPEN, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class AuditStream(Base):
    """Head of one hash chain (one per instance, one for models): serialises appends."""

    __tablename__ = "audit_stream"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    head: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """One append-only audit event; `hash` covers its fields and the previous event's hash."""

    __tablename__ = "audit_event"
    # found by stream (the unique (stream, seq)), by instance or by id; not by kind or time (migrations 0015, 0016)
    __table_args__ = (UniqueConstraint("stream", "seq"),)
    id: Mapped[intpk]
    stream: Mapped[str] = mapped_column(String(60))
    seq: Mapped[int]
    kind: Mapped[str40]
    at: Mapped[datetime]
    actor: Mapped[str200]
    instance_id: Mapped[int | None] = mapped_column(index=True)
    version_id: Mapped[int | None]
    element_id: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class User(Base):
    """A person who signs in; `roles` is a comma-separated subset of expert, supervisor, designer, auditor, admin."""

    __tablename__ = "user_account"
    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str200]
    password_hash: Mapped[str] = mapped_column(String(300))
    roles: Mapped[str200]
    locale: Mapped[str] = mapped_column(String(10), default="fi")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    demo: Mapped[bool] = mapped_column(default=False)  # made by `polku seed-demo`: refused in production

    @property
    def role_set(self) -> set[str]:
        """Return the user's roles as a set."""
        return {r for r in self.roles.split(",") if r}


class Customer(Base):
    """A company served by the office (fields from the thesis' interview form)."""

    __tablename__ = "customer"
    id: Mapped[intpk]
    business_id: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str200] = mapped_column(index=True)
    industry: Mapped[str | None] = mapped_column(String(200))
    founded_year: Mapped[int | None]
    headcount: Mapped[int | None]
    turnover_band: Mapped[str | None] = mapped_column(String(40))
    situation: Mapped[str | None] = mapped_column(String(40))
    segment: Mapped[str | None] = mapped_column(String(60))
    responsible_expert: Mapped[str | None] = mapped_column(String(80), index=True)
    contact_person: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Draft(Base):
    """A model file a designer is editing: saved per designer, never run until deployed."""

    __tablename__ = "draft"
    __table_args__ = (UniqueConstraint("owner", "filename"),)
    id: Mapped[intpk]
    owner: Mapped[str] = mapped_column(String(80), index=True)
    filename: Mapped[str200]
    content: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("process_version.id"))


class LoginFailure(Base):
    """One failed sign-in for a (username, address) key; counted by every server process."""

    __tablename__ = "login_failure"
    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class UserSession(Base):
    """One sign-in: the cookie carries a random token, this row its SHA-256; ending the row ends the sign-in."""

    __tablename__ = "user_session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's token
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)  # absolute end, however busy
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(String(100))


class StashedForm(Base):
    """What a user typed when their sign-in had expired, kept for them until they are back."""

    __tablename__ = "stashed_form"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int]
    path: Mapped[str] = mapped_column(String(500))
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    """A personal API token: the caller sends the secret as `Bearer`, this row keeps its SHA-256 only."""

    __tablename__ = "api_token"
    id: Mapped[intpk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the secret
    prefix: Mapped[str] = mapped_column(String(16))  # the secret's first characters, to recognise it in lists
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    name: Mapped[str200]
    roles: Mapped[str200]  # comma-separated, a subset of the owner's roles when made
    created_at: Mapped[datetime]
    created_by: Mapped[str200]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    @property
    def role_set(self) -> set[str]:
        """Return the token's roles as a set."""
        return {r for r in self.roles.split(",") if r}


# contact log, notices, absences, start schedules; providers registry and the providers' feedback;
# the national customer survey's results
from . import outreach_models, provider_models, survey_models  # noqa: F401
