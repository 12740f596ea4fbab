"""The audit trail: append-only events chained by hash, read back as history, verified.

Every change to an instance or a model appends an `AuditEvent` to a stream (`instance:<id>` per
instance, `models` for deployments, `users` for accounts and customers). Each event's hash covers
its own fields and the previous event's hash in the same stream, so editing, removing or
reordering a row breaks the chain from that row on; the stream head (`AuditStream`) also holds
the last hash, so cutting off the newest events is noticed as well. Rows are only ever added.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from .db import utcnow
from .fastsql import Fast
from .models import AuditEvent, AuditStream

GENESIS = "0" * 64


class EventKind(enum.StrEnum):
    DEPLOYED = "deployed"
    INSTANCE_STARTED = "instance_started"
    TASK_CREATED = "task_created"
    TASK_CLAIMED = "task_claimed"
    TASK_RELEASED = "task_released"
    TASK_ASSIGNED = "task_assigned"
    TASK_COMPLETED = "task_completed"
    TASK_CANCELLED = "task_cancelled"
    DATA_CHANGED = "data_changed"
    MESSAGE_RECEIVED = "message_received"
    MESSAGE_THROWN = "message_thrown"
    TIMER_FIRED = "timer_fired"
    INCIDENT_RAISED = "incident_raised"
    INCIDENT_RESOLVED = "incident_resolved"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"
    INSTANCE_MIGRATED = "instance_migrated"
    SCRIPT_OUTPUT = "script_output"  # what print() wrote in a script task (element id, output)
    PATH_TAKEN = "path_taken"  # elements the engine ran in one step (gateways, scripts, events…)
    USER_CHANGED = "user_changed"
    CUSTOMER_CHANGED = "customer_changed"
    SIGNIN_FAILED = "signin_failed"  # wrong username or password (stream "signin")
    SIGNIN_THROTTLED = "signin_throttled"  # an attempt refused by the backoff, password not checked
    EXTERNAL_TASK_CREATED = "external_task_created"  # a service task waits for a worker (topic)
    EXTERNAL_TASK_LOCKED = "external_task_locked"  # a worker fetched it and holds its lock
    EXTERNAL_TASK_LOCK_EXTENDED = "external_task_lock_extended"
    EXTERNAL_TASK_UNLOCKED = "external_task_unlocked"  # an admin took the lock away
    EXTERNAL_TASK_COMPLETED = "external_task_completed"  # with the worker's variables
    EXTERNAL_TASK_FAILED = "external_task_failed"  # message, retries left
    EXTERNAL_TASK_CANCELLED = "external_task_cancelled"  # interrupted, or the case was cancelled
    SIGNAL_RECEIVED = "signal_received"  # a broadcast signal reached the instance (name, payload)
    SIGNAL_THROWN = "signal_thrown"  # the instance threw a signal nothing inside it caught
    ESCALATION_THROWN = "escalation_thrown"  # an escalation (or error) nothing in the instance caught


def instance_stream(instance_id: int) -> str:
    """Return the stream key of an instance's events."""
    return f"instance:{instance_id}"


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _digest(prev: str, stream: str, seq: int, kind: str, at: datetime, actor: str,
            instance_id: int | None, version_id: int | None, element_id: str | None,
            task_id: str | None, data: str) -> str:
    fields = [prev, stream, str(seq), kind, at.isoformat(timespec="microseconds"), actor,
              str(instance_id or ""), str(version_id or ""), element_id or "", task_id or "", data]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


@dataclass
class _Head:
    """A stream head as this transaction sees it; written back once, before commit."""

    seq: int
    head: str
    exists: bool
    dirty: bool = False


# built once: building a select costs more than running it on SQLite
_HEAD_SELECT = select(AuditStream.__table__.c.seq, AuditStream.__table__.c.head).where(
    AuditStream.__table__.c.key == bindparam("b_key"))
_HEAD, _HEAD_FOR_UPDATE = Fast(_HEAD_SELECT), Fast(_HEAD_SELECT.with_for_update())


def _stream_head(session: Session, key: str) -> _Head:
    heads = session.info.setdefault("audit_heads", {})
    head = heads.get(key)
    if head is None:  # lock the stream head once per transaction; later appends reuse it
        # on the connection's cursor (engine.fastsql): no autoflush of the caller's objects here
        query = _HEAD_FOR_UPDATE if session.connection().dialect.name == "postgresql" else _HEAD
        row = query.first(session, {"b_key": key})
        head = _Head(row[0], row[1], True) if row else _Head(0, GENESIS, False)
        heads[key] = head
    return head


def append(session: Session, kind: EventKind | str, *, actor: str, stream: str | None = None,
           instance_id: int | None = None, version_id: int | None = None, element_id: str | None = None,
           task_id: str | None = None, data: dict[str, Any] | None = None,
           at: datetime | None = None) -> None:
    """Append one event to its stream (the instance's, unless `stream` is given).

    Events are buffered and written in one statement before the transaction commits (or when
    `write_pending` is called), so an action with several events costs one insert.
    """
    key = stream or (instance_stream(instance_id) if instance_id is not None else "models")
    origin = session.info.get("audit_origin")  # e.g. "cli, os user maija": who ran a self-declared --by
    if origin:
        actor = f"{actor} ({origin})"[:200]
    head = _stream_head(session, key)
    at = at or utcnow()
    text = _canonical(data or {})
    seq = head.seq + 1
    digest = _digest(head.head, key, seq, str(kind), at, actor, instance_id, version_id, element_id,
                     task_id, text)
    session.info.setdefault("audit_pending", []).append(
        {"stream": key, "seq": seq, "kind": str(kind), "at": at, "actor": actor, "instance_id": instance_id,
         "version_id": version_id, "element_id": element_id, "task_id": task_id, "data": text,
         "prev_hash": head.head, "hash": digest})
    head.seq, head.head, head.dirty = seq, digest, True


