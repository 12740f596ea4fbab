"""Sign-in state kept in the database, so every web process sees the same: sign-in sessions,
failed sign-ins (for throttling) and forms stashed when a sign-in expired (restored after
signing in again).

A sign-in session is a `UserSession` row. The browser's cookie holds a random token; the row's id
is the token's SHA-256, so a copy of the database gives no usable cookie. A session is live while
it has not been ended (sign-out, password or role change, deactivation, an admin), its absolute
end has not passed and it has been used within the idle limit.

No Flask here; `webui/auth.py`, `webui/throttle.py` and `webui/stash.py` call these with the
request's session, the CLI and `engine.users` with theirs.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from . import audit
from .db import column_length
from .fastsql import Fast, adopt
from .models import LoginFailure, StashedForm, User, UserSession

AUDIT_STREAM = "signin"
KEEP_FAILURES = timedelta(days=1)
KEEP_ENDED_SESSIONS = timedelta(days=30)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session


class EndReason(enum.StrEnum):
    SIGNED_OUT = "signed_out"
    EXPIRED = "expired"  # the absolute lifetime passed
    IDLE = "idle"
    PASSWORD_CHANGED = "password_changed"
    ROLES_CHANGED = "roles_changed"
    DEACTIVATED = "deactivated"
    ENDED_BY_ADMIN = "ended_by_admin"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user_id: int, *, now: datetime, lifetime: timedelta,
                  user_agent: str | None = None, address: str | None = None) -> str:
    """Open a sign-in session for a user; return the token for the cookie (only its hash is kept)."""
    session.execute(delete(UserSession).where(UserSession.expires_at < now - KEEP_ENDED_SESSIONS))
    token = secrets.token_urlsafe(32)
    session.add(UserSession(id=_digest(token), user_id=user_id, created_at=now, last_seen_at=now,
                            expires_at=now + lifetime, user_agent=(user_agent or "")[:300] or None,
                            address=(address or "")[:100] or None))
    return token


def find_session(session: Session, token: str) -> UserSession | None:
    """Return the session row a cookie's token names, live or not, or None."""
    return session.get(UserSession, _digest(token)) if token else None


_SESSIONS, _USERS = cast(Table, UserSession.__table__), cast(Table, User.__table__)
_USER_AT = len(_SESSIONS.c)  # the sign-in's row: the session's columns, the user's, then `also`
_ALSO_AT = _USER_AT + len(_USERS.c)


def signin_statement(*also: Any) -> Fast:
    """Return the statement `find_session_and_user` runs: the session row a cookie's token names, its
    user and the values of `also`, in one round trip, on the cursor (`engine.fastsql`).

    `also`: scalar subqueries every page needs (the user's unread notices, the newest version id),
    which may refer to `User`. Build it once and pass it on every request: building a statement and
    its cache key cost more than running this one on SQLite, and SQLAlchemy's execution and loading
    of the two rows as much again as the cursor and `fastsql.adopt`.
    """
    return Fast(select(*_SESSIONS.c, *_USERS.c, *also).outerjoin(_USERS, _USERS.c.id == _SESSIONS.c.user_id)
                .where(_SESSIONS.c.id == bindparam("digest")))


_SESSION_AND_USER = signin_statement()


def find_session_and_user(session: Session, token: str, statement: Fast = _SESSION_AND_USER
                          ) -> tuple[UserSession | None, User | None, tuple[Any, ...]]:
    """Return the session row a cookie's token names (live or not), its user and the values of the
    statement's other columns (`signin_statement(*also)`; none by default), read in one statement.

    Both rows are the session's objects, as `session.get` would give them (a change is flushed).
    """
    if not token:
        return None, None, ()
    found = statement.first(session, {"digest": _digest(token)}, autoflush=True)  # a pending row counts
    if found is None:
        return None, None, ()
    row = adopt(session, UserSession, found[:_USER_AT])
    user_id = found[_USER_AT]  # None: the user row is gone (an outer join)
    user = None if user_id is None else adopt(session, User, found[_USER_AT:_ALSO_AT])
    return row, user, tuple(found[_ALSO_AT:])


