"""The national customer survey's results on the KPI page: the supervisor records a period's share
of positive experiences or imports a CSV file. The page itself (`audit.kpis`) shows the series.

The engine side is `engine.survey`. The KPI page belongs to the auditor's read-only blueprint, so the
two writing routes live here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import survey
from engine.errors import FormInvalid, InvalidInput

from .auth import current_user, login_required
from .db import get_session

bp = Blueprint("survey", __name__, url_prefix="/kpi/survey")
ROLES = ("supervisor", "admin")
MAX_IMPORT_BYTES = 200_000
FIELD_LABELS = {"period": _l("Period"), "positive_percent": _l("Positive experiences (%)"),
                "answers": _l("Number of answers")}


def _back() -> Any:
    return redirect(url_for("audit.kpis") + "#survey")


def _by() -> str:
    user = current_user()
    assert user is not None  # login_required ran
    return user.username


@bp.route("/", methods=["POST"])
@login_required(*ROLES)
def record() -> Any:
    """Record (or correct) one period's national survey result."""
    form = request.form
    try:
        row = survey.record(get_session(), form.get("period"), form.get("positive_percent"), form.get("answers"),
                            form.get("note"), by=_by())
    except FormInvalid as exc:
        for name, message in exc.errors.items():
            flash(f"{FIELD_LABELS.get(name, name)}: {_(message)}", "error")
        return _back()
    flash(_("Survey result for %(period)s saved.", period=row.period), "success")
    return _back()


@bp.route("/import", methods=["POST"])
@login_required(*ROLES)
def import_file() -> Any:
    """Import survey results from a CSV file: every row checked first, nothing saved when one is wrong."""
    upload = request.files.get("file")
    data = upload.read(MAX_IMPORT_BYTES + 1) if upload else b""
    if not data:
        flash(_("Choose a CSV file."), "error")
        return _back()
    if len(data) > MAX_IMPORT_BYTES:
        flash(_("The file is too large."), "error")
        return _back()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        flash(_("Save the file as UTF-8 text."), "error")
        return _back()
    try:
        count = survey.import_csv(get_session(), text, by=_by())
    except FormInvalid as exc:
        flash(_("Nothing was imported: fix these lines and import the file again."), "error")
        for key, message in exc.errors.items():
            flash(_("Line %(line)s: %(message)s", line=survey.line_of(key), message=_(message)), "error")
        return _back()
    except InvalidInput as err:
        flash(_(str(err)), "error")
        return _back()
    flash(_("%(count)s survey results imported.", count=count), "success")
    return _back()


def init_app(app: Flask) -> None:
    """Register the survey routes."""
    app.register_blueprint(bp)
