"""Database faults that pass: tell "the write failed, try again later" from a refusal or a bug.

A disk that is full, a read-only database file, a PostgreSQL server that is restarting or
unreachable, a connection killed by an administrator, a lock or statement timeout: none of these
says anything about the case, so callers keep what the user typed and ask them to try again
(the web UI answers 503, the CLI exits 75 = EX_TEMPFAIL, the timer worker retries in seconds).
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

__all__ = ["TRANSIENT_SQLSTATES", "TRANSIENT_SQLSTATE_CLASSES", "is_transient"]

# PostgreSQL SQLSTATEs: connection exceptions (08), insufficient resources such as disk full (53),
# operator intervention such as a server shutting down or a terminated backend (57), and
# system errors such as an I/O error (58).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
TRANSIENT_SQLSTATES = (
    "25006",  # read-only SQL transaction (a hot standby, or default_transaction_read_only)
    "40001",  # serialization failure
    "40P01",  # deadlock detected
    "55P03",  # lock not available (lock_timeout)
    "55006",  # object in use
)


def _sqlstate(err: BaseException) -> str | None:
    orig = getattr(err, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(state) if state else None


def is_transient(err: BaseException) -> bool:
    """Tell whether a database error is a passing fault (retry later), not a refusal or a bug."""
    if isinstance(err, sa_exc.TimeoutError):  # no connection free in the pool in time
        return True
    if not isinstance(err, sa_exc.DBAPIError):
        return False
    if err.connection_invalidated:
        return True
    state = _sqlstate(err)
    if state is not None:
        return state in TRANSIENT_SQLSTATES or state[:2] in TRANSIENT_SQLSTATE_CLASSES
    # SQLite (no SQLSTATE): locked, busy, read-only, disk full, I/O error, cannot open the file
    return isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError))
