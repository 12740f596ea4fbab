"""Form stash: what a user typed into a form when their sign-in had expired, kept until they are back.

Entries live in the database (`engine.signin`), so the user gets them back from whichever server
process answers after sign-in. They are tied to the user who typed them and to the page's path
and expire after `ttl_seconds`; the browser only holds a random token, so typed personal data
never travels in the cookie. `webui.auth.stash_form` and `restore_form` use it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engine import signin
from engine.db import utcnow


class FormStash:
    """Keep stashed forms by token."""

    def __init__(self, ttl_seconds: float = 2 * 3600, clock: Callable[[], datetime] = utcnow):
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock

    def put(self, session: Session, owner_id: int, path: str, values: dict[str, list[str]]) -> str:
        """Keep a form's values; return the token that finds them again."""
        return signin.stash_form(session, owner_id, path, values, now=self.clock(), ttl=self.ttl)

    def take(self, session: Session, token: str, owner_id: int, path: str) -> dict[str, list[str]] | None:
        """Return and forget the values stashed under `token` if they belong to this user and path."""
        return signin.take_form(session, token, owner_id, path, now=self.clock())
