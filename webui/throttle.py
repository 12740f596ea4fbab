"""Sign-in throttling: failures counted per account and per client address, each with its own backoff.

After `free` failures within the window, a key (an account, or an address) must wait before its
next attempt: `first_wait` seconds, doubling with every further failure, at most `max_wait`. A
waiting attempt is refused without checking the password and does not count as a failure, so
nobody can lock an account out for longer than `max_wait`; the right password from anywhere works
once the wait is over. Per address, spraying passwords over many accounts is slowed the same way.
Success forgets the account's failures, not the address's (one valid account must not reset a
sprayer's count).

The failures live in the database (`engine.signin`), so every server process counts the same and
a restart forgets nothing. Which address a request comes from is `request.remote_addr`, which
`POLKU_TRUSTED_PROXIES` (werkzeug's `ProxyFix`) sets from X-Forwarded-For behind a reverse proxy.
The caller passes the time, so tests move it without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engine import signin


@dataclass(frozen=True)
class Backoff:
    """How many failures are free and how the wait grows after them."""

    free: int
    first_wait: float  # seconds
    max_wait: float  # seconds

    def wait_after(self, failures: int) -> timedelta:
        """Return how long to wait after the last of `failures` failures."""
        if failures < self.free:
            return timedelta(0)
        return timedelta(seconds=min(self.max_wait, self.first_wait * 2 ** min(failures - self.free, 30)))


ACCOUNT = Backoff(free=5, first_wait=15, max_wait=15 * 60)
ADDRESS = Backoff(free=10, first_wait=15, max_wait=15 * 60)


def _account_key(username: str) -> str:
    return f"account\x1f{username}"[:300]


def _address_key(address: str) -> str:
    return f"address\x1f{address}"[:300]


class LoginThrottle:
    """Count recent sign-in failures per account and per address; tell how long an attempt must wait."""

    def __init__(self, account: Backoff = ACCOUNT, address: Backoff = ADDRESS, window_seconds: float = 3600):
        self.rules = ((_account_key, account), (_address_key, address))
        self.window = timedelta(seconds=window_seconds)

    def wait(self, session: Session, username: str, address: str, now: datetime) -> timedelta:
        """Return how long this attempt must still wait (zero: check the password)."""
        longest = timedelta(0)
        for (key_of, backoff), value in zip(self.rules, (username, address), strict=True):
            count, last = signin.recent_failures(session, key_of(value), now - self.window)
            if last is not None:
                longest = max(longest, last + backoff.wait_after(count) - now)
        return longest

    def fail(self, session: Session, username: str, address: str, now: datetime) -> None:
        """Count one failed sign-in against the account and the address."""
        for (key_of, _backoff), value in zip(self.rules, (username, address), strict=True):
            signin.record_failure(session, key_of(value), now)

    def succeed(self, session: Session, username: str) -> None:
        """Forget the account's failures after a successful sign-in (the address keeps its count)."""
        signin.clear_failures(session, _account_key(username))
