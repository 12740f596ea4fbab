"""The per-request database session: `get_session()` opens it, the request's end commits or rolls back.

A response below 400 commits; an error response or an exception rolls everything back, so a
view that fails half-way leaves nothing behind. Views and helpers call `get_session()` and never
commit themselves.

A page's GET (not the API's, whose token check writes) reads in a read-only transaction: on SQLite
it runs beside a writer instead of queueing for the write lock (`engine.db.reader`). A GET that
must write calls `write_session()` before it reads what the write depends on; so does a task's
completion (`READ_FIRST`, on SQLite), after its access checks and the page kept for a failed write.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy.orm import Session

from engine.db import begin_writing

from .errors import error_response, status_for

# Posts that read a lot before they write (the access checks, the form page kept for a failed
# write) and call write_session(reread=True) just before writing: on SQLite the write lock is
# held for the write only, not for the whole request. PostgreSQL locks rows, not the database:
# there such a post reads and writes in one transaction, without a second connection (and its
# ping) and without reading its rows again.
READ_FIRST = frozenset({"tasks.task"})


def _reads_first() -> bool:
    if not has_request_context() or (request.blueprint or "").startswith("api"):
        return False
    if request.method in ("GET", "HEAD"):
        return True
    return request.endpoint in READ_FIRST and current_app.extensions["polku"].engine.dialect.name == "sqlite"


def get_session() -> Session:
    """Return this request's session, opening it (and its transaction) on first use."""
    if "db_session" not in g:
        polku = current_app.extensions["polku"]
        g.db_session = polku.sessions(bind=polku.reader) if _reads_first() else polku.sessions()
    return g.db_session


def write_session(*, reread: bool = False) -> Session:
    """Return this request's session in a write transaction (a read-only one ends first).

    Read again, in it, the rows the write depends on: another writer may have changed them since.
    With `reread`, every row loaded so far but the signed-in user's is expired when a read-only
    transaction ended (and always on PostgreSQL), so it is read again under the lock (detach first
    what must outlive the request).
    """
    session = get_session()
    engine = current_app.extensions["polku"].engine
    # on PostgreSQL a post reads in its write transaction (`_reads_first`), whose statements each see
    # what was committed when they began: what it read may have changed all the same
    began = begin_writing(session, engine)
    if reread and (began or engine.dialect.name != "sqlite"):
        signed_in = g.get("user")  # checked at the request's start, like every access check: kept as read
        for row in list(session.identity_map.values()):
            if row is not signed_in:
                session.expire(row)
    return session


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
