"""Personal API tokens: made for a user (by themselves or an admin), stored hashed, shown once.

A token carries the roles of its owner or fewer, an expiry and a name. The REST API (`/api/v1`)
takes it as `Authorization: Bearer <secret>`; `authenticate` returns the token and its owner when
the secret is known, not revoked, not expired and the owner is active. What the token may do is
the intersection of its roles and the owner's roles *now* (an owner who loses a role loses it on
every token too). Making and revoking tokens is audited on the "users" stream.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, users
from .db import utcnow
from .errors import InvalidInput, NotAllowed, NotFound
from .models import ApiToken, User

__all__ = ["Caller", "authenticate", "create_token", "list_tokens", "owner_names", "require_role", "revoke_token",
           "token_dict"]

PREFIX = "polku_"
DEFAULT_DAYS = 90
MAX_DAYS = 366
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


@dataclass(frozen=True)
class Caller:
    """Who calls the API: the token's owner and the roles the token may use now."""

    token_id: int
    username: str
    roles: frozenset[str]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(session: Session, username: str, *, by: str, name: str = "", roles: Iterable[str] | None = None,
                 expires_days: int = DEFAULT_DAYS, now: datetime | None = None) -> tuple[ApiToken, str]:
    """Make a token for `username`; return the row and the secret (shown once, never stored).

    Raises:
        UserNotFound: no such user.
        InvalidInput: roles the owner does not hold, an unknown role, or an expiry outside 1..366 days.
    """
    now = now or utcnow()
    owner = users.get_user(session, username)
    if not owner.active:
        raise InvalidInput(f"user {owner.username} is not active")
    if not 1 <= expires_days <= MAX_DAYS:
        raise InvalidInput(f"a token expires after 1 to {MAX_DAYS} days, not {expires_days}")
    wanted = set(owner.role_set) if roles is None else {r.strip() for r in roles if r.strip()}
    unknown = wanted - set(users.ROLES)
    if unknown:
        raise InvalidInput(f"unknown roles: {', '.join(sorted(unknown))}")
    extra = wanted - owner.role_set
    if extra:
        raise InvalidInput(f"a token can have only its owner's roles; {owner.username} does not hold "
                           f"{', '.join(sorted(extra))}")
    if not wanted:
        raise InvalidInput("a token needs at least one role")
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_hash=_hash(secret), prefix=secret[:12], owner_id=owner.id,
                   name=(name or "").strip()[:200] or "API", roles=",".join(users.normalize_roles(wanted)),
                   created_at=now, created_by=by[:200], expires_at=now + timedelta(days=expires_days))
    session.add(row)
    session.flush()
    audit.append(session, audit.EventKind.USER_CHANGED, actor=by, stream=users.AUDIT_STREAM, at=now,
                 data={"user": owner.username, "action": "api_token_created", "token": row.id,
                       "name": row.name, "roles": row.roles, "expires_at": row.expires_at.isoformat()})
    return row, secret


def list_tokens(session: Session, username: str | None = None) -> list[ApiToken]:
    """List tokens (of one user, or all), newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if username is not None:
        query = query.where(ApiToken.owner_id == users.get_user(session, username).id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, *, by: str, owner: str | None = None,
                 now: datetime | None = None) -> ApiToken:
    """Revoke a token at once; with `owner`, only a token of that user (others are not found).

    Raises:
        NotFound: no such token (or not the owner's).
    """
    now = now or utcnow()
    row = session.get(ApiToken, token_id)
    if row is None or (owner is not None and row.owner_id != users.get_user(session, owner).id):
        raise NotFound(f"no API token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
        user = session.get(User, row.owner_id)
        audit.append(session, audit.EventKind.USER_CHANGED, actor=by, stream=users.AUDIT_STREAM, at=now,
                     data={"user": user.username if user else None, "action": "api_token_revoked", "token": row.id})
    return row


def authenticate(session: Session, secret: str, *, now: datetime | None = None) -> Caller | None:
    """Return the caller a secret stands for, or None (unknown, revoked, expired, owner inactive)."""
    now = now or utcnow()
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    owner = session.get(User, row.owner_id)
    if owner is None or not owner.active:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
    return Caller(row.id, owner.username, frozenset(row.role_set & owner.role_set))


def require_role(caller: Caller, *roles: str) -> None:
    """Refuse a call whose token holds none of `roles`.

    Raises:
        NotAllowed: the token's roles do not allow it.
    """
    if not caller.roles & set(roles):
        raise NotAllowed(f"this needs one of the roles {', '.join(roles)}; the token has "
                         f"{', '.join(sorted(caller.roles)) or 'none'}")


def token_dict(row: ApiToken, owner: str | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """Return a token as JSON-able data (never the secret)."""
    now = now or utcnow()
    state = "revoked" if row.revoked_at else "expired" if row.expires_at <= now else "active"
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "owner": owner, "roles": sorted(row.role_set),
            "created_at": row.created_at.isoformat(), "created_by": row.created_by,
            "expires_at": row.expires_at.isoformat(),
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None, "state": state}


def owner_names(session: Session, rows: list[ApiToken]) -> dict[int, str]:
    """Return {owner id: username} for token rows."""
    ids = {r.owner_id for r in rows}
    return {u.id: u.username for u in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
