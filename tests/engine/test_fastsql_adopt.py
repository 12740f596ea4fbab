"""engine.fastsql.adopt: a row read on the cursor becomes the session's object, as the ORM's loader
would make it: persistent (a change is flushed as an update, a refresh reads it again), the same
object the session already holds for that key, and that object's values replaced only when it is
expired or a fresh read is asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Table, bindparam, inspect, select

from engine import fastsql, signin, users
from engine.fastsql import Fast
from engine.models import User, UserSession

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_SESSIONS = cast(Table, UserSession.__table__)
_ROW = Fast(select(*_SESSIONS.c).where(_SESSIONS.c.id == bindparam("b_id")))


def _signed_in(sessions) -> tuple[str, str]:
    """Return a sign-in's token and its row's id, committed."""
    with sessions.begin() as s:
        user = users.add_user(s, "aino", "salasana-123", ["expert", "supervisor"])
        token = signin.start_session(s, user.id, now=NOW, lifetime=timedelta(hours=8))
        s.flush()
        return token, signin.find_session(s, token).id


def test_an_adopted_row_is_persistent_and_its_change_is_flushed_as_an_update(sessions):
    _token, row_id = _signed_in(sessions)
    with sessions.begin() as s:
        row = fastsql.adopt(s, UserSession, _ROW.first(s, {"b_id": row_id}))
        assert inspect(row).persistent and s.get(UserSession, row_id) is row
        assert (row.created_at, row.expires_at, row.ended_at) == (NOW, NOW + timedelta(hours=8), None)
        assert row.created_at.tzinfo is not None  # the column's result type ran (UTC, aware)
        assert not s.dirty
        row.last_seen_at = NOW + timedelta(minutes=5)
    with sessions.begin() as s:
        assert s.get(UserSession, row_id).last_seen_at == NOW + timedelta(minutes=5)


def test_the_object_the_session_holds_is_given_back_as_it_is_unless_expired_or_refreshed(sessions):
    _token, row_id = _signed_in(sessions)
    with sessions.begin() as s:
        held = s.get(UserSession, row_id)
        held.address = "10.0.0.9"  # a change of this transaction, not yet flushed
        values = _ROW.first(s, {"b_id": row_id})
        assert fastsql.adopt(s, UserSession, values) is held and held.address == "10.0.0.9"
        s.flush()
        s.expire(held)
        assert fastsql.adopt(s, UserSession, values) is held
        assert "address" not in inspect(held).unloaded and held.address is None  # the row's value, no select
        held.address = "10.0.0.9"
        assert fastsql.adopt(s, UserSession, values, refresh=True).address is None
        s.rollback()


def test_the_sign_in_gives_the_sessions_own_objects_of_its_row_and_user(sessions):
    token, row_id = _signed_in(sessions)
    with sessions.begin() as s:
        row, user, also = signin.find_session_and_user(s, token)
        assert also == () and s.get(UserSession, row_id) is row and s.get(User, row.user_id) is user
        assert (user.username, user.role_set, user.active) == ("aino", {"expert", "supervisor"}, True)
        signin.touch_session(row, now=NOW + signin.TOUCH_EVERY)
    with sessions.begin() as s:
        assert s.get(UserSession, row_id).last_seen_at == NOW + signin.TOUCH_EVERY
        assert signin.find_session_and_user(s, "not-a-token") == (None, None, ())


def test_an_expired_objects_change_made_since_is_kept(sessions):
    _token, row_id = _signed_in(sessions)
    with sessions.begin() as s:
        held = s.get(UserSession, row_id)
        s.expire(held)
        held.address = "10.0.0.7"  # changed after the expiry, not flushed: the ORM's loader keeps it
        values = _ROW.first(s, {"b_id": row_id})
        assert fastsql.adopt(s, UserSession, values) is held
        assert (held.address, held.expires_at) == ("10.0.0.7", NOW + timedelta(hours=8))
    with sessions.begin() as s:
        assert s.get(UserSession, row_id).address == "10.0.0.7"  # flushed as an update


def test_a_class_whose_key_is_not_its_first_column_alone_is_refused(sessions):
    from engine.models import Variable

    with sessions.begin() as s, pytest.raises(TypeError, match="primary key"):
        fastsql.adopt(s, Variable, (1, "amount", 5, NOW))


def test_the_sign_in_sees_this_sessions_pending_rows_as_a_query_would(sessions):
    token, row_id = _signed_in(sessions)
    with sessions.begin() as s:
        s.delete(s.get(UserSession, row_id))  # not yet flushed
        assert signin.find_session_and_user(s, token) == (None, None, ())
        s.rollback()
    with sessions.begin() as s:
        other = signin.start_session(s, s.get(UserSession, row_id).user_id, now=NOW, lifetime=timedelta(hours=1))
        row, user, _also = signin.find_session_and_user(s, other)  # added, not yet flushed
        assert row is not None and row.expires_at == NOW + timedelta(hours=1) and user.username == "aino"


def test_a_row_of_some_columns_leaves_the_others_unloaded_and_must_lead_with_the_key(sessions):
    _token, row_id = _signed_in(sessions)
    some = ("id", "user_id", "expires_at")
    with sessions.begin() as s:
        values = s.execute(select(_SESSIONS.c.id, _SESSIONS.c.user_id, _SESSIONS.c.expires_at)
                           .where(_SESSIONS.c.id == row_id)).one()
        row = fastsql.adopt(s, UserSession, tuple(values), keys=some)
        assert "created_at" not in row.__dict__ and row.expires_at == NOW + timedelta(hours=8)
        assert row.created_at == NOW  # an unloaded column is read on first use
        with pytest.raises(ValueError, match="primary key first"):
            fastsql.adopt(s, UserSession, (values[1], values[0]), keys=("user_id", "id"))


def test_a_select_on_the_cursor_flushes_first_only_when_asked(sessions):
    _token, row_id = _signed_in(sessions)
    with sessions() as s:
        s.get(UserSession, row_id).ended_reason = "signed_out"  # not flushed
        ended = Fast(select(_SESSIONS.c.ended_reason).where(_SESSIONS.c.id == bindparam("b_id")))
        assert ended.first(s, {"b_id": row_id}) == (None,)
        assert ended.first(s, {"b_id": row_id}, autoflush=True) == ("signed_out",)
        with s.no_autoflush:  # as the ORM: not within no_autoflush
            s.get(UserSession, row_id).ended_reason = "idle"
            assert ended.first(s, {"b_id": row_id}, autoflush=True) == ("signed_out",)
        s.rollback()


def test_an_adopted_row_belongs_to_the_session_as_a_loaded_one_does(sessions):
    from sqlalchemy.orm import object_session

    _token, row_id = _signed_in(sessions)
    with sessions.begin() as s:
        row = fastsql.adopt(s, UserSession, _ROW.first(s, {"b_id": row_id}))
        assert object_session(row) is s and row in s and not s.new
        assert fastsql.adopt(s, UserSession, _ROW.first(s, {"b_id": row_id})) is row
        s.expunge(row)  # detached as a loaded row is
        assert object_session(row) is None and s.get(UserSession, row_id) is not row
    with sessions.begin() as s:
        row = fastsql.adopt(s, UserSession, _ROW.first(s, {"b_id": row_id}))
        s.delete(row)  # deleted as a loaded row is: the flush deletes it
    with sessions.begin() as s:
        assert s.get(UserSession, row_id) is None
