"""engine.fastsql inside savepoints: a statement on the cursor is undone with its savepoint.

The notice, schedule and aftercare jobs handle each item in a savepoint of its own and rely on a rollback
undoing that item's writes, however many of them run on the cursor before SQLAlchemy itself runs one.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, insert, select

from engine.fastsql import Fast
from engine.models import AuditStream

_STREAMS = cast(Table, AuditStream.__table__)
_INSERT = Fast(insert(_STREAMS))
_KEYS = Fast(select(_STREAMS.c.key).where(_STREAMS.c.key.like(bindparam("b_like"))).order_by(_STREAMS.c.key))


def _keys(session) -> list[str]:
    return [row[0] for row in _KEYS.all(session, {"b_like": "sp:%"})]


def test_a_rolled_back_savepoint_undoes_what_ran_on_the_cursor(sessions):
    with sessions.begin() as session:
        _INSERT.execute(session, {"key": "sp:kept-before", "seq": 1, "head": "x"})
        for name, keep in [("sp:first", False), ("sp:second", True), ("sp:third", False)]:
            savepoint = session.begin_nested()
            _INSERT.execute(session, {"key": name, "seq": 1, "head": "x"})  # the savepoint's first statement
            savepoint.commit() if keep else savepoint.rollback()
        assert _keys(session) == ["sp:kept-before", "sp:second"]
    with sessions.begin() as session:
        assert _keys(session) == ["sp:kept-before", "sp:second"]
