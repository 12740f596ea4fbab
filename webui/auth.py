"""Sign-in and access: login/logout, `login_required(*roles)`, idle expiry, the form stash, security headers.

Every page view carries `@login_required(...)`; the roles are re-read from the database on each
request, so a change by an admin takes effect at once. A sign-in idles out after
`POLKU_IDLE_TIMEOUT`; a form posted after that is stashed (`stash_form`), the user signs in
again and lands on the same page, whose GET view calls `restore_form()` to fill the form back in.
Forms therefore post to their own URL. CSRF tokens are checked on every POST by Flask-WTF's
`CSRFProtect` before any view runs.
"""

from __future__ import annotations

from collections.abc import Callable
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
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from engine import users
from engine.db import utcnow
from engine.models import User

from .db import get_session
from .errors import keep_unsaved

bp = Blueprint("auth", __name__)

USER_KEY = "user_id"
SEEN_KEY = "seen"
STASH_KEY = "form_stash"
LANG_KEY = "lang"
F = TypeVar("F", bound=Callable[..., Any])


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
    if owner is None:
        return
    field = current_app.config["WTF_CSRF_FIELD_NAME"]
    values = {k: v for k, v in request.form.to_dict(flat=False).items() if k != field}
    session[STASH_KEY] = current_app.extensions["polku"].stash.put(get_session(), owner, request.path, values)
    flash(_("Your sign-in had expired. Sign in again: what you typed has been kept."), "info")


def restore_form() -> MultiDict[str, str] | None:
    """Return the values stashed for this page and user (once), or None."""
    token, user = session.get(STASH_KEY), current_user()
    if not token or user is None:
        return None
    values = current_app.extensions["polku"].stash.take(get_session(), token, user.id, request.path)
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


def _now() -> float:
    return utcnow().timestamp()


def _load_user() -> None:
    g.user = None
    uid = session.get(USER_KEY)
    if uid is None or request.endpoint == "static":
        return
    idle = current_app.config["POLKU_IDLE_TIMEOUT"].total_seconds()
    if _now() - float(session.get(SEEN_KEY, 0)) > idle:
        g.expired_user_id = uid
        session.pop(USER_KEY, None)
        return
    user = users.find_user(get_session(), uid)
    if user is None or not user.active:
        session.pop(USER_KEY, None)
        return
    g.user = user
    session[SEEN_KEY] = _now()


def _start_login(user: User) -> None:
    kept = {k: session[k] for k in (STASH_KEY, LANG_KEY) if k in session}
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    session.update(kept)
    session.permanent = True
    session[USER_KEY] = user.id
    session[SEEN_KEY] = _now()
    session[LANG_KEY] = user.locale
    g.user = user


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
        undo=lambda: session.pop(USER_KEY, None))  # shown with 503 if a read or write fails
    key = (username, request.remote_addr or "")
    throttle = current_app.extensions["polku"].throttle
    if throttle.blocked(get_session(), key):
        error = _("Too many failed sign-in attempts. Wait 15 minutes and try again.")
        return render_template("auth/login.html", next=target, username=username, error=error), 429
    user = users.authenticate(get_session(), username, request.form.get("password", ""))
    if user is None:
        throttle.fail(get_session(), key)
        error = _("Wrong username or password.")
        return render_template("auth/login.html", next=target, username=username, error=error)
    throttle.reset(get_session(), key)
    _start_login(user)
    return redirect(target or url_for("home.index"))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Sign out and forget the whole session."""
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


def init_app(app: Flask) -> None:
    """Load the signed-in user before each request and add security headers after it."""
    app.before_request(_load_user)
    app.after_request(_security_headers)
    app.context_processor(lambda: {"current_user": current_user(), "has_role": has_role})
