"""Customer pages: search and list, register, edit, and one customer's page with its service processes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import access, customers, kpi, runtime
from engine import contacts as outreach_contacts
from engine.customers import MINISTRY_SEGMENTS, NEED_SEGMENTS, Segment, Situation, TurnoverBand
from engine.db import utcnow
from engine.errors import FormInvalid
from engine.users import display_names, experts

from . import formfields, modeltexts
from .auth import current_user, login_required, restore_form
from .db import get_session
from .i18n import label
from .inputs import page_number, whole_number
from .tasks import due_state, next_task, process_names, reader

EVENT_LABELS = {"instance_started": _l("Service process started"), "task_completed": _l("Task completed"),
                "task_assigned": _l("Task reassigned"), "timer_fired": _l("Timer fired"),
                "message_received": _l("Message received"), "message_thrown": _l("Message sent"),
                "task_action": _l("Recorded on a task"),
                "incident_raised": _l("Incident raised"), "instance_completed": _l("Service process completed"),
                "instance_cancelled": _l("Service process cancelled"), "instance_migrated": _l("Instance migrated"),
                "contact_logged": _l("Contact logged")}

CASE_LABELS = {"instance_started": _l("%(process)s started"), "instance_completed": _l("%(process)s completed"),
               "instance_cancelled": _l("%(process)s cancelled")}  # the case's own process named
MESSAGE_LABELS = {"service_line_ended": _l("a service line ended, its aftercare starts"),
                  "new_service_need": _l("a new need, a new service process starts"),
                  "customer_contact_logged": _l("the contact goes to the contact log"),
                  "responsible_expert_changed": _l("the responsible expert changed")}

bp = Blueprint("customers", __name__, url_prefix="/customers")

TIMELINE_PAGE = 25  # timeline entries per page, newest first
TIMELINE_PAGES = 400  # the deepest page: 10,000 entries, older ones are in the auditor's history
ROLES = ("expert", "supervisor", "admin")
PER_PAGE = 25
SERVICE_PROCESS = "customer_service"  # the process the customer page starts

SITUATIONS = {
    Situation.STEADY: _l("Steady"),
    Situation.GROWTH: _l("Growth or expansion"),
    Situation.DECLINING: _l("Declining"),
}
SEGMENTS = {
    Segment.STARTUP: _l("Start-ups and inventors"),
    Segment.LOCAL: _l("Local companies"),
    Segment.DOMESTIC: _l("Domestic-market companies"),
    Segment.INTERNATIONAL_GROWTH: _l("Internationally growing companies"),
    Segment.LARGE: _l("Large enterprises"),
    Segment.COMMUNITY: _l("Communities"),
    Segment.NEED_GROWING: _l("Growing"),
    Segment.NEED_EFFICIENCY: _l("Making operations more efficient"),
    Segment.NEED_PROBLEMS: _l("Production or financial problems"),
    Segment.NEED_STARTUP_CHALLENGES: _l("Start-up phase challenges"),
    Segment.NEED_REPLACEMENT_RECRUITMENT: _l("Replacement recruitment"),
}
SEGMENT_GROUPS = (
    (_l("Ministry segments"), MINISTRY_SEGMENTS),
    (_l("Need-based segments"), NEED_SEGMENTS),
)
TURNOVER_BANDS = {
    TurnoverBand.UNDER_200K: _l("under €0.2 million"),
    TurnoverBand.FROM_200K_TO_1M: _l("€0.2–1 million"),
    TurnoverBand.FROM_1M_TO_2M: _l("€1–2 million"),
    TurnoverBand.FROM_2M_TO_10M: _l("€2–10 million"),
    TurnoverBand.FROM_10M_TO_50M: _l("€10–50 million"),
    TurnoverBand.OVER_50M: _l("over €50 million"),
}


def labels() -> dict[str, Any]:
    """Return the option labels every customer template uses."""
    segment_options = [(group, [(s.value, SEGMENTS[s]) for s in members]) for group, members in SEGMENT_GROUPS]
    return {"situations": SITUATIONS, "segments": SEGMENTS, "segment_options": segment_options,
            "turnover_bands": TURNOVER_BANDS}


@bp.route("/")
@login_required(*ROLES)
def index() -> str:
    """List customers, searched by name or business ID, one page at a time."""
    q = request.args.get("q", "").strip()
    session = get_session()
    page = customers.search_customers(session, q, page_number(), PER_PAGE, reader=reader())
    names = display_names(session, (c.responsible_expert for c in page.items))
    return render_template("customers/index.html", q=q, page=page, names=names, **labels())


@bp.route("/without-expert")
@login_required(*ROLES)
def without_expert() -> str:
    """List customers who have no active responsible expert."""
    found = customers.customers_without_expert(get_session())
    return render_template("customers/without_expert.html", customers=found, **labels())


def _render_form(customer: Any, values: Any, errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    expert_options = [(u.username, f"{u.display_name} ({u.username})") for u in experts(get_session())]
    if customer is not None and customer.responsible_expert not in (None, *(k for k, _ in expert_options)):
        expert_options.append((customer.responsible_expert,
                               _("%(name)s (no longer an expert)", name=customer.responsible_expert)))
    html = render_template("customers/form.html", customer=customer, values=values, errors=errors,
                           expert_options=expert_options, **labels())
    return html, status


@bp.route("/new", methods=["GET", "POST"])
@login_required(*ROLES)
def create() -> Any:
    """Show the form for a new customer; register it."""
    if request.method == "GET":
        return _render_form(None, restore_form() or {}, {})
    try:
        customer = customers.create_customer(get_session(), request.form, by=current_user().username)
    except FormInvalid as exc:
        return _render_form(None, exc.values, exc.errors, 422)
    flash(_("Customer %(name)s registered.", name=customer.name), "success")
    if not access.can_read_customer(get_session(), reader(), customer.id):  # given to another expert
        return redirect(url_for(".index"))
    return redirect(url_for(".show", customer_id=customer.id))


@bp.route("/<int:customer_id>")
@login_required(*ROLES)
def show(customer_id: int, expert_error: str | None = None, status: int = 200) -> tuple[str, int]:
    """Show a customer's details and service processes."""
    session, me = get_session(), reader()
    customer = access.readable_customer(session, me, customer_id)
    processes = kpi.process_steps(session, customers.customer_processes(session, customer, reader=me))
    feedback = customers.customer_feedback(session, [p.instance.id for p in processes])
    contact_log = outreach_contacts.customer_contacts(session, customer.id)
    timeline, timeline_page = _timeline_page(session, customer, me, contact_log)
    people = [customer.responsible_expert] + [t.assignee or t.completed_by for p in processes
                                              for t in p.open_tasks + p.aftercare] + [e.actor for e in timeline]
    user = current_user()
    can_change = customers.may_change_responsible_expert(customer, user.username, user.role_set)
    expert_options = [(u.username, f"{u.display_name} ({u.username})") for u in experts(session)] \
        if can_change else []
    return render_template("customers/show.html", customer=customer, processes=processes,
                           names=display_names(session, people), process_names=process_names(),
                           due_state=due_state, now=utcnow(), timeline=timeline, timeline_page=timeline_page,
                           feedback=feedback,
                           event_labels=EVENT_LABELS, event_data=_event_data, contact_log=contact_log,
                           timeline_texts=_timeline_texts(timeline, {p.instance.id: p.instance.process_id
                                                                     for p in processes}),
                           contact_channels=_contact_channels(), today=now_local_date(),
                           can_change_expert=can_change, expert_options=expert_options,
                           expert_error=expert_error, **labels()), status


