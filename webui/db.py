"""The per-request database session: `get_session()` opens it, the request's end commits or rolls back.

A response below 400 commits; an error response or an exception rolls everything back, so a
view that fails half-way leaves nothing behind. Views and helpers call `get_session()` and never
commit themselves.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g
from sqlalchemy.orm import Session

from .errors import error_response, status_for


def get_session() -> Session:
    """Return this request's session, opening it (and its transaction) on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["polku"].sessions()
    return g.db_session


def _commit(response: Response) -> Response:
    session: Session | None = g.get("db_session")
    if session is None:
        return response
    if response.status_code >= 400:
        session.rollback()
        return response
    try:
        session.commit()
    except Exception as exc:  # a failed commit must not send a success page
        if status_for(exc) == 500:
            session.rollback()
            raise
        failed = error_response(exc)  # rendered before the rollback expires what the page shows
        session.rollback()
        return failed
    return response


def _close(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.rollback()  # no-op after a commit; undoes work of a request that raised
        session.close()


def init_app(app: Flask) -> None:
    """Commit after each successful response and close the session at the end of the request."""
    app.after_request(_commit)
    app.teardown_appcontext(_close)
