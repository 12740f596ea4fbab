"""The expert's pages: the inbox (my / my group's / all tasks), my aftercare, and one task's page.

The task page renders the task's form from its fields (`templates/tasks/_form.html`), completes it
through `engine.runtime.complete_task` and goes straight on to the case's next task when it is the
user's. A refused submission (wrong fields, taken or completed by someone else, a concurrent change)
re-renders the form with everything typed. Claim, release and reassign post to their own URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from engine import access, actions, customers, kpi, runtime
from engine import aftercare as aftercare_lines
from engine.db import utcnow
from engine.errors import Conflict, FormInvalid, InvalidInput, NotFound, TaskNotAvailable
from engine.inbox import SORTS, TaskFilter, assign, claim, due_soon, is_overdue, list_tasks, release
from engine.inbox import tasks as open_tasks
from engine.models import ProcessVersion, Task, TaskStatus, User
from engine.users import display_names, experts

from . import formfields, modeltexts
from .auth import as_at_start, current_user, has_role, login_required, restore_form, safe_next
from .db import get_session, write_session
from .errors import keep_unsaved, later_page
from .inputs import page_number
from .providers import provider_choices

bp = Blueprint("tasks", __name__, url_prefix="/tasks")
bp.add_app_template_global(modeltexts.text, "model_text")  # model texts in the user's language


@bp.app_template_global()
def users_with_role(role: str) -> list[tuple[str, str]]:
    """Return (username, "Display name (username)") of the active users holding a role (userRole fields),
    read once per request."""
    known = g.setdefault("users_with_role", {})
    if role not in known:
        active = runtime.users_of_role(get_session())(role)
        shown = display_names(get_session(), active)
        known[role] = sorted(((u, f"{shown.get(u, u)} ({u})") for u in active), key=lambda item: item[1].casefold())
    return known[role]

ROLES = ("expert", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
PER_PAGE = 25
TABS = {"mine": _l("My tasks"), "group": _l("My group's tasks"), "all": _l("All open tasks")}
DUE_FILTERS = {"overdue": _l("Overdue"), "soon": _l("Due within 2 days"), "week": _l("Due within 7 days")}


def request_experts() -> list[User]:
    """Return the active experts (`engine.users.experts`), read once per request."""
    if "experts" not in g:
        g.experts = experts(get_session())
    return g.experts


@bp.app_template_global()
def expert_options(people: list[User], selected: str | None) -> Markup:
    """Return the <option>s of a reassign select with `selected` chosen; built once per request and list.

    A supervisor's task table has a select of every expert on each row: a Jinja loop per row cost
    more than the rest of the page.
    """
    built = g.get("expert_options")
    if built is None or built[0] is not people:
        built = g.expert_options = (people, [(u.username, f'<option value="{escape(u.username)}"',
                                              f">{escape(u.display_name)}</option>") for u in people])
    return Markup("".join(f"{head} selected{tail}" if name == selected else head + tail
                          for name, head, tail in built[1]))


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]+")  # a path part URL-quoting leaves as it is
_SLOTS = {int: 918273645546372819, str: "xrowslotx"}  # stand-ins no real URL contains


@bp.app_template_global()
def row_url(endpoint: str, **values: Any) -> str:
    """Return `url_for(endpoint, **values)` for one varying value; the rule is built once per request.

    A table of 25 rows built four URLs a row through Werkzeug's router (~25 µs each). Values that
    URL-quoting would change go through `url_for` itself.
    """
    [(name, value)] = values.items()
    text, slot = str(value), _SLOTS.get(type(value))
    if slot is None or not _PLAIN.fullmatch(text):
        return url_for(endpoint, **values)
    built = g.setdefault("row_urls", {})
    key = (endpoint, name, type(value))
    if key not in built:
        built[key] = url_for(endpoint, **{name: slot}).split(str(slot))
    parts = built[key]
    return f"{parts[0]}{text}{parts[1]}" if len(parts) == 2 else url_for(endpoint, **values)


def due_state(task: Task, now: datetime) -> str | None:
    """Return 'overdue', 'soon' or None for an open task's due date."""
    if is_overdue(task, now):
        return "overdue"
    return "soon" if task.state == TaskStatus.READY and due_soon(task, now) else None


