"""Login throttling: after `limit` failed sign-ins for one username from one address, refuse for a while.

Counts live in this process's memory: a restart forgets them, and each server process counts on
its own. The clock is passed in so tests can move time without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]


class LoginThrottle:
    """Remember recent sign-in failures per (username, address)."""

    def __init__(self, limit: int = 5, window_seconds: float = 15 * 60,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._failures: dict[Key, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: Key, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def blocked(self, key: Key) -> bool:
        """Tell whether this key has used up its failures within the window."""
        with self._lock:
            return len(self._recent(key, self.clock())) >= self.limit

    def fail(self, key: Key) -> None:
        """Count one failed sign-in."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            if len(self._failures) > 10_000:  # keep memory bounded under a spray of usernames
                for other in list(self._failures):
                    self._recent(other, now)

    def reset(self, key: Key) -> None:
        """Forget the failures of a key after a successful sign-in."""
        with self._lock:
            self._failures.pop(key, None)
