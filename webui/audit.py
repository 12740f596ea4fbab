"""The auditor's pages (read-only): instance search, one instance's history and diagram, version heatmaps,
the hash chain check, the aftercare KPI dashboard and the streamed exports.

No view here changes anything: every route is GET. Queries live in `engine/history.py`,
`engine/exports.py` and `engine/kpi.py`; the diagram is drawn by bpmn-js (served by `vendor.py`)
and decorated by `static/audit.js` from the JSON block each page embeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, render_template, request, stream_with_context
from flask_babel import lazy_gettext as _l

from engine import audit, exports, history, kpi, survey
from engine.errors import NotFound
from engine.users import experts

from . import modeltexts
from .auth import current_time, login_required
from .db import get_session
from .downloads import attachment
from .i18n import label
from .inputs import page_number, whole_number

bp = Blueprint("audit", __name__, url_prefix="/audit")
ROLES = ("auditor", "admin")
KPI_ROLES = ("auditor", "admin", "supervisor")
PER_PAGE = 25
STATUS_LABELS = {"running": _l("Running"), "completed": _l("Completed"), "incident": _l("Incident"),
                 "cancelled": _l("Cancelled")}
KINDS = {"instance_started": _l("Instance started"), "task_created": _l("Task created"),
         "task_claimed": _l("Task claimed"), "task_released": _l("Task released"),
         "task_assigned": _l("Task reassigned"), "task_completed": _l("Task completed"),
         "task_cancelled": _l("Task cancelled"), "data_changed": _l("Data changed"),
         "message_received": _l("Message received"), "message_thrown": _l("Message sent"),
         "task_action": _l("Task action"),
         "timer_fired": _l("Timer fired"), "incident_raised": _l("Incident raised"),
         "incident_resolved": _l("Incident resolved"), "instance_completed": _l("Instance completed"),
         "instance_cancelled": _l("Instance cancelled"), "instance_migrated": _l("Instance migrated"),
         "path_taken": _l("Steps run by the engine"), "deployed": _l("Model deployed"),
         "script_output": _l("Script output"), "user_changed": _l("User changed"),
         "customer_changed": _l("Customer changed"), "signin_failed": _l("Sign-in failed"),
         "signin_throttled": _l("Sign-in refused: too many attempts"),
         "external_task_created": _l("External task waits for a worker"),
         "external_task_locked": _l("External task taken by a worker"),
         "external_task_lock_extended": _l("External task lock extended"),
         "external_task_unlocked": _l("External task unlocked"),
         "external_task_completed": _l("External task completed"), "external_task_failed": _l("External task failed"),
         "external_task_cancelled": _l("External task cancelled"), "signal_received": _l("Signal received"),
         "signal_thrown": _l("Signal sent"), "escalation_thrown": _l("Escalation not handled in the process")}
FORMATS = {"csv": "text/csv", "json": "application/json", "xes": "application/xml"}  # text/*: Flask adds the charset
FILTER_ARGS = ("process", "version", "status", "customer", "expert", "started_from", "started_to",
               "ended_from", "ended_to")


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.extensions["polku"].settings.timezone)


def _day(name: str, *, end: bool = False) -> datetime | None:
    try:
        day = date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=_zone())
    return moment


def _filter() -> history.InstanceFilter:
    args = request.args
    version = args.get("version", "")
    status = args.get("status", "")
    return history.InstanceFilter(
        process_id=args.get("process") or None, version=whole_number(version),
        status=status if status in history.STATUSES else None, customer=args.get("customer", "").strip() or None,
        expert=args.get("expert") or None, started_from=_day("started_from"), started_to=_day("started_to", end=True),
        ended_from=_day("ended_from"), ended_to=_day("ended_to", end=True))


@bp.app_template_filter("shown_json")
def shown_json(value: Any) -> str:
    """Return a value of the history as JSON a person reads: Finnish letters as they are (tojson writes
    \\u00e4); the template's autoescaping keeps it safe in HTML."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _processes() -> dict[str, str]:
    return modeltexts.process_names()


@bp.route("/")
@login_required(*ROLES)
def index() -> str:
    """Search instances by process, version, status, customer, expert and dates."""
    session = get_session()
    page = history.search_instances(session, _filter(), page=page_number(), per_page=PER_PAGE)
    args = {k: request.args.get(k, "") for k in FILTER_ARGS}
    return render_template("audit/index.html", page=page, args=args, processes=_processes(),
                           statuses={k: label(v) for k, v in STATUS_LABELS.items()}, experts=experts(session),
                           names=kpi.customer_names(session, (i.business_key for i, _v, _e in page.rows)))


