"""Providers registry pages: list, add, edit, and one provider's report with the providers' own feedback.

Experts and the supervisor keep the registry (add, edit, record the provider's feedback); auditors
read it and the reports. R7: the quality of purchased services is followed like the office's own:
the report shows what the provider delivered (the service lines' close tasks that named it), what
customers said in the aftercare of those lines, the new needs found there, and the provider's own
feedback to the office.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import access, providers
from engine.errors import FormInvalid, NotFound
from engine.providers import ProviderKind
from engine.users import display_names

from . import modeltexts
from .auth import current_user, has_role, login_required, restore_form
from .db import get_session

bp = Blueprint("providers", __name__, url_prefix="/providers")
READERS = ("expert", "supervisor", "auditor", "admin")
KEEPERS = ("expert", "supervisor", "admin")
KINDS = {ProviderKind.TRAINING: _l("Training organisation"), ProviderKind.CONSULTANT: _l("Consultant"),
         ProviderKind.PARTNER: _l("Partner or other provider")}
MET_NEED = {"yes": _l("Yes"), "partly": _l("Partly"), "no": _l("No")}
TEXT_LABELS = {"feedback_went_well": _l("What went well"),
               "feedback_from_customer": _l("What the office could do better"),
               "feedback_to_customer": _l("What the company could do better"),
               "new_needs_description": _l("New needs"),
               "follow_up_benefit": _l("Concrete benefit on the follow-up day"),
               "follow_up_new_needs_description": _l("New needs on the follow-up day")}
OUTCOMES = {"completed": _l("Completed as planned"), "partly_completed": _l("Partly completed"),
            "cancelled": _l("Cancelled")}


def init_app(app: Flask) -> None:
    """Register the blueprint and the `provider_choices` template global (the provider form field's select)."""
    app.register_blueprint(bp)
    app.add_template_global(provider_choices)


def provider_choices(kinds: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Return (id, "Name (kind)") of the active providers of these kinds for a form's provider select,
    read once per request."""
    known = g.setdefault("provider_choices", {})
    if tuple(kinds) not in known:
        known[tuple(kinds)] = [(str(pid), f"{name} ({KINDS.get(kind, kind)})")
                               for pid, name, kind in providers.choices(get_session(), kinds)]
    return known[tuple(kinds)]


def _labels() -> dict[str, Any]:
    return {"kinds": KINDS, "met_need": MET_NEED, "text_labels": TEXT_LABELS, "outcomes": OUTCOMES,
            "can_keep": has_role(*KEEPERS)}


@bp.route("/")
@login_required(*READERS)
def index() -> str:
    """List the providers, searched by name or business ID, with their services and aftercare counts."""
    session = get_session()
    q = request.args.get("q", "").strip()
    kind = request.args.get("kind") if request.args.get("kind") in KINDS else None
    rows = providers.list_providers(session, q, kind=kind)
    return render_template("providers/index.html", rows=rows, q=q, kind=kind,
                           counts=providers.summary_counts(session), **_labels())


def _render_form(provider: Any, values: Any, errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template("providers/form.html", provider=provider, values=values, errors=errors,
                           **_labels()), status


def _values(provider: Any) -> dict[str, Any]:
    return {k: getattr(provider, k) or "" for k in providers.FIELDS}


@bp.route("/new", methods=["GET", "POST"])
@login_required(*KEEPERS)
def create() -> Any:
    """Show the form for a new provider; register it."""
    if request.method == "GET":
        return _render_form(None, restore_form() or {"active": True}, {})
    data = {**request.form.to_dict(), "active": "active" in request.form}
    try:
        provider = providers.create_provider(get_session(), data, by=current_user().username)
    except FormInvalid as exc:
        return _render_form(None, {**exc.values, "active": data["active"]}, exc.errors, 422)
    flash(_("Provider %(name)s registered.", name=provider.name), "success")
    return redirect(url_for(".show", provider_id=provider.id))


@bp.route("/<int:provider_id>/edit", methods=["GET", "POST"])
@login_required(*KEEPERS)
def edit(provider_id: int) -> Any:
    """Show a provider's fields for editing; save them (the active flag included)."""
    session = get_session()
    provider = providers.get_provider(session, provider_id)
    if request.method == "GET":
        return _render_form(provider, restore_form() or _values(provider), {})
    data = {**request.form.to_dict(), "active": "active" in request.form}
    try:
        providers.update_provider(session, provider_id, data, by=current_user().username)
    except FormInvalid as exc:
        return _render_form(provider, {**exc.values, "active": data["active"]}, exc.errors, 422)
    flash(_("Provider %(name)s saved.", name=provider.name), "success")
    return redirect(url_for(".show", provider_id=provider_id))


@bp.route("/<int:provider_id>")
@login_required(*READERS)
def show(provider_id: int, feedback_values: dict[str, Any] | None = None, feedback_errors: dict[str, str] | None = None,
         status: int = 200) -> tuple[str, int]:
    """Show a provider's details and report: services delivered, customers' ratings and feedback in the
    aftercare of those lines, new needs found there, and the provider's own feedback."""
    session, user = get_session(), current_user()
    assert user is not None  # login_required ran
    report = providers.provider_report(session, provider_id, reader=access.Reader.of(user.username, user.role_set))
    people = [d.closed_by for d in report.deliveries] + [f.recorded_by for f in report.feedback]
    keys = {d.business_key for d in report.deliveries} | {a.business_key for a in report.aftercare}
    from engine import kpi

    return render_template("providers/show.html", provider=report.provider, report=report,
                           names=display_names(session, people), process_names=modeltexts.process_names(),
                           customer_names=kpi.customer_names(session, keys),
                           feedback_values=feedback_values or {}, feedback_errors=feedback_errors or {},
                           need_names=_need_names(), **_labels()), status


def _need_names() -> dict[str, str]:
    """Return {need key: name in the user's language} from the newest aftercare model's new-needs field."""
    from engine import deploy

    try:
        version = deploy.get_version(get_session(), "aftercare")
    except NotFound:
        return {}
    for elements in version.catalogue.get("processes", {}).values():
        for entry in elements.values():
            for item in entry.get("form", []) if isinstance(entry, dict) else []:
                if item.get("id") == "new_service_needs":
                    return {key: modeltexts.text(name, version.id) for key, name in item.get("options", [])}
    return {}


@bp.route("/<int:provider_id>/feedback", methods=["POST"])
@login_required(*KEEPERS)
def add_feedback(provider_id: int) -> Any:
    """Record feedback the provider gave the office (date, text; who recorded it is the signed-in user)."""
    try:
        providers.record_feedback(get_session(), provider_id, request.form.get("text", ""),
                                  by=current_user().username, given_on=request.form.get("given_on") or None)
    except FormInvalid as exc:
        return show(provider_id, feedback_values=exc.values, feedback_errors=exc.errors, status=422)
    flash(_("The provider's feedback was recorded."), "success")
    return redirect(url_for(".show", provider_id=provider_id) + "#provider-feedback")
