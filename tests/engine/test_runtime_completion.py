"""Completing a user task through `runtime.complete_task`: what the engine checks against the case.

The form's rules that need the case or the database are the engine's to apply, not the caller's:
a readonly field keeps the case's value, a `userRole` field takes an active user of that role, a
`not_future` date is compared with the action's own clock, a `provider` field takes a registry
provider's id (and its name beside it). A task without a form takes JSON-plain variables. A task
row the case no longer waits on is refused by the case's own state.

The model is tests/engine/bpmn/handover.bpmn: `hand_over` (the form above), then `memo` (no form).
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import update

from engine import audit, inbox, providers, runtime, users
from engine.audit import EventKind
from engine.errors import DataInvalid, FormInvalid, TaskNotAvailable
from engine.models import Task, TaskStatus

from .conftest import T0

TRAINER = {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training"}


@pytest.fixture
def case(sessions, deploy):
    """Return (instance id, hand_over task id, the trainer's provider id) of a new handover case."""
    deploy("handover.bpmn")
    with sessions.begin() as s:
        users.add_user(s, "aino", "salasana-123456", ["expert"])
        users.add_user(s, "sami", "salasana-123456", ["supervisor"])
        users.add_user(s, "lauri", "salasana-123456", ["supervisor", "expert"])
        trainer = providers.create_provider(s, TRAINER, by="sami", now=T0).id
        instance_id = runtime.start_instance(s, "handover", by="anna", data={"customer": "Acme Oy"}, now=T0).id
        [task] = inbox.tasks(s, instance_id=instance_id)
        return instance_id, task.id, trainer


def _complete(sessions, task_id, data, *, now=T0):
    with sessions.begin() as s:
        return runtime.complete_task(s, task_id, data, by="anna", now=now)


def _refusals(sessions, task_id, data, *, now=T0) -> dict[str, str]:
    with pytest.raises(FormInvalid) as raised:
        _complete(sessions, task_id, data, now=now)
    return raised.value.errors


def test_a_readonly_field_may_be_sent_with_the_cases_own_value_only(sessions, case):
    _instance_id, task_id, _trainer = case
    assert _refusals(sessions, task_id, {"customer": "Beta Oy"}) == {"customer": "this field cannot be changed"}
    _complete(sessions, task_id, {"customer": "Acme Oy"})  # the value the case has: accepted


def test_a_user_field_takes_an_active_user_of_its_role(sessions, case):
    _instance_id, task_id, _trainer = case
    assert _refusals(sessions, task_id, {"expert": "sami"}) == {
        "expert": "choose an active user with the expert role"}
    with pytest.raises(FormInvalid):  # the check runs before anything is written: the task is still open
        _complete(sessions, task_id, {"expert": "ben"})
    _complete(sessions, task_id, {"expert": "Lauri"})  # one of his roles is the field's


def test_today_for_a_date_field_is_the_actions_own_day(sessions, case):
    _instance_id, task_id, _trainer = case
    tomorrow = (T0 + timedelta(days=1)).date().isoformat()  # months before the real today
    assert set(_refusals(sessions, task_id, {"contacted_on": tomorrow})) == {"contacted_on"}
    _complete(sessions, task_id, {"contacted_on": tomorrow}, now=T0 + timedelta(days=1))


def test_a_provider_field_takes_the_registry_providers_id_and_its_name(sessions, case):
    instance_id, task_id, trainer = case
    assert _refusals(sessions, task_id, {"trainer": "Tuntematon Oy"}) == {
        "trainer": "choose an active provider from the registry"}
    _complete(sessions, task_id, {"trainer": str(trainer), "expert": "aino", "contacted_on": date(2026, 3, 1)})
    with sessions.begin() as s:
        variables = runtime.instance_variables(s, instance_id)
    assert (variables["trainer"], variables["trainer_name"], variables["expert"]) == (trainer, "Koulutus Oy", "aino")


def test_the_completion_event_has_the_cases_version_and_the_actions_time(sessions, case):
    instance_id, task_id, _trainer = case
    done_at = T0 + timedelta(hours=3)
    _complete(sessions, task_id, {"expert": "aino"}, now=done_at)
    with sessions.begin() as s:
        version_id = runtime.get_instance(s, instance_id).version_id
        [completed] = [e for e in audit.history(s, instance_id) if e.kind == EventKind.TASK_COMPLETED]
    assert (completed.version_id, completed.at, completed.task_id) == (version_id, done_at, task_id)


def test_a_task_without_a_form_takes_plain_variables(sessions, case):
    instance_id, task_id, _trainer = case
    _complete(sessions, task_id, {})
    with sessions.begin() as s:
        [memo] = inbox.tasks(s, instance_id=instance_id)
    with pytest.raises(DataInvalid, match="^task variables: memo is a set;"):
        _complete(sessions, memo.id, {"memo": {1, 2}})
    _complete(sessions, memo.id, {"memo": "soitettu", "calls": [1, 2]})
    with sessions.begin() as s:
        variables = runtime.instance_variables(s, instance_id)
        assert runtime.get_instance(s, instance_id).status == "completed"
    assert (variables["memo"], variables["calls"]) == ("soitettu", [1, 2])


def test_a_task_row_the_case_no_longer_waits_on_is_refused(sessions, case):
    instance_id, task_id, _trainer = case
    _complete(sessions, task_id, {})
    with sessions.begin() as s:  # an outside fix set the done task's row back to ready
        s.execute(update(Task).where(Task.id == task_id).values(state=TaskStatus.READY, completed_by=None))
    with pytest.raises(TaskNotAvailable, match="^this task is no longer waiting to be done$"):
        _complete(sessions, task_id, {})
    with sessions.begin() as s:
        completions = [e for e in audit.history(s, instance_id) if e.kind == EventKind.TASK_COMPLETED]
    assert [json.loads(e.data)["name"] for e in completions] == ["Hand the case over"]
