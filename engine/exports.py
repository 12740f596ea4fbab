"""Audit exports as streams of text chunks: CSV and JSON of audit events, and an XES (IEEE 1849) event log.

Every function is a generator over `audit.iter_events` (which reads with `yield_per`), so an export
of millions of events never holds more than one batch in memory; the web UI wraps these in a
streamed response.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from . import audit
from .models import AuditEvent, Instance

CSV_COLUMNS = ("id", "stream", "seq", "kind", "at", "actor", "instance_id", "version_id", "element_id",
               "task_id", "data", "hash")
_BATCH = 500
Ids = list[int] | Select[Any] | None  # some instances, the ids a query selects (large sets), or all


def _events(session: Session, ids: Ids) -> Iterator[AuditEvent]:
    if ids is None or isinstance(ids, list):
        yield from audit.iter_events(session, ids)
        return
    audit.write_pending(session)
    query = (select(AuditEvent).where(AuditEvent.instance_id.in_(ids))
             .order_by(AuditEvent.stream, AuditEvent.seq))
    yield from session.scalars(query).yield_per(1000)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Return a cell a spreadsheet will not run as a formula: text starting with = + - @ tab or CR gets a '."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_row(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([csv_safe(v) for v in values])
    return buffer.getvalue()


def _row(event: AuditEvent) -> tuple[object, ...]:
    return (event.id, event.stream, event.seq, event.kind, event.at.isoformat(), event.actor, event.instance_id,
            event.version_id, event.element_id, event.task_id, event.data, event.hash)


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """Return small tables (KPI charts) as CSV text."""
    return "".join(_csv_row(r) for r in rows)


def events_csv(session: Session, instance_ids: Ids) -> Iterator[str]:
    """Yield the events of these instances (or all) as CSV, header first."""
    yield _csv_row(CSV_COLUMNS)
    chunk: list[str] = []
    for event in _events(session, instance_ids):
        chunk.append(_csv_row(_row(event)))
        if len(chunk) >= _BATCH:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def events_json(session: Session, instance_ids: Ids) -> Iterator[str]:
    """Yield the events of these instances (or all) as one JSON array."""
    yield "["
    first = True
    for event in _events(session, instance_ids):
        yield ("" if first else ",\n") + json.dumps(audit.event_dict(event), ensure_ascii=False)
        first = False
    yield "]\n"


def _attr(kind: str, key: str, value: str) -> str:
    return f"<{kind} key={quoteattr(key)} value={quoteattr(value)}/>"


def _xes_time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def events_xes(session: Session, instance_ids: Ids) -> Iterator[str]:
    """Yield an XES event log: one trace per instance, one event per completed task."""
    yield ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<log xes.version="1849-2016" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">\n'
           '<extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>\n'
           '<extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>\n'
           '<extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>\n'
           '<extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>\n'
           '<global scope="trace">' + _attr("string", "concept:name", "") + '</global>\n'
           '<global scope="event">' + _attr("string", "concept:name", "") +
           _attr("date", "time:timestamp", "1970-01-01T00:00:00.000+00:00") + '</global>\n')
    query = (select(AuditEvent, Instance.process_id, Instance.business_key)
             .join(Instance, Instance.id == AuditEvent.instance_id)
             .where(AuditEvent.kind == "task_completed").order_by(AuditEvent.instance_id, AuditEvent.seq))
    if instance_ids is not None:
        query = query.where(AuditEvent.instance_id.in_(instance_ids))
    audit.write_pending(session)
    current: int | None = None
    for event, process_id, business_key in session.execute(query).yield_per(1000):
        if event.instance_id != current:
            if current is not None:
                yield "</trace>\n"
            current = event.instance_id
            yield "<trace>" + _trace_attrs(current, process_id, business_key) + "\n"
        name = json.loads(event.data).get("name") or event.element_id or ""
        yield ("<event>" + _attr("string", "concept:name", name) + _attr("date", "time:timestamp", _xes_time(event.at))
               + _attr("string", "org:resource", event.actor) + _attr("string", "lifecycle:transition", "complete")
               + _attr("string", "polku:element", event.element_id or "") + "</event>\n")
    if current is not None:
        yield "</trace>\n"
    yield "</log>\n"


def _trace_attrs(instance_id: int | None, process_id: str, business_key: str | None) -> str:
    return (_attr("string", "concept:name", f"instance-{instance_id}") + _attr("string", "polku:process", process_id)
            + _attr("string", "polku:customer", business_key or ""))
