"""A pooled PostgreSQL connection is pinged before use only after it sat idle (engine.db._ping_when_idle).

A connection returned a moment ago goes out again without a round trip; one idle for longer than
`PING_AFTER_IDLE` is pinged, and a dead one is replaced before anyone uses it. The window this leaves
(a connection killed within the two seconds after its last use) costs one transient error, after
which the pool is dropped and the next use works.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from engine import db
from engine.db import make_engine
from engine.dbfaults import is_transient

from .conftest import _admin

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url):
    made = make_engine(pg_url)
    yield made
    made.dispose()


@pytest.fixture
def pings(engine, monkeypatch):
    counted: list[object] = []
    plain = engine.dialect.do_ping

    def counting(dbapi_conn):
        counted.append(dbapi_conn)
        return plain(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return counted


def _backend(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def _kill(pg_url: str, pid: int) -> None:
    with _admin(pg_url) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


def test_a_connection_used_a_moment_ago_goes_out_without_a_ping(engine, pings):
    first = _backend(engine)  # a new connection: just connected, not pinged
    for _ in range(5):
        assert _backend(engine) == first  # the same pooled connection each time
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced_before_use(engine, pings, pg_url, monkeypatch):
    first = _backend(engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # every pooled connection counts as idle
    assert _backend(engine) == first
    assert len(pings) == 1  # alive: kept
    _kill(pg_url, first)
    second = _backend(engine)  # the ping finds it dead; the pool connects anew, no error reaches us
    assert second != first
    assert len(pings) == 2  # the new connection itself is not pinged


def test_a_connection_killed_right_after_its_use_fails_once_then_the_pool_is_renewed(engine, pings, pg_url):
    first = _backend(engine)
    _kill(pg_url, first)
    with pytest.raises(OperationalError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert caught.value.connection_invalidated and is_transient(caught.value)
    assert _backend(engine) != first  # the next use gets a new connection
    assert pings == []


def test_a_failed_ping_drops_every_connection_of_the_pool(engine, pings, pg_url, monkeypatch):
    one, two = engine.connect(), engine.connect()
    pids = [c.scalar(text("SELECT pg_backend_pid()")) for c in (one, two)]
    one.close()
    two.close()
    for pid in pids:
        _kill(pg_url, pid)
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    assert _backend(engine) not in pids  # a ping failed: the pool connects anew
    assert len(pings) == 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)  # the other was returned a moment ago, yet dropped
    with engine.connect() as a, engine.connect() as b:
        fresh = {a.scalar(text("SELECT pg_backend_pid()")), b.scalar(text("SELECT pg_backend_pid()"))}
    assert not fresh & set(pids)
    assert len(pings) == 1
