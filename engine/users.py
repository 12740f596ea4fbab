"""User accounts: add, authenticate, change roles and passwords, list experts, seed demo users.

Passwords are hashed with werkzeug's scrypt (`generate_password_hash`); the plain text is never
stored or logged. Usernames are lowercase. Every change is recorded in the `users` audit stream
through `_record`; the caller owns the transaction. A new password, a change of roles and
deactivation end the user's sign-in sessions (`engine.signin`), so a copied cookie stops working.
Demo users are marked `demo`; production refuses to start while an active one exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit, signin
from .db import column_length, utcnow
from .errors import InvalidInput, UserNotFound
from .models import User

ROLES = ("expert", "supervisor", "designer", "auditor", "admin")
LOCALES = ("fi", "en")
MIN_PASSWORD_LENGTH = 8  # said in a message below too
USERNAME_MAX, DISPLAY_NAME_MAX = column_length(User, "username"), column_length(User, "display_name")
USERNAME_PATTERN = re.compile(rf"[a-z0-9][a-z0-9._-]{{1,{USERNAME_MAX - 1}}}")
PASSWORD_METHOD = "scrypt"
AUDIT_STREAM = "users"

_DUMMY_HASHES: dict[str, str] = {}  # PASSWORD_METHOD -> a hash made with it, see _dummy_hash


def N_(message: str) -> str:
    """Mark a message for the web UI's translation catalogue; return it unchanged."""
    return message


def normalize_username(username: str) -> str:
    """Return the username lowercased and stripped; raise InvalidInput if it is malformed."""
    name = (username or "").strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise InvalidInput(N_("A username is 2-80 characters: letters a-z, digits, dot, dash or underscore."))
    return name


def normalize_roles(roles: Iterable[str]) -> list[str]:
    """Return the roles in canonical order; raise InvalidInput for an unknown role."""
    wanted = {r.strip() for r in roles if r and r.strip()}
    unknown = wanted - set(ROLES)
    if unknown:
        raise InvalidInput(N_("Unknown role."))
    return [r for r in ROLES if r in wanted]


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(N_("A password has at least 8 characters."))


def _dummy_hash() -> str:
    """Return a hash made with the current PASSWORD_METHOD, checked when the username is unknown so a
    wrong name takes as long as a wrong password (made once per method, on first use)."""
    if PASSWORD_METHOD not in _DUMMY_HASHES:
        _DUMMY_HASHES[PASSWORD_METHOD] = generate_password_hash("polku-timing-equaliser", method=PASSWORD_METHOD)
    return _DUMMY_HASHES[PASSWORD_METHOD]


def _check_locale(locale: str) -> None:
    if locale not in LOCALES:
        raise InvalidInput(N_("Unknown language."))


def _record(session: Session, user: User, action: str, by: str, data: dict[str, Any] | None = None) -> None:
    audit.append(session, audit.EventKind.USER_CHANGED, actor=by, stream=AUDIT_STREAM,
                 data={"user": user.username, "action": action, **(data or {})})


def get_user(session: Session, username: str) -> User:
    """Return the user with this username.

    Raises:
        UserNotFound: no such user.
    """
    user = session.scalar(select(User).where(User.username == (username or "").strip().lower()))
    if user is None:
        raise UserNotFound(f"No user {username!r}.")
    return user


def find_user(session: Session, user_id: int) -> User | None:
    """Return the user with this id, or None."""
    return session.get(User, user_id)


