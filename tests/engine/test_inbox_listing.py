"""The inbox's listing (`inbox.list_tasks`) runs statements built once per shape of filter, on the
cursor: every filter, sort and page must give exactly what the filter's ORM query gives
(`inbox._query`, which the other readers use), on SQLite here and PostgreSQL in tests/postgres.

Both build their criteria with `inbox._criteria`; what this compares is the rest: a statement kept
per shape given another filter's values, the join, the order, the pages, the adopted rows. The
criteria themselves are checked against written expectations (the counts below,
tests/engine/test_inbox_spec.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from engine import inbox, runtime
from engine.deploy import deploy_files
from engine.inbox import SORTS, TaskFilter
from engine.models import Instance, Task, TaskStatus

from .conftest import MODELS, T0


def _reference(s, flt: TaskFilter, sort: str, page: int, per_page: int) -> tuple[int, list[str]]:
    total = s.scalar(select(func.count()).select_from(inbox._query(flt, Task.id, join=False).subquery()))
    ids = list(s.scalars(inbox._query(flt, Task.id, join=sort in ("customer", "process")).order_by(*SORTS[sort])
                         .offset((page - 1) * per_page).limit(per_page)))
    return total, ids


def lists_as_the_filters_query_does(sessions) -> None:
    """The check itself: a small office's open and done tasks, listed every way the UI and the API do."""
    with sessions.begin() as s:
        deploy_files(s, {n: (MODELS / n).read_bytes() for n in ("order.bpmn", "reminder.bpmn")}, by="designer")
        for n, key in enumerate(["1111111-1", "2222222-2", "3333333-3", None, "2222222-2"]):
            runtime.start_instance(s, "reminder", by="a", data={"due": f"P{n + 1}D"}, business_key=key, now=T0)
        for amount, key in ((5, "1111111-1"), (5000, "3333333-3"), (7, None)):
            runtime.start_instance(s, "order", by="a", data={"customer": "Acme", "amount": amount},
                                   business_key=key, now=T0)
        ready = list(s.scalars(select(Task).where(Task.state == TaskStatus.READY).order_by(Task.created_at)))
        for task, who in zip(ready, ("aino", "aino", "eero", "olli"), strict=False):
            task.assignee = who
        done = ready[-1]
        runtime.complete_task(s, done.id, {"channel": "phone"} if done.element_id == "review" else {},
                              by="aino", roles={"expert"}, now=T0)
        some_case = ready[2].instance_id
    day = timedelta(days=1)
    filters = [
        TaskFilter(), TaskFilter(roles=frozenset({"expert"})), TaskFilter(roles=frozenset({"expert", "supervisor"})),
        TaskFilter(roles=frozenset()), TaskFilter(assignee="aino"), TaskFilter(assignee="aino", roles=frozenset({"expert"})),
        TaskFilter(assignee="olli", cover=(("aino", None, T0 + 2 * day), ("eero", T0 + day, T0 + 4 * day))),
        TaskFilter(assignee="olli", roles=frozenset({"expert"}), cover=(("eero", T0, T0 + 9 * day),)),
        TaskFilter(instance_id=some_case), TaskFilter(business_key="2222222-2"), TaskFilter(process_id="order"),
        TaskFilter(business_key="1111111-1", process_id="reminder"), TaskFilter(due_before=T0 + 2 * day),
        TaskFilter(overdue_at=T0 + 3 * day), TaskFilter(state=None), TaskFilter(state=TaskStatus.COMPLETED),
        TaskFilter(roles=frozenset({"expert"}), due_before=T0 + 3 * day, business_key="2222222-2"),
    ]
    with sessions() as s:
        for flt in filters:
            for sort in SORTS:
                for page, per_page in ((1, 50), (1, 2), (2, 2), (9, 2)):
                    listed = inbox.list_tasks(s, flt, sort=sort, page=page, per_page=per_page)
                    total, ids = _reference(s, flt, sort, page, per_page)
                    assert (listed.total, [t.id for t, _i in listed.rows]) == (total, ids), (flt, sort, page)
                    assert all(i.id == t.instance_id and s.get(Instance, i.id) is i for t, i in listed.rows)
        # the office is as built (eight tasks, one done; its case went on to an incident), so the check listed rows
        assert [inbox.list_tasks(s, flt).total for flt in filters[:8]] == [7, 3, 3, 0, 2, 5, 3, 5]


def test_the_listing_gives_what_the_filters_query_gives(sessions):
    lists_as_the_filters_query_does(sessions)


def test_a_listed_case_leaves_its_state_unread_until_used(sessions):
    with sessions.begin() as s:
        deploy_files(s, {"reminder.bpmn": (MODELS / "reminder.bpmn").read_bytes()}, by="designer")
        iid = runtime.start_instance(s, "reminder", by="a", data={"due": "P1D"}, now=T0).id
    with sessions() as fresh:
        stored = fresh.get(Instance, iid).state
    with sessions() as s:
        [(_task, instance)] = inbox.list_tasks(s, TaskFilter(instance_id=iid)).rows
        assert "state" not in instance.__dict__ and instance.business_key is None  # the other columns are read
        assert instance.state == stored  # read on first use, as a deferred column is


def test_a_change_not_yet_flushed_is_listed_as_the_orm_would_list_it(sessions):
    with sessions.begin() as s:
        deploy_files(s, {"reminder.bpmn": (MODELS / "reminder.bpmn").read_bytes()}, by="designer")
        iid = runtime.start_instance(s, "reminder", by="a", data={"due": "P1D"}, now=T0).id
    with sessions() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        task.assignee = "aino"  # not flushed: the listing flushes first, as the ORM's autoflush did
        assert [t.id for t, _i in inbox.list_tasks(s, TaskFilter(assignee="aino")).rows] == [task.id]
        s.rollback()