def _header(instance_id: int) -> dict[str, Any]:
    try:
        return history.instance_header(get_session(), instance_id)
    except NotFound:
        abort(404)


@bp.route("/instances/<int:instance_id>")
@login_required(*ROLES)
def instance(instance_id: int) -> str:
    """Show an instance: header, diagram with the path taken, every audit event and the chain check."""
    session = get_session()
    header = _header(instance_id)
    elements = history.element_data(session, instance_id)
    seen = set(elements["walked"]) | set(elements["active"])
    diagrams = history.version_diagrams(session, header["version"].id)
    diagrams = diagrams[:1] + [d for d in diagrams[1:] if any(f'id="{e}"' in d["xml"] for e in seen)]
    elements = {**elements, "called": [d["process_id"] for d in diagrams[1:]],
                "ended": header["instance"].ended_at is not None}
    return render_template("audit/instance.html", **header, events=history.timeline(session, instance_id),
                           elements=elements, diagrams=diagrams, statuses=STATUS_LABELS, kinds=KINDS,
                           verification=audit.verify(session, instance_id),
                           names=kpi.customer_names(session, [header["instance"].business_key]))


@bp.route("/versions/<int:version_id>")
@login_required(*ROLES)
def version(version_id: int) -> str:
    """Show a process version's heatmap: how often each element ran and its median duration."""
    session = get_session()
    try:
        diagrams = history.version_diagrams(session, version_id)
    except NotFound:
        abort(404)
    heat = history.heatmap(session, version_id)
    return render_template("audit/version.html", diagrams=diagrams, version_id=version_id, heat=heat,
                           counts={k: v["count"] for k, v in heat.items()})


@bp.route("/chain")
@login_required(*ROLES)
def chain() -> str:
    """Check every hash chain and name the first broken event of each stream."""
    return render_template("audit/chain.html", verification=audit.verify(get_session()))


def _stream(chunks: Iterator[str], fmt: str, filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype=FORMATS[fmt])
    response.headers["Content-Disposition"] = attachment(f"{filename}.{fmt}")
    return response


def _export(fmt: str, ids: exports.Ids) -> Iterator[str]:
    # The request's session is closed once the view returns; the stream reads through its own.
    session = current_app.extensions["polku"].sessions()
    make = {"csv": exports.events_csv, "json": exports.events_json, "xes": exports.events_xes}[fmt]
    try:
        yield from make(session, ids)
    finally:
        session.close()


@bp.route("/instances/<int:instance_id>/events.<fmt>")
@login_required(*ROLES)
def instance_export(instance_id: int, fmt: str) -> Response:
    """Stream one instance's audit events as CSV, JSON or XES."""
    if fmt not in FORMATS:
        abort(404)
    _header(instance_id)
    return _stream(_export(fmt, [instance_id]), fmt, f"instance-{instance_id}")


@bp.route("/export.<fmt>")
@login_required(*ROLES)
def export(fmt: str) -> Response:
    """Stream the audit events (CSV, JSON) or the event log (XES) of the instances the filter finds."""
    if fmt not in FORMATS:
        abort(404)
    return _stream(_export(fmt, history.matching_query(_filter())), fmt, "audit")


def _kpi_filter() -> kpi.AftercareFilter:
    return kpi.AftercareFilter(start=_day("start"), end=_day("end", end=True),
                               expert=request.args.get("expert") or None,
                               service_line=request.args.get("service_line") or None,
                               segment=request.args.get("segment") or None)


@bp.route("/kpi")
@login_required(*KPI_ROLES)
def kpis() -> str:
    """Show the aftercare KPI dashboard for a period, expert, service line and segment."""
    session = get_session()
    report = kpi.aftercare_report(session, _kpi_filter(), current_app.extensions["polku"].settings.timezone,
                                  now=current_time())
    args = {k: request.args.get(k, "") for k in ("start", "end", "expert", "service_line", "segment")}
    return render_template("audit/kpi.html", report=report, args=args, experts=experts(session),
                           charts=kpi.AFTERCARE_CHARTS, survey_rows=survey.series(session),
                           survey_target=survey.TARGET_PERCENT,
                           channel_labels=modeltexts.option_names("aftercare", "aftercare_channel"))


@bp.route("/kpi/<chart>.csv")
@login_required(*KPI_ROLES)
def kpi_csv(chart: str) -> Response:
    """Download one KPI chart's table as CSV."""
    if chart not in kpi.AFTERCARE_CHARTS:
        abort(404)
    report = kpi.aftercare_report(get_session(), _kpi_filter())
    rows = report.charts[chart]
    chunks = iter([exports.csv_text([("label", "value"), *rows])])
    return _stream(chunks, "csv", f"kpi-{chart}")
