"""What the runtime's read functions hand back, written out in full: the start form, a task's form and
page details, an instance's summary, its variables and open incidents.

The expectations come from the test models (tests/engine/bpmn/order.bpmn, reminder.bpmn), not from
the code: every field, key and order a caller (the web pages, the REST API, the CLI) relies on.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import deploy as deploy_mod
from engine import forms, inbox, runtime
from engine.errors import InstanceNotFound, TaskNotFound
from engine.models import IncidentStatus, InstanceStatus

from .conftest import MODELS, T0

KEY = "0737546-2"

REVIEW_FORM = [
    forms.Field(id="approved_by_expert", label="Looks right", type="boolean"),
    forms.Field(id="channel", label="Channel", type="enum", required=True,
                options=[("phone", "Phone"), ("email", "E-mail")]),
    forms.Field(id="note", label="Note", type="string", maxlength=20, properties={"textarea": "true"}),
]


def _start(sessions, *, amount=500, owner=None, at=T0, key=KEY):
    data = {"customer": "Acme Oy", "amount": amount}
    if owner is not None:
        data["owner"] = owner
    with sessions.begin() as s:  # owner is no start-form field: passed unvalidated, as a parent process would
        return runtime.start_instance(s, "order", by="anna", data=data, business_key=key, now=at,
                                      validate_form=owner is None).id


def _review(sessions, instance_id):
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)
        return task.id


def test_the_start_form_is_the_start_events_fields_in_model_order(sessions, deploy):
    deploy("order.bpmn", "reminder.bpmn")
    with sessions.begin() as s:
        assert runtime.start_form(s, "order") == [
            forms.Field(id="customer", label="Customer", type="string", required=True, minlength=2),
            forms.Field(id="amount", label="Amount", type="long", min=1, max=100000),
        ]
        assert runtime.start_form(s, "reminder") == []  # no form on its start event


def test_the_start_form_of_a_named_version_is_that_versions(sessions, deploy):
    deploy("order.bpmn")
    second = (MODELS / "order.bpmn").read_bytes().replace(b'label="Amount"', b'label="Sum"')
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"order.bpmn": second}, by="designer")
    with sessions.begin() as s:
        assert [f.label for f in runtime.start_form(s, "order")] == ["Customer", "Sum"]  # the newest
        assert [f.label for f in runtime.start_form(s, "order", 1)] == ["Customer", "Amount"]
        assert [f.label for f in runtime.start_form(s, "order", 2)] == ["Customer", "Sum"]


def test_a_tasks_form_is_its_fields_with_their_constraints(sessions, deploy):
    deploy("order.bpmn")
    task_id = _review(sessions, _start(sessions))
    with sessions.begin() as s:
        assert runtime.task_form(s, task_id) == REVIEW_FORM
        with pytest.raises(TaskNotFound):
            runtime.task_form(s, "no-such-task")


def test_a_tasks_form_comes_from_its_own_cases_version(sessions, deploy):
    deploy("order.bpmn")
    old_case = _start(sessions)
    second = (MODELS / "order.bpmn").read_bytes().replace(b'label="Channel"', b'label="Contact channel"')
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"order.bpmn": second}, by="designer")
    new_case = _start(sessions, key="1234567-1")
    old_task, new_task = _review(sessions, old_case), _review(sessions, new_case)
    with sessions.begin() as s:
        assert runtime.task_form(s, old_task)[1].label == "Channel"
        assert runtime.task_form(s, new_task)[1].label == "Contact channel"


def test_a_task_page_gets_the_row_its_case_version_form_documentation_and_variables(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions, owner="olli")
    task_id = _review(sessions, instance_id)
    with sessions.begin() as s:
        details = runtime.task_details(s, task_id)
        assert set(details) == {"task", "instance", "version", "form", "documentation", "variables"}
        assert (details["task"].id, details["task"].element_id, details["task"].assignee) == (task_id, "review", "olli")
        assert details["instance"].id == instance_id
        assert (details["version"].process_id, details["version"].version) == ("order", 1)
        assert details["form"] == REVIEW_FORM
        assert details["documentation"] == "Check the **order** against the customer's needs."
        assert details["variables"] == {"amount": 500, "customer": "Acme Oy", "owner": "olli"}
        with pytest.raises(TaskNotFound):
            runtime.task_details(s, "no-such-task")


def test_variables_come_sorted_by_name_and_only_the_cases_own(sessions, deploy):
    deploy("order.bpmn")
    first = _start(sessions, owner="olli")
    _start(sessions, amount=7, key="1234567-1")
    with sessions.begin() as s:
        found = runtime.instance_variables(s, first)
        assert list(found.items()) == [("amount", 500), ("customer", "Acme Oy"), ("owner", "olli")]
        assert runtime.instance_variables(s, 999_999) == {}


def test_an_unknown_instance_is_not_found(sessions, deploy):
    with sessions.begin() as s:
        with pytest.raises(InstanceNotFound, match="no instance 4242"):
            runtime.get_instance(s, 4242)
        with pytest.raises(InstanceNotFound):
            runtime.instance_summary(s, 4242)


def test_a_started_cases_summary_in_full(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions, owner="olli")
    task_id = _review(sessions, instance_id)
    with sessions.begin() as s:
        summary = runtime.instance_summary(s, instance_id)
        revision = runtime.get_instance(s, instance_id).revision
    assert summary == {
        "id": instance_id, "process_id": "order", "version": 1, "business_key": KEY, "status": "running",
        "revision": revision, "started_at": "2026-03-02T08:00:00+00:00", "started_by": "anna", "ended_at": None,
        "parent_instance_id": None,
        "variables": {"amount": 500, "customer": "Acme Oy", "owner": "olli"},
        "tasks": [{"id": task_id, "instance_id": instance_id, "element_id": "review", "name": "Review order",
                   "lane": "Enterprise services expert", "role": "expert", "state": "ready", "assignee": "olli",
                   "due_at": "2026-03-05T08:00:00+00:00", "created_at": "2026-03-02T08:00:00+00:00",
                   "completed_at": None, "completed_by": None}],
        "timers": [], "incidents": [],
    }


def test_a_summary_lists_done_tasks_first_and_the_open_incident(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions, amount=5000)
    review = _review(sessions, instance_id)
    later = T0 + timedelta(hours=2)
    with sessions.begin() as s:
        runtime.complete_task(s, review, {"channel": "phone"}, by="anna", now=later)
    [approve] = [t for t in _all_tasks(sessions, instance_id) if t["element_id"] == "approve"]
    with sessions.begin() as s:
        runtime.complete_task(s, approve["id"], {"approved": True}, by="sami", now=later + timedelta(hours=1))
        summary = runtime.instance_summary(s, instance_id)
    assert [(t["element_id"], t["state"], t["completed_by"]) for t in summary["tasks"]] == [
        ("review", "completed", "anna"), ("approve", "completed", "sami")]
    assert summary["tasks"][0]["completed_at"] == "2026-03-02T10:00:00+00:00"
    assert summary["tasks"][1]["role"] == "supervisor" and summary["tasks"][1]["lane"] == "Service supervisor"
    [incident] = summary["incidents"]  # `divisor` is missing: the script waits as an incident
    assert incident["element_id"] == "compute" and "divisor" in incident["message"]
    assert incident["created_at"] == "2026-03-02T11:00:00+00:00"
    assert summary["status"] == "running" and summary["ended_at"] is None
    with sessions.begin() as s:
        assert incident["id"] == runtime.open_incidents(s, instance_id)[0].id


def test_a_summary_lists_only_its_own_cases_incidents(sessions, deploy):
    deploy("order.bpmn")
    cases = []
    for hour in (1, 2):  # two cases, each waiting on the missing `divisor` as an incident
        instance_id = _start(sessions, amount=5000, key=f"{hour:07d}-1")
        later = T0 + timedelta(hours=hour)
        with sessions.begin() as s:
            runtime.complete_task(s, _review(sessions, instance_id), {"channel": "phone"}, by="anna", now=later)
        [approve] = [t for t in _all_tasks(sessions, instance_id) if t["element_id"] == "approve"]
        with sessions.begin() as s:
            runtime.complete_task(s, approve["id"], {"approved": True}, by="sami", now=later)
        cases.append(instance_id)
    with sessions.begin() as s:
        for instance_id in cases:
            [own] = runtime.open_incidents(s, instance_id)
            assert [i["id"] for i in runtime.instance_summary(s, instance_id)["incidents"]] == [own.id]


def _all_tasks(sessions, instance_id):
    with sessions.begin() as s:
        return runtime.instance_summary(s, instance_id)["tasks"]


def test_a_summary_lists_waiting_timers_earliest_first(sessions, deploy):
    deploy("reminder.bpmn")
    with sessions.begin() as s:
        first = runtime.start_instance(s, "reminder", by="anna", data={"due": "P7D"}, now=T0).id
    with sessions.begin() as s:
        summary = runtime.instance_summary(s, first)
    assert summary["timers"] == [{"element_id": "late", "kind": "duration", "due_at": "2026-03-16T08:00:00+00:00"}]
    assert summary["tasks"][0]["due_at"] == "2026-03-09T08:00:00+00:00"


def test_a_finished_cases_summary_has_its_end(sessions, deploy):
    deploy("order.bpmn")
    instance_id = _start(sessions)
    with sessions.begin() as s:
        runtime.cancel_instance(s, instance_id, by="sami", reason="no need", now=T0 + timedelta(days=1))
        summary = runtime.instance_summary(s, instance_id)
    assert summary["status"] == str(InstanceStatus.CANCELLED)
    assert summary["ended_at"] == "2026-03-03T08:00:00+00:00"
    assert summary["tasks"][0]["state"] != "ready"


def test_open_incidents_oldest_first_of_all_cases_or_one(sessions, deploy):
    deploy("order.bpmn")
    cases = [_start(sessions, key=f"123456{n}-1") for n in range(3)]
    for n, instance_id in enumerate(cases):  # the review done at hours 3, 1, 2: each case's script fails then
        task_id = _review(sessions, instance_id)
        with sessions.begin() as s:
            runtime.complete_task(s, task_id, {"channel": "email"}, by="anna",
                                  now=T0 + timedelta(hours=(3, 1, 2)[n]))
    with sessions.begin() as s:
        assert [i.instance_id for i in runtime.open_incidents(s)] == [cases[1], cases[2], cases[0]]
        assert [i.instance_id for i in runtime.open_incidents(s, cases[2])] == [cases[2]]
        resolved = runtime.open_incidents(s, cases[1])[0]
        runtime.retry_incident(s, resolved.id, by="admin", data={"divisor": 2}, now=T0 + timedelta(hours=4))
    with sessions.begin() as s:
        assert [i.instance_id for i in runtime.open_incidents(s)] == [cases[2], cases[0]]
        assert runtime.open_incidents(s, cases[1]) == []
        assert all(i.status == IncidentStatus.OPEN for i in runtime.open_incidents(s))
