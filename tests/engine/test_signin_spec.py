"""Sign-in sessions, failures and stashed forms (engine.signin), stated from what they promise.

Each expectation comes from the module's contract, not from reading its code: a session is live
until ended, until its absolute end (that instant included) and while it was used within the idle
limit; ended sessions are kept 30 days past their end, failures a day; a stashed form is given back
once, to its owner, on its page, before it expires.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import audit, signin, users
from engine.models import AuditEvent, LoginFailure, StashedForm, UserSession

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)
DAY = timedelta(hours=12)


@pytest.fixture
def aino(session):
    return users.add_user(session, "aino", "salasana-123", ["expert"])


def _start(session, user, now=NOW, lifetime=DAY, **kw):
    token = signin.start_session(session, user.id, now=now, lifetime=lifetime, **kw)
    session.flush()
    return token, signin.find_session(session, token)


def _rows(session):
    return session.scalar(select(func.count()).select_from(UserSession))


def test_a_new_session_row_holds_its_times_and_the_token_hash(session, aino):
    token, row = _start(session, aino, user_agent="Firefox", address="10.0.0.1")
    assert row.id == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 40 and token != _start(session, aino)[0]
    assert (row.user_id, row.created_at, row.last_seen_at, row.expires_at) == (aino.id, NOW, NOW, NOW + DAY)
    assert (row.ended_at, row.ended_reason, row.user_agent, row.address) == (None, None, "Firefox", "10.0.0.1")


def test_user_agent_and_address_are_cut_to_their_columns_and_empty_is_none(session, aino):
    _token, row = _start(session, aino, user_agent="A" * 400, address="1" * 150)
    assert (row.user_agent, row.address) == ("A" * 300, "1" * 100)
    _token, row = _start(session, aino, user_agent="", address="")
    assert (row.user_agent, row.address) == (None, None)
    _token, row = _start(session, aino)
    assert (row.user_agent, row.address) == (None, None)


def test_starting_a_session_forgets_sessions_ended_more_than_30_days_ago(session, aino):
    _start(session, aino, now=NOW - timedelta(days=31), lifetime=timedelta(hours=1))  # ended 30 d 23 h ago
    _start(session, aino, now=NOW - timedelta(days=30), lifetime=timedelta(hours=1))  # ended 29 d 23 h ago
    _start(session, aino, now=NOW - timedelta(days=30, hours=1), lifetime=timedelta(hours=1))  # exactly 30 d
    assert _rows(session) == 3
    _start(session, aino)
    assert _rows(session) == 3  # the oldest is gone; the one that ended exactly 30 days ago is kept


def test_a_session_is_live_until_its_end_instant_and_idles_after_the_limit(session, aino):
    _token, row = _start(session, aino, lifetime=timedelta(minutes=40))
    assert signin.why_not_live(row, now=NOW + IDLE, idle=IDLE) is None  # exactly the idle limit
    assert signin.why_not_live(row, now=NOW + IDLE + timedelta(seconds=1), idle=IDLE) == signin.EndReason.IDLE
    signin.touch_session(row, now=NOW + timedelta(minutes=30))
    assert signin.why_not_live(row, now=NOW + timedelta(minutes=40) - timedelta(seconds=1), idle=IDLE) is None
    assert signin.why_not_live(row, now=NOW + timedelta(minutes=40), idle=IDLE) == signin.EndReason.EXPIRED


def test_an_ended_session_tells_why_and_an_unknown_reason_reads_as_signed_out(session, aino):
    _token, row = _start(session, aino)
    signin.end_session(row, signin.EndReason.ROLES_CHANGED, now=NOW)
    assert signin.why_not_live(row, now=NOW, idle=IDLE) == signin.EndReason.ROLES_CHANGED
    row.ended_reason = None
    assert signin.why_not_live(row, now=NOW, idle=IDLE) == signin.EndReason.SIGNED_OUT


def test_ending_keeps_the_first_end(session, aino):
    _token, row = _start(session, aino)
    signin.end_session(row, signin.EndReason.SIGNED_OUT, now=NOW + timedelta(minutes=1))
    signin.end_session(row, signin.EndReason.ENDED_BY_ADMIN, now=NOW + timedelta(minutes=2))
    assert (row.ended_at, row.ended_reason) == (NOW + timedelta(minutes=1), "signed_out")


def test_use_is_written_once_a_minute_at_most(session, aino):
    _token, row = _start(session, aino)
    signin.touch_session(row, now=NOW + timedelta(seconds=59))
    assert row.last_seen_at == NOW
    signin.touch_session(row, now=NOW + timedelta(minutes=1))
    assert row.last_seen_at == NOW + timedelta(minutes=1)


def test_ending_a_users_sessions_counts_only_the_live_ones_and_ends_only_theirs(session, aino):
    eero = users.add_user(session, "eero", "salasana-123", ["expert"])
    _t1, live = _start(session, aino)
    _t2, past_end = _start(session, aino, now=NOW - DAY, lifetime=DAY)  # its end is now: not live
    _t3, ended = _start(session, aino)
    signin.end_session(ended, signin.EndReason.SIGNED_OUT, now=NOW - timedelta(minutes=5))
    _t4, other = _start(session, eero)
    session.flush()
    assert signin.end_user_sessions(session, aino.id, signin.EndReason.DEACTIVATED, now=NOW) == 1
    session.expire_all()
    assert (live.ended_at, live.ended_reason) == (NOW, "deactivated")
    assert (past_end.ended_at, past_end.ended_reason) == (NOW, "deactivated")
    assert (ended.ended_at, ended.ended_reason) == (NOW - timedelta(minutes=5), "signed_out")
    assert (other.ended_at, other.ended_reason) == (None, None)
    assert signin.end_user_sessions(session, aino.id, signin.EndReason.DEACTIVATED, now=NOW) == 0


def test_live_sessions_are_the_users_unended_unexpired_recently_used_ones_latest_first(session, aino):
    eero = users.add_user(session, "eero", "salasana-123", ["expert"])
    _t, older = _start(session, aino, now=NOW - timedelta(minutes=20))
    _t, newer = _start(session, aino, now=NOW - timedelta(minutes=10))
    _t, at_idle_edge = _start(session, aino, now=NOW - IDLE)  # used exactly the idle limit ago: live
    _start(session, aino, now=NOW - IDLE - timedelta(seconds=1))  # idle
    _start(session, aino, now=NOW - timedelta(minutes=5), lifetime=timedelta(minutes=5))  # its end is now
    _t, ended = _start(session, aino)
    signin.end_session(ended, signin.EndReason.SIGNED_OUT, now=NOW)
    _start(session, eero)
    session.flush()
    assert signin.live_sessions(session, aino.id, now=NOW, idle=IDLE) == [newer, older, at_idle_edge]


def test_failures_are_counted_per_key_after_the_instant(session):
    for minutes in (0, 10, 20):
        signin.record_failure(session, "account\x1faino", NOW + timedelta(minutes=minutes))
    signin.record_failure(session, "account\x1feero", NOW + timedelta(minutes=20))
    session.flush()
    assert signin.failures_since(session, "account\x1faino", NOW) == 2  # the one at NOW is not after it
    assert signin.failures_since(session, "account\x1faino", NOW - timedelta(seconds=1)) == 3
    assert signin.failures_since(session, "nobody", NOW) == 0
    assert signin.recent_failures(session, "account\x1faino", NOW) == (2, NOW + timedelta(minutes=20))
    assert signin.recent_failures(session, "account\x1faino", NOW + timedelta(minutes=20)) == (0, None)
    assert signin.recent_failures(session, "nobody", NOW) == (0, None)


def test_a_failure_forgets_failures_older_than_a_day_and_success_clears_one_key(session):
    signin.record_failure(session, "a", NOW - timedelta(days=1, seconds=1))
    signin.record_failure(session, "b", NOW - timedelta(days=1))  # exactly a day old: kept
    signin.record_failure(session, "b", NOW - timedelta(hours=1))
    session.flush()
    signin.record_failure(session, "c", NOW)
    session.flush()
    keys = sorted(session.scalars(select(LoginFailure.key)))
    assert keys == ["b", "b", "c"]
    signin.clear_failures(session, "b")
    session.flush()
    assert sorted(session.scalars(select(LoginFailure.key))) == ["c"]


def _signin_events(session):
    session.flush()
    query = select(AuditEvent).where(AuditEvent.stream == signin.AUDIT_STREAM).order_by(AuditEvent.id)
    return [(e.kind, e.actor, json.loads(e.data), e.at) for e in session.scalars(query)]


def test_attempts_are_audited_with_name_address_and_whole_seconds_of_wait(session):
    signin.audit_attempt(session, audit.EventKind.SIGNIN_FAILED, "aino", "10.0.0.1", now=NOW)
    signin.audit_attempt(session, audit.EventKind.SIGNIN_THROTTLED, "aino", "10.0.0.1", now=NOW,
                         wait=timedelta(seconds=14.6))
    signin.audit_attempt(session, audit.EventKind.SIGNIN_THROTTLED, "", "", now=NOW, wait=timedelta(seconds=0.2))
    signin.audit_attempt(session, audit.EventKind.SIGNIN_FAILED, "x" * 90, "1" * 120, now=NOW)
    assert _signin_events(session) == [
        ("signin_failed", "aino", {"username": "aino", "address": "10.0.0.1"}, NOW),
        ("signin_throttled", "aino", {"username": "aino", "address": "10.0.0.1", "wait_seconds": 15}, NOW),
        ("signin_throttled", "-", {"username": "", "address": "", "wait_seconds": 1}, NOW),
        ("signin_failed", "x" * 80, {"username": "x" * 80, "address": "1" * 100}, NOW),
    ]


def test_a_stashed_form_goes_back_once_to_its_owner_on_its_page(session):
    ttl = timedelta(minutes=10)
    token = signin.stash_form(session, 7, "/customers/1", {"name": ["Oy"]}, now=NOW, ttl=ttl)
    session.flush()
    assert session.get(StashedForm, token).expires_at == NOW + ttl
    assert signin.take_form(session, token, 8, "/customers/1", now=NOW) is None  # another user
    assert signin.take_form(session, token, 7, "/customers/2", now=NOW) is None  # another page
    assert signin.take_form(session, token, 7, "/customers/1", now=NOW + ttl - timedelta(seconds=1)) == {
        "name": ["Oy"]}
    session.flush()
    assert signin.take_form(session, token, 7, "/customers/1", now=NOW) is None  # only once
    assert signin.take_form(session, "no-such-token", 7, "/customers/1", now=NOW) is None


def test_a_stash_is_not_given_back_at_or_after_its_end_and_is_forgotten(session):
    ttl = timedelta(minutes=10)
    token = signin.stash_form(session, 7, "/p", {"a": ["1"]}, now=NOW, ttl=ttl)
    session.flush()
    assert signin.take_form(session, token, 7, "/p", now=NOW + ttl) is None
    session.flush()
    assert session.get(StashedForm, token) is None


def test_stashing_forgets_stashes_whose_end_has_come(session):
    ttl = timedelta(minutes=10)
    gone = signin.stash_form(session, 7, "/p", {}, now=NOW - ttl, ttl=ttl)  # ends exactly now
    kept = signin.stash_form(session, 7, "/p", {}, now=NOW - ttl + timedelta(seconds=1), ttl=ttl)
    session.flush()
    new = signin.stash_form(session, 7, "/p", {}, now=NOW, ttl=ttl)
    session.flush()
    session.expire_all()
    assert set(session.scalars(select(StashedForm.token))) == {kept, new}
    assert gone != kept != new


def test_the_sign_in_reads_its_row_user_and_the_pages_values_with_one_statement(session, aino):
    from engine import deploy, notices

    token, row = _start(session, aino)
    statement = signin.signin_statement(notices.unread_count_of_user(), deploy.last_version_id())
    found, user, (unread, newest) = signin.find_session_and_user(session, token, statement)
    assert (found, user, unread, newest) == (row, aino, 0, None)
    assert signin.find_session_and_user(session, token) == (row, aino, ())  # by default the row and user alone
    assert signin.find_session_and_user(session, "not-a-token", statement) == (None, None, ())
    assert signin.find_session_and_user(session, "", statement) == (None, None, ())