def _me() -> User:
    user = current_user()
    assert user is not None  # login_required ran
    return user


def reader() -> access.Reader:
    """Return the signed-in user as `engine.access` sees them (what they may read)."""
    user = _me()
    return access.Reader.of(user.username, user.role_set)


def process_names() -> dict[str, str]:
    """Return {process id: name in the user's language} of the deployed processes."""
    return modeltexts.process_names()


def row_context(rows: list[tuple[Task, Any]], also_named: Iterable[str | None] = ()) -> dict[str, Any]:
    """Return what a task table shows beside the rows: customer, assignee and process names, due states.

    `also_named`: other user names the page shows, looked up with the assignees' (one statement, none
    when the request has read the active experts (`request_experts`) and every name is one of them)."""
    session = get_session()
    wanted = {n for n in (*(t.assignee for t, _i in rows), *also_named) if n}
    names = {u.username: u.display_name for u in g.get("experts", ()) if u.username in wanted}
    names.update(display_names(session, wanted - names.keys()))  # no statement when none is left
    return {"customer_names": kpi.customer_names(session, (i.business_key for _t, i in rows)),
            "names": names, "processes": process_names(), "now": utcnow(), "due_state": due_state}


def _filter(tab: str, user: User, now: datetime) -> TaskFilter:
    if tab == "mine":  # only "my tasks" shows the tasks of the absent colleagues I cover (a statement)
        base = TaskFilter(assignee=user.username, cover=_cover(user, now))
    else:
        base = TaskFilter(roles=frozenset(user.role_set)) if tab == "group" else TaskFilter()
    due = request.args.get("due")
    if tab == "all" and request.args.get("assignee"):
        base = TaskFilter(assignee=request.args["assignee"])
    return replace(base, business_key=request.args.get("customer", "").strip() or None,
                   process_id=request.args.get("process") or None,
                   due_before=now + timedelta(days=2 if due == "soon" else 7) if due in ("soon", "week") else None,
                   overdue_at=now if due == "overdue" else None)


def _cover(user: User, now: datetime) -> tuple[Any, ...]:
    """Return the absences this user covers, for "my tasks" (engine.absences)."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    from engine import absences

    tz = current_app.extensions["polku"].settings.timezone
    return absences.cover_windows(get_session(), user.username, now.astimezone(ZoneInfo(tz)).date(), tz)


@bp.route("/")
@login_required(*ROLES)
def inbox() -> str:
    """List my tasks, my group's tasks or (for supervisors) all open tasks, filtered, sorted and paged."""
    user, now = _me(), utcnow()
    tabs = [t for t in TABS if t != "all" or has_role(*SUPERVISORS)]
    tab = request.args.get("tab", "mine")
    if tab not in tabs:
        tab = "mine"
    sort = request.args.get("sort", "due")
    sort = sort if sort in SORTS else "due"
    page = list_tasks(get_session(), _filter(tab, user, now), sort=sort, page=page_number(), per_page=PER_PAGE)
    args = {k: request.args.get(k, "") for k in ("customer", "process", "due")}
    if tab == "all" and request.args.get("assignee"):
        args["assignee"] = request.args["assignee"]
    return render_template("tasks/inbox.html", tab=tab, tabs=tabs, tab_labels=TABS, page=page, sort=sort,
                           args=args, due_filters=DUE_FILTERS,
                           experts=request_experts() if has_role(*SUPERVISORS) else [],
                           **row_context(page.rows))


@bp.route("/aftercare")
@login_required(*ROLES)
def aftercare() -> str:
    """List my open aftercare contacts and follow-up days, earliest due first."""
    rows = kpi.aftercare_tasks(get_session(), _me().username)
    return render_template("tasks/aftercare.html", rows=rows, **row_context(rows))


