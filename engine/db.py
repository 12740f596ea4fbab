"""Database plumbing: declarative base, column types, engine and session factories.

The caller owns the transaction: engine functions take a `Session` and never commit;
the CLI command, web request or worker loop wraps its work in `with sessions.begin() as s:`.
SQLite runs in WAL mode with a busy timeout so the web server and a worker can share it.

SQLite has one writer. A transaction that may write begins with `BEGIN IMMEDIATE`: it takes the
write lock before its first read, so two writers queue up instead of failing when a read
transaction tries to upgrade; a writer waiting for the lock tries again every few milliseconds (not
with SQLite's own busy handler, which sleeps up to 100 ms between tries). A read-only caller (a web page's GET) binds its session to
`reader(engine)`: its transactions begin deferred, read a snapshot beside the writer, and any write
statement in them raises `WriteInReadTransaction` before SQLite sees it. `begin_writing(session,
engine)` ends such a read transaction and moves the session to the writing engine; what it read
before must be read again. PostgreSQL needs none of this: `reader(engine)` is the engine itself.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
from sqlalchemy import JSON, DateTime, Engine, String, TypeDecorator, create_engine, event
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker


class UTCDateTime(TypeDecorator[datetime]):
    """Store timezone-aware datetimes as UTC; always hand back aware UTC values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


intpk = Annotated[int, mapped_column(primary_key=True)]
str40 = Annotated[str, mapped_column(String(40))]
str200 = Annotated[str, mapped_column(String(200))]


class Base(DeclarativeBase):
    """Declarative base with Polku's type map."""

    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def column_length(model: Any, column: str) -> int:
    """Return how many characters a text column of `model` holds (PostgreSQL refuses a longer text;
    SQLite keeps it, so a check against this is what makes both refuse it)."""
    length = cast(String, model.__table__.c[column].type).length
    assert length is not None, f"{model.__tablename__}.{column} has no length"
    return int(length)


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


BUSY_TIMEOUT = 30.0  # seconds a statement waits for a lock another connection holds, then "database is locked"
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0005, 0.004  # seconds between tries for the write lock
PING_AFTER_IDLE = 2.0  # seconds: a pooled PostgreSQL connection idle longer is pinged before it is used
_USED_AT = "polku_used_at"  # a pooled connection's info: time.monotonic() when it was last returned


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# 19 digits in a row: a number orjson might not read exactly (it reads an integer beyond 64 bits as a float).
_LONG_DIGITS, _LONG_DIGITS_BYTES = re.compile(r"\d{19}"), re.compile(rb"\d{19}")


