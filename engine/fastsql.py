"""Fast statements: SQLAlchemy Core statements run on the DB-API cursor of the session's connection.

The hot statements of an action (the task row, variables, timers, the instance's revision check,
audit events) cost about 30 µs each through `Connection.execute` against 3–4 µs on the driver's
cursor: SQLAlchemy builds an execution context and a result for every call. A `Fast` statement
is compiled once per dialect and set of parameter names; each call only orders the parameters,
runs the type processing its columns need (the same bind and result processors SQLAlchemy would
use: UTC datetimes, JSON) and executes on the cursor of the connection the session already holds,
so it is part of the caller's transaction and savepoints. A driver error goes through
SQLAlchemy's own handling (wrapped as `DBAPIError`, a dropped connection invalidated), so callers
see exactly what `Connection.execute` would raise.

Supported: inserts, updates and deletes (one row or executemany) and selects returning rows.
Not supported: expanding (IN-list) parameters, RETURNING, ORM entities. A select of every column of
a mapped table (or of some, the primary key first) gives rows that `adopt` turns into the session's
objects, as the ORM's loader would; `autoflush=True` flushes first, as the ORM's select does.

Writes can also be queued (`Fast.later`): the timer sweep fires 25 instances in one transaction,
each writing the same few statements, and on PostgreSQL each statement is a round trip. Queued
rows run as one executemany per statement (one pipeline on psycopg) before anything else touches
the database in that session: the next statement on the cursor, any ORM statement or flush, a
savepoint, the commit. So every read in the transaction sees them, as if they had run at once; a
rollback drops them with the rest. A queued write that fails raises `QueuedWriteFailed` (the
driver's error as `error`) wherever the queue ran: the statement that set it off is not the one
that failed, and the caller must not blame the work it was doing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, event
from sqlalchemy.orm import Mapper, Session, class_mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import ClauseElement

from .db import refuse_write_when_reading

__all__ = ["Fast", "QueuedWriteFailed", "adopt", "run_later"]

_NO_VALUE = object()
_Mapped = TypeVar("_Mapped")
_LATER = "polku_fast_later"  # session.info: rank -> (statement, every row must match one, rows by their names)


@dataclass(frozen=True)
class _Plan:
    """One statement compiled for one dialect and one set of parameter names."""

    sql: str
    keys: tuple[str, ...]  # the caller's parameter name per bind, in bind order
    targets: tuple[str, ...] | None  # bind names for a named paramstyle; None: positional
    fixed: tuple[Any, ...]  # a bind's own value (or column default) when the caller gives none
    processors: tuple[Callable[[Any], Any] | None, ...]
    result: tuple[Callable[[Any], Any] | None, ...]  # per selected column (selects only)
    given: bool  # every bind comes from the caller's values (the common case: no fixed values to fill in)
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor) of binds that have one

    def params(self, row: dict[str, Any]) -> Any:
        """Return the driver's parameters for one row of the caller's values."""
        if self.given:
            values = [row[key] for key in self.keys]
        else:
            values = [row.get(key, fixed) for key, fixed in zip(self.keys, self.fixed, strict=True)]
            if _NO_VALUE in values:
                raise KeyError(f"no value for parameter '{self.keys[values.index(_NO_VALUE)]}'")
        for position, process in self.processed:
            values[position] = process(values[position])
        if self.targets is None:
            return values
        return dict(zip(self.targets, values, strict=True))


class Fast:
    """A Core statement compiled once per dialect, executed on the session's DB-API cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}

    def _plan(self, dialect: Dialect, keys: frozenset[str]) -> _Plan:
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            plan = self._plans[(dialect.name, keys)] = _compile(self.statement, dialect, keys)
        return plan

    def later(self, session: Session, rows: Sequence[dict[str, Any]], *, rank: int, exact: bool = False) -> None:
        """Queue rows for this statement, to run before the session's next statement (see the module).

        Queued statements run in the order of their `rank` (each statement one rank), so a caller that
        queues a delete before an insert into the same table ranks the delete first; rows naming other
        columns than earlier ones of the same statement run as their own executemany. `exact`: every
        row must match one row in the table (an update's optimistic lock), else StaleDataError. Inside
        a savepoint nothing is queued: the rows run at once (a savepoint's rollback must undo them).
        """
        if not rows:
            return
        if session.in_nested_transaction():
            _run_rows(session, self, list(rows), exact)
            return
        _connection(session)  # the transaction's own connection, now: a savepoint begun later must not take them
        queued = session.info.setdefault(_LATER, {})
        entry = queued.get(rank)
        if entry is None:
            entry = queued[rank] = (self, exact, {})
        elif entry[0] is not self:
            raise ValueError(f"rank {rank} is taken by another statement")
        groups: dict[frozenset[str], list[dict[str, Any]]] = entry[2]
        for row in rows:
            groups.setdefault(frozenset(row), []).append(row)

    def execute(self, session: Session, params: dict[str, Any] | None = None) -> int:
        """Run the statement once; return the driver's rowcount."""
        if _LATER in session.info:
            run_later(session)
        params = params or {}
        conn = _connection(session)
        plan = self._plan(conn.dialect, frozenset(params))
        return _run(conn, plan, plan.params(params), many=False, fetch=False)[0]

    def executemany(self, session: Session, rows: Sequence[dict[str, Any]]) -> int:
        """Run the statement for each row (all rows carry the same names); return the total rowcount."""
        if not rows:
            return 0
        if _LATER in session.info:
            run_later(session)
        conn = _connection(session)
        names = frozenset(rows[0])
        if any(row.keys() != names for row in rows):  # the statement is built from the first row's names
            raise ValueError("every row of an executemany must name the same columns")
        plan = self._plan(conn.dialect, names)
        if len(rows) == 1:  # psycopg runs executemany in a pipeline: entering and syncing it costs more for one row
            return _run(conn, plan, plan.params(rows[0]), many=False, fetch=False)[0]
        return _run(conn, plan, [plan.params(row) for row in rows], many=True, fetch=False)[0]

    def all(self, session: Session, params: dict[str, Any] | None = None, *,
            autoflush: bool = False) -> list[tuple[Any, ...]]:
        """Run a select; return its rows as tuples, each column as SQLAlchemy's result types would give it.

        `autoflush`: first flush the session's changes, as the ORM's select does when the session
        autoflushes (not within `no_autoflush`): a read whose rows `adopt` makes the session's objects
        must see what the session changed.
        """
        if autoflush and session.autoflush:
            session.flush()
        if _LATER in session.info:
            run_later(session)
        params = params or {}
        conn = _connection(session)
        plan = self._plan(conn.dialect, frozenset(params))
        rows = _run(conn, plan, plan.params(params), many=False, fetch=True)[1]
        result = plan.result
        if not any(result):
            return [tuple(row) for row in rows]
        return [tuple(value if process is None or value is None else process(value)
                      for value, process in zip(row, result, strict=True)) for row in rows]

    def first(self, session: Session, params: dict[str, Any] | None = None, *,
              autoflush: bool = False) -> tuple[Any, ...] | None:
        """Run a select; return its first row (as `all` gives it) or None."""
        rows = self.all(session, params, autoflush=autoflush)
        return rows[0] if rows else None


