"""The API token page: make a personal token for the REST API (shown once), see and revoke your tokens.

Experts, supervisors, designers and admins make tokens for themselves with their roles or fewer;
an admin sees every token and may make one for another user (auditors get theirs so, or from
`polku token create`). The secret is shown on the page that made it and never again.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, render_template, request
from flask_babel import gettext as _

from engine import tokens
from engine.errors import EngineError, UserNotFound

from .admin import ROLE_LABELS
from .auth import current_time, current_user, has_role, login_required
from .db import get_session
from .inputs import whole_number

bp = Blueprint("tokens", __name__, url_prefix="/tokens")
ROLES = ("expert", "supervisor", "designer", "admin")


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    user = current_user()
    assert user is not None
    session = get_session()
    rows = tokens.list_tokens(session, None if has_role("admin") else user.username)
    owners = tokens.owner_names(session, rows)
    listed = [tokens.token_dict(r, owners.get(r.owner_id), now=current_time()) for r in rows]
    context = {"tokens": listed, "role_labels": ROLE_LABELS, "my_roles": sorted(user.role_set),
               "is_admin": has_role("admin"), "values": request.form, "secret": None, "error": None,
               "days": tokens.DEFAULT_DAYS, "max_days": tokens.MAX_DAYS, **extra}
    return render_template("tokens/index.html", **context), status


@bp.route("/", methods=["GET", "POST"])
@login_required(*ROLES)
def index() -> Any:
    """List tokens; POST makes one (field `name`, `days`, `roles`, admins `username`) or revokes one (`revoke`)."""
    user = current_user()
    assert user is not None
    if request.method == "GET":
        return _page()
    session, now = get_session(), current_time()
    form = request.form
    try:
        if form.get("revoke"):
            revoke = whole_number(form["revoke"])
            if revoke is None:
                return _page(400, error=_("No such token."))
            owner = None if has_role("admin") else user.username
            tokens.revoke_token(session, revoke, by=user.username, owner=owner, now=now)
            flash(_("The token was revoked."), "success")
            return _page()
        name = form.get("name", "").strip()
        if not name:
            return _page(422, error=_("Give the token a name that says what it is for."))
        owner_name = form.get("username", "").strip() if has_role("admin") else ""
        days = form.get("days", "").strip() or str(tokens.DEFAULT_DAYS)
        expires_days = whole_number(days)
        if expires_days is None:
            return _page(422, error=_("Enter the days as a whole number."))
        roles = form.getlist("roles") or None
        row, secret = tokens.create_token(session, owner_name or user.username, by=user.username, name=name,
                                          roles=roles, expires_days=expires_days, now=now)
    except EngineError as exc:
        return _page(422 if not isinstance(exc, UserNotFound) else 404, error=_(str(exc)))
    return _page(secret=secret, made=row.id)
