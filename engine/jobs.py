"""The worker's jobs beside instance timers: scheduled starts, notices, e-mail.

`run_jobs(sessions, now=...)` runs one round: timer start events that are due start their
instances (`engine.schedules`), due notices are made (`engine.notices.generate`), and due e-mails
are sent (`engine.notices.deliver`). Every `polku worker` sweep and `polku fire-timers` run it;
tests move time by passing `now`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import sessionmaker

from . import notices, schedules
from .config import Settings
from .dbfaults import is_transient

log = logging.getLogger(__name__)


def run_jobs(sessions: sessionmaker, *, now: datetime | None = None, worker_id: str = "worker",
             settings: Settings | None = None, send: Callable[[EmailMessage], None] | None = None) -> dict[str, Any]:
    """Run one round of scheduled starts, notices and e-mail; return what each did."""
    settings = settings or Settings.from_env()
    started = schedules.start_due(sessions, now=now, worker_id=worker_id)
    with sessions.begin() as session:
        made = notices.generate(session, now=now, tz=settings.timezone)
    sent = notices.deliver(sessions, settings=settings, now=now, worker_id=worker_id, send=send)
    return {"started": started, "notices": made, "sent": sent}


def run_jobs_quietly(sessions: sessionmaker, *, worker_id: str, settings: Settings | None = None) -> None:
    """Run one round in the worker loop; log a failure instead of raising."""
    try:
        run_jobs(sessions, worker_id=worker_id, settings=settings)
    except Exception as err:
        if is_transient(err):
            log.warning("worker jobs: the database is not available (%s)", str(err).splitlines()[0])
        else:
            log.exception("worker jobs failed")
