"""Inbox queries, claim, release and reassign (each audited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import audit, inbox, runtime
from engine.errors import InvalidInput, TaskNotAvailable

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def cases(sessions, deploy):
    deploy("order.bpmn", "reminder.bpmn")
    ids = []
    with sessions.begin() as s:
        for n, key in enumerate(["1111111-1", "2222222-2", "3333333-3"]):
            ids.append(runtime.start_instance(s, "reminder", by="a", data={"due": f"P{n + 1}D"},
                                              business_key=key, now=T0).id)
        ids.append(runtime.start_instance(s, "order", by="a", data={"customer": "Acme", "amount": 5},
                                          business_key="1111111-1", now=T0).id)
    return ids


def test_group_inbox_lists_unassigned_tasks_of_my_roles(sessions, cases):
    with sessions.begin() as s:
        page = inbox.list_tasks(s, inbox.TaskFilter(roles=frozenset({"expert"})), sort="due")
        assert page.total == 4
        assert [i.business_key for _t, i in page.rows][:3] == ["1111111-1", "2222222-2", "3333333-3"]
        assert inbox.list_tasks(s, inbox.TaskFilter(roles=frozenset({"supervisor"}))).total == 0


def test_filters_sorting_and_pagination(sessions, cases):
    with sessions.begin() as s:
        assert inbox.list_tasks(s, inbox.TaskFilter(business_key="1111111-1")).total == 2
        assert inbox.list_tasks(s, inbox.TaskFilter(process_id="order")).total == 1
        assert inbox.list_tasks(s, inbox.TaskFilter(overdue_at=T0 + timedelta(days=2, hours=1))).total == 2
        page = inbox.list_tasks(s, inbox.TaskFilter(), sort="-created", page=2, per_page=3)
        assert (page.total, page.pages, len(page.rows)) == (4, 2, 1)
        with pytest.raises(InvalidInput):
            inbox.list_tasks(s, inbox.TaskFilter(), sort="nonsense")


def test_claim_release_and_reassign_are_audited(sessions, cases):
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=cases[0])
        inbox.claim(s, task.id, by="anna", roles={"expert"})
    with sessions.begin() as s, pytest.raises(TaskNotAvailable):
        inbox.claim(s, task.id, by="bob", roles={"expert"})
    with sessions.begin() as s:
        assert [t.id for t in inbox.tasks(s, assignee="anna")] == [task.id]
        with pytest.raises(TaskNotAvailable):
            inbox.release(s, task.id, by="bob")
        inbox.release(s, task.id, by="anna")
        inbox.assign(s, task.id, "bob", by="sam")
    with sessions.begin() as s:
        kinds = [e.kind for e in audit.history(s, cases[0])]
        assert kinds[-3:] == ["task_claimed", "task_released", "task_assigned"]
        assert audit.verify(s, cases[0]).ok


def test_claim_needs_the_tasks_role(sessions, cases):
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=cases[0])
        with pytest.raises(TaskNotAvailable):
            inbox.claim(s, task.id, by="sam", roles={"supervisor"})


def test_claim_bumps_the_revision_so_a_stale_writer_loses(sessions, cases):
    with sessions.begin() as s:
        before = runtime.get_instance(s, cases[0]).revision
        [task] = inbox.tasks(s, instance_id=cases[0])
        inbox.claim(s, task.id, by="anna")
    with sessions.begin() as s:
        assert runtime.get_instance(s, cases[0]).revision == before + 1


def test_overdue_and_due_soon(sessions, cases):
    with sessions.begin() as s:
        late = inbox.overdue(s, now=T0 + timedelta(days=1, hours=1))
        assert len(late) == 1 and inbox.is_overdue(late[0], now=T0 + timedelta(days=1, hours=1))
        assert inbox.due_soon(late[0], now=T0)


def test_a_cases_open_tasks_are_the_sessions_objects_as_the_orm_would_load_them(sessions, cases):
    """`inbox.tasks(instance_id=...)` reads on the cursor (engine.fastsql) after every step of a case."""
    from sqlalchemy import select

    from engine.models import Task, TaskStatus

    reminder = cases[0]
    with sessions() as fresh:
        expected = [{c.key: getattr(t, c.key) for c in Task.__table__.columns}
                    for t in fresh.scalars(select(Task).where(Task.instance_id == reminder, Task.state == "ready")
                                           .order_by(Task.created_at))]
    assert expected and all(row["due_at"].tzinfo is not None for row in expected)
    with sessions() as s:
        found = inbox.tasks(s, instance_id=reminder)
        assert [{c.key: getattr(t, c.key) for c in Task.__table__.columns} for t in found] == expected
        assert all(s.get(Task, t.id) is t for t in found)  # the session's own objects, not copies
        found[0].state = TaskStatus.COMPLETED  # not flushed yet: the read sees it (the ORM's autoflush)
        assert [t.id for t in inbox.tasks(s, instance_id=reminder)] == [t.id for t in found[1:]]
        assert [t.id for t in inbox.tasks(s, instance_id=reminder, state=TaskStatus.COMPLETED)] == [found[0].id]
        s.rollback()