def _mapping(cls: type) -> tuple[Any, tuple[str, ...]]:
    """Return a mapped class's manager and its attributes' keys in table column order (kept per class)."""
    found = _MAPPINGS.get(cls)
    if found is None:
        mapper: Mapper[Any] = class_mapper(cls)
        columns = list(mapper.local_table.columns)
        if list(mapper.primary_key) != columns[:1]:  # the identity key is the row's first value
            raise TypeError(f"adopt needs {cls.__name__}'s primary key to be its table's first column, alone")
        found = _MAPPINGS[cls] = (mapper.class_manager, tuple(mapper.get_property_by_column(column).key
                                                               for column in columns))
    return found


_MAPPINGS: dict[type, tuple[Any, tuple[str, ...]]] = {}


def adopt(session: Session, cls: type[_Mapped], values: Sequence[Any], *, refresh: bool = False,
          keys: tuple[str, ...] | None = None) -> _Mapped:
    """Return the session's object of a row read on the cursor: every column of `cls`'s table, in table
    order, as `Fast.all` gives them (the primary key first), persistent in the session as if the
    ORM had loaded it (its changes are flushed as updates; no constructor runs).

    An object the session holds already is returned as it is. If it is expired, the row fills in what
    is not loaded (a change made since the expiry is kept, as the ORM's loader keeps it); with
    `refresh`, the row's values replace everything it holds, as a fresh read would.

    `keys`: the attributes of `values` when the row has only some columns (the primary key first); a
    new object leaves the others unloaded, read on first use as a deferred column is.
    """
    manager, every = _mapping(cls)
    if keys is None:
        keys = every
    elif keys[0] != every[0]:
        raise ValueError(f"adopt needs {cls.__name__}'s primary key first")
    found = session.identity_map.get(identity_key(cls, values[0]))
    if found is None:
        found = manager.new_instance()
        found.__dict__.update(zip(keys, values, strict=True))
        make_transient_to_detached(found)
        # what session.add does with a detached object, less its cascade, which finds nothing here (the
        # object holds no related object yet) and cost a third of an adoption: SQLAlchemy's private
        # step (2.0; pyproject keeps SQLAlchemy below 2.1), covered by tests/engine/test_fastsql_adopt.py
        session._update_impl(instance_state(found))
    elif refresh or instance_state(found).expired_attributes:
        held = found.__dict__
        for key, value in zip(keys, values, strict=True):
            if refresh or key not in held:
                set_committed_value(found, key, value)
    return cast(_Mapped, found)