def add_user(session: Session, username: str, password: str, roles: Iterable[str],
             display_name: str | None = None, locale: str = "fi", by: str = "system") -> User:
    """Create a user with a hashed password.

    Raises:
        InvalidInput: bad username, role, password or locale, or the username is taken.
    """
    name = normalize_username(username)
    role_list = normalize_roles(roles)
    _check_password(password)
    _check_locale(locale)
    if session.scalar(select(func.count()).select_from(User).where(User.username == name)):
        raise InvalidInput(N_("This username is already taken."))
    user = User(username=name, display_name=(display_name or "").strip()[:DISPLAY_NAME_MAX] or name,
                password_hash=generate_password_hash(password, method=PASSWORD_METHOD),
                roles=",".join(role_list), locale=locale, active=True)
    session.add(user)
    session.flush()
    _record(session, user, "created", by, {"roles": role_list})
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the active user whose password matches, or None."""
    user = session.scalar(select(User).where(User.username == (username or "").strip().lower()))
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password or "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None


def set_password(session: Session, username: str, password: str, by: str = "system") -> User:
    """Replace a user's password.

    Raises:
        UserNotFound, InvalidInput: the password is too short.
    """
    user = get_user(session, username)
    _check_password(password)
    user.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)
    _record(session, user, "password_set", by)
    _end_sessions(session, user, signin.EndReason.PASSWORD_CHANGED, by)
    return user


def set_roles(session: Session, username: str, roles: Iterable[str], by: str = "system") -> User:
    """Replace a user's roles.

    Raises:
        UserNotFound, InvalidInput: unknown role.
    """
    user = get_user(session, username)
    role_list = normalize_roles(roles)
    changed = set(role_list) != user.role_set
    user.roles = ",".join(role_list)
    _record(session, user, "roles_set", by, {"roles": role_list})
    if changed:
        _end_sessions(session, user, signin.EndReason.ROLES_CHANGED, by)
    return user


def set_profile(session: Session, username: str, *, display_name: str | None = None,
                locale: str | None = None, active: bool | None = None, by: str = "system") -> User:
    """Change a user's display name, language or active flag (None leaves a value as it is).

    Raises:
        UserNotFound, InvalidInput: unknown locale.
    """
    user = get_user(session, username)
    if locale is not None:
        _check_locale(locale)
    changes: dict[str, Any] = {}
    if display_name is not None and display_name.strip() and display_name.strip() != user.display_name:
        user.display_name = changes["display_name"] = display_name.strip()[:DISPLAY_NAME_MAX]
    if locale is not None and locale != user.locale:
        user.locale = changes["locale"] = locale
    if active is not None and active != user.active:
        user.active = changes["active"] = active
    if changes:
        _record(session, user, "profile_set", by, changes)
    if changes.get("active") is False:
        _end_sessions(session, user, signin.EndReason.DEACTIVATED, by)
    return user


def _end_sessions(session: Session, user: User, reason: signin.EndReason, by: str,
                  now: datetime | None = None) -> int:
    ended = signin.end_user_sessions(session, user.id, reason, now=now or utcnow())
    if ended:
        _record(session, user, "sessions_ended", by, {"reason": str(reason), "sessions": ended})
    return ended


def end_sessions(session: Session, username: str, by: str = "system", now: datetime | None = None) -> int:
    """End every live sign-in session of a user (an admin's button, `polku sessions end`); return how many.

    Raises:
        UserNotFound: no such user.
    """
    return _end_sessions(session, get_user(session, username), signin.EndReason.ENDED_BY_ADMIN, by, now)


def list_users(session: Session) -> list[User]:
    """Return every user, by username."""
    return list(session.scalars(select(User).order_by(User.username)))


def experts(session: Session) -> list[User]:
    """Return the active users holding the expert role, by display name."""
    return [u for u in session.scalars(_ACTIVE_USERS) if "expert" in u.role_set]


_ACTIVE_USERS = select(User).where(User.active.is_(True)).order_by(User.display_name, User.username)  # built once


def display_names(session: Session, usernames: Iterable[str | None]) -> dict[str, str]:
    """Return {username: display name} for the given usernames that exist."""
    wanted = {u for u in usernames if u}
    if not wanted:
        return {}
    return {name: shown for name, shown in session.execute(_DISPLAY_NAMES, {"b_names": sorted(wanted)})}


_DISPLAY_NAMES = select(User.username, User.display_name).where(  # built once (every task table and page)
    User.username.in_(bindparam("b_names", expanding=True)))


DEMO_USERS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("asiantuntija", "asiantuntija-demo", ("expert",), "Aino Asiantuntija"),
    ("expert2", "expert2-demo", ("expert",), "Eero Expert"),
    ("esimies", "esimies-demo", ("supervisor",), "Sanna Esimies"),
    ("suunnittelija", "suunnittelija-demo", ("designer",), "Pekka Suunnittelija"),
    ("tarkastaja", "tarkastaja-demo", ("auditor",), "Tiina Tarkastaja"),
    ("admin", "admin-demo", ("admin",), "Ylläpitäjä"),
)


def seed_demo_users(session: Session) -> list[tuple[str, str, list[str]]]:
    """Create the missing demo users (password = "<username>-demo", marked `demo`); return those created."""
    created: list[tuple[str, str, list[str]]] = []
    for username, password, roles, display_name in DEMO_USERS:
        if session.scalar(select(User.id).where(User.username == username)) is None:
            add_user(session, username, password, roles, display_name=display_name, by="seed").demo = True
            created.append((username, password, list(roles)))
    return created


def demo_accounts(session: Session) -> list[str]:
    """Return the usernames of active demo users (a published password: never in production)."""
    query = select(User.username).where(User.demo.is_(True), User.active.is_(True)).order_by(User.username)
    return list(session.scalars(query))


def deactivate_demo_users(session: Session, by: str = "system") -> list[str]:
    """Deactivate every active demo user (ending their sessions); return their usernames."""
    names = demo_accounts(session)
    for name in names:
        set_profile(session, name, active=False, by=by)
    return names