def _render(details: dict[str, Any], values: dict[str, Any], errors: dict[str, str], status: int = 200,
            problem: str | None = None, cancel_error: str | None = None,
            action: tuple[str, dict[str, Any], dict[str, str]] | None = None) -> tuple[str, int]:
    return render_template("tasks/task.html", **_page(details, values, errors, problem, cancel_error, action)), status


def _page(details: dict[str, Any], values: dict[str, Any], errors: dict[str, str], problem: str | None = None,
          cancel_error: str | None = None,
          action: tuple[str, dict[str, Any], dict[str, str]] | None = None) -> dict[str, Any]:
    """Read what the task page shows; return the template's context."""
    session = get_session()
    task, instance = details["task"], details["instance"]
    hidden = details.get("case_hidden", False)  # a task of my role in a case that is not mine: no case data
    customer = customers.find_by_business_id(session, instance.business_key) \
        if instance.business_key and not hidden else None
    user = _me()
    return dict(
        task=task, instance=instance, fields=modeltexts.fields(details["form"], instance.version_id),
        values=values, errors=formfields.messages(errors), problem=problem, customer=customer, case_hidden=hidden,
        documentation=formfields.safe_markdown(modeltexts.text(details["documentation"], instance.version_id)),
        facts=modeltexts.case_facts(instance.version_id, details["variables"]),
        names=display_names(session, [task.assignee, task.completed_by]), processes=process_names(),
        due=due_state(task, utcnow()), experts=request_experts() if has_role(*SUPERVISORS) else [],
        can_claim=task.state == TaskStatus.READY and task.assignee is None and task.candidate_role in user.role_set,
        mine=task.assignee == user.username, cancel_error=cancel_error, **_action_context(details, action),
        coverable=_coverable(details), covered=request.form.getlist("covered_contacts"),
        can_cancel=instance.status == "running" and not hidden
        and customers.may_cancel_case(session, instance, user.username, set(user.role_set),
                                      variables=details["variables"], customer=customer))


def _unsaved_page(details: dict[str, Any], values: dict[str, Any]) -> Callable[[], str]:
    """Return the function that draws the task page with what was typed and "not saved", if the write fails.

    Everything the page shows is read now, before the write; the page is drawn only if the write
    fails (`errors.later_page`), not on every completion that succeeds.
    """
    with as_at_start():  # the unread badge and the process names as read with the sign-in
        context = _page(details, values, {}, problem=formfields.unsaved_message())
        for item in [*context["fields"], *(f for shown in context["task_actions"] for f in shown["fields"])]:
            if item.user_role:  # the form's selects of people and providers, kept in g for the drawing
                users_with_role(item.user_role)
            if item.provider_kinds is not None:
                provider_choices(item.provider_kinds)
        return later_page("tasks/task.html", context)


def keep_versions(session: Any) -> None:
    """Detach the loaded process versions before this request's work is rolled back.

    `engine.deploy.version_by_id` keeps version rows across requests; a rollback would expire the
    kept copy and every later action on that version would fail (DetachedInstanceError).
    """
    for row in [o for o in session.identity_map.values() if isinstance(o, ProcessVersion)]:
        session.expunge(row)


def _details(session: Any, task_id: str, *, again: bool = False) -> dict[str, Any]:
    """Read what the task page shows; a task that is not mine to see is a 404 (TaskNotFound).

    One statement checks the task, reads it and its case, and tells whether the case is mine to see.
    `again`: the page once more after a refused write, in a request whose check passed: the task
    is shown as it is now, whoever holds it, so that what was typed comes back with the reason.
    """
    if again:
        details = runtime.task_details(session, task_id)
        case_readable = access.can_read_instance(session, reader(), details["instance"].id)
    else:
        task, instance, case_readable = access.readable_task(session, reader(), task_id)
        details = runtime.task_details(session, task_id, (task, instance), variables=case_readable)
    return details if case_readable else {**details, "case_hidden": True, "variables": {}}


