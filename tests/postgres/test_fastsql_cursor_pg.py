"""engine.fastsql on psycopg: the statements of one connection share a kept cursor (making one costs about
12 µs), and what could make a kept cursor wrong or heavy does not last: a failed statement closes it, a
result of many rows is not held by it, a connection the pool made anew gets a cursor of its own, and
SQLite keeps none."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import DBAPIError

from engine import fastsql
from engine.db import make_engine, make_sessions, utcnow
from engine.fastsql import Fast
from engine.models import Customer

_CUSTOMERS = cast(Table, Customer.__table__)
_BY_ID = Fast(select(_CUSTOMERS.c.id, _CUSTOMERS.c.name).where(_CUSTOMERS.c.id == bindparam("b_id")))
_ALL = Fast(select(_CUSTOMERS.c.id).order_by(_CUSTOMERS.c.id))
_BROKEN = Fast(select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.id == bindparam("b_id")))


@pytest.fixture
def db(fresh_pg_url):
    from engine.db import upgrade

    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        s.add_all([Customer(business_id=f"{n:07d}-{n % 10}", name=f"Yritys {n} Oy", created_at=utcnow(),
                            updated_at=utcnow()) for n in range(1, 151)])
    yield sessions
    engine.dispose()


def _kept(session):
    """Return the cursor kept on the session's connection, or None."""
    kept = fastsql._connection(session).connection.info.get(fastsql._CURSOR)
    return None if kept is None else kept[1]


def test_statements_of_one_connection_share_one_cursor_across_transactions(db):
    sessions = db
    with sessions() as s:
        assert _BY_ID.first(s, {"b_id": 1}) == (1, "Yritys 1 Oy")
        first = _kept(s)
        assert first is not None and not first.closed
        assert _BY_ID.first(s, {"b_id": 2}) == (2, "Yritys 2 Oy")
        assert _kept(s) is first
    with sessions() as s:  # the pool gives the same connection back (one in use at a time)
        assert _BY_ID.first(s, {"b_id": 3}) == (3, "Yritys 3 Oy")
        assert _kept(s) is first


def test_a_failed_statement_closes_the_kept_cursor_and_the_next_one_gets_a_new_one(db):
    sessions = db
    with sessions() as s:
        _BY_ID.first(s, {"b_id": 1})
        first = _kept(s)
        with pytest.raises(DBAPIError):
            _BROKEN.first(s, {"b_id": "not a number"})
        assert first.closed and _kept(s) is None
        s.rollback()
        assert _BY_ID.first(s, {"b_id": 4}) == (4, "Yritys 4 Oy")
        assert _kept(s) is not None and _kept(s) is not first


def test_a_result_of_many_rows_is_not_held_by_a_kept_cursor(db):
    sessions = db
    with sessions() as s:
        _BY_ID.first(s, {"b_id": 1})
        first = _kept(s)
        assert len(_ALL.all(s)) == 150  # more than fastsql keeps a cursor for
        assert first.closed and _kept(s) is None
        assert _BY_ID.first(s, {"b_id": 5}) == (5, "Yritys 5 Oy")  # a new one, kept again
        assert _kept(s) is not None


def test_a_connection_made_anew_gets_a_cursor_of_its_own(db):
    sessions = db
    with sessions() as s:
        _BY_ID.first(s, {"b_id": 1})
        first = _kept(s)
        s.connection().invalidate()  # as after a lost connection: the pool connects again
        s.rollback()
        assert _BY_ID.first(s, {"b_id": 6}) == (6, "Yritys 6 Oy")
        assert _kept(s) is not first


def test_sqlite_keeps_no_cursor(tmp_path):
    from engine.db import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'polku.db'}")
    upgrade(engine)
    with make_sessions(engine)() as s:
        assert _BY_ID.first(s, {"b_id": 1}) is None
        assert _kept(s) is None
    engine.dispose()
