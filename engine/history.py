"""The auditor's read side: instance search, one instance's timeline and element data, version heatmaps.

Nothing here writes. Queries filter on indexed columns (see docs/audit.md for which index serves
which filter); per-element data is read from one instance's audit stream (`stream`, `seq` unique
index) or, for a version heatmap, from the events of that version's instances.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session, defer
from sqlalchemy.sql import Select

from . import audit
from .errors import NotFound
from .models import (
    AuditEvent,
    Instance,
    InstanceStatus,
    MessageWait,
    ModelFile,
    ProcessVersion,
    Task,
    TaskStatus,
    Timer,
    Variable,
)
from .paging import Page

STATUSES = ("running", "completed", "incident", "cancelled")
EXPERT = "responsible_expert"
_CALLED = re.compile(r'calledElement="([^"]+)"')


@dataclass(frozen=True)
class InstanceFilter:
    """What the auditor searches instances by; None means any."""

    process_id: str | None = None
    version: int | None = None
    status: str | None = None
    customer: str | None = None
    expert: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    ended_from: datetime | None = None
    ended_to: datetime | None = None




def _json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _filtered(query: Select[Any], f: InstanceFilter) -> Select[Any]:
    if f.process_id:
        query = query.where(Instance.process_id == f.process_id)
    if f.version is not None:
        query = query.where(ProcessVersion.version == f.version)
    if f.status == "incident":
        query = query.where(Instance.open_incidents > 0)
    elif f.status in ("running", "completed", "cancelled"):
        query = query.where(Instance.status == InstanceStatus(f.status))
    if f.customer:
        query = query.where(Instance.business_key == f.customer.strip())
    if f.expert:
        expert = select(Variable.instance_id).where(Variable.name == EXPERT,
                                                     cast(Variable.value, String) == _json_text(f.expert))
        query = query.where(Instance.id.in_(expert))
    bounds = ((Instance.started_at, f.started_from, f.started_to), (Instance.ended_at, f.ended_from, f.ended_to))
    for column, low, high in bounds:
        if low is not None:
            query = query.where(column >= low)
        if high is not None:
            query = query.where(column < high)
    return query


COUNT_CAP = 10_000  # a search counts its matches up to this many (or up to the page asked for), then says "more than"


def search_instances(session: Session, f: InstanceFilter, *, page: int = 1, per_page: int = 25) -> Page:
    """Return one page of instances matching the filter, newest first.

    The total is exact up to `COUNT_CAP` matches, or up to the end of the page asked for when that
    is further; beyond it the page says `more` (a filter narrows the search, an export lists them all).
    """
    base = select(Instance.id)  # every instance has its version: join it only to filter by version number
    if f.version is not None:
        base = base.join(ProcessVersion, ProcessVersion.id == Instance.version_id)
    # counted up to a cap (past the page asked for): counting 100,000 cases took PostgreSQL 8 ms a search
    cap = max(COUNT_CAP, page * per_page)
    counted = session.scalar(select(func.count()).select_from(_filtered(base, f).limit(cap + 1).subquery())) or 0
    expert = (select(Variable.value).where(Variable.instance_id == Instance.id, Variable.name == EXPERT)
              .correlate(Instance).scalar_subquery())
    # the version number by a subquery, not a join: prepared (psycopg prepares a statement run five times),
    # PostgreSQL planned the join once for all parameters, walking every instance by version (26 ms
    # against 2 ms for a month's cases); a filter on the version number still needs the join
    number = (select(ProcessVersion.version).where(ProcessVersion.id == Instance.version_id)
              .correlate(Instance).scalar_subquery())
    query = select(Instance, number, expert).options(defer(Instance.state))  # no state: a list
    if f.version is not None:
        query = query.join(ProcessVersion, ProcessVersion.id == Instance.version_id)
    query = _filtered(query, f)
    query = query.order_by(Instance.started_at.desc(), Instance.id.desc()).limit(per_page).offset((page - 1) * per_page)
    rows = [(i, v, e if isinstance(e, str) or e is None else str(e)) for i, v, e in session.execute(query)]
    return Page(rows, min(counted, cap), page, per_page, more=counted > cap)


def matching_query(f: InstanceFilter) -> Select[Any]:
    """Return a query of the ids of the instances matching the filter (for exports of large sets)."""
    return _filtered(select(Instance.id).join(ProcessVersion, ProcessVersion.id == Instance.version_id), f)


def matching_ids(session: Session, f: InstanceFilter, *, limit: int | None = None) -> list[int]:
    """Return the ids of the instances matching the filter, oldest first."""
    query = matching_query(f).order_by(Instance.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def instance_header(session: Session, instance_id: int) -> dict[str, Any]:
    """Return what the instance page's header shows.

    Raises:
        NotFound: no such instance.
    """
    found = session.execute(select(Instance, ProcessVersion).join(ProcessVersion, ProcessVersion.id ==
                                                                   Instance.version_id)
                            .where(Instance.id == instance_id)).first()
    if found is None:
        raise NotFound(f"no instance {instance_id}")
    instance, version = found
    expert = session.scalar(select(Variable.value).where(Variable.instance_id == instance_id,
                                                         Variable.name == EXPERT))
    status = "incident" if instance.open_incidents > 0 else str(instance.status)
    return {"instance": instance, "version": version, "status": status, "expert": expert}


def timeline(session: Session, instance_id: int) -> list[dict[str, Any]]:
    """Return an instance's events, oldest first, with their data parsed."""
    return [{**audit.event_dict(e), "at_dt": e.at} for e in audit.history(session, instance_id)]


