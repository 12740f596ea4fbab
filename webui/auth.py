"""Sign-in and access: login/logout, `login_required(*roles)`, server-side sessions, the form stash, headers.

A sign-in is a row in `user_session` (`engine.signin`); the cookie carries only its random token
(plus the CSRF token, the language and a stash token). Every request looks the row up: it must not
have ended (sign-out, new password, changed roles, deactivation, an admin's "end sessions"), be
older than `POLKU_SESSION_HOURS` or unused for `POLKU_IDLE_MINUTES`. The cookie is `Secure` unless
`POLKU_INSECURE_COOKIES` is set (plain-http 127.0.0.1 only; refused in production).

Every page view carries `@login_required(...)`; the roles are re-read from the database on each
request. A form posted after the sign-in expired is stashed (`stash_form`, never a password
field), the user signs in again and lands on the same page, whose GET view calls `restore_form()`
to fill the form back in. Forms therefore post to their own URL. CSRF tokens are checked on every
POST by Flask-WTF's `CSRFProtect` before any view runs. Sign-in attempts are throttled per account
and per address (`throttle.py`) and failures are audited. The time comes from
`app.config["POLKU_CLOCK"]` (tests move it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from engine import audit, deploy, notices, signin, users
from engine.db import utcnow
from engine.models import User, UserSession
from engine.production import refuse_unsafe_start

from .db import get_session, write_session
from .errors import keep_unsaved

bp = Blueprint("auth", __name__)

SID_KEY = "sid"
STASH_KEY = "form_stash"
LANG_KEY = "lang"
AS_AT_START = "polku_as_at_start"  # g key: `read_with_signin` answers a POST too (`as_at_start`)
F = TypeVar("F", bound=Callable[..., Any])
SECRET_FIELD = re.compile(r"pass|pwd|salasana|secret|token", re.IGNORECASE)  # never stashed


def current_user() -> User | None:
    """Return the signed-in user of this request, or None."""
    return g.get("user")


def has_role(*roles: str) -> bool:
    """Tell whether the signed-in user holds any of these roles."""
    user = current_user()
    return user is not None and bool(user.role_set & set(roles))


def login_required(*roles: str) -> Callable[[F], F]:
    """Let only signed-in users (holding one of `roles`, if given) reach the view; others get 403."""
    if len(roles) == 1 and callable(roles[0]):
        raise TypeError("write @login_required() or @login_required('role', ...)")
    unknown = set(roles) - set(users.ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if request.method == "POST":
                    stash_form()
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if roles and not user.role_set & set(roles):
                abort(403)
            return view(*args, **kwargs)

        guarded.polku_roles = roles  # type: ignore[attr-defined]  # read by the route x role test
        return guarded  # type: ignore[return-value]

    return decorate


def stash_form() -> None:
    """Keep the posted form of a user whose sign-in expired, for `restore_form` after sign-in."""
    owner = g.get("expired_user_id")
    if owner is None or len(request.path) > signin.STASH_PATH_MAX:  # a path no page has: nothing to keep
        return
    values = {k: v for k, v in request.form.to_dict(flat=False).items() if not SECRET_FIELD.search(k)}
    session[STASH_KEY] = current_app.extensions["polku"].stash.put(write_session(), owner, request.path, values)
    flash(_("Your sign-in had expired. Sign in again: what you typed has been kept."), "info")


def restore_form() -> MultiDict[str, str] | None:
    """Return the values stashed for this page and user (once), or None."""
    token, user = session.get(STASH_KEY), current_user()
    if not token or user is None:
        return None
    values = current_app.extensions["polku"].stash.take(write_session(), token, user.id, request.path)
    if values is None:
        return None
    session.pop(STASH_KEY, None)
    flash(_("What you typed before signing in again has been restored. Check it and save."), "info")
    return MultiDict([(k, v) for k, vs in values.items() for v in vs])


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def current_time() -> datetime:
    """Return the time of this request (`POLKU_CLOCK` if a test set one)."""
    clock: Callable[[], datetime] = current_app.config.get("POLKU_CLOCK") or utcnow
    return clock()


def _writes(row: UserSession, now: datetime) -> bool:
    """Tell whether loading this sign-in writes it: its last-seen time is due, or it ends now."""
    if row.ended_at is not None:
        return False
    idle = current_app.config["POLKU_IDLE_TIMEOUT"]
    return signin.why_not_live(row, now=now, idle=idle) is not None or now - row.last_seen_at >= signin.TOUCH_EVERY


# the sign-in's statement, built once, with what every page shows: the unread badge, the process names
_SIGNIN = signin.signin_statement(notices.unread_count_of_user(), deploy.last_version_id())


def _load_user() -> None:
    g.user = None
    token = session.get(SID_KEY)
    if not token or request.endpoint == "static":
        return
    db, now = get_session(), current_time()
    # one statement on every request, with what every page shows: the unread badge, the process names
    row, user, read_along = signin.find_session_and_user(db, token, _SIGNIN)
    unread, last_version = read_along or (None, None)
    if row is not None and _writes(row, now):
        db = write_session()  # a GET too: the touch or the end is written; read the rows again under the lock
        db.refresh(row)
        user = users.find_user(db, row.user_id)
    why = None if row is None else signin.why_not_live(row, now=now, idle=current_app.config["POLKU_IDLE_TIMEOUT"])
    user = None if why is not None else user
    if row is None or why is not None or user is None or not user.active:
        session.pop(SID_KEY, None)
        if row is not None and why in (signin.EndReason.IDLE, signin.EndReason.EXPIRED):
            g.expired_user_id = row.user_id  # a form posted now is kept for them (`stash_form`)
            signin.end_session(row, why, now=now)
        return
    signin.touch_session(row, now=now)
    g.user = user
    g.unread_notices, g.last_version_id = unread, last_version  # as read with the sign-in, at the request's start


def read_with_signin(name: str) -> Any:
    """Return a value `_load_user` read with this request's sign-in (`unread_notices`, `last_version_id`),
    or None when the caller must read it itself: not signed in, or a POST, which may change it before
    its page is drawn (but not before the page it keeps for a failed write: `as_at_start`)."""
    return g.get(name) if request.method in ("GET", "HEAD") or g.get(AS_AT_START) else None


@contextmanager
def as_at_start() -> Iterator[None]:
    """Within: a POST's `read_with_signin` gives what was read with its sign-in too, for the page it
    keeps for a failed write (`errors.keep_unsaved`): when that page is shown nothing of the POST was saved."""
    before = g.get(AS_AT_START, False)
    setattr(g, AS_AT_START, True)
    try:
        yield
    finally:
        setattr(g, AS_AT_START, before)


def _start_login(user: User) -> None:
    kept = {k: session[k] for k in (STASH_KEY, LANG_KEY) if k in session}
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    session.update(kept)
    session.permanent = True
    session[SID_KEY] = signin.start_session(
        get_session(), user.id, now=current_time(), lifetime=current_app.config["PERMANENT_SESSION_LIFETIME"],
        user_agent=request.user_agent.string, address=request.remote_addr)
    session[LANG_KEY] = user.locale
    g.user = user


def _refuse_throttled(username: str, address: str, wait: timedelta) -> tuple[str, int]:
    db = get_session()
    signin.audit_attempt(db, audit.EventKind.SIGNIN_THROTTLED, username, address, now=current_time(), wait=wait)
    db.commit()  # the 429 below rolls the request back: the refused attempt must stay in the audit trail
    error = _("Too many failed sign-in attempts. Try again in %(seconds)s seconds.",
              seconds=math.ceil(wait.total_seconds()))
    return render_template("auth/login.html", next=safe_next(request.values.get("next")), username=username,
                           error=error), 429


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the sign-in form; sign in and go on to the page asked for."""
    target = safe_next(request.values.get("next"))
    if current_user() is not None:
        return redirect(target or url_for("home.index"))
    if request.method == "GET":
        return render_template("auth/login.html", next=target, username="")
    username = request.form.get("username", "").strip().lower()
    keep_unsaved(render_template("auth/login.html", next=target, username=username, error=_(
        "Signing in is not possible just now: the database is not available. Try again in a moment.")),
        undo=lambda: session.pop(SID_KEY, None))  # shown with 503 if a read or write fails
    address, now, db = request.remote_addr or "", current_time(), get_session()
    throttle = current_app.extensions["polku"].throttle
    wait = throttle.wait(db, username, address, now)
    if wait > timedelta(0):
        return _refuse_throttled(username, address, wait)
    user = users.authenticate(db, username, request.form.get("password", ""))
    if user is None:
        throttle.fail(db, username, address, now)
        signin.audit_attempt(db, audit.EventKind.SIGNIN_FAILED, username, address, now=now)
        error = _("Wrong username or password.")
        return render_template("auth/login.html", next=target, username=username, error=error)
    throttle.succeed(db, username)
    _start_login(user)
    return redirect(target or url_for("home.index"))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Sign out: end the server-side session and forget the cookie's contents."""
    row = signin.find_session(get_session(), session.get(SID_KEY, ""))
    if row is not None:
        signin.end_session(row, signin.EndReason.SIGNED_OUT, now=current_time())
    lang = session.get(LANG_KEY)
    session.clear()
    if lang:
        session[LANG_KEY] = lang
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")  # CSRF's HTTPS referrer check needs it
    headers.setdefault("Content-Security-Policy",
                       "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'")
    if request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")  # no customer data left in the back button
    return response


