"""What the REST API reads: keyset-paged lists filtered by `engine.access`, revisions, forms as JSON Schema.

Lists are paged by an opaque cursor (the last row's key, base64url): a client passes the
`next_cursor` of one page to get the next, and rows inserted meanwhile never shift a page.
Every list is cut to what the caller's roles may read (`engine.access`). Like every engine
function these take the session first and never commit.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, defer

from . import access, deploy, forms, history, inbox, runtime
from . import customers as customers_module
from .customers import _like_escape
from .errors import InstanceNotFound, InvalidInput, RevisionMismatch
from .models import Customer, Incident, IncidentStatus, Instance, Task

__all__ = ["Slice", "check_revision", "customers", "decode_cursor", "encode_cursor", "form_schema",
           "incident_dict", "incidents", "instances", "model_xml", "readable_instance", "tasks", "timeline"]

MAX_LIMIT = 200


@dataclass(frozen=True)
class Slice:
    """One page of rows and the cursor of the next page (None on the last page)."""

    rows: list[Any]
    next_cursor: str | None


def encode_cursor(key: Any) -> str:
    """Return an opaque cursor for a row key."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    """Return the row key a cursor stands for (None for no cursor).

    Raises:
        InvalidInput: the cursor was not made by `encode_cursor`.
    """
    if not cursor:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("the cursor is not one this API gave out") from None


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")


def _slice(session: Session, query: Select[Any], key: Any, cursor: str | None, limit: int, kind: type) -> Slice:
    _check_limit(limit)
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after, kind) or isinstance(after, bool):
            raise InvalidInput("the cursor is not one this API gave out")
        query = query.where(key > after)
    rows = list(session.execute(query.order_by(key).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if rows else None
    return Slice(rows, encode_cursor(getattr(last, key.key)) if more and last is not None else None)


def instances(session: Session, reader: access.Reader, f: history.InstanceFilter, *, cursor: str | None = None,
              limit: int = 50) -> Slice:
    """Return instances matching the auditor's filter that the reader may see, oldest first."""
    ids = history.matching_query(f).where(access.instance_clause(reader))
    query = select(Instance).where(Instance.id.in_(ids)).options(defer(Instance.state))  # a list: no workflow
    return _slice(session, query, Instance.id, cursor, limit, int)


def readable_instance(session: Session, reader: access.Reader, instance_id: int) -> Instance:
    """Return an instance the reader may see.

    Raises:
        InstanceNotFound: no such instance, or not readable (the same answer: nothing leaks).
    """
    if not access.can_read_instance(session, reader, instance_id):
        raise InstanceNotFound(f"no instance {instance_id}")
    return runtime.get_instance(session, instance_id)


def check_revision(session: Session, instance_id: int, expected: int | None) -> None:
    """Refuse a write made against an older revision of the instance (`If-Match`).

    Raises:
        RevisionMismatch: the instance has changed since the caller read it.
    """
    if expected is None:
        return
    current = runtime.get_instance(session, instance_id).revision
    if current != expected:
        raise RevisionMismatch(f"instance {instance_id} is at revision {current}, not {expected}")


def tasks(session: Session, reader: access.Reader, flt: inbox.TaskFilter, *, cursor: str | None = None,
          limit: int = 50) -> Slice:
    """Return tasks matching the inbox filter that the reader may see, by id."""
    query = inbox._query(flt).where(access.task_clause(reader))
    return _slice(session, query, Task.id, cursor, limit, str)


def customers(session: Session, reader: access.Reader, q: str = "", *, cursor: str | None = None,
              limit: int = 50) -> Slice:
    """Return customers whose name contains `q` or whose business ID starts with it, readable by the reader."""
    query = select(Customer).where(access.customer_clause(reader))
    text = (q or "").strip()
    if text:
        pattern = _like_escape(text)
        query = query.where(or_(Customer.name.ilike(f"%{pattern}%", escape="\\"),
                                Customer.business_id.like(f"{pattern}%", escape="\\")))
    return _slice(session, query, Customer.id, cursor, limit, int)


