"""External tasks (engine.external), stated from what the module promises, not from its code.

Every change of an external task is one audit event on its case's chain, naming the task, its
topic, its element and the worker or user, with what changed; every change bumps the case's
revision. A failure keeps the message (at most 2,000 characters) and details (at most 64,000);
with no `retries` given, one fewer than before is left (none at a first failure); at 0 an incident
opens on the case ("external task failed: <message>"), which is a reason to wait, and retrying it
gives the task one more retry. Only an open task can be unlocked; unlocking says whose lock it was.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine import audit, external, runtime
from engine.errors import ExternalTaskNotAvailable, InvalidInput
from engine.models import Incident

from .conftest import T0, at


@pytest.fixture
def case(sessions, deploy):
    """Start the external_service case and let worker w1 lock its task at T0; return (instance, task)."""
    deploy("external_service.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "external_service", by="anna", data={"company": "Acme"},
                                     business_key="0101010-1", now=T0).id
    with sessions.begin() as s:
        [task] = external.fetch_and_lock(s, "w1", [("registry", 60)], now=T0)
    return iid, task


def _events(sessions, iid, kind):
    with sessions.begin() as s:
        return [(e.actor, e.at, e.element_id, e.task_id is not None, json.loads(e.data))
                for e in audit.history(s, iid) if e.kind == kind]


def _revision(sessions, iid):
    with sessions.begin() as s:
        return runtime.get_instance(s, iid).revision


def test_a_failure_with_retries_left_is_audited_with_when_it_comes_back(sessions, case):
    iid, task = case
    before = _revision(sessions, iid)
    with sessions.begin() as s:
        row = external.fail(s, task.id, "w1", "  registry timed out  ", "504", retries=2, retry_timeout_seconds=30,
                            now=at(10))
        assert (row.retries, row.error_message, row.error_details) == (2, "registry timed out", "504")
        assert (row.lock_owner, row.lock_expires_at) == (None, at(40))
    assert _events(sessions, iid, "external_task_failed") == [("w1", at(10), "check_registry", True, {
        "external_task_id": task.id, "topic": "registry", "worker": "w1", "message": "registry timed out",
        "details": "504", "retries_left": 2, "retry_at": at(40).isoformat()})]
    assert _revision(sessions, iid) == before + 1
    with sessions.begin() as s:
        assert runtime.open_incidents(s, iid) == []


def test_a_failure_without_a_retry_timeout_is_fetchable_at_once(sessions, case):
    iid, task = case
    with sessions.begin() as s:
        row = external.fail(s, task.id, "w1", "busy", retries=1, now=at(10))
        assert row.lock_expires_at is None
    assert _events(sessions, iid, "external_task_failed")[0][4]["retry_at"] is None
    with sessions.begin() as s:
        [again] = external.fetch_and_lock(s, "w2", [("registry", 60)], now=at(10))
    assert again.id == task.id


def test_without_retries_given_one_fewer_is_left(sessions, case):
    iid, task = case
    with sessions.begin() as s:
        assert external.fail(s, task.id, "w1", "first", retries=3, now=at(1)).retries == 3
    with sessions.begin() as s:
        [again] = external.fetch_and_lock(s, "w1", [("registry", 60)], now=at(2))
        assert external.fail(s, again.id, "w1", "second", now=at(3)).retries == 2
    with sessions.begin() as s:
        assert runtime.open_incidents(s, iid) == []


def test_a_first_failure_without_retries_opens_an_incident(sessions, case):
    iid, task = case
    before = _revision(sessions, iid)
    with sessions.begin() as s:
        row = external.fail(s, task.id, "w1", "no such company", now=at(5), retry_timeout_seconds=30)
        assert (row.retries, row.lock_expires_at, row.lock_owner) == (0, None, None)
    with sessions.begin() as s:
        [incident] = s.query(Incident).filter_by(instance_id=iid).all()
        assert (incident.element_id, incident.message, incident.created_at, str(incident.status)) == \
            ("check_registry", "external task failed: no such company", at(5), "open")
        assert incident.action == {"kind": "external", "external_task_id": task.id}
        assert runtime.get_instance(s, iid).open_incidents == 1
        incident_id = incident.id
    assert _events(sessions, iid, "incident_raised") == [("w1", at(5), "check_registry", False, {
        "incident_id": incident_id, "message": "external task failed: no such company"})]
    with sessions.begin() as s:
        [raised] = [e for e in audit.history(s, iid) if e.kind == "incident_raised"]
        assert raised.version_id == runtime.get_instance(s, iid).version_id is not None
    assert _events(sessions, iid, "external_task_failed")[0][4]["retries_left"] == 0
    assert _revision(sessions, iid) > before
    with sessions.begin() as s:  # nothing to fetch while the incident is open
        assert external.fetch_and_lock(s, "w2", [("registry", 60)], now=at(10_000)) == []
        assert audit.verify(s, iid).ok


def test_retries_given_as_zero_open_an_incident_even_after_earlier_retries(sessions, case):
    iid, task = case
    with sessions.begin() as s:
        external.fail(s, task.id, "w1", "first", retries=5, now=at(1))
    with sessions.begin() as s:
        [again] = external.fetch_and_lock(s, "w1", [("registry", 60)], now=at(2))
        external.fail(s, again.id, "w1", "give up", retries=0, now=at(3))
    with sessions.begin() as s:
        assert [i.message for i in runtime.open_incidents(s, iid)] == ["external task failed: give up"]


@pytest.mark.parametrize("kwargs, phrase", [
    ({"message": "   "}, "cannot be empty"),
    ({"message": ""}, "cannot be empty"),
    ({"retries": -1}, "0 or more, not -1"),
    ({"retries": True}, "whole number"),
    ({"retries": 1.5}, "whole number"),
    ({"details": "x" * 64_001}, "longer than 64,000"),
    ({"retry_timeout_seconds": -1}, "the retry timeout must be 0 and at most"),
])
def test_bad_failure_reports_are_refused_and_change_nothing(sessions, case, kwargs, phrase):
    iid, task = case
    before = _revision(sessions, iid)
    args = {"message": "down"} | kwargs
    with sessions.begin() as s, pytest.raises(InvalidInput, match=phrase):
        external.fail(s, task.id, "w1", args.pop("message"), now=at(1), **args)
    assert _revision(sessions, iid) == before and _events(sessions, iid, "external_task_failed") == []


def test_the_longest_details_and_message_are_kept_or_cut(sessions, case):
    _iid, task = case
    with sessions.begin() as s:
        row = external.fail(s, task.id, "w1", "m" * 2_500, "d" * 64_000, retries=1, now=at(1))
        assert row.error_message == "m" * 2_000 and len(row.error_details) == 64_000


def test_extending_a_lock_is_audited_and_moves_the_revision(sessions, case):
    iid, task = case
    before = _revision(sessions, iid)
    with sessions.begin() as s:
        assert external.extend_lock(s, task.id, "w1", 90, now=at(30)).lock_expires_at == at(120)
    assert _events(sessions, iid, "external_task_lock_extended") == [("w1", at(30), "check_registry", True, {
        "external_task_id": task.id, "topic": "registry", "worker": "w1", "lock_expires_at": at(120).isoformat()})]
    assert _revision(sessions, iid) == before + 1
    with sessions.begin() as s:
        assert external.fetch_and_lock(s, "w2", [("registry", 60)], now=at(119)) == []
        with pytest.raises(InvalidInput, match="more than 0"):
            external.extend_lock(s, task.id, "w1", 0, now=at(31))


def test_an_expired_lock_cannot_be_extended(sessions, case):
    _iid, task = case
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="expired"):
        external.extend_lock(s, task.id, "w1", 60, now=at(60))


def test_unlocking_says_whose_lock_it_was_and_moves_the_revision(sessions, case):
    iid, task = case
    before = _revision(sessions, iid)
    with sessions.begin() as s:
        row = external.unlock(s, task.id, by="admin", now=at(7))
        assert (row.lock_owner, row.lock_expires_at) == (None, None)
    assert _events(sessions, iid, "external_task_unlocked") == [("admin", at(7), "check_registry", True, {
        "external_task_id": task.id, "topic": "registry", "previous_worker": "w1"})]
    assert _revision(sessions, iid) == before + 1
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="fetch and lock it first"):
        external.complete(s, task.id, "w1", {}, now=at(8))


def test_a_completed_task_cannot_be_unlocked(sessions, case):
    _iid, task = case
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(5))
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="already completed by worker w1"):
        external.unlock(s, task.id, by="admin", now=at(6))


def test_process_ids_name_each_rows_case(sessions, case):
    iid, _task = case
    with sessions.begin() as s:
        rows = external.list_tasks(s, state=None)
        assert external.process_ids(s, rows) == {iid: ("external_service", "0101010-1")}
        assert external.process_ids(s, []) == {}


def test_completing_is_audited_with_the_worker_and_its_variables(sessions, case):
    iid, task = case
    with sessions.begin() as s:
        row = external.complete(s, task.id, "w1", {"status": "active"}, now=at(12))
        assert (str(row.state), row.ended_at, row.ended_by, row.lock_owner, row.lock_expires_at) == \
            ("completed", at(12), "w1", None, None)
    assert _events(sessions, iid, "external_task_completed") == [("w1", at(12), "check_registry", True, {
        "external_task_id": task.id, "topic": "registry", "worker": "w1", "variables": {"status": "active"}})]


def test_variables_that_are_not_plain_data_are_refused_by_name(sessions, case):
    _iid, task = case
    with sessions.begin() as s, pytest.raises(InvalidInput, match=r"^external task variables: .*when"):
        external.complete(s, task.id, "w1", {"when": {1, 2}}, now=at(1))


def test_refusal_texts_name_what_is_wrong(sessions, case):
    _iid, task = case
    with sessions.begin() as s, pytest.raises(InvalidInput, match="^say why the task failed: the failure "
                                                                  "message cannot be empty$"):
        external.fail(s, task.id, "w1", " ", now=at(1))
    with sessions.begin() as s, pytest.raises(InvalidInput, match="^the lock duration must be more than 0 "):
        external.extend_lock(s, task.id, "w1", -1, now=at(1))


def test_the_task_as_data_says_whether_its_lock_lives(sessions, case):
    iid, task = case
    with sessions.begin() as s:
        row = external.get(s, task.id)
        created = row.created_at
        expected = {"id": task.id, "topic": "registry", "instance_id": iid, "element_id": "check_registry",
                    "state": "open", "priority": 5, "retries": None, "worker_id": "w1", "locked": True,
                    "lock_expires_at": at(60).isoformat(), "error_message": None, "error_details": None,
                    "created_at": created.isoformat(), "ended_at": None, "ended_by": None}
        assert external.task_dict(row, now=at(60) - timedelta(microseconds=1)) == expected
        assert external.task_dict(row, now=at(60)) == expected | {"locked": False}
        row.lock_owner = None  # an owner-less expiry (never written so) is not a live lock either
        assert external.task_dict(row, now=at(1))["locked"] is False
        row.lock_owner = "w1"
    with sessions.begin() as s:
        external.fail(s, task.id, "w1", "down", "trace", retries=1, now=at(2))
    with sessions.begin() as s:
        [again] = external.fetch_and_lock(s, "w2", [("registry", 60)], now=at(3))
        external.complete(s, again.id, "w2", {"status": "active"}, now=at(4))
    with sessions.begin() as s:
        done = external.task_dict(external.get(s, task.id), now=at(5))
    assert done | {"created_at": None} == expected | {
        "state": "completed", "retries": 1, "worker_id": None, "locked": False, "lock_expires_at": None,
        "error_message": "down", "error_details": "trace", "created_at": None, "ended_at": at(4).isoformat(),
        "ended_by": "w2"}


def test_the_task_as_data_uses_the_real_time_when_none_is_given(sessions, case):
    _iid, task = case  # locked at T0 (in 2026) for a minute: long expired by the real clock
    with sessions.begin() as s:
        row = external.get(s, task.id)
        assert external.task_dict(row)["locked"] is False
        row.lock_expires_at = at(10 ** 9)  # decades ahead
        assert external.task_dict(row)["locked"] is True


def test_listing_filters_by_state_topic_and_case_oldest_first(sessions, deploy, case):
    first, task = case
    with sessions.begin() as s:
        second = runtime.start_instance(s, "external_service", by="anna", data={"company": "Beta"},
                                        business_key="0202020-2", now=at(-30)).id
    with sessions.begin() as s:
        ids = {r.instance_id: r.id for r in external.list_tasks(s)}
        assert [r.instance_id for r in external.list_tasks(s)] == [second, first]  # created 30 s earlier
        assert [r.instance_id for r in external.list_tasks(s, instance_id=first)] == [first]
        assert [r.instance_id for r in external.list_tasks(s, topic="registry", instance_id=second)] == [second]
        assert external.list_tasks(s, topic="mail") == []
        assert external.open_for_instance(s, first) == 1 and external.open_for_instance(s, second) == 1
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(5))
    with sessions.begin() as s:
        assert [r.id for r in external.list_tasks(s)] == [ids[second]]
        assert [r.id for r in external.list_tasks(s, state=external.ExternalTaskState.COMPLETED)] == [ids[first]]
        assert [r.id for r in external.list_tasks(s, state=None)] == [ids[second], ids[first]]
        assert (external.open_for_instance(s, first), external.open_for_instance(s, second)) == (0, 1)


def test_the_same_created_time_lists_in_id_order(sessions, deploy):
    deploy("external_service.bpmn")
    with sessions.begin() as s:
        ids = [runtime.start_instance(s, "external_service", by="anna", data={"company": str(n)}, now=T0).id
               for n in range(3)]
    with sessions.begin() as s:
        rows = external.list_tasks(s)
        assert [r.instance_id for r in rows] == ids and [r.id for r in rows] == sorted(r.id for r in rows)


def test_each_used_up_item_of_a_case_counts_as_its_own_incident(sessions, deploy):
    deploy("external_mi.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "external_mi", by="anna", data={"people": ["Aino", "Eino"]}, now=T0).id
    with sessions.begin() as s:
        tasks = external.fetch_and_lock(s, "mailer", [("notify", 30)], max_tasks=10, now=at(1))
    for n, task in enumerate(tasks):
        with sessions.begin() as s:
            external.fail(s, task.id, "mailer", f"bounce {n}", now=at(2 + n))
    with sessions.begin() as s:
        assert runtime.get_instance(s, iid).open_incidents == 2
        assert sorted(i.message for i in runtime.open_incidents(s, iid)) == \
            ["external task failed: bounce 0", "external task failed: bounce 1"]


def test_a_topic_as_a_tuple_may_name_the_variables_to_fetch(sessions, deploy):
    deploy("external_service.bpmn")
    with sessions.begin() as s:
        runtime.start_instance(s, "external_service", by="anna", data={"company": "Acme", "size": 3}, now=T0)
        runtime.start_instance(s, "external_service", by="anna", data={"company": "Beta", "size": 4}, now=T0)
    with sessions.begin() as s:
        [named] = external.fetch_and_lock(s, "w1", [("registry", 60, ["size"])], now=at(1))
        [every] = external.fetch_and_lock(s, "w2", [("registry", 30, None)], now=at(1))
    assert named.variables == {"size": 3} and named.lock_expires_at == at(61)
    assert every.variables == {"company": "Beta", "size": 4} and every.lock_expires_at == at(31)


@pytest.mark.parametrize("topics, phrase", [
    ([""], "^a topic name cannot be empty$"),
    (["  "], "^a topic name cannot be empty$"),
    ([("", 60)], "^a topic name cannot be empty$"),
    ([], "^name at least one topic to fetch tasks from$"),
    ([("registry", float("inf"))], "^the lock duration must be a number of seconds$"),
    ([("registry", float("nan"))], "^the lock duration must be a number of seconds$"),
    ([("registry", True)], "^the lock duration must be a number of seconds$"),
    ([("registry", "60")], "^the lock duration must be a number of seconds$"),
])
def test_bad_topics_are_refused_with_what_is_wrong(sessions, deploy, topics, phrase):
    deploy("external_service.bpmn")
    with sessions.begin() as s, pytest.raises(InvalidInput, match=phrase):
        external.fetch_and_lock(s, "w1", topics, now=T0)


def _start(sessions, process_id, data, now):
    with sessions.begin() as s:
        return runtime.start_instance(s, process_id, by="anna", data=data, now=now).id


def test_a_task_without_a_priority_ranks_as_priority_zero(sessions, deploy):
    deploy("external_mi.bpmn", "external_kinds.bpmn")
    plain = _start(sessions, "external_mi", {"people": ["Aino"]}, at(0))  # no priority on the task
    urgent = _start(sessions, "external_kinds", {"urgency": 1}, at(1))
    calm = _start(sessions, "external_kinds", {"urgency": -1}, at(2))
    with sessions.begin() as s:
        found = external.fetch_and_lock(s, "w1", ["notify", "letters"], max_tasks=3, now=at(3))
    assert [(t.instance_id, t.priority) for t in found] == [(urgent, 1), (plain, None), (calm, -1)]


def test_a_fetch_takes_only_the_named_topics_each_task_once(sessions, deploy):
    deploy("external_mi.bpmn", "external_kinds.bpmn")
    _start(sessions, "external_mi", {"people": ["Aino"]}, at(0))
    letter = _start(sessions, "external_kinds", {"urgency": 1}, at(1))
    with sessions.begin() as s:
        assert [t.instance_id for t in external.fetch_and_lock(s, "w1", ["letters"], max_tasks=5, now=at(2))] \
            == [letter]


def test_a_bare_topic_is_locked_for_the_fetchs_lock_seconds_a_minute_by_default(sessions, deploy):
    deploy("external_mi.bpmn")
    _start(sessions, "external_mi", {"people": ["Aino", "Eino"]}, at(0))
    with sessions.begin() as s:
        [one] = external.fetch_and_lock(s, "w1", ["notify"], now=at(1))
        [two] = external.fetch_and_lock(s, "w1", ["notify"], lock_seconds=5, now=at(1))
    assert (one.lock_expires_at, two.lock_expires_at) == (at(61), at(6))


def test_locking_is_audited_with_the_worker_and_the_lock_end(sessions, case):
    iid, task = case  # locked by w1 at T0 for 60 s
    with sessions.begin() as s:
        version_id = runtime.get_instance(s, iid).version_id
        [event] = [e for e in audit.history(s, iid) if e.kind == "external_task_locked"]
        assert (event.actor, event.at, event.element_id, event.version_id, json.loads(event.data)) == (
            "w1", T0, "check_registry", version_id,
            {"external_task_id": task.id, "topic": "registry", "worker": "w1", "lock_expires_at": at(60).isoformat()})


@pytest.mark.parametrize("kwargs, phrase", [
    ({"worker_id": "w" * 201}, r"^a worker id \(1 to 200 characters\) is required$"),
    ({"worker_id": " "}, r"^a worker id \(1 to 200 characters\) is required$"),
    ({"max_tasks": 101}, "^max tasks must be a whole number from 1 to 100, not 101$"),
    ({"max_tasks": 0}, "^max tasks must be a whole number from 1 to 100, not 0$"),
    ({"lock_seconds": 7 * 24 * 3600 + 1}, "^the lock duration must be more than 0 and at most 604800 seconds"),
])
def test_fetch_limits_are_refused_past_their_edge(sessions, deploy, kwargs, phrase):
    deploy("external_service.bpmn")
    args = {"worker_id": "w1"} | kwargs
    with sessions.begin() as s, pytest.raises(InvalidInput, match=phrase):
        external.fetch_and_lock(s, args.pop("worker_id"), ["registry"], now=T0, **args)


def test_fetch_limits_are_allowed_at_their_edge(sessions, deploy):
    deploy("external_service.bpmn")
    _start(sessions, "external_service", {"company": "Acme"}, T0)
    with sessions.begin() as s:
        [task] = external.fetch_and_lock(s, "w" * 200, ["registry"], max_tasks=100, lock_seconds=7 * 24 * 3600,
                                         now=T0)
    assert task.lock_expires_at == T0 + timedelta(days=7)


def test_equal_priorities_are_fetched_oldest_first_by_their_time_not_their_row(sessions, deploy):
    deploy("external_service.bpmn")
    newer = _start(sessions, "external_service", {"company": "Acme"}, at(10))
    older = _start(sessions, "external_service", {"company": "Beta"}, at(0))  # a later row with an earlier time
    with sessions.begin() as s:
        found = external.fetch_and_lock(s, "w1", ["registry"], max_tasks=2, now=at(20))
    assert [t.instance_id for t in found] == [older, newer]