@bp.route("/<int:customer_id>/responsible-expert", methods=["POST"])
@login_required(*ROLES)
def change_expert(customer_id: int) -> Any:
    """Change the customer's responsible expert; their open service processes move with it."""
    session, user = get_session(), current_user()
    access.require_customer(session, reader(), customer_id)
    try:
        moved = customers.change_responsible_expert(session, customer_id, request.form.get("responsible_expert", ""),
                                                    by=user.username, roles=user.role_set)
    except FormInvalid as exc:
        return show(customer_id, expert_error=_(exc.errors["responsible_expert"]), status=422)
    names = display_names(session, [customers.get_customer(session, customer_id).responsible_expert])
    flash(_("Responsible expert is now %(name)s; %(count)s open service processes moved.",
            name=next(iter(names.values()), ""), count=len(moved)), "success")
    if not access.can_read_customer(session, reader(), customer_id):  # given to another expert
        return redirect(url_for(".index"))
    return redirect(url_for(".show", customer_id=customer_id))


def _contact_channels() -> dict[str, Any]:
    from .outreach import CHANNELS

    return CHANNELS


def now_local_date() -> str:
    """Return today's date in the office time zone (the contact form's default)."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    return utcnow().astimezone(ZoneInfo(current_app.extensions["polku"].settings.timezone)).date().isoformat()


def _timeline_page(session: Any, customer: Any, me: Any, contact_log: list[Any]) -> tuple[list[Any], dict[str, int]]:
    """Return one page of the customer's timeline (the query's `timeline`, 1 the newest) and where it stands.

    The page's events and the customer's logged contacts, merged newest first. The newest `page x
    TIMELINE_PAGE + 1` events hold every event of the page and tell whether an older page follows.
    """
    asked = whole_number(request.args.get("timeline", "").strip())
    page = asked if asked is not None and 1 <= asked <= TIMELINE_PAGES else 1
    end = page * TIMELINE_PAGE
    merged = _with_contacts(customers.customer_timeline(session, customer, limit=end + 1, reader=me), contact_log)
    start = min((page - 1) * TIMELINE_PAGE, max(0, (len(merged) - 1) // TIMELINE_PAGE * TIMELINE_PAGE))
    shown = start // TIMELINE_PAGE + 1
    return merged[start:start + TIMELINE_PAGE], {"page": shown, "first": start + 1,
                                                  "last": min(len(merged), start + TIMELINE_PAGE),
                                                  "older": int(len(merged) > start + TIMELINE_PAGE),
                                                  "deepest": int(shown == TIMELINE_PAGES)}


def _with_contacts(timeline: list[Any], contact_log: list[Any]) -> list[Any]:
    """Merge logged contacts into the timeline of process events, newest first."""
    import json
    from datetime import datetime, time
    from types import SimpleNamespace

    from engine.db import UTC

    entries = [SimpleNamespace(kind="contact_logged", at=datetime.combine(c.contacted_on, time(12), UTC),
                               actor=c.created_by, instance_id=c.instance_id, version_id=None,
                               data=json.dumps({"name": c.topic})) for c in contact_log]
    return sorted([*timeline, *entries], key=lambda e: e.at, reverse=True)


def _timeline_texts(timeline: list[Any], of_case: dict[int, str]) -> list[str]:
    """Return what the customer's timeline says of each entry: a case's start and end with its process's
    name, a message by what it means, a task or contact with its name.

    `of_case`: {instance id: process id} of the customer's cases the page lists, which hold every case
    the timeline names (both are read for the same reader)."""
    names = process_names()
    texts = []
    for e in timeline:
        data = _event_data(e)
        process = of_case.get(e.instance_id)
        if e.kind in CASE_LABELS and process:
            text = label(CASE_LABELS[e.kind]) % {"process": names.get(process, process)}
        else:
            text = label(EVENT_LABELS.get(e.kind, e.kind))
            name = data.get("name")
            if e.kind in ("message_thrown", "message_received") and name in MESSAGE_LABELS:
                text += f": {label(MESSAGE_LABELS[name])}"
            elif name:
                text += f": {modeltexts.text(name, e.version_id)}"
        texts.append(text)
    return texts


def _event_data(event: Any) -> dict[str, Any]:
    """Return an audit event's data as a dict (the timeline shows the task name from it)."""
    import json

    return json.loads(event.data)


