"""Incidents: the failures that stopped a case (a script, condition or decision), and their retry.

An incident keeps the case as it was before the failing step; an administrator (or the service
supervisor) fixes the data the step needs and runs it again here, like `polku incidents --retry`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from engine import runtime

from .auth import current_user, login_required
from .db import get_session

bp = Blueprint("incidents", __name__, url_prefix="/incidents")
ROLES = ("admin", "supervisor")


def _parse_data(text: str) -> dict[str, Any]:
    """Read the fixed data: a JSON object, or empty."""
    if not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not an object")  # noqa: TRY004 - one error path for every bad input
    return value


def _render(values: dict[str, str] | None = None, errors: dict[int, str] | None = None, status: int = 200) -> Any:
    session = get_session()
    rows = runtime.open_incidents(session)
    instances = {i.instance_id: runtime.get_instance(session, i.instance_id) for i in rows}
    return render_template("incidents/index.html", incidents=rows, instances=instances,
                           values=values or {}, errors=errors or {}), status


@bp.route("/")
@login_required(*ROLES)
def index() -> Any:
    """List the open incidents of every case, oldest first."""
    return _render()


@bp.route("/<int:incident_id>/retry", methods=["POST"])
@login_required(*ROLES)
def retry(incident_id: int) -> Any:
    """Run the failed step again, with the fixed data merged in first."""
    text = request.form.get("data", "")
    try:
        data = _parse_data(text)
    except ValueError:
        return _render({str(incident_id): text},
                       {incident_id: _('Write the data as a JSON object, for example {"divisor": 2}.')}, 422)
    incident = runtime.retry_incident(get_session(), incident_id, by=current_user().username, data=data)
    if str(incident.status) == "resolved":
        flash(_("The step ran again and the case went on."), "success")
        return redirect(url_for("incidents.index"))
    return _render({str(incident_id): text}, {incident_id: _("The step failed again: %(message)s",
                                                             message=incident.message)}, 422)
