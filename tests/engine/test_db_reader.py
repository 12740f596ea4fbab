"""Read-only transactions on SQLite: a page reads beside the writer, never writes, and upgrades safely.

SQLite has one writer. A read transaction that tries to write later fails at once when another
writer committed since its snapshot ("database is locked", whatever the busy timeout), which is why
writers begin with `BEGIN IMMEDIATE`. `reader(engine)` lets read-only work skip that lock;
`begin_writing` ends the read and takes the lock before the write's own reads.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from engine import db
from engine.db import WriteInReadTransaction, begin_writing, make_sessions, reader, utcnow
from engine.models import Customer


@pytest.fixture
def db_engine(sessions):
    """Return the engine of the test's database (the one `sessions` writes through)."""
    return sessions.kw["bind"]


def _add_customer(sessions, business_id: str = "1234567-8") -> int:
    with sessions.begin() as s:
        row = Customer(business_id=business_id, name="Acme Oy", created_at=utcnow(), updated_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


def _rename(db_engine, customer_id: int, name: str) -> None:
    with db_engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == customer_id).values(name=name))


def test_a_read_runs_while_another_connection_holds_the_write_lock(db_engine, sessions):
    customer_id = _add_customer(sessions)
    with db_engine.connect() as writer:
        writer.begin()  # BEGIN IMMEDIATE: the write lock is held until the end of this block
        writer.execute(update(Customer).where(Customer.id == customer_id).values(name="Uncommitted"))
        with make_sessions(reader(db_engine)).begin() as s:
            assert s.scalar(select(Customer.name).where(Customer.id == customer_id)) == "Acme Oy"
        writer.commit()


def test_a_writing_transaction_waits_for_the_write_lock_before_its_first_read(db_engine, sessions):
    customer_id = _add_customer(sessions)
    done: list[str] = []

    def read_in_a_writing_transaction() -> None:
        with sessions.begin() as s:
            done.append(s.scalar(select(Customer.name).where(Customer.id == customer_id)))

    with db_engine.connect() as writer:
        writer.begin()
        writer.execute(update(Customer).where(Customer.id == customer_id).values(name="Renamed"))
        thread = threading.Thread(target=read_in_a_writing_transaction)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive() and done == []  # queued at BEGIN IMMEDIATE, not reading
        writer.commit()
    thread.join(timeout=30)
    assert done == ["Renamed"]


def test_a_write_in_a_read_transaction_is_refused_before_it_reaches_sqlite(db_engine, sessions):
    customer_id = _add_customer(sessions)
    with pytest.raises(WriteInReadTransaction), make_sessions(reader(db_engine)).begin() as s:
        s.get(Customer, customer_id).name = "Changed while reading"
    with sessions.begin() as s:
        assert s.get(Customer, customer_id).name == "Acme Oy"


def test_upgrading_a_stale_read_transaction_fails_in_sqlite_itself(db_engine, sessions):
    """The hazard `begin_writing` avoids, shown on two plain sqlite3 connections."""
    customer_id = _add_customer(sessions)
    path = db_engine.url.database
    stale, other = (sqlite3.connect(path, timeout=5, isolation_level=None) for _ in range(2))
    try:
        stale.execute("BEGIN")
        stale.execute("SELECT name FROM customer WHERE id = ?", (customer_id,)).fetchall()
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE customer SET name = 'Other' WHERE id = ?", (customer_id,))
        other.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            stale.execute("UPDATE customer SET name = 'Stale' WHERE id = ?", (customer_id,))
    finally:
        stale.close()
        other.close()


def test_begin_writing_after_a_read_writes_on_what_the_other_writer_committed(db_engine, sessions):
    customer_id = _add_customer(sessions)
    with make_sessions(reader(db_engine))() as s:
        row = s.get(Customer, customer_id)
        assert row.name == "Acme Oy"  # the read transaction's snapshot
        _rename(db_engine, customer_id, "Other")  # another writer commits after that snapshot
        begin_writing(s, db_engine)
        s.refresh(row)
        assert row.name == "Other"
        row.name = "Other and mine"
        s.commit()
    with sessions.begin() as s:
        assert s.get(Customer, customer_id).name == "Other and mine"