_EVENTS, _STREAMS = cast(Table, AuditEvent.__table__), cast(Table, AuditStream.__table__)
# plain statements on the connection's cursor (engine.fastsql): these rows need none of the ORM's bookkeeping
_INSERT_EVENTS = Fast(insert(_EVENTS))
_INSERT_HEAD = Fast(insert(_STREAMS))
_UPDATE_HEAD = Fast(update(_STREAMS).where(_STREAMS.c.key == bindparam("b_key")))


def write_pending(session: Session) -> None:
    """Write buffered events and the stream heads they moved."""
    pending = session.info.pop("audit_pending", None)
    if pending:
        _INSERT_EVENTS.executemany(session, pending)
    moved, new = [], []  # one statement each, however many streams moved (a timer sweep's chunk moves 25)
    for key, head in session.info.get("audit_heads", {}).items():
        if not head.dirty:
            continue
        if head.exists:
            moved.append({"b_key": key, "seq": head.seq, "head": head.head})
        else:
            new.append({"key": key, "seq": head.seq, "head": head.head})
            head.exists = True
        head.dirty = False
    if moved:
        _UPDATE_HEAD.executemany(session, moved)
    if new:
        _INSERT_HEAD.executemany(session, new)


def assume_head(session: Session, key: str, seq: int, head: str) -> None:
    """Use a stream head the caller knows to be current (held under the instance's revision lock)."""
    session.info.setdefault("audit_heads", {}).setdefault(key, _Head(seq, head, True))


@event.listens_for(Session, "do_orm_execute")
def _write_before_reads(state: Any) -> None:
    # read-your-writes: a query in the same transaction sees the buffered events
    if state.is_select and state.session.info.get("audit_pending"):
        write_pending(state.session)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_heads(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop("audit_heads", None)
        session.info.pop("audit_pending", None)


def history(session: Session, instance_id: int) -> list[AuditEvent]:
    """Return an instance's events, oldest first."""
    write_pending(session)
    query = select(AuditEvent).where(AuditEvent.stream == instance_stream(instance_id)).order_by(AuditEvent.seq)
    return list(session.scalars(query))


def event_dict(event: AuditEvent, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return an event as plain JSON-able data."""
    return {"id": event.id, "seq": event.seq, "kind": event.kind, "at": event.at.isoformat(),
            "actor": event.actor, "instance_id": event.instance_id, "version_id": event.version_id,
            "element_id": event.element_id, "task_id": event.task_id,
            "data": json.loads(event.data) if data is None else data, "hash": event.hash}


@dataclass(frozen=True)
class ChainBreak:
    """The first event of a stream whose hash does not hold."""

    stream: str
    event_id: int | None
    seq: int
    reason: str


@dataclass(frozen=True)
class Verification:
    """Outcome of checking one or all streams."""

    streams: int
    events: int
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        """Tell whether every checked chain holds."""
        return not self.breaks


def _verify_stream(session: Session, head: AuditStream) -> tuple[int, ChainBreak | None]:
    prev, expected_seq, count = GENESIS, 1, 0
    query = select(AuditEvent).where(AuditEvent.stream == head.key).order_by(AuditEvent.seq)
    for row in session.scalars(query).yield_per(2000):
        count += 1
        if row.seq != expected_seq:
            return count, ChainBreak(head.key, row.id, row.seq, f"event {expected_seq} is missing")
        if row.prev_hash != prev:
            return count, ChainBreak(head.key, row.id, row.seq, "it does not follow the previous event")
        digest = _digest(prev, row.stream, row.seq, row.kind, row.at, row.actor, row.instance_id,
                         row.version_id, row.element_id, row.task_id, row.data)
        if digest != row.hash:
            return count, ChainBreak(head.key, row.id, row.seq, "its content was changed after it was written")
        prev, expected_seq = row.hash, expected_seq + 1
    if head.seq != expected_seq - 1 or head.head != prev:
        return count, ChainBreak(head.key, None, expected_seq, "events after this one were removed")
    return count, None


def verify(session: Session, instance_id: int | None = None) -> Verification:
    """Check the hash chains (one instance's, or all); name the first broken event of each."""
    write_pending(session)
    query = select(AuditStream).order_by(AuditStream.key)
    if instance_id is not None:
        query = query.where(AuditStream.key == instance_stream(instance_id))
    breaks: list[ChainBreak] = []
    streams = events = 0
    for head in session.scalars(query):
        streams += 1
        count, broken = _verify_stream(session, head)
        events += count
        if broken:
            breaks.append(broken)
    return Verification(streams, events, breaks)


def iter_events(session: Session, instance_ids: list[int] | None = None) -> Iterator[AuditEvent]:
    """Stream events (of some instances, or all) in stream order without loading them all."""
    write_pending(session)
    query = select(AuditEvent).order_by(AuditEvent.stream, AuditEvent.seq)
    if instance_ids is not None:
        query = query.where(AuditEvent.instance_id.in_(instance_ids))
    yield from session.scalars(query).yield_per(1000)
