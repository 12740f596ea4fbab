"""A completion in a session whose rows were expired (the web UI reads a task's page, then expires what
it read before it writes, `webui.db.write_session`) takes the task and its instance from its own
statement's row: the expired objects are not read again one by one, and what it does is the same.
"""

from __future__ import annotations

from sqlalchemy import event

from engine import audit, inbox, runtime
from engine.deploy import deploy_files
from engine.models import Task, TaskStatus

from .conftest import MODELS, T0


def completes_expired_rows_without_reading_them_again(sessions) -> None:
    """The check itself, for SQLite here and PostgreSQL in tests/postgres."""
    with sessions.begin() as s:
        deploy_files(s, {"two_steps.bpmn": (MODELS / "two_steps.bpmn").read_bytes()}, by="designer")
        iid = runtime.start_instance(s, "two_steps", by="anna", now=T0).id
    [first] = [t.id for t in _open(sessions, iid)]
    engine = sessions.kw["bind"]
    reread: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement.startswith(("SELECT task.id AS task_id", "SELECT instance.id AS instance_id")):
            reread.append(statement)

    with sessions.begin() as s:
        details = runtime.task_details(s, first)  # what the task page read
        assert details["task"].state == TaskStatus.READY and details["instance"].revision >= 1
        s.expire_all()
        event.listen(engine, "before_cursor_execute", record)
        try:
            runtime.complete_task(s, first, {}, by="anna", roles={"expert"}, now=T0)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert reread == []
        assert details["task"].state == TaskStatus.COMPLETED  # the session's objects are in step with the rows
    runtime.forget_cache()
    with sessions.begin() as s:
        assert s.get(Task, first).state == TaskStatus.COMPLETED and s.get(Task, first).completed_by == "anna"
        assert [t.element_id for t in inbox.tasks(s, instance_id=iid)] == ["second"]
        assert audit.verify(s).ok


def _open(sessions, instance_id: int) -> list[Task]:
    with sessions.begin() as s:
        return inbox.tasks(s, instance_id=instance_id)


def test_a_completion_takes_expired_task_and_instance_rows_from_its_own_read(sessions):
    completes_expired_rows_without_reading_them_again(sessions)