def _loads(text: str | bytes) -> Any:
    """Read a JSON column's text: what the standard decoder gives, by orjson where that is the same.

    orjson reads the same values several times faster (the aftercare dashboard decodes hundreds of
    thousands of variables). Where the two differ, the standard decoder reads: a run of 19 digits (an
    integer beyond 64 bits would become an inexact float; case data holds none since whole numbers
    are 64-bit, older rows may) and what orjson refuses (NaN, infinities, a lone surrogate).
    """
    if (_LONG_DIGITS.search(text) if isinstance(text, str) else _LONG_DIGITS_BYTES.search(text)) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def make_engine(url: str) -> Engine:
    """Create an SQLAlchemy engine; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": _loads}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "handle_error", _connection_lost)
        _ping_when_idle(engine)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    event.listen(engine, "before_cursor_execute", _refuse_writes_when_reading)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before its use only when it sat idle for `PING_AFTER_IDLE` seconds.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip per request, about a tenth of
    a task completion's. A connection returned a moment ago is as alive as its last statement
    showed, and a new one needs no ping. One that waited longer (the server may have restarted, or a
    firewall cut it) is pinged; when it does not answer, the whole pool is dropped (as the pre-ping
    does) and a new connection is made before anyone uses it. What remains: a connection used within
    the last two seconds before the server went away fails its first statement. That is the
    transient error a request or timer sweep already meets when the server goes away mid-transaction,
    and SQLAlchemy then drops the whole pool too (`_connection_lost`).
    """

    def connected(_dbapi_conn: Any, record: Any) -> None:
        record.info[_USED_AT] = None  # new: no ping on its first checkout

    def checked_in(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:  # None: the connection was invalidated
            record.info[_USED_AT] = time.monotonic()

    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        used = record.info.get(_USED_AT, 0.0)
        if used is None:
            record.info[_USED_AT] = 0.0
            return
        if time.monotonic() - used < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as err:  # the pool connects anew (up to three tries)
            raise InvalidatePoolError(f"a pooled connection did not answer: {err}") from err

    event.listen(engine, "connect", connected)
    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def _connection_lost(context: Any) -> None:
    """Treat a psycopg error that says the connection is gone as a disconnect, however it surfaced.

    SQLAlchemy asks psycopg whether the connection is closed or broken. An executemany runs in a
    pipeline, and when the server goes away just as the pipeline syncs, psycopg raises "the
    connection is lost" while the connection does not say so yet: SQLAlchemy then kept it, and the
    pool's rollback on return failed and logged a traceback (seen once while PostgreSQL was
    restarted under the timer sweep). A driver error without a server state (raised by the client:
    sending, flushing or reading failed) or of the classes 08 (connection exception) and 57P
    (operator intervention: shutdown, terminated) ends that connection.
    """
    error, dbapi = context.original_exception, context.dialect.dbapi
    if context.is_disconnect or not isinstance(error, dbapi.Error):
        return
    state = error.sqlstate or ""
    if (type(error) is dbapi.OperationalError and not state) or state.startswith(("08", "57P")):
        context.is_disconnect = True


class WriteInReadTransaction(RuntimeError):
    """A statement that writes ran in a read-only (deferred) SQLite transaction: a programming error."""


READ_ONLY = "polku_read_only"  # execution option of `reader(engine)`
_READS = ("select", "with", "pragma", "explain", "begin", "commit", "rollbac", "savepoi", "release")


def reader(engine: Engine) -> Engine:
    """Return an engine for read-only work, its writes refused: on SQLite deferred transactions, on
    PostgreSQL autocommit.

    PostgreSQL reads at READ COMMITTED, where each statement sees the data as committed when it
    began, inside a transaction or not: a read-only transaction gives nothing autocommit does not,
    and costs two round trips more (psycopg's BEGIN, the COMMIT).
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(**{READ_ONLY: True}, isolation_level="AUTOCOMMIT")
    return engine.execution_options(**{READ_ONLY: True})


def begin_writing(session: Session, engine: Engine) -> bool:
    """End the session's read-only transaction (it wrote nothing) and bind it to the writing `engine`.

    Its next statement begins a write transaction with the lock taken first. Rows read before may
    have been changed by another writer since: read again what the write depends on. Return
    whether a read-only binding was ended (False: the session was writing already).
    """
    if session.get_bind() is engine:
        return False
    if session.in_transaction():
        session.commit()  # a read transaction: nothing to write, and loaded rows are kept
    session.bind = engine
    return True


def _sqlite_begin(conn: Any) -> None:
    # SQLite has one writer: take the write lock at BEGIN so two writers queue up instead of
    # failing with "database is locked" when a read transaction tries to upgrade.
    # On the driver's connection: through exec_driver_sql this statement cost a fifth of what a
    # session's transaction costs around it (an execution context and a result for one BEGIN).
    reading = conn.get_execution_options().get(READ_ONLY)
    statement = "BEGIN" if reading else "BEGIN IMMEDIATE"
    driver = conn.connection.driver_connection
    try:
        if reading:
            driver.execute(statement)
        else:
            _take_write_lock(driver)
    except driver_error(conn) as err:  # as Connection.execute raises it: e.g. OperationalError "database is locked"
        raise DBAPIError.instance(statement, None, err, driver_error(conn), dialect=conn.dialect) from err


def _take_write_lock(driver: Any) -> None:
    """Run BEGIN IMMEDIATE, trying again every few milliseconds while another connection writes.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries:
    a writer queued behind a 3 ms transaction slept 8 ms, and with a few experts completing tasks at
    once most of a completion's server time was spent asleep while the lock was free. Here the
    handler is off for BEGIN only (every other statement keeps the busy timeout) and the pause
    between tries grows from half a millisecond to 4 ms, with jitter so that waiters spread out;
    after BUSY_TIMEOUT seconds the last "database is locked" error is raised, as SQLite would.
    """
    driver.execute("PRAGMA busy_timeout=0")
    try:
        deadline, pause = 0.0, _FIRST_PAUSE
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if getattr(err, "sqlite_errorcode", sqlite3.SQLITE_BUSY) != sqlite3.SQLITE_BUSY:
                    raise
                now = time.monotonic()
                deadline = deadline or now + BUSY_TIMEOUT
                if now >= deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, _LONGEST_PAUSE)
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")


def driver_error(conn: Any) -> type[Exception]:
    """Return the DB-API's base error class of a connection's driver."""
    return cast(type[Exception], conn.dialect.loaded_dbapi.Error)


def refuse_write_when_reading(conn: Any, statement: str) -> None:
    """Raise WriteInReadTransaction for a writing statement on a `reader(engine)` connection.

    SQLAlchemy's statements pass here by an engine event; `engine.fastsql` calls it itself (its
    statements go to the DB-API cursor directly).
    """
    if conn.get_execution_options().get(READ_ONLY) and not statement.lstrip()[:7].lower().startswith(_READS):
        raise WriteInReadTransaction(f"a write in a read-only transaction: {statement[:80]}")


def _refuse_writes_when_reading(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    refuse_write_when_reading(conn, statement)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" hook issue BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    cur.close()


def make_sessions(engine: Engine) -> sessionmaker:
    """Return the session factory the callers use as `with sessions.begin() as session:`."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Any:
    """Return an Alembic Config pointing at Polku's migrations (and at `engine`, if given)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or migrate the schema to the newest revision."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