def _render_start(customer: Any, fields: list[Any], values: dict[str, Any], errors: dict[str, str],
                  status: int = 200) -> tuple[str, int]:
    html = render_template("customers/start.html", customer=customer, values=values,
                           fields=modeltexts.latest_fields(SERVICE_PROCESS, fields),
                           errors=formfields.messages(errors),
                           process_name=process_names().get(SERVICE_PROCESS, SERVICE_PROCESS))
    return html, status


@bp.route("/<int:customer_id>/start", methods=["GET", "POST"])
@login_required(*ROLES)
def start(customer_id: int) -> Any:
    """Show the start form of a service process for this customer; start it and open its first task."""
    session, user = get_session(), current_user()
    access.require_customer(session, reader(), customer_id)
    customer = customers.get_customer(session, customer_id)
    fields = runtime.start_form(session, SERVICE_PROCESS)
    known = {"business_id": customer.business_id, "company_name": customer.name}
    initial = formfields.initial_values(fields, known)
    if request.method == "GET":
        restored = restore_form()
        values = formfields.typed_values(fields, initial, formfields.read_posted(fields, restored)) \
            if restored is not None else initial
        return _render_start(customer, fields, values, {})
    data = formfields.read_posted(fields, request.form)
    values = formfields.typed_values(fields, initial, data)
    too_large = formfields.too_large(fields, data)
    if too_large:
        return _render_start(customer, fields, values, too_large, 413)
    if data.get("business_id", "").strip() != customer.business_id:
        return _render_start(customer, fields, values,
                             {"business_id": _("The business ID must be this customer's.")}, 422)
    try:
        instance = runtime.start_instance(session, SERVICE_PROCESS, by=user.username, data=data,
                                          business_key=customer.business_id)
    except FormInvalid as exc:
        return _render_start(customer, fields, values, exc.errors, 422)
    flash(_("Service process started for %(name)s.", name=customer.name), "success")
    first = next_task(instance.id, user)
    if first is not None:
        return redirect(url_for("tasks.task", task_id=first.id))
    return redirect(url_for(".show", customer_id=customer_id))


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
@login_required(*ROLES)
def edit(customer_id: int) -> Any:
    """Show a customer's edit form; save the changes."""
    session = get_session()
    access.require_customer(session, reader(), customer_id)
    customer = customers.get_customer(session, customer_id)
    if request.method == "GET":
        current = {f: "" if getattr(customer, f) is None else str(getattr(customer, f)) for f in customers.FIELDS}
        return _render_form(customer, restore_form() or current, {})
    try:
        customers.update_customer(session, customer_id, request.form, by=current_user().username)
    except FormInvalid as exc:
        return _render_form(customer, exc.values, exc.errors, 422)
    flash(_("Changes saved."), "success")
    return redirect(url_for(".show", customer_id=customer_id))
