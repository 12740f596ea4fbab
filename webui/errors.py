"""The single mapping from engine errors (and HTTP errors) to status codes and friendly error pages.

Views let `EngineError`s propagate unless they re-render a form; this module turns them into a
page (or JSON for the API blueprint and clients that ask for JSON) with the status below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request, session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstanceState
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError

from engine import errors as engine_errors
from engine.dbfaults import is_transient

from .inputs import InvalidText

STATUS: tuple[tuple[type[Exception], int], ...] = (
    (engine_errors.NotFound, 404),
    (engine_errors.TaskNotAvailable, 409),
    (engine_errors.Conflict, 409),
    (StaleDataError, 409),  # the optimistic lock on Instance.revision, found at flush or commit
    (engine_errors.FormInvalid, 422),
    (engine_errors.InvalidInput, 400),
    (engine_errors.NotAllowed, 403),
    (engine_errors.InvalidModel, 422),
)

TITLES = {
    400: _l("The request could not be handled"),
    403: _l("You do not have access to this page"),
    404: _l("Page not found"),
    405: _l("This action is not possible here"),
    409: _l("Someone else changed this first"),
    413: _l("The file is too large"),
    422: _l("Some information is not valid"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
    503: _l("Not saved: the database is not available just now"),
}

EXPLANATIONS = {
    400: _l("Check what you entered and try again."),
    403: _l("Your roles do not allow this. Ask an administrator if you need access."),
    404: _l("The page or item does not exist, or it has been removed."),
    405: _l("Go back and use the buttons on the page."),
    409: _l("Reload the page to see the latest situation, then try again."),
    413: _l("Choose a smaller file."),
    422: _l("Go back, correct the marked information and try again."),
    429: _l("Wait a moment and try again."),
    500: _l("The error has been logged. Try again later; if it repeats, contact the administrator."),
    503: _l("Nothing was changed. Go back and try again in a moment; if it repeats, contact the administrator."),
}

UNSAVED_PAGE = "polku_unsaved_page"  # g key: the form page to show, with what was typed, if the write fails
UNSAVED_UNDO = "polku_unsaved_undo"


def status_for(exc: BaseException) -> int:
    """Return the HTTP status for an exception (500 when it is not a known error)."""
    if isinstance(exc, HTTPException):
        return exc.code or 500
    if is_transient(exc):
        return 503
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def _detail(exc: BaseException, status: int) -> str | None:
    if isinstance(exc, CSRFError):
        return _("The form had expired or did not come from this site. Reload the page and try again.")
    if isinstance(exc, InvalidText):
        return str(exc.description)
    if isinstance(exc, engine_errors.EngineError) and not isinstance(exc, engine_errors.NotFound):
        return _(str(exc))  # engine messages are translated when the catalogue knows them
    return None


def _wants_json() -> bool:
    if request.blueprint == "api":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _typed() -> list[tuple[str, str]]:
    """Return what a failed POST carried (no passwords, no CSRF token), to show and send again."""
    if request.method != "POST":
        return []
    skip = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    try:
        return [(k, v) for k, v in request.form.items(multi=True) if k != skip and "password" not in k.lower()]
    except Exception:  # an unreadable body: nothing to keep  # noqa: BLE001
        return []


def error_response(exc: BaseException) -> Response:
    """Render the error page (or JSON) for an exception, with its mapped status."""
    status = status_for(exc)
    if status == 503:
        session.pop("_flashes", None)  # "saved" messages of the failed request were never true
        undo = g.pop(UNSAVED_UNDO, None)
        if undo is not None:
            undo()
        page = g.pop(UNSAVED_PAGE, None)
        if page is not None and not _wants_json():
            try:
                body = page() if callable(page) else page
            except Exception:  # the error page below still shows what was typed, to send again
                current_app.logger.exception("the form page kept for a failed write could not be drawn")
            else:
                return Response(body, status=503, headers={"Retry-After": "5"})
    title = TITLES.get(status, TITLES[500] if status >= 500 else TITLES[400])
    explanation = EXPLANATIONS.get(status, "")
    detail = _detail(exc, status)
    if _wants_json():
        body = {"error": type(exc).__name__, "status": status, "message": detail or str(title)}
        if isinstance(exc, engine_errors.FormInvalid):
            body["errors"] = exc.errors
        if isinstance(exc, engine_errors.InvalidModel):
            body["problems"] = [p.as_dict() for p in exc.problems]
        response = jsonify(body)
    else:
        response = Response(_error_page(status=status, title=title, explanation=explanation, detail=detail,
                                        exc=exc, resend=_typed() if status == 503 else []))
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


def _error_page(**context: Any) -> str:
    """Render the error page, even when the request's database session failed.

    After a failed flush the session must be rolled back before anything is read again, and the page
    reads the signed-in user (the menu): it is rolled back here. When even that read fails (the
    database is away), the page is shown without the user's menu rather than as a bare 500.
    """
    db_session = g.get("db_session")
    if db_session is not None and not db_session.is_active:
        db_session.rollback()
    try:
        return render_template("errors/error.html", **context)
    except sa_exc.SQLAlchemyError:
        if db_session is not None:
            db_session.rollback()
        g.user = None
        return render_template("errors/error.html", **context)


def keep_unsaved(page: str | Callable[[], str], undo: Callable[[], object] | None = None) -> None:
    """Show `page` (a form re-rendered with what the user typed) if this request's write fails.

    `page` is the page itself or a function that draws it without reading the database
    (`later_page`): a failed write may leave nothing readable (the database server is down);
    `undo` reverts what the request put in the signed session cookie.
    """
    setattr(g, UNSAVED_PAGE, page)
    if undo is not None:
        setattr(g, UNSAVED_UNDO, undo)


class Frozen:
    """A copy of an ORM row's loaded columns that never reads the database; the model's properties
    (`User.role_set`) are computed from the copied columns."""

    def __init__(self, row: Any) -> None:
        state = sa_inspect(row)
        loaded = state.dict
        self.__dict__.update({c.key: loaded[c.key] for c in state.mapper.column_attrs if c.key in loaded})
        self.__dict__["_model"] = type(row)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.__dict__["_model"], name, None)
        if isinstance(found, property) and found.fget is not None:
            return found.fget(self)
        raise AttributeError(name)


def frozen(value: Any) -> Any:
    """Return `value` with every ORM row in it (in lists, tuples and dicts too) replaced by a `Frozen` copy."""
    if type(value) in (list, tuple):
        return type(value)(frozen(item) for item in value)
    if type(value) is dict:
        return {key: frozen(item) for key, item in value.items()}
    if isinstance(getattr(value, "_sa_instance_state", None), InstanceState):  # a row (a mapped class has none)
        return Frozen(value)
    return value


def later_page(template: str, context: dict[str, Any]) -> Callable[[], str]:
    """Return a function that draws `template` with `context` later, without reading the database.

    For `keep_unsaved`: drawing the page only when the write fails saves a page's rendering on
    every write that succeeds. Whatever the page reads must be read before the write (`context`,
    the template's functions that keep what they read in `g`): the rows in it and the signed-in
    user are copied now, because a failed write expires them and may leave nothing readable. The
    context processors (the user's menu, the unread badge, the language) also run now.
    """
    user, signed_in = frozen(g.get("user")), g.get("user")
    g.user = user
    try:
        full = dict(context)
        current_app.update_template_context(full)
    finally:
        g.user = signed_in
    kept = frozen(full)

    def draw() -> str:
        before = g.get("user")
        g.user = user
        try:
            return current_app.jinja_env.get_template(template).render(kept)
        finally:
            g.user = before
    return draw


def _database_error(exc: Exception) -> Response:
    if is_transient(exc):
        current_app.logger.warning("database unavailable, nothing saved: %s", str(exc).splitlines()[0])
        return error_response(exc)
    current_app.logger.exception("database error")
    return error_response(InternalServerError())


def init_app(app: Flask) -> None:
    """Register the handlers for engine errors and HTTP errors (Flask turns the unexpected into 500)."""
    app.register_error_handler(engine_errors.EngineError, error_response)
    app.register_error_handler(StaleDataError, error_response)
    app.register_error_handler(sa_exc.DBAPIError, _database_error)  # 503 when it passes (disk, lock, server)
    app.register_error_handler(sa_exc.TimeoutError, _database_error)
    app.register_error_handler(HTTPException, error_response)  # unexpected errors arrive as a 500 here
