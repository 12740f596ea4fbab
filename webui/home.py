"""The landing page after sign-in, the areas menu, and the language switch.

`AREAS` lists every area of the UI with the roles that may enter it; the header menu and the
landing page show the ones whose blueprint is registered and whose roles the user holds. A new
blueprint adds its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from engine import users

from . import i18n
from .auth import LANG_KEY, current_user, login_required, safe_next
from .db import get_session
from .i18n import LOCALES

bp = Blueprint("home", __name__)


@dataclass(frozen=True)
class Area:
    """One area of the UI as the menu shows it."""

    endpoint: str
    label: Any
    description: Any
    roles: tuple[str, ...]


AREAS = (
    Area("tasks.inbox", _l("Tasks"), _l("Your tasks and your group's tasks, with due dates."),
         ("expert", "supervisor")),
    Area("supervisor.overview", _l("Supervisor view"),
         _l("Open work and aftercare per expert, overdue aftercare, customers without an expert."),
         ("supervisor", "admin")),
    Area("customers.index", _l("Customers"), _l("Find, register and update customer companies."),
         ("expert", "supervisor", "admin")),
    Area("designer.index", _l("Process models"), _l("Edit, check and deploy BPMN and DMN models."),
         ("designer", "admin")),
    Area("audit.index", _l("Audit"), _l("Who did what and when, under which model version."),
         ("auditor", "admin")),
    Area("audit.kpis", _l("Aftercare KPIs"),
         _l("Aftercare done and on time, channels, feedback against the 69 % target, new needs."),
         ("supervisor",)),
    Area("incidents.index", _l("Incidents"), _l("Cases stopped by a failing step: fix the data and run it again."),
         ("admin", "supervisor")),
    Area("outreach.worklists", _l("Worklists"), _l("Customers to contact and new companies from the web service."),
         ("expert", "supervisor")),
    Area("providers.index", _l("Providers"),
         _l("Training organisations, consultants and partners: services delivered, feedback, quality."),
         ("expert", "supervisor", "auditor")),
    Area("outreach.absences_page", _l("Absences"), _l("Absences and who covers whom."), ("expert", "supervisor")),
    Area("outreach.office_settings", _l("Office settings"), _l("Yearly visit target, contact interval, reminders."),
         ("supervisor",)),
    Area("outreach.mail_outbox", _l("E-mail outbox"), _l("E-mails waiting or failed, with the last error."),
         ("admin",)),
    Area("admin.users_list", _l("Users"), _l("Add users, set their roles and reset passwords."), ("admin",)),
)


def visible_areas() -> list[Area]:
    """Return the areas that exist in this app and that the signed-in user may enter."""
    user = current_user()
    if user is None:
        return []
    return [a for a in AREAS if a.endpoint in current_app.view_functions and user.role_set & set(a.roles)]


def _kept(name: str) -> dict[Any, Any]:
    """Return one of the app's small caches of the page frame, emptied once it holds 256 entries.

    Their keys are sets of roles, languages and mount points: a handful in an office. The bound is for
    a mount point a misconfigured proxy would let clients choose (gunicorn takes SCRIPT_NAME from a
    trusted proxy's header).
    """
    kept: dict[Any, Any] = current_app.extensions.setdefault(name, {})
    if len(kept) >= 256:
        kept.clear()
    return kept


@dataclass(frozen=True)
class NavLink:
    """One link of the menu every page shows, ready to draw."""

    url: str
    label: str  # in the user's language
    section: str  # the area's blueprint: the link is marked current on its pages


def nav_links() -> tuple[NavLink, ...]:
    """Return the signed-in user's menu: the visible areas, their addresses and labels in the user's language.

    Every page draws it: kept in the app per set of roles, language and mount point (a URL and a
    lazy label cost more to make than the rest of the menu), made anew for any other.
    """
    user = current_user()
    if user is None:
        return ()
    key = (frozenset(user.role_set), i18n.language(), request.script_root)
    kept: dict[tuple[frozenset[str], str, str], tuple[NavLink, ...]] = _kept("polku_nav")
    found = kept.get(key)
    if found is None:
        found = kept[key] = tuple(NavLink(url_for(a.endpoint), i18n.label(a.label), a.endpoint.split(".")[0])
                                  for a in visible_areas())
    return found


def fixed_url(endpoint: str, **values: str) -> str:
    """Return `url_for(endpoint, **values)` for an address of the page frame that never changes while
    the app runs (the style sheet, home, sign-out): made once per mount point. Literal arguments only:
    every distinct call is kept."""
    key = (endpoint, tuple(sorted(values.items())), request.script_root)
    kept: dict[tuple[Any, ...], str] = _kept("polku_fixed_urls")
    found = kept.get(key)
    if found is None:
        found = kept[key] = url_for(endpoint, **values)
    return found


@bp.route("/")
@login_required()
def index() -> str:
    """Show the areas the user's roles open."""
    return render_template("home/index.html", areas=visible_areas())


@bp.route("/language", methods=["POST"])
def language() -> Response:
    """Switch the UI language (remembered for the user, or for the session before sign-in)."""
    lang = request.form.get("lang", "")
    if lang in LOCALES:
        session[LANG_KEY] = lang
        user = current_user()
        if user is not None:
            users.set_profile(get_session(), user.username, locale=lang, by=user.username)
    return redirect(safe_next(request.form.get("next")) or url_for("home.index"))


def init_app(app: Flask) -> None:
    """Offer the menu's links to every template as `nav_links`, and `fixed_url` for the frame's addresses."""
    app.context_processor(lambda: {"nav_links": nav_links() if g.get("user") else ()})
    app.add_template_global(fixed_url)