def element_data(session: Session, instance_id: int) -> dict[str, Any]:
    """Return per-element run counts, the path taken, the active elements and each element's event ids."""
    events = timeline(session, instance_id)
    counts: dict[str, int] = defaultdict(int)
    by_element: dict[str, list[int]] = defaultdict(list)
    path_counts: dict[str, int] = defaultdict(int)
    for e in events:
        if e["element_id"]:
            by_element[e["element_id"]].append(e["id"])
            if e["kind"] in ("task_completed", "timer_fired", "message_received"):
                counts[e["element_id"]] += 1
        if e["kind"] == "path_taken":
            for element in e["data"].get("elements", []):
                if isinstance(element, str):
                    path_counts[element] += 1
                    by_element[element].append(e["id"])
    for element, n in path_counts.items():
        counts.setdefault(element, n)  # gateways, scripts and events count by the steps that ran them
    walked = set(path_counts) | set(counts) | set(by_element)
    active = set(session.scalars(select(Task.element_id).where(Task.instance_id == instance_id,
                                                               Task.state == TaskStatus.READY)))
    active |= set(session.scalars(select(Timer.element_id).where(Timer.instance_id == instance_id)))
    active |= set(session.scalars(select(MessageWait.element_id).where(MessageWait.instance_id == instance_id)))
    return {"counts": dict(counts), "walked": sorted(walked), "active": sorted(active),
            "events": {k: v for k, v in by_element.items()}}


def version_diagrams(session: Session, version_id: int) -> list[dict[str, Any]]:
    """Return the BPMN XML of a version and of the processes it calls from the same deployment.

    Raises:
        NotFound: no such version.
    """
    version = session.get(ProcessVersion, version_id)
    if version is None:
        raise NotFound(f"no process version {version_id}")
    result, seen, todo = [], set(), [version]
    while todo:
        pv = todo.pop(0)
        if pv.file_id in seen:
            continue
        seen.add(pv.file_id)
        xml = session.scalar(select(ModelFile.content).where(ModelFile.id == pv.file_id)) or ""
        result.append({"process_id": pv.process_id, "version": pv.version, "name": pv.name, "xml": xml})
        called = set(_CALLED.findall(xml)) - {pv.process_id}
        if called:
            todo += list(session.scalars(select(ProcessVersion).where(
                ProcessVersion.deployment_id == pv.deployment_id, ProcessVersion.process_id.in_(called))))
    return result


def heatmap(session: Session, version_id: int) -> dict[str, dict[str, Any]]:
    """Return per element of a version's instances: how often it ran and its median duration in seconds."""
    ids = select(Instance.id).where(Instance.version_id == version_id)
    counts: dict[str, int] = defaultdict(int)
    created: dict[str, datetime] = {}
    durations: dict[str, list[float]] = defaultdict(list)
    on_paths: dict[str, int] = defaultdict(int)
    kinds = ("task_created", "task_completed", "timer_fired", "message_received", "path_taken")
    query = (select(AuditEvent.kind, AuditEvent.element_id, AuditEvent.task_id, AuditEvent.at, AuditEvent.data)
             .where(AuditEvent.instance_id.in_(ids), AuditEvent.kind.in_(kinds))
             .order_by(AuditEvent.instance_id, AuditEvent.seq))
    for kind, element, task_id, at, data in session.execute(query).yield_per(2000):
        if kind == "task_created" and task_id:
            created[task_id] = at
        elif kind == "task_completed" and element:
            counts[element] += 1
            start = created.pop(task_id, None) if task_id else None
            if start is not None:
                durations[element].append((at - start).total_seconds())
        elif kind in ("timer_fired", "message_received") and element:
            counts[element] += 1
        elif kind == "path_taken":
            for step in json.loads(data).get("elements", []):
                if isinstance(step, str):
                    on_paths[step] += 1
    for step, n in on_paths.items():
        counts.setdefault(step, n)  # elements without events (gateways, scripts) count by the steps that ran them
    return {k: {"count": v, "median_seconds": statistics.median(durations[k]) if durations.get(k) else None}
            for k, v in sorted(counts.items())}
