"""Login throttling: after `limit` failed sign-ins for one username from one address, refuse for a while.

The failures live in the database (`engine.signin`), so every server process counts the same and
a restart forgets nothing. The clock is passed in so tests can move time without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engine import signin
from engine.db import utcnow

Key = tuple[str, str]


def _text(key: Key) -> str:
    return f"{key[0]}\x1f{key[1]}"[:300]


class LoginThrottle:
    """Count recent sign-in failures per (username, address)."""

    def __init__(self, limit: int = 5, window_seconds: float = 15 * 60,
                 clock: Callable[[], datetime] = utcnow):
        self.limit = limit
        self.window = timedelta(seconds=window_seconds)
        self.clock = clock

    def blocked(self, session: Session, key: Key) -> bool:
        """Tell whether this key has used up its failures within the window."""
        return signin.failures_since(session, _text(key), self.clock() - self.window) >= self.limit

    def fail(self, session: Session, key: Key) -> None:
        """Count one failed sign-in."""
        signin.record_failure(session, _text(key), self.clock())

    def reset(self, session: Session, key: Key) -> None:
        """Forget the failures of a key after a successful sign-in."""
        signin.clear_failures(session, _text(key))