def test_begin_writing_takes_the_lock_while_another_writer_holds_it(db_engine, sessions):
    customer_id = _add_customer(sessions)
    outcome: list[str] = []
    read = threading.Event()

    def read_then_write() -> None:
        with make_sessions(reader(db_engine))() as s:
            s.get(Customer, customer_id)
            read.set()
            begin_writing(s, db_engine)
            row = s.get(Customer, customer_id, populate_existing=True)
            row.name = row.name + " + second"
            s.commit()
            outcome.append("committed")

    with db_engine.connect() as writer:
        writer.begin()
        writer.execute(update(Customer).where(Customer.id == customer_id).values(name="First"))
        thread = threading.Thread(target=read_then_write)
        thread.start()
        assert read.wait(timeout=30)
        thread.join(timeout=0.5)
        assert thread.is_alive() and outcome == []  # waiting for the lock, not failed
        writer.commit()
    thread.join(timeout=30)
    assert outcome == ["committed"]
    with sessions.begin() as s:
        assert s.get(Customer, customer_id).name == "First + second"


def test_a_write_on_the_cursor_in_a_read_transaction_is_refused_too(db_engine, sessions):
    from sqlalchemy import update as core_update

    from engine.fastsql import Fast

    customer_id = _add_customer(sessions)
    rename = Fast(core_update(Customer).where(Customer.id == customer_id)
                  .values(name="Changed on the cursor", updated_at=utcnow()))
    with pytest.raises(WriteInReadTransaction), make_sessions(reader(db_engine)).begin() as s:
        rename.execute(s)
    with sessions.begin() as s:
        assert s.get(Customer, customer_id).name == "Acme Oy"
        assert rename.execute(s) == 1  # a writing transaction may


def test_a_writer_that_cannot_get_the_lock_gets_sqlalchemys_error_and_rolls_back(db_engine, sessions, monkeypatch):
    """BEGIN IMMEDIATE runs on the driver's connection; its failure still comes as SQLAlchemy's OperationalError."""
    customer_id = _add_customer(sessions)
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 0.05)  # give up after 50 ms instead of 30 s
    holder = sqlite3.connect(db_engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with db_engine.connect() as conn:
            driver = conn.connection.driver_connection  # (a statement on `conn` would begin first)
            started = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked") as caught:
                conn.begin()
            assert time.monotonic() - started >= 0.05  # it tried again until the timeout
            assert isinstance(caught.value.orig, sqlite3.OperationalError)
            assert caught.value.statement == "BEGIN IMMEDIATE"
            assert not conn.in_transaction()
            assert driver.execute("PRAGMA busy_timeout").fetchone() == (50,)  # every other statement waits as before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with sessions.begin() as s:  # the pool's connection works on
        s.get(Customer, customer_id).name = "After"
    with make_sessions(reader(db_engine))() as s:
        assert s.get(Customer, customer_id).name == "After"


class _Driver:
    """A stand-in for the sqlite3 connection that fails BEGIN IMMEDIATE with the given errors first."""

    def __init__(self, *errors: sqlite3.OperationalError):
        self.errors, self.statements = list(errors), []

    def execute(self, statement: str) -> None:
        self.statements.append(statement)
        if statement == "BEGIN IMMEDIATE" and self.errors:
            raise self.errors.pop(0)


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    err = sqlite3.OperationalError(message)
    err.sqlite_errorcode = code
    return err


def test_a_busy_write_lock_is_tried_again_without_sqlites_busy_handler():
    busy = _sqlite_error("database is locked", sqlite3.SQLITE_BUSY)
    driver = _Driver(busy, busy, busy)
    db._take_write_lock(driver)
    assert driver.statements == ["PRAGMA busy_timeout=0", *["BEGIN IMMEDIATE"] * 4, "PRAGMA busy_timeout=30000"]


def test_an_error_other_than_busy_is_raised_at_once_and_the_busy_timeout_comes_back():
    driver = _Driver(_sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR))
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        db._take_write_lock(driver)
    assert driver.statements == ["PRAGMA busy_timeout=0", "BEGIN IMMEDIATE", "PRAGMA busy_timeout=30000"]


def test_the_busy_timeout_is_the_connections_again_inside_a_write_transaction(db_engine):
    with db_engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
