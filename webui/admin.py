"""User administration for the admin role: list users, add a user, change roles and profile, reset a password,
see a user's live sign-in sessions and end them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import signin, users
from engine.errors import InvalidInput

from .auth import current_time, current_user, login_required
from .db import get_session
from .i18n import LOCALES

bp = Blueprint("admin", __name__, url_prefix="/admin")

ROLE_LABELS = {
    "expert": _l("Expert"),
    "supervisor": _l("Service supervisor"),
    "designer": _l("Process designer"),
    "auditor": _l("Auditor"),
    "admin": _l("Administrator"),
}
LOCALE_LABELS = {"fi": "suomi", "en": "English"}


def _context(**extra: Any) -> dict[str, Any]:
    user = extra.get("user")
    if user is not None:
        extra["live_sessions"] = signin.live_sessions(get_session(), user.id, now=current_time(),
                                                      idle=current_app.config["POLKU_IDLE_TIMEOUT"])
    return {"role_labels": ROLE_LABELS, "locale_labels": LOCALE_LABELS, "locales": LOCALES, **extra}


@bp.route("/users")
@login_required("admin")
def users_list() -> str:
    """List every user with their roles."""
    return render_template("admin/users.html", users=users.list_users(get_session()), **_context())


@bp.route("/users/new", methods=["GET", "POST"])
@login_required("admin")
def create_user() -> Any:
    """Show the new-user form; add the user."""
    form = request.form
    if request.method == "POST":
        try:
            user = users.add_user(get_session(), form.get("username", ""), form.get("password", ""),
                                  form.getlist("roles"), display_name=form.get("display_name"),
                                  locale=form.get("locale", "fi"), by=current_user().username)
        except InvalidInput as exc:
            return render_template("admin/new_user.html", values=form, error=_(str(exc)), **_context()), 422
        flash(_("User %(name)s added.", name=user.username), "success")
        return redirect(url_for(".users_list"))
    return render_template("admin/new_user.html", values={"locale": "fi"}, error=None, **_context())


def _check_not_locking_out(username: str, roles: list[str], active: bool) -> None:
    if username == current_user().username and ("admin" not in roles or not active):
        raise InvalidInput(users.N_("You cannot remove your own administrator role or deactivate yourself."))


@bp.route("/users/<username>", methods=["GET", "POST"])
@login_required("admin")
def edit_user(username: str) -> Any:
    """Show a user's roles and profile; save changes to them."""
    session = get_session()
    user = users.get_user(session, username)
    if request.method == "POST":
        form, by = request.form, current_user().username
        roles, active = form.getlist("roles"), form.get("active") == "1"
        try:
            _check_not_locking_out(user.username, roles, active)
            users.set_roles(session, user.username, roles, by=by)
            users.set_profile(session, user.username, display_name=form.get("display_name"),
                              locale=form.get("locale"), active=active, by=by)
        except InvalidInput as exc:
            return render_template("admin/edit_user.html", error=_(str(exc)),
                                   **_context(user=user)), 422
        flash(_("Changes to %(name)s saved.", name=user.username), "success")
        return redirect(url_for(".edit_user", username=user.username))
    return render_template("admin/edit_user.html", error=None, **_context(user=user))


@bp.route("/users/<username>/password", methods=["POST"])
@login_required("admin")
def reset_password(username: str) -> Any:
    """Set a new password for a user."""
    session = get_session()
    user = users.get_user(session, username)
    password = request.form.get("password", "")
    try:
        if password != request.form.get("password_again", ""):
            raise InvalidInput(users.N_("The passwords do not match."))
        users.set_password(session, user.username, password, by=current_user().username)
    except InvalidInput as exc:
        return render_template("admin/edit_user.html", password_error=_(str(exc)), error=None,
                               **_context(user=user)), 422
    flash(_("New password set for %(name)s.", name=user.username), "success")
    return redirect(url_for(".edit_user", username=user.username))


@bp.route("/users/<username>/sessions/end", methods=["POST"])
@login_required("admin")
def end_sessions(username: str) -> Any:
    """End every sign-in session of a user (they must sign in again)."""
    user = users.get_user(get_session(), username)
    ended = users.end_sessions(get_session(), user.username, by=current_user().username, now=current_time())
    flash(_("Sessions of %(name)s ended: %(count)s.", name=user.username, count=ended), "success")
    return redirect(url_for(".edit_user", username=user.username))
