"""Runtime: start instances, complete tasks, deliver messages, fire timers, retry incidents.

Every action loads the instance (from an in-process cache when the database still holds the same
revision), changes it through `engine.spiff`, runs engine steps until it waits, and persists in
the caller's transaction: the compacted state, the task rows that changed, changed variables,
waiting timers and messages, and the audit events. The instance's `revision` is an optimistic
lock: two writers on one instance never both win (`Conflict`).

A failing script or condition never loses the instance: the state is rebuilt as it was just
before the engine steps, an `Incident` is opened (element, message) and `retry_incident` runs
the steps again, after the data has been fixed if need be.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    bindparam,
    delete,
    event,
    insert,
    inspect,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from . import audit, deploy, fastsql, forms, juel, lru, office, sandbox, spiff, users, values
from .audit import EventKind
from .db import UTCDateTime, column_length, utcnow
from .errors import (
    Conflict,
    InstanceNotFound,
    InvalidInput,
    NotAllowed,
    NotFound,
    ScriptError,
    TaskNotAvailable,
    TaskNotFound,
)
from .fastsql import Fast
from .models import (
    AuditStream,
    ExternalTask,
    ExternalTaskState,
    Incident,
    IncidentStatus,
    Instance,
    InstanceStatus,
    MessageWait,
    ProcessVersion,
    Task,
    TaskStatus,
    Timer,
    User,
    Variable,
)

log = logging.getLogger(__name__)

# A signal wait is a message_wait row whose name carries this prefix (one indexed lookup for both).
SIGNAL_PREFIX = "signal:"


@dataclass
class _Held:
    """What we know of an instance beyond its row, kept between actions at the same revision."""

    workflow: spiff.Workflow
    variables: dict[str, Any]
    ready: dict[str, str]            # spiff task id -> element id of READY task rows
    timers: dict[tuple[str, str], datetime]  # (spiff task id, element id) -> due; the task id alone is not
    # enough: the timers after an event-based gateway share the gateway's task
    messages: dict[str, str]         # spiff task id -> message name
    audit_head: tuple[int, str] | None = None  # (seq, hash) of the instance's audit stream
    externals: set[str] = field(default_factory=set)  # spiff task ids of open external_task rows



@dataclass
class _Loaded:
    instance: Instance
    version: ProcessVersion
    bundle: spiff.SpecBundle
    held: _Held
    path: list[str] = field(default_factory=list)
    survey: spiff.Survey | None = None  # what the last write found in the workflow (the stuck check reuses it)


def _held_bytes(entry: tuple[int, _Held]) -> int:
    """Approximate memory of one held instance: measured ~8 KB for 10 Spiff tasks (bench/engine.py)."""
    held = entry[1]
    return 2048 + HELD_TASK_BYTES * spiff.task_count(held.workflow) + 256 * len(held.variables)


HELD_TASK_BYTES = 600
# (database, instance id) -> (revision, what we hold); entries appear only after a commit. LRU, bounded by
# POLKU_CACHE_INSTANCES entries and most of POLKU_CACHE_MB (engine.lru): an evicted instance is read again.
_cache: lru.BoundedCache[tuple[str, int], tuple[int, _Held]] = lru.BoundedCache(
    "instances", max_entries=lru.DEFAULT_INSTANCES, byte_share=0.7, sizeof=_held_bytes, entries_setting=True)


def _cache_key(session: Session, instance_id: int) -> tuple[str, int]:
    return (deploy.database_key(session), instance_id)


def forget_instance(session: Session, instance_id: int) -> None:
    """Drop what this process holds of one instance (after changing it behind the runtime's back)."""
    key = _cache_key(session, instance_id)
    session.info.get("polku_cache", {}).pop(key, None)
    _cache.pop(key, None)


def _after_commit_cache(session: Session, instance_id: int, revision: int, held: _Held) -> None:
    pending = session.info.setdefault("polku_cache", {})
    pending[_cache_key(session, instance_id)] = (revision, held)


@event.listens_for(Session, "after_commit")
def _promote_cache(session: Session) -> None:
    heads = session.info.get("audit_heads", {})
    for key, (revision, held) in session.info.pop("polku_cache", {}).items():
        head = heads.get(audit.instance_stream(key[1]))
        held.audit_head = (head.seq, head.head) if head is not None else None
        _cache[key] = (revision, held)


@event.listens_for(Session, "after_rollback")
def _drop_cache(session: Session) -> None:
    session.info.pop("polku_cache", None)


def forget_cache() -> None:
    """Drop every cached instance (tests use it to force loading from the database)."""
    _cache.clear()


# ---------------------------------------------------------------------------------------------
# Loading and saving


def get_instance(session: Session, instance_id: int) -> Instance:
    """Return an instance row.

    Raises:
        InstanceNotFound: no such instance.
    """
    instance = session.get(Instance, instance_id)
    if instance is None:
        raise InstanceNotFound(f"no instance {instance_id}")
    return instance


def lock_instance(session: Session, instance_id: int) -> Instance:
    """Return an instance row locked for this transaction: every writer takes this lock first.

    PostgreSQL: `SELECT … FOR UPDATE` (fresh values), so concurrent writers queue here in one
    order and never deadlock on the task, timer or audit rows they write next. SQLite: its one
    writer already holds the database since BEGIN IMMEDIATE.

    Raises:
        InstanceNotFound: no such instance.
    """
    if session.get_bind().dialect.name == "postgresql":
        held = session.identity_map.get(identity_key(Instance, instance_id))
        if held is not None and held is session.info.get(_LOCKED, {}).get(instance_id):
            return held  # locked and read fresh by hold_instances in this transaction: nobody else can change it
        session.flush()  # as the ORM's autoflush before its select
        found = _LOCK_INSTANCE.first(session, {"b_id": instance_id})
        if found is None:
            raise InstanceNotFound(f"no instance {instance_id}")
        if held is not None and "revision" not in inspect(held).unloaded \
                and held.revision != found[_REVISION_AT]:  # this session held an older revision
            raise Conflict("someone else changed this case at the same time; reload and try again")
        return _adopt_instance(session, found, refresh=True)
    if session.identity_map.get(identity_key(Instance, instance_id)) is None:
        # not in the session (a timer firing, a cold load): the row on the cursor, as session.get would load it
        session.flush()  # as the ORM's autoflush before its select
        found = _READ_INSTANCE.first(session, {"b_id": instance_id})
        if found is None:
            raise InstanceNotFound(f"no instance {instance_id}")
        return _adopt_instance(session, found)
    session.flush()  # callers refresh rows after the lock: what this transaction changed must be written first
    instance = session.get(Instance, instance_id)
    if instance is None:
        raise InstanceNotFound(f"no instance {instance_id}")
    return instance


def _adopt_instance(session: Session, values: Sequence[Any], *, refresh: bool = False) -> Instance:
    """Return the session's object of an instance row (all columns, in table order), adding one if it has none.

    `refresh`: the row's values replace what the session's object holds (a locked, fresh read).
    """
    instance = fastsql.adopt(session, Instance, values, refresh=refresh)
    session.info["polku_held_instance"] = instance  # the identity map holds rows weakly: keep it
    return instance


_INSTANCE_TABLE = cast(Table, Instance.__table__)
_INSTANCE_KEYS = tuple(c.key for c in _INSTANCE_TABLE.c)
_REVISION_AT = _INSTANCE_KEYS.index("revision")
# PostgreSQL's instance lock: the row, fresh, on the cursor (engine.fastsql); an ORM get costs ten times as much
_LOCK_INSTANCE = Fast(select(*_INSTANCE_TABLE.c).where(_INSTANCE_TABLE.c.id == bindparam("b_id")).with_for_update())
_READ_INSTANCE = Fast(select(*_INSTANCE_TABLE.c).where(_INSTANCE_TABLE.c.id == bindparam("b_id")))


def _load(session: Session, instance_id: int) -> _Loaded:
    instance = lock_instance(session, instance_id)
    version = deploy.version_by_id(session, instance.version_id)
    bundle = deploy.bundle_for(session, version)
    # what hold_instances read for this transaction, else what this process holds
    ahead = session.info.get(_HELD_AHEAD, {}).pop(instance_id, None)
    cached = ahead or _cache.pop(_cache_key(session, instance_id), None)
    if cached is not None and cached[0] == instance.revision:
        if cached[1].audit_head is not None:
            audit.assume_head(session, audit.instance_stream(instance_id), *cached[1].audit_head)
        return _Loaded(instance, version, bundle, cached[1])
    return _Loaded(instance, version, bundle, _read_held(session, instance, bundle))


# What an instance holds beyond its state (variables, ready tasks, timers, message waits, external tasks, and
# the head of its audit stream), read in one statement built once, run on the connection (Core), one
# (kind, a, b, value, due_at) per row:
# loading ORM objects for these rows cost three times as much as deserializing the state, a select through
# the ORM session twice one on the connection, and five selects five round trips (bench/timers.py).
# The columns take their types from the first select: value is JSON, due_at a UTC datetime.
_V, _T, _TM, _MW, _ET, _AS = (cast(Table, m.__table__)
                              for m in (Variable, Task, Timer, MessageWait, ExternalTask, AuditStream))
_HELD_ALL = Fast(union_all(
    select(literal_column("1").label("kind"), _V.c.name.label("a"), sql_cast(null(), String).label("b"),
           _V.c.value, sql_cast(null(), UTCDateTime).label("due_at"))
    .where(_V.c.instance_id == bindparam("b_instance")),
    select(literal_column("2"), _T.c.id, _T.c.element_id, null(), null())
    .where(_T.c.instance_id == bindparam("b_instance"), _T.c.state == TaskStatus.READY),
    select(literal_column("3"), _TM.c.task_id, _TM.c.element_id, null(), _TM.c.due_at)
    .where(_TM.c.instance_id == bindparam("b_instance")),
    select(literal_column("4"), _MW.c.element_id, _MW.c.name, null(), null())
    .where(_MW.c.instance_id == bindparam("b_instance")),
    select(literal_column("5"), _ET.c.task_id, null(), null(), null())
    .where(_ET.c.instance_id == bindparam("b_instance"), _ET.c.state == ExternalTaskState.OPEN),
    # read under the instance lock, which every writer of an instance's stream takes first (as the held
    # instance's cached head is): the append needs no select of its own, a round trip fewer per cold action
    select(literal_column("6"), sql_cast(_AS.c.seq, String), _AS.c.head, null(), null())
    .where(_AS.c.key == bindparam("b_stream")),
))


# The same for several instances (hold_instances): each row also says whose it is, by instance id (kinds 1-5)
# or by audit stream (kind 6): (instance_id, stream, kind, a, b, value, due_at).
_HELD_MANY = union_all(
    select(_V.c.instance_id, sql_cast(null(), String).label("stream"), literal_column("1").label("kind"),
           _V.c.name.label("a"), sql_cast(null(), String).label("b"), _V.c.value,
           sql_cast(null(), UTCDateTime).label("due_at"))
    .where(_V.c.instance_id.in_(bindparam("b_instances", expanding=True))),
    select(_T.c.instance_id, null(), literal_column("2"), _T.c.id, _T.c.element_id, null(), null())
    .where(_T.c.instance_id.in_(bindparam("b_instances", expanding=True)), _T.c.state == TaskStatus.READY),
    select(_TM.c.instance_id, null(), literal_column("3"), _TM.c.task_id, _TM.c.element_id, null(), _TM.c.due_at)
    .where(_TM.c.instance_id.in_(bindparam("b_instances", expanding=True))),
    select(_MW.c.instance_id, null(), literal_column("4"), _MW.c.element_id, _MW.c.name, null(), null())
    .where(_MW.c.instance_id.in_(bindparam("b_instances", expanding=True))),
    select(_ET.c.instance_id, null(), literal_column("5"), _ET.c.task_id, null(), null(), null())
    .where(_ET.c.instance_id.in_(bindparam("b_instances", expanding=True)), _ET.c.state == ExternalTaskState.OPEN),
    select(null(), _AS.c.key, literal_column("6"), sql_cast(_AS.c.seq, String), _AS.c.head, null(), null())
    .where(_AS.c.key.in_(bindparam("b_streams", expanding=True))),
)


def _read_held(session: Session, instance: Instance, bundle: spiff.SpecBundle) -> _Held:
    stream = audit.instance_stream(instance.id)
    key = {"b_instance": instance.id, "b_stream": stream}
    session.flush()  # what the ORM session did before each select (autoflush, buffered audit events)
    audit.write_pending(session)
    return _held_from_rows(session, instance, bundle, _HELD_ALL.all(session, key))  # one round trip


def _held_from_rows(session: Session, instance: Instance, bundle: spiff.SpecBundle,
                    rows: Sequence[Sequence[Any]]) -> _Held:
    """Build what an instance holds from its state and its `_HELD_ALL` rows (kind, a, b, value, due_at)."""
    workflow = spiff.load_state(instance.state, bundle)
    stream = audit.instance_stream(instance.id)
    variables: dict[str, Any] = {}
    ready: dict[str, str] = {}
    timers: dict[tuple[str, str], datetime] = {}
    messages: dict[str, str] = {}
    externals: set[str] = set()
    for kind, a, b, value, due_at in rows:
        if kind == 1:
            variables[a] = value
        elif kind == 2:
            ready[a] = b
        elif kind == 3:
            timers[(a, b)] = due_at
        elif kind == 4:
            messages[a + "|" + b] = b
        elif kind == 5:
            externals.add(a)
        else:
            audit.assume_head(session, stream, int(a), b)
    return _Held(workflow, variables, ready, timers, messages, externals=externals)


# hold_instances: the rows it locked (PostgreSQL; on SQLite the one writer) and what it read, per instance id,
# for this transaction's actions
_LOCKED, _HELD_AHEAD = "polku_locked", "polku_held_ahead"


def hold_instances(session: Session, instance_ids: Sequence[int]) -> None:
    """Lock and read several instances in two statements, for actions on each of them in this transaction.

    The timer sweep's chunk: instead of a lock, a read of its rows and a flush of the audit events before
    each instance (three round trips per firing), one `SELECT … FOR UPDATE` of all the rows (PostgreSQL; in
    id order, as every writer takes its one lock) and one read of what they hold. An instance held in this
    process's cache at the same revision is not deserialized again. What is read stays valid for this
    transaction only (the locks, or SQLite's one writer, keep it so) and is dropped when it ends.
    """
    ids = sorted(set(instance_ids))
    if not ids:
        return
    session.flush()
    audit.write_pending(session)
    rows_query = select(*_INSTANCE_TABLE.c).where(_INSTANCE_TABLE.c.id.in_(ids)).order_by(_INSTANCE_TABLE.c.id)
    if session.get_bind().dialect.name == "postgresql":
        rows_query = rows_query.with_for_update()
    rows = session.execute(rows_query).all()
    streams = {audit.instance_stream(i): i for i in ids}
    held_rows: dict[int, list[Any]] = {i: [] for i in ids}
    for row in session.execute(_HELD_MANY, {"b_instances": ids, "b_streams": list(streams)}):
        held_rows[row[0] if row[0] is not None else streams[row[1]]].append(row[2:])
    ahead, locked = session.info.setdefault(_HELD_AHEAD, {}), session.info.setdefault(_LOCKED, {})
    for row in rows:
        known = session.identity_map.get(identity_key(Instance, row[0]))
        if known is not None and known.revision != row[_REVISION_AT]:  # an older revision: the action will say so
            continue
        instance = _adopt_instance(session, row, refresh=True)
        cached = _cache.pop(_cache_key(session, instance.id), None)
        if cached is not None and cached[0] == instance.revision:  # the rows read say the same: keep the workflow
            ahead[instance.id] = cached
        else:
            try:
                bundle = deploy.bundle_for(session, deploy.version_by_id(session, instance.version_id))
                ahead[instance.id] = (instance.revision,
                                      _held_from_rows(session, instance, bundle, held_rows[instance.id]))
            except Exception:  # a state that cannot be read fails in its own action, which names it
                log.debug("instance %s: its state is read again by its action", instance.id, exc_info=True)
        locked[instance.id] = instance  # the identity map holds rows weakly: keep them for the transaction


@event.listens_for(Session, "after_transaction_end")
def _forget_held_ahead(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_LOCKED, None)
        session.info.pop(_HELD_AHEAD, None)


def _reload(session: Session, loaded: _Loaded) -> _Loaded:
    """Rebuild the workflow from the stored state (the held one was spoilt by a failure)."""
    held = _read_held(session, loaded.instance, loaded.bundle)
    return _Loaded(loaded.instance, loaded.version, loaded.bundle, held)


def _evaluate_template(value: str | None, data: dict[str, Any]) -> Any:
    if not value:
        return None
    text = value.strip()
    if juel.is_template(text):  # ${…} is read as JUEL, as in conditions (engine.juel)
        return sandbox.evaluate(juel.translate(text), dict(data), clock=spiff.engine_now)
    return text


_BUSINESS_KEY_MAX = column_length(Instance, "business_key")
_ASSIGNEE_MAX = users.USERNAME_MAX  # an assignee is a user name (the notices' recipient column too)


def _new_task_row(loaded: _Loaded, ready: spiff.ReadyTask, now: datetime) -> tuple[dict[str, Any], str | None]:
    """Return a new task row's columns (every column of `task`) and a warning about its expressions."""
    entry = deploy.catalogue_entry(loaded.version, ready.element_id, ready.process_id)
    warning = None
    try:
        assignee = _evaluate_template(entry.get("assignee"), ready.data)
        due = spiff.due_from(_evaluate_template(entry.get("due_date"), ready.data), now)
    except Exception as err:  # noqa: BLE001 - a bad assignee/due expression must not stop the case: say so
        assignee, due, warning = None, None, f"assignee or due date could not be evaluated: {err}"
    if assignee and len(str(assignee)) > _ASSIGNEE_MAX:  # no user name is that long (PostgreSQL refuses the row)
        warning = f"the assignee expression gave a text of {len(str(assignee)):,} characters, not a user name"
        assignee = None
    row = {"id": ready.id, "instance_id": loaded.instance.id, "element_id": ready.element_id,
           "process_id": ready.process_id, "name": entry.get("name") or ready.name,
           "lane": ready.lane or entry.get("lane"), "candidate_role": entry.get("role", "expert"),
           "state": TaskStatus.READY, "assignee": str(assignee) if assignee else None, "due_at": due,
           "created_at": now, "completed_at": None, "completed_by": None}
    return row, warning


def _record_script_output(session: Session, loaded: _Loaded, *, actor: str, now: datetime) -> None:
    """Add what scripts printed in this action to the instance history, one event per script run."""
    for element_id, text in spiff.take_script_output(loaded.held.workflow):
        audit.append(session, EventKind.SCRIPT_OUTPUT, actor=actor, instance_id=loaded.instance.id,
                     version_id=loaded.instance.version_id, element_id=element_id, data={"output": text}, at=now)


def _persist(session: Session, loaded: _Loaded, *, actor: str, now: datetime) -> None:
    """Write the instance's new state, task rows, variables, timers, messages and audit events."""
    # taken before the state is written: SpiffWorkflow serializes events not yet taken, and a saved
    # one would be thrown again by the instance's next action after a reload
    thrown = spiff.thrown_events(loaded.held.workflow)
    with session.no_autoflush:
        _write(session, loaded, actor=actor, now=now)
    _record_script_output(session, loaded, actor=actor, now=now)
    _flush(session)
    _after_commit_cache(session, loaded.instance.id, loaded.instance.revision, loaded.held)
    for kind, name, payload, correlations in thrown:
        if kind == "message":
            _route_thrown_message(session, loaded, name, payload, correlations, actor=actor, now=now)
        elif kind == "signal":
            _route_thrown_signal(session, loaded, name, actor=actor, now=now)
        else:  # an uncaught escalation or error goes on, as BPMN says, but is never silent
            audit.append(session, EventKind.ESCALATION_THROWN, actor=actor, instance_id=loaded.instance.id,
                         version_id=loaded.instance.version_id, data={"kind": kind, "code": name}, at=now)


def _write(session: Session, loaded: _Loaded, *, actor: str, now: datetime) -> None:
    held, instance = loaded.held, loaded.instance
    workflow = held.workflow
    if loaded.path:
        audit.append(session, EventKind.PATH_TAKEN, actor=actor, instance_id=instance.id,
                     version_id=instance.version_id, data={"elements": loaded.path}, at=now)
        loaded.path = []
    spiff.compact(workflow)
    row_values: dict[str, Any] = {"state": spiff.dump_state(workflow)}
    vid = instance.version_id
    survey = loaded.survey = spiff.survey(workflow)  # one walk answers every question below

    # tasks
    ready_now = {r.id: r for r in survey.ready}
    for task_id in list(held.ready):
        if task_id not in ready_now:
            row = session.get(Task, task_id)
            if row is not None and row.state == TaskStatus.READY:
                row.state, row.completed_at = TaskStatus.CANCELLED, now
                audit.append(session, EventKind.TASK_CANCELLED, actor=actor, instance_id=instance.id,
                             version_id=vid, element_id=row.element_id, task_id=task_id, at=now)
            del held.ready[task_id]
    new_rows: list[dict[str, Any]] = []
    for task_id, ready in ready_now.items():
        if task_id in held.ready:
            continue
        new, warning = _new_task_row(loaded, ready, now)
        new_rows.append(new)
        held.ready[task_id] = ready.element_id
        data = {"name": new["name"], "role": new["candidate_role"], "assignee": new["assignee"],
                "due_at": new["due_at"].isoformat() if new["due_at"] else None}
        if warning:
            data["warning"] = warning
        audit.append(session, EventKind.TASK_CREATED, actor=actor, instance_id=instance.id, version_id=vid,
                     element_id=ready.element_id, task_id=task_id, data=data, at=now)

    # variables
    current = _jsonable(survey.variables)
    changes = {k: [held.variables.get(k), v] for k, v in current.items() if held.variables.get(k, _MISSING) != v}
    removed = [k for k in held.variables if k not in current]
    # plain statements, one per kind of change (each an executemany): no ORM objects to flush
    updated = [{"b_instance": instance.id, "b_name": name, "value": new, "updated_at": now}
               for name, (_old, new) in changes.items() if name in held.variables]
    added = [{"instance_id": instance.id, "name": name, "value": new, "updated_at": now}
             for name, (_old, new) in changes.items() if name not in held.variables]
    write = _writer(session)
    write(_UPDATE_VARIABLE, updated)
    write(_INSERT_VARIABLE, added)
    write(_DELETE_VARIABLE, [{"b_instance": instance.id, "b_name": n} for n in removed])
    for name in removed:
        changes[name] = [held.variables[name], None]
    if changes:
        audit.append(session, EventKind.DATA_CHANGED, actor=actor, instance_id=instance.id, version_id=vid,
                     data={"changes": changes}, at=now)
    held.variables = current

    # timers and messages
    timers = {(t.task_id, t.element_id): t for t in survey.timers}
    # timer and message-wait rows are replaced by plain statements: an ORM select here would also
    # flush the buffered audit events early (two more statements per timer firing)
    if held.timers != {k: t.due_at for k, t in timers.items()}:
        write(_DELETE_TIMERS, [{"b_instance": instance.id}])
        write(_INSERT_TIMER, [
            {"instance_id": instance.id, "task_id": t.task_id, "element_id": t.element_id, "kind": t.kind,
             "due_at": t.due_at} for t in timers.values()])
        held.timers = {k: t.due_at for k, t in timers.items()}
    waits = {m.element_id + "|" + m.name: (m.name, m.element_id) for m in survey.messages}
    waits |= {m.element_id + "|" + SIGNAL_PREFIX + m.name: (SIGNAL_PREFIX + m.name, m.element_id)
              for m in survey.signals}
    if set(waits) != set(held.messages):
        write(_DELETE_WAITS, [{"b_instance": instance.id}])
        write(_INSERT_WAIT, [{"instance_id": instance.id, "name": name, "element_id": element_id}
                             for name, element_id in waits.values()])
        held.messages = {k: name for k, (name, _e) in waits.items()}
    _write_external_tasks(session, loaded, survey.external, actor=actor, now=now)

    write(_INSERT_TASK, new_rows)
    if survey.completed and instance.status == InstanceStatus.RUNNING:
        row_values.update(status=InstanceStatus.COMPLETED, ended_at=now)
        audit.append(session, EventKind.INSTANCE_COMPLETED, actor=actor, instance_id=instance.id,
                     version_id=vid, at=now)
    _save_instance(session, instance, row_values)


# Statements built once: building them per call costs more than running them on SQLite.
_TASKS, _VARIABLES, _INSTANCES = (cast(Table, m.__table__) for m in (Task, Variable, Instance))
# They run on the DB-API cursor (engine.fastsql): a tenth of what Connection.execute costs per statement.
_INSERT_TASK = Fast(insert(_TASKS))
_UPDATE_VARIABLE = Fast(update(_VARIABLES).where(
    _VARIABLES.c.instance_id == bindparam("b_instance"), _VARIABLES.c.name == bindparam("b_name")))
_INSERT_VARIABLE = Fast(insert(_VARIABLES))
_DELETE_VARIABLE = Fast(delete(_VARIABLES).where(
    _VARIABLES.c.instance_id == bindparam("b_instance"), _VARIABLES.c.name == bindparam("b_name")))
_UPDATE_INSTANCE = Fast(update(_INSTANCES).where(
    _INSTANCES.c.id == bindparam("b_id"), _INSTANCES.c.revision == bindparam("b_revision")))
_UPDATE_TASK = Fast(update(_TASKS).where(_TASKS.c.id == bindparam("b_id")))
_TIMERS, _WAITS = (cast(Table, m.__table__) for m in (Timer, MessageWait))
_DELETE_TIMERS = Fast(delete(_TIMERS).where(_TIMERS.c.instance_id == bindparam("b_instance")))
_INSERT_TIMER = Fast(insert(_TIMERS))
_DELETE_WAITS = Fast(delete(_WAITS).where(_WAITS.c.instance_id == bindparam("b_instance")))
_INSERT_WAIT = Fast(insert(_WAITS))

# While session.info[_WRITE_LATER] is set (the timer sweep: its chunk's instances are locked for the
# transaction) an action's writes are queued and run together, one executemany per statement, before
# the next other statement or the commit (engine.fastsql, Fast.later). They run in this order, the
# order `_write` makes them in: an instance's timers and waits are deleted before its new ones go in.
_WRITE_LATER = "polku_write_later"
_LATER_RANKS = {statement: rank for rank, statement in enumerate((
    _UPDATE_VARIABLE, _INSERT_VARIABLE, _DELETE_VARIABLE, _DELETE_TIMERS, _INSERT_TIMER, _DELETE_WAITS,
    _INSERT_WAIT, _INSERT_TASK, _UPDATE_INSTANCE))}


def _writer(session: Session) -> Callable[[Fast, list[dict[str, Any]]], None]:
    """Return how `_write` writes rows: at once, or queued while the session says so."""
    later = bool(session.info.get(_WRITE_LATER))

    def write(statement: Fast, rows: list[dict[str, Any]]) -> None:
        if later:
            statement.later(session, rows, rank=_LATER_RANKS[statement])
        else:
            statement.executemany(session, rows)
    return write


def _write_external_tasks(session: Session, loaded: _Loaded, external: list[spiff.OpenExternalTask], *,
                          actor: str, now: datetime) -> None:
    """Open an external_task row for each external task that began waiting; cancel rows whose task went."""
    held, instance = loaded.held, loaded.instance
    waiting = {t.task_id: t for t in external}
    if set(waiting) == held.externals:
        return
    gone = held.externals - set(waiting)
    if gone:  # interrupted by a boundary event, an event subprocess, a terminate end or a migration
        for row in session.scalars(select(ExternalTask).where(
                ExternalTask.instance_id == instance.id, ExternalTask.task_id.in_(gone),
                ExternalTask.state == ExternalTaskState.OPEN)):
            row.state, row.ended_at, row.ended_by, row.lock_owner, row.lock_expires_at = (
                ExternalTaskState.CANCELLED, now, actor, None, None)
            audit.append(session, EventKind.EXTERNAL_TASK_CANCELLED, actor=actor, instance_id=instance.id,
                         version_id=instance.version_id, element_id=row.element_id, task_id=row.task_id,
                         data={"external_task_id": row.id, "topic": row.topic}, at=now)
    for task_id, task in waiting.items():
        if task_id in held.externals:
            continue
        own = {k: v for k, v in _jsonable(task.data).items() if held.variables.get(k, _MISSING) != v}
        row = ExternalTask(instance_id=instance.id, task_id=task_id, element_id=task.element_id, topic=task.topic,
                           priority=_external_priority(task), local_variables=own or None,
                           state=ExternalTaskState.OPEN, created_at=now)
        session.add(row)
        session.flush()  # the row's id goes into the audit event
        audit.append(session, EventKind.EXTERNAL_TASK_CREATED, actor=actor, instance_id=instance.id,
                     version_id=instance.version_id, element_id=task.element_id, task_id=task_id,
                     data={"external_task_id": row.id, "topic": task.topic, "priority": row.priority}, at=now)
    held.externals = set(waiting)


def _external_priority(task: spiff.OpenExternalTask) -> int | None:
    """Return camunda:taskPriority as a whole number (a `${…}` expression is evaluated); None if unset or bad."""
    try:
        value = _evaluate_template(task.priority, task.data)
        return None if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001 - a bad priority must not stop the case: the task keeps no priority
        return None


def _reopen_external_task(session: Session, external_task_id: int | None, *, now: datetime) -> None:
    """Make an external task whose retries ran out fetchable again, with one retry."""
    row = session.get(ExternalTask, external_task_id) if external_task_id is not None else None
    if row is not None and row.state == ExternalTaskState.OPEN:
        row.retries, row.lock_owner, row.lock_expires_at = 1, None, None


def _update_row(session: Session, task_id: str, **values: Any) -> None:
    """Update a task row with one plain statement and keep the session's object of it (if any) in step."""
    _UPDATE_TASK.execute(session, {"b_id": task_id, **values})
    loaded = session.identity_map.get(identity_key(Task, task_id))
    if loaded is not None:
        for key, value in values.items():
            set_committed_value(loaded, key, value)


def _save_instance(session: Session, instance: Instance, values: dict[str, Any]) -> None:
    """Write the instance row with its revision check in one statement (the optimistic lock)."""
    session.flush()  # pending ORM changes (of this row too) go first, with their own check
    revision = instance.revision
    row = {"b_id": instance.id, "b_revision": revision, "revision": revision + 1, **values}
    if session.info.get(_WRITE_LATER):  # the row is locked for the transaction: the check runs with the batch
        _UPDATE_INSTANCE.later(session, [row], rank=_LATER_RANKS[_UPDATE_INSTANCE], exact=True)
    elif _UPDATE_INSTANCE.execute(session, row) != 1:
        raise Conflict("someone else changed this case at the same time; reload and try again")
    for key, value in {**values, "revision": revision + 1}.items():
        set_committed_value(instance, key, value)


_MISSING = object()


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Return data as JSON would bring it back (dates as text, tuples as lists), never sharing its containers."""
    copied = _plain_copy(data, 0)
    if copied is not _MISSING:  # already JSON-plain: a deep copy is what the round trip would give
        return cast(dict[str, Any], copied)
    return cast(dict[str, Any], json.loads(json.dumps(data, default=spiff._json_default)))


_PLAIN = frozenset({str, int, bool, type(None)})


def _plain_copy(value: Any, depth: int) -> Any:
    """Return a deep copy of JSON-plain data, or _MISSING for anything a JSON round trip would change.

    Plain: dict (text keys), list, str, int, bool, None and floats other than NaN (a round trip
    makes a new NaN, which then differs from the old one), by exact type: a str or int subclass
    comes back from JSON as the plain type.
    """
    kind = type(value)
    if kind in _PLAIN or kind is float and not math.isnan(value):
        return value
    if depth > 32:  # deep or circular: JSON itself says what it makes of it
        return _MISSING
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                return _MISSING
            copied = _plain_copy(item, depth + 1)
            if copied is _MISSING:
                return _MISSING
            out[key] = copied
        return out
    if kind is list:
        items = [_plain_copy(item, depth + 1) for item in value]
        return _MISSING if any(item is _MISSING for item in items) else items
    return _MISSING


def _flush(session: Session) -> None:
    try:
        session.flush()
        if not session.info.get("polku_audit_later"):  # see fire_instance_timers
            audit.write_pending(session)
    except StaleDataError as err:
        raise Conflict("someone else changed this case at the same time; reload and try again") from err


# ---------------------------------------------------------------------------------------------
# The action frame: mutate, run engine steps, persist; on a script failure keep state + incident


def _act(session: Session, loaded: _Loaded, mutate: Callable[[spiff.Workflow], Any], *, actor: str,
         now: datetime, retry_kind: str = "steps", steps: bool = True) -> _Loaded:
    """Apply `mutate`, run engine steps and persist; return what was persisted.

    On a script failure the workflow is rebuilt from the stored state: for "steps" the mutation is
    applied again without the engine steps, for "timers" nothing is; that state is persisted with
    an open incident, and the returned `_Loaded` (not the spoilt one passed in) describes it.
    """
    with spiff.clock(now):
        try:
            mutate(loaded.held.workflow)
            if steps:
                loaded.path.extend(spiff.run_engine(loaded.held.workflow))
        except ScriptError as err:
            loaded = _reload(session, loaded)
            if retry_kind == "steps":
                try:
                    mutate(loaded.held.workflow)
                except ScriptError:
                    loaded = _reload(session, loaded)
            _persist(session, loaded, actor=actor, now=now)
            _raise_incident(session, loaded, err, actor=actor, now=now, retry_kind=retry_kind)
            return loaded
    _persist(session, loaded, actor=actor, now=now)
    _check_stuck(session, loaded, actor=actor, now=now)
    return loaded


def _check_stuck(session: Session, loaded: _Loaded, *, actor: str, now: datetime) -> None:
    """Open an incident when the instance is running but nothing can ever move it on.

    Never accepted-then-stuck: without this, such a case would sit without a task, timer, message,
    worker or incident, and nobody would know.
    """
    instance = loaded.instance
    if instance.status != InstanceStatus.RUNNING or instance.open_incidents:
        return
    reason = (loaded.survey or spiff.survey(loaded.held.workflow)).stuck
    if reason is not None:
        _raise_incident(session, loaded, ScriptError(reason[0], element=reason[1]), actor=actor, now=now,
                        retry_kind="steps")


def stuck_instances(session: Session) -> list[dict[str, Any]]:
    """List running instances without an open incident that nothing can ever move on, with why.

    Reads only: `polku stuck` shows them; the next action on such an instance opens its incident.
    """
    waiting = [select(Task.instance_id).where(Task.state == TaskStatus.READY),
               select(Timer.instance_id), select(MessageWait.instance_id),
               select(ExternalTask.instance_id).where(ExternalTask.state == ExternalTaskState.OPEN)]
    idle = select(Instance).where(Instance.status == InstanceStatus.RUNNING, Instance.open_incidents == 0,
                                  *[Instance.id.not_in(q) for q in waiting]).order_by(Instance.id)
    found = []
    for instance in session.scalars(idle):
        version = deploy.version_by_id(session, instance.version_id)
        workflow = spiff.load_state(instance.state, deploy.bundle_for(session, version))
        reason = spiff.stuck_reason(workflow)
        if reason is not None:
            found.append({"instance_id": instance.id, "process_id": instance.process_id,
                          "business_key": instance.business_key, "element_id": reason[1], "reason": reason[0],
                          "started_at": instance.started_at.isoformat()})
    return found


def _raise_incident(session: Session, loaded: _Loaded, err: ScriptError, *, actor: str, now: datetime,
                    retry_kind: str) -> Incident:
    instance = loaded.instance
    message = str(err) + (f" (line {err.line})" if err.line else "")
    incident = Incident(instance_id=instance.id, element_id=err.element, message=message,
                        action={"kind": retry_kind}, created_at=now)
    session.add(incident)
    instance.open_incidents += 1
    session.flush()
    audit.append(session, EventKind.INCIDENT_RAISED, actor=actor, instance_id=instance.id,
                 version_id=instance.version_id, element_id=err.element,
                 data={"incident_id": incident.id, "message": message}, at=now)
    _flush(session)
    _after_commit_cache(session, instance.id, instance.revision, loaded.held)
    log.warning("incident %s on instance %s at %s: %s", incident.id, instance.id, err.element, message)
    return incident


# ---------------------------------------------------------------------------------------------
# Public actions


def users_of_role(session: Session) -> Callable[[str], set[str]]:
    """Return a lookup of the active usernames holding a role (checks a form's `userRole` fields)."""

    def lookup(role: str) -> set[str]:
        rows = session.execute(select(User.username, User.roles).where(User.active.is_(True)))
        return {name for name, roles in rows if role in roles.split(",")}

    return lookup


def registry_providers(session: Session) -> Callable[[str, tuple[str, ...]], tuple[int, str] | None]:
    """Return a lookup of the active registry providers (checks a form's `provider` fields: engine.providers)."""
    # imported here, so that the registry's own imports load after the engine's
    from . import providers

    return providers.form_lookup(session)


def start_form(session: Session, process_id: str, version: int | None = None) -> list[forms.Field]:
    """Return the start form of a process (empty when it has none)."""
    pv = deploy.get_version(session, process_id, version)
    return [forms.Field.from_dict(d) for d in pv.catalogue.get("start", {}).get("form", [])]


def start_instance(session: Session, process_id: str, *, by: str, data: dict[str, Any] | None = None,
                   business_key: str | None = None, version: int | None = None,
                   now: datetime | None = None, parent_instance_id: int | None = None,
                   validate_form: bool = True, start_message: str | None = None,
                   start_signal: str | None = None, start_timer: str | None = None) -> Instance:
    """Start an instance of the latest (or a given) version and run it until it waits.

    With `start_message` the instance starts through the start event catching that message, and
    `data` is the message's payload (into the event's `camunda:resultVariable`, else merged);
    `start_signal` likewise starts it through the start event catching that signal.

    Raises:
        VersionNotFound: no such process/version.
        FormInvalid: the start data breaks the start form.
    """
    now = now or utcnow()
    if business_key is not None and len(business_key) > _BUSINESS_KEY_MAX:
        raise InvalidInput(f"a business key has at most {_BUSINESS_KEY_MAX} characters, not {len(business_key):,}")
    pv = deploy.get_version(session, process_id, version)
    if pv.kind != "process":
        raise InvalidInput(f"'{process_id}' is a decision, not a process")
    fields = [forms.Field.from_dict(d) for d in pv.catalogue.get("start", {}).get("form", [])]
    data = dict(data or {})
    if fields and validate_form:
        data = forms.validate(fields, data, users_of_role=users_of_role(session), now=now,
                              providers=registry_providers(session))
    data.pop("office", None)  # the engine's snapshot, never a caller's or a sender's copy
    # the office's settings of the day the case started (variable `office`), for models that read them
    settings = office.snapshot(session) if deploy.reads_office_settings(session, pv) else None
    kept = {} if settings is None else {"office": settings}
    bundle = deploy.bundle_for(session, pv)
    workflow = spiff.new_workflow(bundle, kept if start_message or start_signal else {**data, **kept})
    instance = Instance(version_id=pv.id, process_id=process_id, business_key=business_key,
                        status=InstanceStatus.RUNNING, state=spiff.dump_state(workflow), started_at=now,
                        started_by=by, parent_instance_id=parent_instance_id)
    session.add(instance)
    session.flush()
    audit.append(session, EventKind.INSTANCE_STARTED, actor=by, instance_id=instance.id, version_id=pv.id,
                 data={"process_id": process_id, "version": pv.version, "business_key": business_key,
                       "data": _jsonable(data), "parent_instance_id": parent_instance_id, **kept},
                 at=now)
    loaded = _Loaded(instance, pv, bundle, _Held(workflow, {}, {}, {}, {}))

    def begin(wf: spiff.Workflow) -> None:
        if start_message and not spiff.start_by_message(wf, start_message, data):
            spiff.update_live_data(wf, data)  # no start event catches it: the payload is start data
        if start_signal and not spiff.start_by_signal(wf, start_signal, data):
            spiff.update_live_data(wf, data)
        if start_timer:  # a timer start event the scheduler found due (engine.schedules)
            spiff.start_by_timer(wf, start_timer)

    _act(session, loaded, begin, actor=by, now=now)
    return instance


_TASK_WITH_INSTANCE = select(Task, Instance).join(Instance, Instance.id == Task.instance_id) \
    .where(Task.id == bindparam("b_task"))


def _task_row(session: Session, task_id: str) -> Task:
    # one query loads the task and its instance (the action needs both); the statement is built once
    found = session.execute(_TASK_WITH_INSTANCE, {"b_task": task_id}).first()
    if found is None:
        raise TaskNotFound(f"no task {task_id}")
    session.info["polku_held_instance"] = found[1]  # the identity map holds rows weakly: keep it
    return found[0]


@dataclass(frozen=True)
class _TaskRef:
    """What an action needs of a task row (not an ORM object: loading one costs more than the action's writes)."""

    id: str
    instance_id: int
    element_id: str
    name: str
    state: str
    assignee: str | None
    candidate_role: str | None
    completed_by: str | None
    process_id: str | None


_TASK_REF_KEYS = frozenset(("instance_id", "element_id", "name", "state", "assignee", "candidate_role",
                            "completed_by", "process_id"))
# the task's columns and its instance's row in one statement on the cursor (engine.fastsql)
_TASK_FOR_ACTION = Fast(
    select(_TASKS.c.instance_id, _TASKS.c.element_id, _TASKS.c.name, _TASKS.c.state, _TASKS.c.assignee,
           _TASKS.c.candidate_role, _TASKS.c.completed_by, _TASKS.c.process_id, *_INSTANCES.c)
    .join_from(_TASKS, _INSTANCES, _INSTANCES.c.id == _TASKS.c.instance_id)
    .where(_TASKS.c.id == bindparam("b_task")))


def _task_for_action(session: Session, task_id: str) -> _TaskRef:
    """Return a task's columns; its instance joins the session (as a query through the ORM would leave it).

    Raises:
        TaskNotFound: no such task.
    """
    session.flush()  # what the ORM's autoflush did before its select: the caller's pending changes go first
    found = _TASK_FOR_ACTION.first(session, {"b_task": task_id})
    if found is None:
        raise TaskNotFound(f"no task {task_id}")
    held = session.identity_map.get(identity_key(Task, task_id))
    if held is None or not _TASK_REF_KEYS.isdisjoint(inspect(held).unloaded):  # none, or expired: the row
        ref = _TaskRef(task_id, *found[:8])
    else:  # the session's object wins over the row, as in an ORM query (a page read it earlier in the session)
        ref = _TaskRef(task_id, held.instance_id, held.element_id, held.name, held.state, held.assignee,
                       held.candidate_role, held.completed_by, held.process_id)
    _adopt_instance(session, found[8:])
    return ref


def task_form(session: Session, task_id: str) -> list[forms.Field]:
    """Return the form fields of a task."""
    row = _task_row(session, task_id)
    instance = get_instance(session, row.instance_id)
    version = deploy.version_by_id(session, instance.version_id)  # kept per process: versions never change
    return forms.fields_from_catalogue(deploy.catalogue_entry(version, row.element_id, row.process_id))


def task_details(session: Session, task_id: str, rows: tuple[Task, Instance] | None = None, *,
                 variables: bool = True) -> dict[str, Any]:
    """Return what a task page shows: the row, its form, documentation and the instance data.

    `rows`: the task and its instance, read already (`access.readable_task`); `variables=False`
    leaves the instance data out (a case the reader may not see): {}.
    """
    if rows is None:
        row = _task_row(session, task_id)
        instance = get_instance(session, row.instance_id)
    else:
        row, instance = rows
        session.info["polku_held_instance"] = instance  # as _task_row: the identity map holds rows weakly
    version = deploy.version_by_id(session, instance.version_id)  # kept per process: versions never change
    entry = deploy.catalogue_entry(version, row.element_id, row.process_id)
    data = instance_variables(session, instance.id, instance.revision) if variables else {}
    return {"task": row, "instance": instance, "version": version,
            "form": forms.fields_from_catalogue(entry), "documentation": entry.get("documentation"),
            "variables": data}


def complete_task(session: Session, task_id: str, data: dict[str, Any] | None = None, *, by: str,
                  roles: set[str] | None = None, now: datetime | None = None) -> Instance:
    """Complete a user task with submitted form data on behalf of `by`, then run the instance on.

    `roles` (given by the web UI) must include the task's candidate role unless the task is
    assigned to `by`; the CLI, a trusted operator, passes none.

    Raises:
        TaskNotFound, TaskNotAvailable (completed, cancelled, or someone else's),
        FormInvalid (with every wrong field), DataInvalid (variables of a task without a form that
        are not JSON-plain or too large), Conflict (a concurrent change won).
    """
    now = now or utcnow()
    row = _task_for_action(session, task_id)
    _check_available(row, by, roles)
    loaded = _load(session, row.instance_id)
    if spiff.task_state(loaded.held.workflow, task_id) != "READY":
        raise TaskNotAvailable("this task is no longer waiting to be done")
    entry = deploy.catalogue_entry(loaded.version, row.element_id, row.process_id)
    fields = forms.fields_from_catalogue(entry)
    current = spiff.task_data(loaded.held.workflow, task_id)  # READY (checked above): a ready user task's data
    if fields:  # declared fields are validated and typed; an undeclared one is refused by name
        clean = forms.validate(fields, dict(data or {}), current, users_of_role=users_of_role(session), now=now,
                               providers=registry_providers(session))
    else:  # a task without a form takes JSON-plain variables: how workers and integrations hand data over
        clean = values.check_plain(dict(data or {}), what="task variables")
    _update_row(session, task_id, state=TaskStatus.COMPLETED, completed_at=now, completed_by=by,
                assignee=row.assignee or by)
    loaded.held.ready.pop(task_id, None)
    audit.append(session, EventKind.TASK_COMPLETED, actor=by, instance_id=row.instance_id,
                 version_id=loaded.instance.version_id, element_id=row.element_id, task_id=task_id,
                 data={"name": row.name, "submitted": _jsonable(clean)}, at=now)
    _act(session, loaded, lambda wf: spiff.complete_user_task(wf, task_id, clean), actor=by, now=now)
    return loaded.instance


def complete_external_task(session: Session, row: ExternalTask, data: dict[str, Any], *, by: str,
                           now: datetime) -> Instance:
    """Complete a waiting external task with a worker's variables, then run the instance on.

    The caller (`engine.external.complete`) has checked the worker's lock and marked the row done.
    A script failing in the steps that follow opens an incident, as for a user task.

    Raises:
        TaskNotAvailable: the task is no longer waiting for a worker in the instance.
    """
    loaded = _load(session, row.instance_id)
    if spiff.task_state(loaded.held.workflow, row.task_id) != "STARTED":
        raise TaskNotAvailable("this external task is no longer waiting for a worker")
    loaded.held.externals.discard(row.task_id)
    loaded.path.append(row.element_id)
    task_id = row.task_id
    return _act(session, loaded, lambda wf: spiff.complete_external_task(wf, task_id, data),
                actor=by, now=now).instance


def _check_available(row: Task | _TaskRef, by: str, roles: set[str] | None) -> None:
    if row.state != TaskStatus.READY:
        raise TaskNotAvailable(f"this task was already {row.state} "
                               f"{'by ' + row.completed_by if row.completed_by else ''}".strip())
    privileged = roles is None or bool(roles & {"supervisor", "admin"})  # the CLI passes no roles
    if row.assignee and row.assignee != by and not privileged:
        raise TaskNotAvailable(f"this task is assigned to {row.assignee}")
    if row.assignee is None and roles is not None and row.candidate_role not in roles and "admin" not in roles:
        raise TaskNotAvailable(f"this task belongs to the {row.candidate_role} role")


def deliver_message(session: Session, name: str, *, by: str, data: dict[str, Any] | None = None,
                    business_key: str | None = None, instance_id: int | None = None,
                    now: datetime | None = None, correlations: dict[str, Any] | None = None) -> list[int]:
    """Deliver a message to every instance waiting for it (narrowed by business key or instance).

    Raises:
        NotFound: no instance is waiting for this message.
        InvalidInput: the name is one that signal waits use.
    """
    now = now or utcnow()
    if name.startswith(SIGNAL_PREFIX):
        raise InvalidInput(f"a message name cannot start with '{SIGNAL_PREFIX}' (use polku signal for signals)")
    values.check_plain(dict(data or {}), what="message payload")  # before anything: InvalidInput
    query = select(MessageWait.instance_id).join(Instance, Instance.id == MessageWait.instance_id) \
        .where(MessageWait.name == name, Instance.status == InstanceStatus.RUNNING).distinct()
    if business_key is not None:
        query = query.where(Instance.business_key == business_key)
    if instance_id is not None:
        query = query.where(MessageWait.instance_id == instance_id)
    targets = sorted(session.scalars(query))
    if not targets:
        raise NotFound(f"no running instance is waiting for message '{name}'")
    payload = dict(data or {})

    def deliver(workflow: spiff.Workflow) -> None:
        spiff.deliver_message(workflow, name, payload, correlations)
        spiff.update_live_data(workflow, payload)

    delivered = []
    for target in targets:
        loaded = _load(session, target)
        if correlations is None and not spiff.message_correlates(loaded.held.workflow, name, payload):
            _after_commit_cache(session, target, loaded.instance.revision, loaded.held)  # untouched: keep it
            continue  # its correlation keys (from its own data) differ from the message's
        delivered.append(target)
        audit.append(session, EventKind.MESSAGE_RECEIVED, actor=by, instance_id=target,
                     version_id=loaded.instance.version_id, data={"name": name, "payload": _jsonable(payload)}, at=now)
        _reassign_by_expression(session, _act(session, loaded, deliver, actor=by, now=now), actor=by, now=now)
    if not delivered:
        raise NotFound(f"no running instance waiting for message '{name}' has the message's correlation keys")
    return delivered


def _reassign_by_expression(session: Session, loaded: _Loaded, *, actor: str, now: datetime) -> None:
    """Re-evaluate `camunda:assignee` of open tasks after the case data changed (R2: new expert)."""
    ready = {r.id: r for r in spiff.ready_user_tasks(loaded.held.workflow)}
    rows = session.scalars(select(Task).where(Task.instance_id == loaded.instance.id, Task.state == TaskStatus.READY))
    for row in rows:
        template = deploy.catalogue_entry(loaded.version, row.element_id, row.process_id).get("assignee")
        if not template or not template.strip().startswith("${") or row.id not in ready:
            continue
        try:
            new = _evaluate_template(template, ready[row.id].data)
        except Exception as err:  # noqa: BLE001 - keep the current assignee when the expression cannot be evaluated
            log.warning("instance %s, task %s: after the case data changed the assignee expression could not be "
                        "evaluated, the assignee stays %s: %s", row.instance_id, row.element_id, row.assignee, err)
            continue
        new = str(new) if new else None
        if new is not None and len(new) > _ASSIGNEE_MAX:  # not a user name: keep the current assignee
            log.warning("instance %s, task %s: after the case data changed the assignee expression gave a text of "
                        "%s characters, not a user name; the assignee stays %s", row.instance_id, row.element_id,
                        f"{len(new):,}", row.assignee)
            continue
        if new != row.assignee:
            audit.append(session, EventKind.TASK_ASSIGNED, actor=actor, instance_id=row.instance_id,
                         version_id=loaded.instance.version_id, element_id=row.element_id, task_id=row.id,
                         data={"previous": row.assignee, "assignee": new, "reason": "case data changed"}, at=now)
            row.assignee = new


def _route_thrown_message(session: Session, loaded: _Loaded, name: str, payload: Any,
                          correlations: dict[str, Any], *, actor: str, now: datetime) -> None:
    """Deliver a message thrown by an instance, or start the process whose start event catches it.

    A message with correlation keys goes to the instances waiting for it whose own data gives the
    same key values; one without goes to the instances of the same business key waiting for it.
    When none waits, the latest process whose message start event catches it starts through that
    event, with the payload. When neither, the office's own records may take it (`_office_receives`:
    the contact log). Either way (or when nothing takes it) the throw is in the thrower's history
    with where it went.
    """
    instance = loaded.instance
    data = payload if isinstance(payload, dict) else {"payload": payload}
    delivered: list[int] = []
    started: list[int] = []
    receivers = _receivers(session, instance, name, correlations)
    target = None if receivers else _process_started_by(session, name)
    for receiver in receivers:
        delivered += deliver_message(session, name, by=actor, data=data, instance_id=receiver, now=now,
                                     correlations=correlations)
    if target is not None:
        # the payload is the new case's start data as the throwing process wrote it (not a person's input)
        started.append(start_instance(session, target, by=actor, data=payload, business_key=instance.business_key,
                                      now=now, parent_instance_id=instance.id, validate_form=False,
                                      start_message=name).id)
    recorded = {} if receivers or target is not None else _office_receives(session, instance, name, data,
                                                                           actor=actor, now=now)
    audit.append(session, EventKind.MESSAGE_THROWN, actor=actor, instance_id=instance.id,
                 version_id=instance.version_id, data={"name": name, "payload": _jsonable(data),
                                                       "delivered_to": delivered, "started": started, **recorded},
                 at=now)


def _office_receives(session: Session, thrower: Instance, name: str, payload: dict[str, Any], *, actor: str,
                     now: datetime) -> dict[str, Any]:
    """Let the office's records take a message no case waits for; return what was recorded (for the history).

    `customer_contact_logged` (a case ending with a contact, e.g. "no service need now" with a later
    contact date) becomes a contact in the customer's contact log (`engine.contacts.record_from_case`).
    """
    from . import contacts  # here: contacts imports this module

    if name != contacts.CASE_CONTACT_MESSAGE:
        return {}
    contact = contacts.record_from_case(session, thrower, payload, by=actor, now=now)
    return {"contact_id": contact.id if contact is not None else None}


def _receivers(session: Session, thrower: Instance, name: str, correlations: dict[str, Any]) -> list[int]:
    """Return the running instances a thrown message goes to (by correlation keys, else business key)."""
    query = select(MessageWait.instance_id).join(Instance, Instance.id == MessageWait.instance_id).where(
        MessageWait.name == name, Instance.id != thrower.id, Instance.status == InstanceStatus.RUNNING).distinct()
    if not correlations:
        if thrower.business_key is None:
            return []
        return sorted(session.scalars(query.where(Instance.business_key == thrower.business_key)))
    found = []
    for instance_id in sorted(session.scalars(query)):
        instance = session.get(Instance, instance_id)
        assert instance is not None
        workflow = spiff.load_state(instance.state, deploy.bundle_for(session, deploy.version_by_id(
            session, instance.version_id)))
        if any(spiff.correlations_match(correlations, keys) for keys in spiff.waiting_correlations(workflow, name)):
            found.append(instance_id)
    return found


def _route_thrown_signal(session: Session, loaded: _Loaded, name: str, *, actor: str, now: datetime) -> None:
    """Broadcast a signal an instance threw to every other instance and process waiting for it."""
    instance = loaded.instance
    reached = broadcast_signal(session, name, by=actor, now=now, exclude=instance.id,
                               parent_instance_id=instance.id)
    audit.append(session, EventKind.SIGNAL_THROWN, actor=actor, instance_id=instance.id,
                 version_id=instance.version_id, data={"name": name, **reached}, at=now)


def broadcast_signal(session: Session, name: str, *, by: str, data: dict[str, Any] | None = None,
                     now: datetime | None = None, exclude: int | None = None,
                     parent_instance_id: int | None = None) -> dict[str, list[int]]:
    """Broadcast a signal: every running instance waiting for it catches it, signal start events start.

    Signal catch events, boundary events and signal-started event subprocesses catch it; the
    latest version of each process with a signal start event of that name starts a new instance.
    Returns {"delivered_to": [...], "started": [...]} (both may be empty: a signal nobody waits for
    is not an error).
    """
    now = now or utcnow()
    payload = dict(data or {})
    query = select(MessageWait.instance_id).join(Instance, Instance.id == MessageWait.instance_id).where(
        MessageWait.name == SIGNAL_PREFIX + name, Instance.status == InstanceStatus.RUNNING).distinct()
    targets = [t for t in sorted(session.scalars(query)) if t != exclude]

    def deliver(workflow: spiff.Workflow) -> None:
        spiff.deliver_signal(workflow, name, payload)
        spiff.update_live_data(workflow, payload)  # as for messages: the rest of the case sees the payload

    for target in targets:
        loaded = _load(session, target)
        audit.append(session, EventKind.SIGNAL_RECEIVED, actor=by, instance_id=target,
                     version_id=loaded.instance.version_id, data={"name": name, "payload": _jsonable(payload)},
                     at=now)
        _act(session, loaded, deliver, actor=by, now=now)
    started = [start_instance(session, process_id, by=by, data=payload, now=now, validate_form=False,
                              parent_instance_id=parent_instance_id, start_signal=name).id
               for process_id in _processes_started_by_signal(session, name)]
    return {"delivered_to": targets, "started": started}


def _processes_started_by_signal(session: Session, signal: str) -> list[str]:
    """Return the processes whose latest version has a start event catching this signal."""
    found = []
    for entry in deploy.list_versions(session):
        pv = session.get(ProcessVersion, entry["id"])
        if pv is None or pv.kind != "process":
            continue
        if deploy.latest_version(session, pv.process_id, required=False) is not pv:
            continue
        if signal in spiff.start_signals(deploy.bundle_for(session, pv)):
            found.append(pv.process_id)
    return found


def _process_started_by(session: Session, message: str) -> str | None:
    """Return the process whose latest version starts on this message (start-event message name)."""
    for entry in deploy.list_versions(session):
        pv = session.get(ProcessVersion, entry["id"])
        if pv is None or pv.kind != "process":
            continue
        if deploy.latest_version(session, pv.process_id, required=False) is not pv:
            continue
        if message in pv.catalogue.get("start_messages", []):
            return pv.process_id
    return None


def fire_instance_timers(session: Session, instance_id: int, *, now: datetime, actor: str = "timer") -> list[str]:
    """Fire every timer of one instance that is due at `now`; return the fired element ids."""
    loaded = _load(session, instance_id)
    loaded_timers = dict(loaded.held.timers)
    due = [key for key, at in loaded_timers.items() if at <= now]
    if not due:
        _after_commit_cache(session, instance_id, loaded.instance.revision, loaded.held)
        return []

    ran: list[str] = []

    def fire(workflow: spiff.Workflow) -> None:
        ran.extend(spiff.fire_timers(workflow))
        loaded.path.extend(ran)  # the steps the timers ran are path events too

    # the action's audit events stay buffered and go out in one insert with the timer_fired events
    # below (at the caller's write_pending or commit, which every transaction reaches): two statements
    # fewer per firing; the hash chain is built as events are appended, so their order is unchanged
    session.info["polku_audit_later"] = session.info[_WRITE_LATER] = True  # the rows too (see _WRITE_LATER)
    try:
        loaded = _act(session, loaded, fire, actor=actor, now=now, retry_kind="timers", steps=False)
    finally:
        session.info.pop("polku_audit_later", None)
        session.info.pop(_WRITE_LATER, None)
    waiting = loaded.survey.timers if loaded.survey is not None else spiff.waiting_timers(loaded.held.workflow)
    still = {(t.task_id, t.element_id) for t in waiting if t.due_at <= now}
    fired = []
    sharing = Counter(task_id for task_id, _element_id in due)  # the timers after an event-based gateway
    for key in due:
        task_id, element_id = key
        if key in still or (sharing[task_id] > 1 and element_id not in ran):
            continue  # still waiting, or the gateway took the way of another timer due at once
        fired.append(element_id)
        due_at = loaded_timers[key]
        audit.append(session, EventKind.TIMER_FIRED, actor=actor, instance_id=instance_id,
                     version_id=loaded.instance.version_id, element_id=element_id, task_id=task_id,
                     data={"due_at": due_at.isoformat(), "lag_seconds": round((now - due_at).total_seconds(), 3)},
                     at=now)
    return fired


def retry_incident(session: Session, incident_id: int, *, by: str, data: dict[str, Any] | None = None,
                   now: datetime | None = None) -> Incident:
    """Run a failed step again, after merging `data` into the unfinished tasks of the case.

    Returns the incident: resolved on success, still open (with the new message) on failure.
    """
    now = now or utcnow()
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if incident.status != IncidentStatus.OPEN:
        raise TaskNotAvailable(f"incident {incident_id} is already resolved")
    if data:
        values.check_plain(dict(data), what="retry data")
    loaded = _load(session, incident.instance_id)
    workflow = loaded.held.workflow
    if data:  # the failing step may be a script waiting to run or one behind a waiting timer
        spiff.update_live_data(workflow, dict(data))
    kind = incident.action.get("kind", "steps")
    if kind == "external":  # a worker's failures used up the retries: give the task to workers again
        _reopen_external_task(session, incident.action.get("external_task_id"), now=now)
    try:
        with spiff.clock(now):
            if kind == "timers":
                loaded.path.extend(spiff.fire_timers(workflow))
            else:
                loaded.path.extend(spiff.run_engine(workflow))
    except ScriptError as err:
        forget_instance(session, incident.instance_id)
        incident.message = str(err)
        return incident
    incident.status, incident.resolved_at, incident.resolved_by = IncidentStatus.RESOLVED, now, by
    loaded.instance.open_incidents = max(0, loaded.instance.open_incidents - 1)
    audit.append(session, EventKind.INCIDENT_RESOLVED, actor=by, instance_id=incident.instance_id,
                 version_id=loaded.instance.version_id, element_id=incident.element_id,
                 data={"incident_id": incident.id, "data": _jsonable(data or {})}, at=now)
    _persist(session, loaded, actor=by, now=now)
    _check_stuck(session, loaded, actor=by, now=now)
    return incident


def change_version(session: Session, instance_id: int, target: ProcessVersion,
                   check: Callable[[Instance, spiff.Workflow], None], *, by: str, now: datetime) -> Instance:
    """Move a running instance onto another version of its process (the designer's migration).

    `check(instance, workflow)` runs first, under the instance lock, and raises to refuse; then
    SpiffWorkflow migrates the state, which must save and read back before anything is written.

    Raises:
        NotAllowed: the check refused, or SpiffWorkflow cannot migrate or persist the state.
    """
    loaded = _load(session, instance_id)
    instance, workflow = loaded.instance, loaded.held.workflow
    check(instance, workflow)
    bundle = deploy.bundle_for(session, target)
    try:
        with spiff.clock(now):  # a restarted timer starts at the migration instant
            spiff.migrate(workflow, bundle)
        spiff.load_state(spiff.dump_state(workflow), bundle)  # prove the result can be saved and read back
    except Exception as err:
        raise NotAllowed(f"instance {instance_id} cannot migrate: {err}") from err
    source = loaded.version
    instance.version_id = target.id
    audit.append(session, EventKind.INSTANCE_MIGRATED, actor=by, instance_id=instance.id, version_id=target.id,
                 data={"message": f"migrated from v{source.version} to v{target.version}",
                       "from_version_id": source.id, "to_version_id": target.id,
                       "from": source.version, "to": target.version}, at=now)
    _persist(session, _Loaded(instance, target, bundle, loaded.held), actor=by, now=now)
    forget_instance(session, instance.id)  # task rows are retitled after this: hold nothing stale
    return instance


def cancel_instance(session: Session, instance_id: int, *, by: str, reason: str = "",
                    now: datetime | None = None) -> Instance:
    """Cancel a running instance: its open tasks, timers and message waits go with it."""
    now = now or utcnow()
    instance = lock_instance(session, instance_id)
    if instance.status != InstanceStatus.RUNNING:
        raise TaskNotAvailable(f"instance {instance_id} is already {instance.status}")
    for row in session.scalars(select(Task).where(Task.instance_id == instance_id, Task.state == TaskStatus.READY)):
        row.state, row.completed_at = TaskStatus.CANCELLED, now
    for ext in session.scalars(select(ExternalTask).where(ExternalTask.instance_id == instance_id,
                                                          ExternalTask.state == ExternalTaskState.OPEN)):
        ext.state, ext.ended_at, ext.ended_by, ext.lock_owner, ext.lock_expires_at = (
            ExternalTaskState.CANCELLED, now, by, None, None)
    for model in (Timer, MessageWait):
        for item in session.scalars(select(model).where(model.instance_id == instance_id)):
            session.delete(item)
    instance.status, instance.ended_at = InstanceStatus.CANCELLED, now
    audit.append(session, EventKind.INSTANCE_CANCELLED, actor=by, instance_id=instance_id,
                 version_id=instance.version_id, data={"reason": reason}, at=now)
    forget_instance(session, instance_id)
    _flush(session)
    return instance


def instance_variables(session: Session, instance_id: int, revision: int | None = None) -> dict[str, Any]:
    """Return an instance's current variables, as stored (this session's changes flushed first, as the
    ORM's autoflush would: not within `no_autoflush`), by name.

    `revision`: the instance row's revision as the caller read it. If this process holds the instance
    at that revision (its last action here committed it, and nobody has changed it since), the
    variables it holds are the stored ones: only the runtime writes variables, and each change it saves
    is a new revision. They are returned as a copy, and no statement runs (nor a flush: nothing this
    session holds unwritten can be a variable, which only the runtime's statements write).

    Else read on the cursor (`engine.fastsql`), by name and value: the task page and its completion read
    them both, and a case of the shipped process has dozens; loading each as an ORM object cost two to
    three times as much.
    """
    if revision is not None:
        held = _held_variables(session, instance_id, revision)
        if held is not None:
            return held
    return dict(_VARIABLES_OF_INSTANCE.all(session, {"b_instance": instance_id}, autoflush=True))


def _held_variables(session: Session, instance_id: int, revision: int) -> dict[str, Any] | None:
    """The variables this process holds of an instance at `revision` (a copy, by name), or None."""
    key = _cache_key(session, instance_id)
    if key in session.info.get("polku_cache", {}):
        return None  # this transaction acted on the instance: what it wrote is read from the database
    found = _cache.get(key)
    if found is None or found[0] != revision:
        return None
    variables = found[1].variables  # replaced by each action, never changed in place
    if _cache.get(key) is not found:  # an action took the instance meanwhile: its variables may be the next revision's
        return None
    copied = _plain_copy(variables, 0)  # held variables are JSON-plain: the copy is what the database gives
    return dict(sorted(copied.items())) if copied is not _MISSING else None


_VARIABLES_OF_INSTANCE = Fast(select(_V.c.name, _V.c.value).where(_V.c.instance_id == bindparam("b_instance"))
                              .order_by(_V.c.name))


def open_incidents(session: Session, instance_id: int | None = None) -> list[Incident]:
    """List open incidents (of one instance, or all)."""
    query = select(Incident).where(Incident.status == IncidentStatus.OPEN).order_by(Incident.created_at)
    if instance_id is not None:
        query = query.where(Incident.instance_id == instance_id)
    return list(session.scalars(query))


def instance_summary(session: Session, instance_id: int) -> dict[str, Any]:
    """Return an instance as plain data: row, version, variables, open tasks, timers, incidents."""
    instance = get_instance(session, instance_id)
    version = deploy.version_by_id(session, instance.version_id)
    tasks = session.scalars(select(Task).where(Task.instance_id == instance_id).order_by(Task.created_at))
    timers = session.scalars(select(Timer).where(Timer.instance_id == instance_id).order_by(Timer.due_at))
    return {
        "id": instance.id, "process_id": instance.process_id, "version": version.version,
        "business_key": instance.business_key, "status": str(instance.status), "revision": instance.revision,
        "started_at": instance.started_at.isoformat(), "started_by": instance.started_by,
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
        "parent_instance_id": instance.parent_instance_id,
        "variables": instance_variables(session, instance_id),
        "tasks": [task_dict(t) for t in tasks],
        "timers": [{"element_id": t.element_id, "kind": t.kind, "due_at": t.due_at.isoformat()} for t in timers],
        "incidents": [{"id": i.id, "element_id": i.element_id, "message": i.message,
                       "created_at": i.created_at.isoformat()} for i in open_incidents(session, instance_id)],
    }


def task_dict(task: Task) -> dict[str, Any]:
    """Return a task row as plain data."""
    return {"id": task.id, "instance_id": task.instance_id, "element_id": task.element_id, "name": task.name,
            "lane": task.lane, "role": task.candidate_role, "state": str(task.state), "assignee": task.assignee,
            "due_at": task.due_at.isoformat() if task.due_at else None, "created_at": task.created_at.isoformat(),
            "completed_at": task.completed_at.isoformat() if task.completed_at else None,
            "completed_by": task.completed_by}
