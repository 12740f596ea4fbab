"""Sign-in state kept in the database, so every web process sees the same: failed sign-ins
(for throttling) and forms stashed when a sign-in expired (restored after signing in again).

No Flask here; `webui/throttle.py` and `webui/stash.py` call these with the request's session.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import LoginFailure, StashedForm

KEEP_FAILURES = timedelta(days=1)


def failures_since(session: Session, key: str, since: datetime) -> int:
    """Count the failed sign-ins of a key since an instant."""
    query = select(func.count(LoginFailure.id)).where(LoginFailure.key == key, LoginFailure.at > since)
    return session.scalar(query) or 0


def record_failure(session: Session, key: str, at: datetime) -> None:
    """Count one failed sign-in (and forget failures older than a day)."""
    session.execute(delete(LoginFailure).where(LoginFailure.at < at - KEEP_FAILURES))
    session.add(LoginFailure(key=key, at=at))


def clear_failures(session: Session, key: str) -> None:
    """Forget a key's failures after a successful sign-in."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))


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
