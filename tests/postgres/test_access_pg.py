"""The task page's check and rows on PostgreSQL: one statement on the cursor (`access.readable_task`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import access, inbox, runtime
from engine.models import Instance, Task

from .conftest import deploy_models

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _columns(row, model) -> dict:
    return {c.key: getattr(row, c.key) for c in model.__table__.columns}


def test_the_task_page_reads_the_rows_the_orm_would_and_checks_every_role(sessions):
    deploy_models(sessions, "order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 5000}, now=T0).id
        [review] = inbox.tasks(s, instance_id=iid)
        tid = review.id
    with sessions() as fresh:
        expected = _columns(fresh.get(Task, tid), Task), _columns(fresh.get(Instance, iid), Instance)
    with sessions() as s:
        task, instance, readable = access.readable_task(s, access.Reader.of("pekka", ["zz", "expert"]), tid)
        assert (_columns(task, Task), _columns(instance, Instance)) == expected
        assert readable is True  # an unassigned task of one of the reader's roles: its case too
        assert task.created_at.tzinfo is not None and s.get(Task, tid) is task
        with pytest.raises(access.TaskNotFound, match=f"^no task {tid}$"):
            access.readable_task(s, access.Reader.of("pekka", ["zz", "yy"]), tid)
        assert access.readable_task(s, access.Reader.of("tarkastaja", ["auditor"]), tid)[2] is True
