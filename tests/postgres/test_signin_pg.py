"""Sign-in sessions and throttling on PostgreSQL: revocation, lifetimes, backoff per account and address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import signin, users
from webui.throttle import Backoff, LoginThrottle

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)


def test_sessions_end_on_password_change_and_lifetimes(sessions):
    with sessions.begin() as s:
        user = users.add_user(s, "pg-aino", "salasana-123", ["expert"])
        token = signin.start_session(s, user.id, now=T0, lifetime=timedelta(hours=12), address="10.0.0.1")
        other = signin.start_session(s, user.id, now=T0, lifetime=timedelta(hours=12))
    with sessions.begin() as s:
        row = signin.find_session(s, token)
        assert signin.why_not_live(row, now=T0 + timedelta(minutes=29), idle=IDLE) is None
        assert signin.why_not_live(row, now=T0 + timedelta(minutes=31), idle=IDLE) == "idle"
        assert signin.why_not_live(row, now=T0 + timedelta(hours=12), idle=IDLE) == "expired"
        assert sorted(r.address or "" for r in signin.live_sessions(s, user.id, now=T0, idle=IDLE)) == ["", "10.0.0.1"]
        users.set_password(s, "pg-aino", "uusi-salasana", by="pg-aino")
    with sessions.begin() as s:
        for t in (token, other):
            row = signin.find_session(s, t)
            assert signin.why_not_live(row, now=T0, idle=IDLE) == "password_changed"
        assert signin.live_sessions(s, user.id, now=T0, idle=IDLE) == []


def test_throttle_counts_per_account_and_per_address(sessions):
    throttle = LoginThrottle(account=Backoff(2, 10, 100), address=Backoff(3, 10, 100), window_seconds=600)
    with sessions.begin() as s:
        throttle.fail(s, "pg-eero", "10.0.0.9", T0)
        throttle.fail(s, "pg-eero", "10.0.0.9", T0)
    with sessions.begin() as s:
        assert throttle.wait(s, "pg-eero", "10.0.0.8", T0) == timedelta(seconds=10)
        assert throttle.wait(s, "pg-eero", "10.0.0.8", T0 + timedelta(seconds=10)) == timedelta(0)
        assert throttle.wait(s, "pg-someone", "10.0.0.9", T0) == timedelta(0)
        throttle.fail(s, "pg-someone", "10.0.0.9", T0)
    with sessions.begin() as s:
        assert throttle.wait(s, "pg-someone", "10.0.0.9", T0) == timedelta(seconds=10)