def incidents(session: Session, *, status: str | None = "open", instance_id: int | None = None,
              cursor: str | None = None, limit: int = 50) -> Slice:
    """Return incidents (open ones by default), oldest first."""
    query = select(Incident)
    if status is not None:
        try:
            query = query.where(Incident.status == IncidentStatus(status))
        except ValueError:
            raise InvalidInput(f"unknown incident status {status!r} (open, resolved)") from None
    if instance_id is not None:
        query = query.where(Incident.instance_id == instance_id)
    return _slice(session, query, Incident.id, cursor, limit, int)


def timeline(session: Session, reader: access.Reader, customer: Customer, *, cursor: str | None = None,
             limit: int = 100) -> Slice:
    """Return the steps of the customer's cases the reader may see, newest first, a page at a time.

    The cursor is the last event's (time, id): events written meanwhile (newer ones) never shift a page.
    """
    _check_limit(limit)
    after = decode_cursor(cursor)
    before = None if after is None else _event_key(after)
    rows = customers_module.customer_timeline(session, customer, limit + 1, reader, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return Slice(rows, encode_cursor([rows[-1].at.isoformat(), rows[-1].id]) if more else None)


def _event_key(after: Any) -> tuple[datetime, int]:
    """Return the (time in UTC, id) a timeline cursor holds.

    Raises:
        InvalidInput: not a key `timeline` gave out (the shape, a time without its zone or outside the
            calendar in UTC, an id no row can have).
    """
    try:
        at, event_id = after
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or type(event_id) is not int or not 0 < event_id < 2**63:
            raise ValueError(after)
        return when.astimezone(UTC), event_id
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput("the cursor is not one this API gave out") from None


def model_xml(session: Session, process_id: str, version: int) -> tuple[str, str]:
    """Return (file name, XML text) of the deployed file that defines a process version.

    Raises:
        VersionNotFound: no such process or version.
    """
    pv = deploy.get_version(session, process_id, version)
    files = dict(deploy._deployment_files(session, pv.deployment_id))
    name = next((n for n, text in files.items() if f'id="{process_id}"' in text), None) or next(iter(files))
    return name, files[name]


def incident_dict(row: Incident) -> dict[str, Any]:
    """Return an incident as plain data."""
    return {"id": row.id, "instance_id": row.instance_id, "element_id": row.element_id, "message": row.message,
            "status": str(row.status), "created_at": row.created_at.isoformat()}


def form_schema(fields: list[forms.Field], title: str | None = None) -> dict[str, Any]:
    """Return a JSON Schema (2020-12) of a form: one property per field, with its type and constraints."""
    props: dict[str, Any] = {}
    required = []
    for item in fields:
        prop: dict[str, Any] = {"title": item.label}
        if item.type == "long":
            prop["type"] = "integer"
            if item.min is not None:
                prop["minimum"] = item.min
            if item.max is not None:
                prop["maximum"] = item.max
        elif item.type == "boolean":
            prop["type"] = "boolean"
        elif item.type == "date":
            prop.update(type="string", format="date")
        elif item.type == "enum":
            choice = {"type": "string", "enum": [o[0] for o in item.options]}
            prop.update({"type": "array", "items": choice, "uniqueItems": True} if item.multiple else choice)
            prop["x-labels"] = {o[0]: o[1] for o in item.options}
        else:
            prop["type"] = "string"
            if item.minlength is not None:
                prop["minLength"] = item.minlength
            if item.maxlength is not None:
                prop["maxLength"] = item.maxlength
        if item.default not in (None, ""):
            prop["default"] = item.default
        if item.readonly:
            prop["readOnly"] = True
        if item.help:
            prop["description"] = item.help
        if item.checks:  # Polku's domain checks (engine.forms), as the model states them
            prop["x-checks"] = [{"name": name, "config": config} for name, config in item.checks]
            if ("email", "true") in item.checks:
                prop["format"] = "email"
        props[item.id] = prop
        if item.required and not item.readonly:
            required.append(item.id)
    schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                              "properties": props, "additionalProperties": not fields}
    if title:
        schema["title"] = title
    if required:
        schema["required"] = required
    return schema