class QueuedWriteFailed(Exception):
    """Queued writes failed when the queue ran; `error` is why (a `DBAPIError`, a `StaleDataError`…)."""

    def __init__(self, error: Exception):
        super().__init__(f"queued writes failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
        self.error = error


def run_later(session: Session) -> None:
    """Run the session's queued writes now, one executemany per statement, in rank order.

    Raises:
        QueuedWriteFailed: a statement failed, or an `exact` one matched fewer rows than it was given
            (`error`: `StaleDataError`). The transaction must be rolled back.
    """
    queued = session.info.pop(_LATER, None)
    if not queued:
        return
    try:
        for rank in sorted(queued):
            statement, exact, groups = queued[rank]
            for rows in groups.values():
                _run_rows(session, statement, rows, exact)
    except Exception as err:
        raise QueuedWriteFailed(err) from err


def _run_rows(session: Session, statement: Fast, rows: list[dict[str, Any]], exact: bool) -> None:
    count = statement.executemany(session, rows)
    if exact and count != len(rows):
        raise StaleDataError(f"{len(rows) - count} of {len(rows)} rows changed meanwhile")


@event.listens_for(Session, "do_orm_execute")
def _later_before_orm_statements(state: Any) -> None:
    if _LATER in state.session.info:
        run_later(state.session)


@event.listens_for(Session, "before_flush")
def _later_before_orm_flush(session: Session, _context: Any, _instances: Any) -> None:
    if _LATER in session.info:
        run_later(session)


@event.listens_for(Session, "before_commit")
def _later_before_commit(session: Session) -> None:
    if _LATER in session.info:
        run_later(session)


def _connection(session: Session) -> Connection:
    """Return the connection of the session's transaction (kept in `session.info` from its begin on)."""
    conn = session.info.get("polku_fast_connection")
    if conn is None:
        conn = session.info["polku_fast_connection"] = session.connection()
    return conn


@event.listens_for(Session, "after_transaction_create")
def _savepoint_first(session: Session, transaction: Any) -> None:
    # SQLAlchemy emits a nested transaction's SAVEPOINT when the session is first asked for its connection
    # in it; statements on the cursor never ask. Forgetting the connection makes the next one ask, so the
    # SAVEPOINT comes before it and a savepoint rollback undoes it (the jobs' per-item isolation)
    if transaction.nested:
        if _LATER in session.info:  # queued writes belong to the transaction outside the savepoint
            run_later(session)
        session.info.pop("polku_fast_connection", None)


@event.listens_for(Session, "after_begin")
def _remember_connection(session: Session, _transaction: Any, connection: Connection) -> None:
    # session.connection() costs ~10 µs per call; the hot path asks for it once per statement
    session.info["polku_fast_connection"] = connection


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop("polku_fast_connection", None)
        session.info.pop(_LATER, None)  # a rollback drops them (a commit ran them first)


_CURSOR = "polku_fast_cursor"  # ConnectionPoolEntry.info: (DBAPI connection, its kept cursor), psycopg only
_KEEP_UP_TO = 100  # rows: a cursor that fetched more is closed, so that it does not hold the result


def _cursor(conn: Connection) -> tuple[Any, dict[str, Any] | None]:
    """Return a cursor of the connection, and the pool entry's `info` it is kept in (None: not kept).

    A psycopg cursor costs about 12 µs to make and close, a fifth of a short statement's time in the
    client; the cursor of the previous statement on the same connection serves instead. sqlite3's
    cost about 1 µs: SQLite gets a new one each time, closed at once (an open cursor of an
    unfinished SELECT would hold its read lock).
    """
    pooled = conn.connection
    dbapi = pooled.dbapi_connection
    if conn.dialect.driver != "psycopg":
        return dbapi.cursor(), None  # type: ignore[union-attr]
    info = pooled.info
    kept = info.get(_CURSOR)
    if kept is not None and kept[0] is dbapi and not kept[1].closed:
        return kept[1], info
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    info[_CURSOR] = (dbapi, cursor)
    return cursor, info


def _run(conn: Connection, plan: _Plan, params: Any, *, many: bool, fetch: bool) -> tuple[int, list[Any]]:
    refuse_write_when_reading(conn, plan.sql)  # as for SQLAlchemy's own statements (engine.db's event)
    cursor, kept_in = _cursor(conn)
    rows: list[Any] = []
    done = False
    try:
        if many:
            cursor.executemany(plan.sql, params)
        else:
            cursor.execute(plan.sql, params)
        if fetch:
            rows = cursor.fetchall()
        count = cursor.rowcount
        done = True
    except Exception as err:  # noqa: BLE001 - SQLAlchemy wraps it (DBAPIError) or re-raises it as it is
        conn._handle_dbapi_exception(err, plan.sql, params, cursor, None)
    finally:
        if kept_in is None or not done or len(rows) > _KEEP_UP_TO:  # failed or interrupted: never used again
            if kept_in is not None:
                kept_in.pop(_CURSOR, None)
            cursor.close()
    return count, rows


def _compile(statement: ClauseElement, dialect: Dialect, keys: frozenset[str]) -> _Plan:
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    binds = compiled.binds  # type: ignore[attr-defined]
    names = list(compiled.positiontup) if dialect.positional else list(binds)  # type: ignore[attr-defined]
    escaped = getattr(compiled, "escaped_bind_names", {}) or {}
    defaults = _column_defaults(statement)
    fixed, processors = [], []
    for name in names:
        bind = binds[name]
        if bind.expanding:
            raise ValueError(f"expanding parameter '{name}' is not supported by Fast statements")
        if name in keys:
            fixed.append(_NO_VALUE)
        elif name in defaults:
            fixed.append(defaults[name])
        elif bind.value is not None or not bind.required:
            fixed.append(bind.effective_value)
        else:
            fixed.append(_NO_VALUE)
        processors.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
    result: tuple[Callable[[Any], Any] | None, ...] = ()
    if getattr(statement, "is_select", False):
        result = tuple(col.type.dialect_impl(dialect).result_processor(dialect, None)
                       for col in statement.selected_columns)  # type: ignore[attr-defined]
    return _Plan(
        sql=compiled.string, keys=tuple(names),
        targets=None if dialect.positional else tuple(escaped.get(n, n) for n in names),
        fixed=tuple(fixed), processors=tuple(processors), result=result,
        given=all(f is _NO_VALUE for f in fixed),
        processed=tuple((i, p) for i, p in enumerate(processors) if p is not None))


def _column_defaults(statement: ClauseElement) -> dict[str, Any]:
    """Return the Python-side scalar or callable defaults of an insert's or update's table, by column key."""
    table = getattr(statement, "table", None)
    found: dict[str, Any] = {}
    if table is None or not hasattr(table, "columns"):
        return found
    is_update = statement.__visit_name__ == "update"
    for column in table.columns:
        default = column.onupdate if is_update else column.default
        if default is None or not getattr(default, "is_scalar", False):
            continue  # callable defaults are left to the caller (Fast refuses a missing value)
        found[column.key] = default.arg
    return found
