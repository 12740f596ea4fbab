"""The supervisor's page: open work and aftercare per expert, overdue aftercare to reassign, customers
without a responsible expert and this month's share of aftercare contacts made on time.

The figures come from `engine.kpi`; reassigning posts to `tasks.assign_task` and comes back here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template
from sqlalchemy.orm import Session

from engine import customers, kpi

from .auth import current_time, login_required
from .db import get_session
from .tasks import request_experts, row_context

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor")


def _loads(session: Session, figures: dict[str, Any]) -> list[kpi.ExpertLoad]:
    """Return a load row for every active expert (idle ones too) and anyone else holding tasks."""
    loads = {load.assignee: load for load in figures["loads"]}
    for user in request_experts():
        loads.setdefault(user.username, kpi.ExpertLoad(user.username))
    return sorted(loads.values(), key=lambda load: (-load.open_tasks, load.assignee))


def _outreach(session: Session, now: Any) -> dict[str, Any]:
    """Return the year's company visits against the office target and who covers whom (engine.contacts, absences)."""
    from zoneinfo import ZoneInfo

    from engine import absences, contacts

    today = now.astimezone(ZoneInfo(current_app.extensions["polku"].settings.timezone)).date()
    return {"visit_progress": contacts.visit_progress(session, today),
            "cover_rows": absences.current_and_coming(session, today)}


@bp.route("/")
@login_required("supervisor", "admin")
def overview() -> str:
    """Show open work per expert, overdue aftercare, customers without an expert and the on-time share."""
    session, now = get_session(), current_time()
    zone = current_app.extensions["polku"].settings.timezone
    figures = kpi.summary(session, now, zone)  # with the open aftercare rows, read once for both lists
    loads = _loads(session, figures)
    overdue = kpi.overdue_aftercare(session, now, zone, open_rows=figures["open_rows"])  # kpi.AftercareCase's definition
    outreach = _outreach(session, now)
    context = row_context(overdue, [*(load.assignee for load in loads),
                                    *(n for a in outreach["cover_rows"] for n in (a.username, a.substitute))])
    context.update(outreach, now=now)
    return render_template("supervisor/overview.html", loads=loads, overdue=overdue,
                           unassigned=figures["unassigned"], on_time=figures["on_time"],
                           without_expert=customers.customers_without_expert(
                               session, [u.username for u in request_experts()]),
                           experts=request_experts(), **context)
