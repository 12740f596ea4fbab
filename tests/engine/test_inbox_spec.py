"""The inbox, written out: each sort's order, each filter's edge, paging limits, due-soon and overdue
edges, and what claim, release and reassign write (or do not write) to the audit trail.

Six open tasks are made through the engine, each named here by a label: three "Call the customer"
tasks (reminder, due in 1, 3 and 2 days), one "Review order" (order; it has no due date here,
as the first test checks) and two "Deliver training" (progress, no due date). Every order below is written
out by label, not computed from the code's sort keys.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import audit, inbox, runtime
from engine.errors import InvalidInput, TaskNotAvailable, TaskNotFound
from engine.models import TaskStatus

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)


@pytest.fixture
def world(sessions, deploy):
    """label -> task id of six open expert tasks, made a minute apart."""
    deploy("order.bpmn", "reminder.bpmn", "progress.bpmn")
    made = [("r1", "reminder", {"due": "P1D"}, "1111111-1"), ("r2", "reminder", {"due": "P3D"}, "3333333-3"),
            ("r3", "reminder", {"due": "P2D"}, "2222222-2"), ("o1", "order", {"customer": "Acme", "amount": 5},
                                                               "1111111-1"),
            ("p1", "progress", {}, None), ("p2", "progress", {}, None)]
    labels = {}
    with sessions.begin() as s:
        for n, (label, process, data, key) in enumerate(made):
            instance = runtime.start_instance(s, process, by="a", data=data, business_key=key, now=T0 + n * MINUTE)
            [task] = inbox.tasks(s, instance_id=instance.id)
            labels[label] = task.id
    return labels


def _labels(world, rows) -> list[str]:
    by_id = {v: k for k, v in world.items()}
    return [by_id.get(t.id, t.id) for t, _i in rows]


def _list(sessions, world, flt=inbox.TaskFilter(), **kw) -> list[str]:  # noqa: B008 - a frozen dataclass
    with sessions.begin() as s:
        return _labels(world, inbox.list_tasks(s, flt, **kw).items)


SORTED = {
    "due": ["r1", "r3", "r2", "o1", "p1", "p2"],  # earliest first, no due date last (oldest first)
    "-due": ["r2", "r3", "r1", "o1", "p1", "p2"],  # latest first, no due date still last
    "created": ["r1", "r2", "r3", "o1", "p1", "p2"],
    "-created": ["p2", "p1", "o1", "r3", "r2", "r1"],
    "task": ["r1", "r2", "r3", "p1", "p2", "o1"],  # Call…, Deliver…, Review…; same name: oldest first
    "customer": ["p1", "p2", "r1", "o1", "r3", "r2"],  # no business key first; same key: oldest first
    "process": ["o1", "p1", "p2", "r1", "r2", "r3"],
}


def test_the_world_is_as_described(sessions, world):
    with sessions.begin() as s:
        tasks = {label: s.get(inbox.Task, tid) for label, tid in world.items()}
    assert {k: t.name for k, t in tasks.items()} == {
        "r1": "Call the customer", "r2": "Call the customer", "r3": "Call the customer", "o1": "Review order",
        "p1": "Deliver training", "p2": "Deliver training"}
    assert tasks["o1"].due_at is None and tasks["p1"].due_at is None and tasks["p2"].due_at is None
    assert tasks["r1"].due_at < tasks["r3"].due_at < tasks["r2"].due_at
    assert {t.candidate_role for t in tasks.values()} == {"expert"}


@pytest.mark.parametrize("sort", sorted(SORTED))
def test_each_sort_gives_the_written_order(sessions, world, sort):
    assert _list(sessions, world, sort=sort) == SORTED[sort]


def test_pages_and_their_limits(sessions, world):
    with sessions.begin() as s:
        page = inbox.list_tasks(s, inbox.TaskFilter(), sort="created", page=2, per_page=2)
        assert (_labels(world, page.items), page.total, page.page, page.per_page) == (["r3", "o1"], 6, 2, 2)
        assert _labels(world, inbox.list_tasks(s, inbox.TaskFilter(), sort="created", page=3, per_page=2).items) \
            == ["p1", "p2"]
        assert inbox.list_tasks(s, inbox.TaskFilter(), per_page=500).total == 6
        assert inbox.list_tasks(s, inbox.TaskFilter()).per_page == 50  # the default page
        assert len(inbox.list_tasks(s, inbox.TaskFilter(), per_page=1).items) == 1
        for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 501}):
            with pytest.raises(InvalidInput, match="^page must be 1 or more and per_page between 1 and 500$"):
                inbox.list_tasks(s, inbox.TaskFilter(), **bad)
        with pytest.raises(InvalidInput) as refused:  # the API shows this text: it names the sorts
            inbox.list_tasks(s, inbox.TaskFilter(), sort="due ")
        assert str(refused.value) == "unknown sort 'due ' (use one of due, -due, created, -created, task, customer, process)"


def test_my_inbox_is_mine_and_my_groups_unassigned_work(sessions, world):
    with sessions.begin() as s:
        inbox.claim(s, world["r1"], by="anna", roles={"expert"})
        inbox.assign(s, world["r2"], "bertta", by="esimies")
    mine_and_group = inbox.TaskFilter(assignee="anna", roles=frozenset({"expert"}))
    assert _list(sessions, world, mine_and_group, sort="created") == ["r1", "r3", "o1", "p1", "p2"]
    assert _list(sessions, world, inbox.TaskFilter(assignee="anna")) == ["r1"]
    assert _list(sessions, world, inbox.TaskFilter(roles=frozenset({"expert"})), sort="created") == [
        "r3", "o1", "p1", "p2"]
    assert _list(sessions, world, inbox.TaskFilter(roles=frozenset({"supervisor"}))) == []
    assert _list(sessions, world, inbox.TaskFilter(assignee="anna", roles=frozenset())) == ["r1"]


def test_absence_cover_takes_the_absent_ones_tasks_due_in_the_period(sessions, world):
    with sessions.begin() as s:
        inbox.assign(s, world["r2"], "bertta", by="esimies")
        inbox.assign(s, world["r3"], "bertta", by="esimies")
        r2_due, r3_due = s.get(inbox.Task, world["r2"]).due_at, s.get(inbox.Task, world["r3"]).due_at

    def covered(start, end) -> list[str]:
        return _list(sessions, world, inbox.TaskFilter(assignee="anna", cover=(("bertta", start, end),)))

    assert covered(None, r2_due + TICK) == ["r3", "r2"]  # begun: everything due before the end
    assert covered(None, r2_due) == ["r3"]  # the end is not included
    assert covered(r2_due, r2_due + TICK) == ["r2"]  # the start is
    assert covered(r3_due + TICK, r2_due + TICK) == ["r2"]
    assert covered(r3_due, r2_due) == ["r3"]  # a period with a start ends before its end too
    assert covered(r2_due + TICK, r2_due + timedelta(days=9)) == []
    assert _list(sessions, world, inbox.TaskFilter(assignee="anna")) == []  # no cover, nothing
    with_group = inbox.TaskFilter(assignee="anna", roles=frozenset({"supervisor"}), cover=(("bertta", None, r2_due),))
    assert _list(sessions, world, with_group) == ["r3"]  # the inbox page asks with her roles too


def test_the_other_filters(sessions, world):
    with sessions.begin() as s:
        r3_due = s.get(inbox.Task, world["r3"]).due_at
        o1_instance = s.get(inbox.Task, world["o1"]).instance_id
    assert _list(sessions, world, inbox.TaskFilter(due_before=r3_due)) == ["r1", "r3"]  # up to and with
    assert _list(sessions, world, inbox.TaskFilter(overdue_at=r3_due)) == ["r1"]  # strictly before
    assert _list(sessions, world, inbox.TaskFilter(business_key="1111111-1"), sort="created") == ["r1", "o1"]
    assert _list(sessions, world, inbox.TaskFilter(process_id="progress")) == ["p1", "p2"]
    assert _list(sessions, world, inbox.TaskFilter(instance_id=o1_instance)) == ["o1"]
    assert _list(sessions, world, inbox.TaskFilter(business_key="")) == SORTED["due"]  # empty: no filter
    assert _list(sessions, world, inbox.TaskFilter(process_id="")) == SORTED["due"]
    with sessions.begin() as s:
        runtime.complete_task(s, world["p1"], {}, by="anna", now=T0)
    assert "p1" not in _list(sessions, world)
    assert "p1" in _list(sessions, world, inbox.TaskFilter(state=None))
    assert _list(sessions, world, inbox.TaskFilter(state=TaskStatus.COMPLETED)) == ["p1"]
    with sessions.begin() as s:
        p1_instance = s.get(inbox.Task, world["p1"]).instance_id
        every = [t.id for t in inbox.tasks(s, instance_id=p1_instance, state=None)]
        assert world["p1"] in every and world["p1"] not in [t.id for t in inbox.tasks(s, instance_id=p1_instance)]


def test_due_soon_and_overdue_edges(sessions, world):
    with sessions.begin() as s:
        task = s.get(inbox.Task, world["r1"])
        undated = s.get(inbox.Task, world["p1"])
        due = task.due_at
        assert inbox.due_soon(task, now=due - timedelta(days=2))  # within two days, both ends included
        assert not inbox.due_soon(task, now=due - timedelta(days=2) - TICK)
        assert inbox.due_soon(task, now=due)
        assert not inbox.due_soon(task, now=due + TICK)  # overdue, not "soon"
        assert inbox.due_soon(task, now=due - timedelta(days=5), within=timedelta(days=5))
        assert not inbox.due_soon(undated, now=due)
        assert not inbox.is_overdue(task, now=due)
        assert inbox.is_overdue(task, now=due + TICK)
        assert not inbox.is_overdue(undated, now=due + timedelta(days=99))
        assert [t.id for t in inbox.overdue(s, now=due + TICK)] == [world["r1"]]
        latest = s.get(inbox.Task, world["r2"]).due_at
        assert [t.id for t in inbox.overdue(s, now=latest + TICK)] == [world[k] for k in ("r1", "r3", "r2")]  # by due
        assert inbox.overdue(s, now=due) == []
        runtime.complete_task(s, task.id, {}, by="anna", now=T0)
    with sessions.begin() as s:
        assert not inbox.is_overdue(s.get(inbox.Task, world["r1"]), now=due + TICK)  # done is never late


def _events(sessions, task_id: str) -> list[tuple[str, str, dict]]:
    with sessions.begin() as s:
        task = s.get(inbox.Task, task_id)
        version = s.get(inbox.Instance, task.instance_id).version_id
        found = [e for e in audit.history(s, task.instance_id)
                 if e.kind in ("task_claimed", "task_released", "task_assigned")]
        # each event names the case's version, the task's element and the task
        assert {(e.version_id, e.element_id, e.task_id) for e in found} == {(version, task.element_id, task_id)}
        return [(e.kind, e.actor, audit.event_dict(e)["data"]) for e in found]


def test_claim_release_and_reassign_write_exactly_these_events(sessions, world):
    t = world["r1"]
    with sessions.begin() as s:
        assert inbox.claim(s, t, by="anna", roles={"expert"}).assignee == "anna"
    with sessions.begin() as s:
        inbox.claim(s, t, by="anna", roles={"expert"})  # already hers: nothing happens
        with pytest.raises(TaskNotAvailable, match="already assigned to anna"):
            inbox.claim(s, t, by="bertta", roles={"expert"})
        with pytest.raises(TaskNotAvailable, match="^only the assignee can release this task$"):
            inbox.release(s, t, by="bertta")
    with sessions.begin() as s:
        assert inbox.release(s, t, by="anna").assignee is None
    with sessions.begin() as s:
        inbox.assign(s, t, "bertta", by="esimies")
        inbox.assign(s, t, "bertta", by="esimies")  # the same again: nothing happens
    with sessions.begin() as s:
        assert inbox.assign(s, t, None, by="esimies").assignee is None
    assert _events(sessions, t) == [
        ("task_claimed", "anna", {"assignee": "anna"}),
        ("task_released", "anna", {"previous": "anna"}),
        ("task_assigned", "esimies", {"previous": None, "assignee": "bertta"}),
        ("task_assigned", "esimies", {"previous": "bertta", "assignee": None}),
    ]


def test_claim_checks_the_role_an_admin_may_take_any(sessions, world):
    t = world["r1"]
    with sessions.begin() as s, pytest.raises(TaskNotAvailable, match="belongs to the expert role"):
        inbox.claim(s, t, by="sakari", roles={"supervisor"})
    with sessions.begin() as s:
        assert inbox.claim(s, t, by="aino", roles={"admin"}).assignee == "aino"
    with sessions.begin() as s:
        assert inbox.claim(s, world["r2"], by="cli-user").assignee == "cli-user"  # no roles: an operator


def test_a_missing_or_finished_task_cannot_be_taken(sessions, world):
    with sessions.begin() as s:
        with pytest.raises(TaskNotFound, match="^no task no-such-task$"):
            inbox.claim(s, "no-such-task", by="anna")
        runtime.complete_task(s, world["p1"], {}, by="anna", now=T0)
    for act in (lambda s: inbox.claim(s, world["p1"], by="anna"), lambda s: inbox.release(s, world["p1"], by="anna"),
                lambda s: inbox.assign(s, world["p1"], "bertta", by="esimies")):
        with sessions.begin() as s, pytest.raises(TaskNotAvailable, match="already completed"):
            act(s)
