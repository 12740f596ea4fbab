"""engine.fastsql's queued writes (`Fast.later`): run together, before anything else reads or writes.

The timer sweep queues each firing's rows and runs them as one executemany per statement; every
read in the transaction must still see them, a rollback must drop them, a savepoint must not take
them, and an update that must match its row says so.
"""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm.exc import StaleDataError

from engine import fastsql
from engine.fastsql import Fast, QueuedWriteFailed
from engine.models import AuditStream

_STREAMS = cast(Table, AuditStream.__table__)
_INSERT = Fast(insert(_STREAMS))
_DELETE = Fast(delete(_STREAMS).where(_STREAMS.c.key == bindparam("b_key")))
_MOVE = Fast(update(_STREAMS).where(_STREAMS.c.key == bindparam("b_key"), _STREAMS.c.seq == bindparam("b_seq")))
_KEYS = Fast(select(_STREAMS.c.key, _STREAMS.c.seq).where(_STREAMS.c.key.like("q:%")).order_by(_STREAMS.c.key))


def _rows(key: str, seq: int = 1) -> list[dict]:
    return [{"key": key, "seq": seq, "head": "x"}]


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(_STREAMS).where(_STREAMS.c.key.like("q:%")))


def _spy(monkeypatch) -> list[tuple[str, int]]:
    """Record each executemany on the cursor: (the statement's first words, rows)."""
    calls: list[tuple[str, int]] = []
    real = fastsql._run

    def run(conn, plan, params, *, many, fetch):
        if many:
            calls.append((plan.sql.split("(")[0].strip(), len(params)))
        return real(conn, plan, params, many=many, fetch=fetch)
    monkeypatch.setattr(fastsql, "_run", run)
    return calls


def test_queued_rows_run_together_before_the_next_statement(sessions, monkeypatch):
    calls = _spy(monkeypatch)
    with sessions.begin() as session:
        for n in range(3):
            _INSERT.later(session, _rows(f"q:{n}"), rank=1)
        assert calls == []  # nothing ran yet
        assert [key for key, _seq in _KEYS.all(session)] == ["q:0", "q:1", "q:2"]  # a read on the cursor sees them
        assert calls == [("INSERT INTO audit_stream", 3)]


@pytest.mark.parametrize("read", ["orm select", "orm get", "commit"])
def test_an_orm_read_or_the_commit_runs_them_first(sessions, read):
    with sessions.begin() as session:
        _INSERT.later(session, _rows("q:a"), rank=1)
        if read == "orm select":
            assert _count(session) == 1
        elif read == "orm get":
            assert session.get(AuditStream, "q:a").seq == 1
    with sessions.begin() as session:
        assert _count(session) == 1


def test_they_run_in_rank_order_whatever_order_they_were_queued_in(sessions):
    with sessions.begin() as session:
        _INSERT.execute(session, _rows("q:old")[0])
    with sessions.begin() as session:
        _INSERT.later(session, _rows("q:old", seq=2), rank=2)  # queued first, runs second
        _DELETE.later(session, [{"b_key": "q:old"}], rank=1)
    with sessions.begin() as session:
        assert _KEYS.all(session) == [("q:old", 2)]


def test_a_rank_belongs_to_one_statement(sessions):
    with sessions.begin() as session:
        _INSERT.later(session, _rows("q:a"), rank=1)
        with pytest.raises(ValueError, match="rank 1 is taken"):
            _DELETE.later(session, [{"b_key": "q:a"}], rank=1)
        session.rollback()


def test_an_exact_update_that_misses_a_row_fails_the_transaction(sessions):
    with sessions.begin() as session:
        _INSERT.execute(session, _rows("q:a")[0])
    with pytest.raises(QueuedWriteFailed, match="1 of 2 rows changed meanwhile") as failed, \
            sessions.begin() as session:
        _MOVE.later(session, [{"b_key": "q:a", "b_seq": 1, "seq": 5}, {"b_key": "q:a", "b_seq": 4, "seq": 6}],
                    rank=1, exact=True)
    assert isinstance(failed.value.error, StaleDataError)
    with sessions.begin() as session:
        assert _KEYS.all(session) == [("q:a", 1)]  # rolled back whole


def test_a_rollback_drops_them_and_the_sessions_next_transaction_starts_clean(sessions):
    with sessions() as session:  # one session, two transactions (as a web request after a failed write)
        session.begin()
        _INSERT.later(session, _rows("q:a"), rank=1)
        session.rollback()
        with session.begin():
            _INSERT.execute(session, _rows("q:b")[0])  # would run the dropped rows first
        with session.begin():
            assert [key for key, _seq in _KEYS.all(session)] == ["q:b"]


def test_a_savepoint_does_not_take_what_was_queued_before_it(sessions):
    with sessions.begin() as session:
        _INSERT.later(session, _rows("q:before"), rank=1)
        savepoint = session.begin_nested()
        _INSERT.execute(session, _rows("q:inside")[0])
        savepoint.rollback()
    with sessions.begin() as session:
        assert [key for key, _seq in _KEYS.all(session)] == ["q:before"]


def test_rows_naming_other_columns_run_as_their_own_statement(sessions):
    with sessions.begin() as session:
        _INSERT.execute(session, _rows("q:a")[0])
        _INSERT.execute(session, _rows("q:b")[0])
    with sessions.begin() as session:
        _MOVE.later(session, [{"b_key": "q:a", "b_seq": 1, "seq": 5}], rank=1, exact=True)
        _MOVE.later(session, [{"b_key": "q:b", "b_seq": 1, "seq": 6, "head": "y"}], rank=1, exact=True)
    with sessions.begin() as session:
        assert session.execute(select(_STREAMS.c.key, _STREAMS.c.seq, _STREAMS.c.head).where(
            _STREAMS.c.key.like("q:%")).order_by(_STREAMS.c.key)).all() == [("q:a", 5, "x"), ("q:b", 6, "y")]


def test_an_executemany_refuses_rows_naming_other_columns(sessions):
    with sessions.begin() as session, pytest.raises(ValueError, match="must name the same columns"):
        _INSERT.executemany(session, [*_rows("q:a"), {"key": "q:b", "seq": 1}])


def test_inside_a_savepoint_rows_run_at_once_and_its_rollback_undoes_them(sessions):
    with sessions.begin() as session:
        savepoint = session.begin_nested()
        _INSERT.later(session, _rows("q:inside"), rank=1)
        assert "polku_fast_later" not in session.info
        savepoint.rollback()
        _INSERT.later(session, _rows("q:after"), rank=1)
    with sessions.begin() as session:
        assert [key for key, _seq in _KEYS.all(session)] == ["q:after"]