def _refused(task: Task) -> str:
    who = task.completed_by or task.assignee or ""
    if task.state == TaskStatus.COMPLETED:
        return _("%(who)s completed this task already. What you typed is kept below; copy anything you still "
                 "need.", who=who)
    if task.state != TaskStatus.READY:
        return _("This task is no longer open (the case moved on). What you typed is kept below.")
    if task.assignee and task.assignee != _me().username:
        return _("This task is assigned to %(who)s. What you typed is kept below.", who=who)
    return _("This task belongs to another group: you cannot complete it. What you typed is kept below.")


@bp.route("/<task_id>", methods=["GET", "POST"])
@login_required(*ROLES)
def task(task_id: str) -> Any:
    """Show a task with its form; complete it and go on to the case's next task of mine."""
    session, user = get_session(), _me()
    details = _details(session, task_id)  # 404 for a task that is not mine to see
    fields = details["form"]
    initial = formfields.initial_values(fields, details["variables"])
    if request.method == "GET":
        restored = restore_form()
        values = formfields.typed_values(fields, initial, formfields.read_posted(fields, restored)) \
            if restored is not None else initial
        return _render(details, values, {})
    data = formfields.read_posted(fields, request.form)
    values = formfields.typed_values(fields, initial, data)
    too_large = formfields.too_large(fields, data)
    if too_large:
        return _render(details, values, too_large, 413)
    instance_id, name = details["instance"].id, modeltexts.text(details["task"].name, details["instance"].version_id)
    keep_unsaved(_unsaved_page(details, values))
    keep_versions(session)  # kept across requests: the expiry of what was read must not reach them
    session = write_session(reread=True)  # SQLite: the write lock from here on, every row read again under it
    covered = request.form.getlist("covered_contacts")  # other lines' contacts this one covers (engine.aftercare)
    try:
        if covered:
            aftercare_lines.complete_covering(session, task_id, data, covered, by=user.username, roles=set(user.role_set))
        else:
            runtime.complete_task(session, task_id, data, by=user.username, roles=set(user.role_set))
    except FormInvalid as exc:
        keep_versions(session)  # the 422 rolls back
        return _render(details, values, exc.errors, 422)
    except InvalidInput as exc:  # data over the limits (size, depth) or not storable
        keep_versions(session)
        return _render(details, values, {}, 400, problem=formfields.message(str(exc)))
    except TaskNotAvailable:
        keep_versions(session)
        session.rollback()
        details = _details(session, task_id, again=True)
        return _render(details, values, {}, 409, problem=_refused(details["task"]))
    except Conflict:
        keep_versions(session)
        session.rollback()
        details = _details(session, task_id, again=True)
        return _render(details, values, {}, 409, problem=_(
            "Someone else changed this case at the same moment. What you typed is kept: try again."))
    return _go_on(instance_id, name)


def next_task(instance_id: int, user: User) -> Task | None:
    """Return the case's first open task that is the user's (assigned, or unassigned in their roles)."""
    for candidate in open_tasks(get_session(), instance_id=instance_id):
        if candidate.assignee == user.username or (candidate.assignee is None
                                                   and candidate.candidate_role in user.role_set):
            return candidate
    return None


def _go_on(instance_id: int, done_name: str | None = None) -> Response:
    following = next_task(instance_id, _me())
    if done_name:
        flash(_("Task “%(name)s” completed.", name=done_name), "success")
    if following is not None:
        name = modeltexts.text(following.name, modeltexts.instance_version(instance_id))
        flash(_("Next task in this case: %(name)s.", name=name), "info")
        return redirect(url_for(".task", task_id=following.id))
    if done_name:
        flash(_("This case has no further task for you right now."), "info")
    return redirect(url_for(".inbox"))


