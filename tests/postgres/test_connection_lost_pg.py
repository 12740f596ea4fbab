"""A lost connection on PostgreSQL is dropped however psycopg reports it (engine.db._connection_lost).

psycopg runs an executemany in a pipeline. When the server went away just as the pipeline synced,
psycopg raised "the connection is lost" while the connection did not yet say it was broken, so
SQLAlchemy kept it and the pool's rollback on its return failed and logged a traceback (seen once
in the restart test of tests/faults/test_pg_faults.py). The failure is made here at will: the
driver's executemany raises that error on a connection that is in fact fine.
"""

from __future__ import annotations

import logging

import psycopg
import pytest
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import DBAPIError

from engine.fastsql import Fast
from engine.models import Instance

pytestmark = pytest.mark.postgres

_TOUCH = Fast(update(Instance.__table__).where(Instance.__table__.c.id == bindparam("b_id"))
              .values(open_incidents=bindparam("n")))


class _LostInPipeline:
    """A DB-API cursor whose executemany fails as psycopg's does when the server leaves mid-pipeline."""

    def __init__(self, cursor, error: Exception) -> None:
        self._cursor, self._error = cursor, error

    def executemany(self, *_args, **_kwargs):
        raise self._error

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@pytest.mark.parametrize("error, lost", [
    (psycopg.OperationalError("the connection is lost"), True),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
    (psycopg.errors.SerializationFailure("could not serialize access"), False),  # the server answered: kept
])
def test_a_pipelined_write_failing_with_the_connection_lost_drops_that_connection(sessions, caplog, error, lost):
    ids = [1, 2]  # no such cases: the driver fails before the statement runs
    caplog.set_level(logging.WARNING, logger="sqlalchemy.pool")
    s = sessions()
    dbapi = s.connection().connection.dbapi_connection
    plain = dbapi.cursor
    dbapi.cursor = lambda *a, **k: _LostInPipeline(plain(*a, **k), error)
    try:
        with pytest.raises(DBAPIError) as caught:
            _TOUCH.executemany(s, [{"b_id": i, "n": 0} for i in ids])
    finally:
        del dbapi.cursor
    assert caught.value.connection_invalidated is lost
    s.rollback()
    s.close()
    assert "Exception during reset" not in caplog.text
    assert dbapi.closed is lost  # a lost connection is closed, not handed out again
    with sessions() as again:  # the pool goes on with a working connection
        assert again.scalar(select(func.count()).select_from(Instance)) == 0