def why_not_live(row: UserSession, *, now: datetime, idle: timedelta) -> EndReason | None:
    """Return why a session no longer lets its user in, or None while it is live."""
    if row.ended_at is not None:
        return EndReason(row.ended_reason or EndReason.SIGNED_OUT)
    if now >= row.expires_at:
        return EndReason.EXPIRED
    if now - row.last_seen_at > idle:
        return EndReason.IDLE
    return None


def touch_session(row: UserSession, *, now: datetime) -> None:
    """Note that a live session was used now (written at most once a minute)."""
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now


def end_session(row: UserSession, reason: EndReason, *, now: datetime) -> None:
    """End one session (kept as ended, so its cookie can never come back)."""
    if row.ended_at is None:
        row.ended_at, row.ended_reason = now, str(reason)


def end_user_sessions(session: Session, user_id: int, reason: EndReason, *, now: datetime) -> int:
    """End every session of a user that has not ended yet; return how many were still live."""
    live = session.scalar(select(func.count()).select_from(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at.is_(None), UserSession.expires_at > now)) or 0
    session.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
                    .values(ended_at=now, ended_reason=str(reason)))
    return live


def live_sessions(session: Session, user_id: int, *, now: datetime, idle: timedelta) -> list[UserSession]:
    """Return a user's live sessions, most recently used first."""
    query = (select(UserSession)
             .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None),
                    UserSession.expires_at > now, UserSession.last_seen_at >= now - idle)
             .order_by(UserSession.last_seen_at.desc()))
    return list(session.scalars(query))


def failures_since(session: Session, key: str, since: datetime) -> int:
    """Count the failed sign-ins of a key since an instant."""
    query = select(func.count(LoginFailure.id)).where(LoginFailure.key == key, LoginFailure.at > since)
    return session.scalar(query) or 0


def recent_failures(session: Session, key: str, since: datetime) -> tuple[int, datetime | None]:
    """Return how many failed sign-ins a key has had since an instant, and when the last one was."""
    query = select(func.count(LoginFailure.id), func.max(LoginFailure.at)).where(
        LoginFailure.key == key, LoginFailure.at > since)
    count, last = session.execute(query).one()
    return count or 0, last


def record_failure(session: Session, key: str, at: datetime) -> None:
    """Count one failed sign-in (and forget failures older than a day)."""
    session.execute(delete(LoginFailure).where(LoginFailure.at < at - KEEP_FAILURES))
    session.add(LoginFailure(key=key, at=at))


def audit_attempt(session: Session, kind: audit.EventKind, username: str, address: str, *, now: datetime,
                  wait: timedelta | None = None) -> None:
    """Record a failed or throttled sign-in in the `signin` audit stream."""
    data: dict[str, Any] = {"username": username[:80], "address": address[:100]}
    if wait is not None:
        data["wait_seconds"] = max(1, round(wait.total_seconds()))
    audit.append(session, kind, actor=username[:80] or "-", stream=AUDIT_STREAM, data=data, at=now)


def clear_failures(session: Session, key: str) -> None:
    """Forget a key's failures after a successful sign-in."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))


STASH_PATH_MAX = column_length(StashedForm, "path")  # no page's path is longer


def stash_form(session: Session, owner_id: int, path: str, values: dict[str, Any], *, now: datetime,
               ttl: timedelta) -> str:
    """Keep a form's values for their owner and page; return the token that finds them again."""
    session.execute(delete(StashedForm).where(StashedForm.expires_at <= now))
    token = secrets.token_urlsafe(24)
    session.add(StashedForm(token=token, owner_id=owner_id, path=path, values=values, expires_at=now + ttl))
    return token


def take_form(session: Session, token: str, owner_id: int, path: str, *, now: datetime) -> dict[str, Any] | None:
    """Return and forget the values stashed under a token, if they are this user's for this page."""
    entry = session.get(StashedForm, token)
    if entry is None or entry.owner_id != owner_id or entry.path != path:
        return None
    values = None if entry.expires_at <= now else dict(entry.values)
    session.delete(entry)
    return values