def _back(default: str) -> str:
    return safe_next(request.form.get("next")) or default


@bp.route("/<task_id>/claim", methods=["GET", "POST"])
@login_required(*ROLES)
def claim_task(task_id: str) -> Response:
    """Take an unassigned task of my group."""
    target = url_for(".task", task_id=task_id)
    if request.method == "GET":  # back here after signing in again: show the task
        return redirect(target)
    user = _me()
    try:
        claim(get_session(), task_id, by=user.username, roles=set(user.role_set))
    except TaskNotAvailable as exc:
        flash(_("You could not take the task: %(reason)s", reason=formfields.message(str(exc))), "error")
        return redirect(_back(url_for(".inbox")))
    flash(_("The task is now yours."), "success")
    return redirect(_back(target))


@bp.route("/<task_id>/release", methods=["GET", "POST"])
@login_required(*ROLES)
def release_task(task_id: str) -> Response:
    """Give a task I hold back to its group."""
    if request.method == "GET":
        return redirect(url_for(".task", task_id=task_id))
    try:
        release(get_session(), task_id, by=_me().username)
    except TaskNotAvailable:
        flash(_("Only the person holding the task can release it."), "error")
        return redirect(_back(url_for(".task", task_id=task_id)))
    flash(_("The task was returned to the group."), "success")
    return redirect(_back(url_for(".inbox")))


@bp.route("/<task_id>/assign", methods=["GET", "POST"])
@login_required(*SUPERVISORS)
def assign_task(task_id: str) -> Response:
    """Reassign an open task to a named expert, or back to the group (supervisors)."""
    if request.method == "GET":
        return redirect(url_for(".task", task_id=task_id))
    session = get_session()
    assignee = request.form.get("assignee", "").strip()
    choices = {u.username: u.display_name for u in experts(session)}
    if assignee and assignee not in choices:
        abort(400)
    try:
        assign(session, task_id, assignee or None, by=_me().username)
    except TaskNotAvailable:
        flash(_("The task is no longer open, so it cannot be reassigned."), "error")
        return redirect(_back(url_for(".inbox")))
    if assignee and request.form.get("make_responsible"):
        _make_responsible(session, task_id, assignee, choices[assignee])
    if assignee:
        flash(_("Task reassigned to %(name)s.", name=choices[assignee]), "success")
    else:
        flash(_("The task was returned to the group."), "success")
    return redirect(_back(url_for(".task", task_id=task_id)))


@bp.route("/<task_id>/cancel-case", methods=["GET", "POST"])
@login_required(*ROLES)
def cancel_case(task_id: str) -> Any:
    """Cancel the case of this task with a reason (the expert their own case, a supervisor any)."""
    if request.method == "GET":
        return redirect(url_for(".task", task_id=task_id))
    session, user = get_session(), _me()
    details = _details(session, task_id)  # 404 for a task that is not mine to see
    instance = details["instance"]
    try:
        customers.cancel_case(session, instance.id, request.form.get("reason", ""), by=user.username,
                              roles=set(user.role_set))
    except FormInvalid as exc:
        fields = details["form"]
        return _render(details, formfields.initial_values(fields, details["variables"]), {}, 422,
                       cancel_error=_(exc.errors["reason"]))
    except TaskNotAvailable:
        flash(_("This case has already ended."), "error")
        return redirect(url_for(".task", task_id=task_id))
    flash(_("The case was cancelled."), "success")
    return redirect(url_for(".inbox"))


def _make_responsible(session: Any, task_id: str, assignee: str, name: str) -> None:
    """Make the assignee the responsible expert of the task's case (R2: the case follows them)."""
    row = session.get(Task, task_id)
    try:
        runtime.deliver_message(session, customers.RESPONSIBLE_CHANGED_MESSAGE, by=_me().username,
                                data={"responsible_expert": assignee}, instance_id=row.instance_id)
    except NotFound:
        flash(_("This case has no responsible expert to change."), "info")
        return
    flash(_("%(name)s is now the responsible expert of this case.", name=name), "success")


