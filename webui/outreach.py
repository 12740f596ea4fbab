"""Customer work outside processes: the contact log form, worklists, company import, notifications,
notification settings, absences and the office settings the supervisor changes.

The engine side is `engine.contacts`, `engine.notices`, `engine.absences` and `engine.office`.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import absences, access, contacts, inbox, notices, office
from engine.db import utcnow
from engine.errors import FormInvalid, InvalidInput
from engine.models import User
from engine.paging import Page
from engine.users import display_names, list_users

from .auth import current_user, login_required, read_with_signin
from .db import get_session
from .inputs import page_number, whole_number
from .tasks import reader

bp = Blueprint("outreach", __name__)
ROLES = ("expert", "supervisor", "admin")
CHANNELS = {"visit": _l("Company visit"), "phone": _l("Phone"), "email": _l("E-mail"), "event": _l("Event"),
            "web": _l("Web service")}
REASONS = {"due": _l("Next contact date due"), "stale": _l("No contact for a long time"),
           "never": _l("Never contacted")}
SETTING_LABELS = {"visit_target": _l("Company visits per year (target)"),
                  "contact_interval_months": _l("Contact customers at least every N months"),
                  "reminder_lead_days": _l("Daily digest: tasks due within N days"),
                  "aftercare_target_days_recruitment": _l("Aftercare target after recruitment services (days)"),
                  "aftercare_target_days_training": _l("Aftercare target after joint-purchase training (days)"),
                  "aftercare_target_days_business_development": _l(
                      "Aftercare target after business development services (days)"),
                  "aftercare_target_days_change_security": _l("Aftercare target after change security (days)"),
                  "aftercare_target_days_startup": _l("Aftercare target after start-up services (days)"),
                  "aftercare_target_days_referral": _l("Aftercare target after a referral (days)"),
                  "aftercare_attempts": _l("Contact attempts before a customer counts as not reached"),
                  "follow_up_offset_days": _l("Follow-up day after the end of a consulting service (days)"),
                  "follow_up_lead_days": _l("The follow-up day's task opens this many days before the day")}
SETTING_HELP = {"aftercare_target": _l(
    "The office's own choice, not a rule of the thesis or of the law: the thesis only says aftercare comes as "
    "soon as possible after the service ends. A contact is on time when it is made at most this many days "
    "after the end of the service line (Helsinki days). A change applies to cases that start after it."),
    "aftercare_attempts": _l("The office's own choice: failed attempts before the aftercare is closed as "
                             "not reached (counted apart, neither done nor late)."),
    "follow_up_offset_days": _l("The office's own choice: the thesis says for example a year after the end "
                                "of the consulting. A change applies to cases that start after it."),
    "follow_up_lead_days": _l("The office's own choice: time for the expert to agree the day with the customer "
                              "and the consultant. A change applies to cases that start after it.")}
MAX_IMPORT_BYTES = 2_000_000
WORKLIST_PAGE = 50  # customers to contact per page: an office's whole list (thousands) is no page to read


def _me() -> User:
    user = current_user()
    assert user is not None  # login_required ran
    return user


def _today() -> Any:
    return utcnow().astimezone(ZoneInfo(current_app.extensions["polku"].settings.timezone)).date()


@bp.route("/customers/<int:customer_id>/contacts", methods=["POST"])
@login_required(*ROLES)
def log_contact(customer_id: int) -> Any:
    """Record a contact on the customer page; a prospecting visit may start a service process."""
    session, user = get_session(), _me()
    access.require_customer(session, reader(), customer_id)
    start = request.form.get("start_process") == "1"
    try:
        contact = contacts.log_contact(session, customer_id, request.form, by=user.username, start_process=start)
    except FormInvalid as exc:
        for message in exc.errors.values():
            flash(_(message), "error")
        return redirect(url_for("customers.show", customer_id=customer_id) + "#contacts")
    flash(_("Contact saved."), "success")
    if contact.instance_id is not None:
        flash(_("Service process started."), "success")
    return redirect(url_for("customers.show", customer_id=customer_id) + "#contacts")


@bp.route("/worklists")
@login_required(*ROLES)
def worklists() -> str:
    """Customers to contact (mine, or everyone's for a supervisor) and new web-service companies."""
    session, user = get_session(), _me()
    everyone = bool(user.role_set & {"supervisor", "admin"}) and request.args.get("mine") != "1"
    rows = contacts.customers_to_contact(session, _today(), expert=None if everyone else user.username)
    page = Page.of(rows, page_number(), WORKLIST_PAGE)
    return render_template("outreach/worklists.html", page=page, reasons=REASONS, everyone=everyone,
                           mine=request.args.get("mine") == "1", companies=contacts.new_web_companies(session),
                           names=display_names(session, (r.customer.responsible_expert for r in page.rows)))


@bp.route("/worklists/import", methods=["POST"])
@login_required(*ROLES)
def import_companies() -> Any:
    """Import a CSV of companies that posted their first vacancy in the web service."""
    upload = request.files.get("file")
    raw = upload.read(MAX_IMPORT_BYTES + 1) if upload else b""
    if not raw or len(raw) > MAX_IMPORT_BYTES:
        flash(_("Choose a CSV file (at most 2 MB)."), "error")
        return redirect(url_for(".worklists"))
    try:
        result = contacts.import_companies(get_session(), raw.decode("utf-8-sig", "replace"),
                                           by=_me().username, source=(upload.filename if upload else None) or "csv")
    except InvalidInput as err:
        flash(_(str(err)), "error")
        return redirect(url_for(".worklists"))
    flash(_("%(added)s companies added, %(known)s already known.", added=result.added, known=result.known),
          "success")
    for line, message in sorted(result.errors.items())[:20]:
        flash(_("Line %(line)s: %(message)s", line=line, message=_(message)), "error")
    return redirect(url_for(".worklists"))


@bp.route("/worklists/companies/<int:company_id>", methods=["POST"])
@login_required(*ROLES)
def handle_company(company_id: int) -> Any:
    """Take a web-service company off the worklist, registering it as a customer if asked."""
    try:
        customer = contacts.handle_company(get_session(), company_id, by=_me().username,
                                           register=request.form.get("register") == "1")
    except (InvalidInput, FormInvalid) as err:
        flash(_(str(err)), "error")
        return redirect(url_for(".worklists"))
    if customer is not None:
        return redirect(url_for("customers.show", customer_id=customer.id))
    return redirect(url_for(".worklists"))


@bp.route("/notifications")
@login_required()
def notifications() -> str:
    """The signed-in user's notices, newest first, and their notification settings."""
    session, user = get_session(), _me()
    return render_template("outreach/notifications.html", notices=notices.for_user(session, user.username),
                           prefs=notices.user_settings(session, user.username))


@bp.route("/notifications/read", methods=["POST"])
@login_required()
def mark_read() -> Any:
    """Mark one notice (or all) read."""
    text = request.form.get("notice_id", "")
    notices.mark_read(get_session(), _me().username, whole_number(text))
    return redirect(url_for(".notifications"))


@bp.route("/notifications/settings", methods=["POST"])
@login_required()
def save_settings() -> Any:
    """Save my e-mail address and opt-outs."""
    try:
        notices.save_user_settings(get_session(), _me().username, email=request.form.get("email"),
                                   email_opt_out=request.form.get("email_opt_out") == "1",
                                   digest_opt_out=request.form.get("digest_opt_out") == "1")
    except FormInvalid:
        flash(_("Enter an e-mail address."), "error")
        return redirect(url_for(".notifications"))
    flash(_("Changes saved."), "success")
    return redirect(url_for(".notifications"))


@bp.route("/absences", methods=["GET", "POST"])
@login_required("expert", "supervisor", "admin")
def absences_page() -> Any:
    """Record an absence with a substitute (my own; anyone's for a supervisor) and see who covers whom."""
    session, user = get_session(), _me()
    manager = bool(user.role_set & {"supervisor", "admin"})
    if request.method == "POST":
        who = request.form.get("username", "") if manager else user.username
        try:
            absences.record_absence(session, who or user.username, request.form.get("substitute", ""),
                                    request.form.get("starts_on"), request.form.get("ends_on"), by=user.username,
                                    note=request.form.get("note", ""))
        except FormInvalid as exc:
            for message in exc.errors.values():
                flash(_(message), "error")
        else:
            flash(_("Absence saved."), "success")
        return redirect(url_for(".absences_page"))
    people = [u for u in list_users(session) if u.active]
    rows = absences.current_and_coming(session, _today())
    names = {u.username: u.display_name for u in people}
    cover = absences.cover_tasks(session, user.username, _today(),
                                 current_app.extensions["polku"].settings.timezone)
    return render_template("outreach/absences.html", rows=rows, people=people, names=names, manager=manager,
                           cover=cover)


@bp.route("/absences/take/<task_id>", methods=["POST"])
@login_required("expert", "supervisor", "admin")
def take_over(task_id: str) -> Any:
    """Take over a task of an absent expert that I cover (it becomes mine; audited as a reassignment)."""
    session, user = get_session(), _me()
    tz = current_app.extensions["polku"].settings.timezone
    covered = {t.id for t, _a in absences.cover_tasks(session, user.username, _today(), tz)}
    if task_id not in covered:
        flash(_("You do not cover this task."), "error")
        return redirect(url_for("tasks.inbox"))
    inbox.assign(session, task_id, user.username, by=user.username)
    return redirect(url_for("tasks.task", task_id=task_id))


@bp.route("/office/settings", methods=["GET", "POST"])
@login_required("supervisor", "admin")
def office_settings() -> Any:
    """The supervisor's office settings (audited) and the year's visits against the target."""
    session, user = get_session(), _me()
    if request.method == "POST":
        for key in office.SETTINGS:
            if key in request.form:
                try:
                    office.set_value(session, key, request.form[key], by=user.username)
                except InvalidInput as err:
                    flash(f"{SETTING_LABELS[key]}: {_(str(err))}", "error")
                    return redirect(url_for(".office_settings"))
        flash(_("Changes saved."), "success")
        return redirect(url_for(".office_settings"))
    today = _today()
    return render_template("outreach/office.html", values=office.all_settings(session), labels=SETTING_LABELS,
                           help=SETTING_HELP, changes=office.history(session),
                           names_of=display_names(session, {c.by for c in office.history(session)}),
                           progress=contacts.visit_progress(session, today),
                           by_expert=contacts.visits_by_expert(session, today.year),
                           names=display_names(session, contacts.visits_by_expert(session, today.year)),
                           absences=absences.current_and_coming(session, today))


@bp.route("/admin/mail", methods=["GET", "POST"])
@login_required("admin")
def mail_outbox() -> Any:
    """E-mails waiting or failed, with their last error; failed ones can be queued again."""
    session = get_session()
    if request.method == "POST":
        text = request.form.get("mail_id", "")
        count = notices.retry_failed(session, whole_number(text))
        flash(_("%(count)s e-mails queued again.", count=count), "success")
        return redirect(url_for(".mail_outbox"))
    return render_template("outreach/mail.html", mails=notices.outbox(session),
                           smtp_host=current_app.extensions["polku"].settings.smtp_host)


def _unread() -> dict[str, Any]:
    user = g.get("user")
    if user is None:
        return {}
    known = read_with_signin("unread_notices")
    if known is not None:
        return {"unread_notices": known}
    try:
        return {"unread_notices": notices.unread_count(get_session(), user.username)}
    except Exception:  # noqa: BLE001 - a badge must never break a page (e.g. an error page)
        return {}


def init_app(app: Flask) -> None:
    """Register the blueprint and the unread-count badge of the page header."""
    app.register_blueprint(bp)
    app.context_processor(_unread)