def _trust_proxies(app: Flask, hops: int) -> None:
    """Believe X-Forwarded-For/-Proto from `hops` reverse proxies (none by default: the headers are ignored)."""
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


class SignedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed session cookie, its signing serializer made once per set of keys.

    Flask makes the serializer anew twice a request (to read the cookie and to write it); it depends
    only on the secret key and its fallbacks, and signing and checking do not change it, so one
    serves every request thread until a key changes.
    """

    def __init__(self) -> None:
        self._kept: tuple[tuple[Any, ...], Any] | None = None

    def get_signing_serializer(self, app: Flask) -> Any:  # itsdangerous' URLSafeTimedSerializer, or None
        """Return the serializer for the app's current keys (made again when they change)."""
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        kept = self._kept
        if kept is None or kept[0] != keys:
            kept = self._kept = (keys, super().get_signing_serializer(app))
        return kept[1]


def init_app(app: Flask) -> None:
    """Refuse an unsafe production start, trust the configured proxies, load the user, add headers."""
    app.session_interface = SignedCookieSessions()
    polku = app.extensions["polku"]
    with polku.sessions() as db:
        refuse_unsafe_start(db, polku.settings)
    _trust_proxies(app, polku.settings.trusted_proxies)
    app.before_request(_load_user)
    app.after_request(_security_headers)
    app.context_processor(lambda: {"current_user": current_user(), "has_role": has_role})