def _action_context(details: dict[str, Any], posted: tuple[str, dict[str, Any], dict[str, str]] | None) -> dict[str, Any]:
    """Return the task actions the page offers (engine.actions), each with its form and earlier runs.

    `posted` is (action id, typed values, field errors) of a refused run, shown again as typed.
    """
    task, instance = details["task"], details["instance"]
    if task.state != TaskStatus.READY or details.get("case_hidden"):
        return {"task_actions": []}
    shown = []
    for action in actions.task_actions(details["version"], task.element_id, task.process_id):
        fields = modeltexts.fields(action.form, instance.version_id)
        values, errors = formfields.initial_values(fields, {}), {}
        if posted is not None and posted[0] == action.element_id:
            values, errors = posted[1], formfields.messages(posted[2])
        shown.append({"id": action.element_id, "name": modeltexts.text(action.name, instance.version_id),
                      "documentation": modeltexts.text(action.documentation, instance.version_id)
                      if action.documentation else None, "fields": fields, "values": values, "errors": errors,
                      "runs": _earlier_runs(instance.id, action.element_id, fields)})
    return {"task_actions": shown, "open_action": posted[0] if posted else None}


def _earlier_runs(instance_id: int, action_id: str, fields: list[Any]) -> list[dict[str, Any]]:
    """Return the earlier runs of an action in this case: when, who, and the values as people read them."""
    shown = []
    for run in actions.action_runs(get_session(), instance_id, action_id):
        parts = []
        for item in fields:
            value = run["submitted"].get(item.id)
            if value in (None, "", []):
                continue
            parts.append(dict(item.options).get(value, value) if item.options else value)
        shown.append({"at": run["at"], "by": run["by"], "text": " · ".join(str(p) for p in parts)})
    return shown


@bp.route("/<task_id>/action/<action_id>", methods=["GET", "POST"])
@login_required(*ROLES)
def run_action(task_id: str, action_id: str) -> Any:
    """Run a task action the model puts on this task (e.g. "customer not reached"); go on to the case's next task."""
    if request.method == "GET":
        return redirect(url_for(".task", task_id=task_id))
    session, user = get_session(), _me()
    details = _details(session, task_id)  # 404 for a task that is not mine to see
    instance = details["instance"]
    row = details["task"]
    action = next((a for a in actions.task_actions(details["version"], row.element_id, row.process_id)
                   if a.element_id == action_id), None)
    if action is None:
        abort(404)
    fields = details["form"]
    values = formfields.initial_values(fields, details["variables"])
    data = formfields.read_posted(action.form, request.form)
    typed = formfields.typed_values(action.form, formfields.initial_values(action.form, {}), data)
    try:
        actions.run_task_action(session, task_id, action_id, data, by=user.username, roles=set(user.role_set))
    except FormInvalid as exc:
        keep_versions(session)
        return _render(details, values, {}, 422, action=(action_id, typed, exc.errors))
    except (TaskNotAvailable, Conflict):
        keep_versions(session)
        session.rollback()
        details = _details(session, task_id, again=True)
        return _render(details, values, {}, 409, problem=_refused(details["task"]))
    flash(_("Recorded: %(name)s.", name=modeltexts.text(action.name, instance.version_id)), "success")
    return _go_on(instance.id)


def _coverable(details: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the other lines' open aftercare contacts this contact may cover, labelled by their line."""
    task, instance = details["task"], details["instance"]
    if details.get("case_hidden"):
        return []
    found = aftercare_lines.coverable_contacts(get_session(), task)
    if not found:
        return []
    lines = next((dict(f.options) for f in modeltexts.fields(details["form"], instance.version_id)
                  if f.id == "services_told_about"), {})
    return [{"task_id": c.task_id, "label": lines.get(c.service_line or "", c.service_line or ""),
             "ended": c.service_ended_on or "", "due_at": c.due_at} for c in found]
