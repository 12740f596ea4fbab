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

from .conftest import T0


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


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
