"""Form stash: what a user typed into a form when their sign-in had expired, kept until they are back.

Entries live in this process's memory, are tied to the user who typed them and to the page's
path, and expire after `ttl_seconds`. `webui.auth.stash_form` and `restore_form` use it; the
browser only holds a random token, so typed personal data never travels in the cookie.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One stashed form."""

    owner_id: int
    path: str
    values: dict[str, list[str]]
    expires: float


class FormStash:
    """Keep stashed forms by token."""

    def __init__(self, ttl_seconds: float = 2 * 3600, max_entries: int = 2000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def put(self, owner_id: int, path: str, values: dict[str, list[str]]) -> str:
        """Keep a form's values; return the token that finds them again."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = self.clock()
            for key in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[key]
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # drop the oldest
            self._entries[token] = Entry(owner_id, path, values, now + self.ttl)
        return token

    def take(self, token: str, owner_id: int, path: str) -> dict[str, list[str]] | None:
        """Return and forget the values stashed under `token` if they belong to this user and path."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or entry.expires <= self.clock():
                self._entries.pop(token, None)
                return None
            if entry.owner_id != owner_id or entry.path != path:
                return None
            del self._entries[token]
            return entry.values

    def __len__(self) -> int:
        return len(self._entries)
