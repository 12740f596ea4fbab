"""Starting a case through `runtime.start_instance`: the start form is the engine's to apply.

As for a task's form (test_runtime_completion.py), the start event's form is checked against the
database and the action's clock: a required field, a `userRole` field against active users, a
`not_future` date against the start's own `now`, a `provider` field against the registry. A parent
process or an integration starts without the form (`validate_form=False`); the `office` variable is
the engine's own snapshot, never a caller's. A decision cannot be started.

The model is tests/engine/bpmn/intake.bpmn (the start form above, then two user tasks).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine import audit, inbox, office, providers, runtime, users
from engine import deploy as deploy_mod
from engine.audit import EventKind
from engine.errors import FormInvalid, InvalidInput

from .conftest import MODELS, T0


@pytest.fixture
def trainer(sessions, deploy) -> int:
    deploy("intake.bpmn")
    with sessions.begin() as s:
        users.add_user(s, "aino", "salasana-123456", ["expert"])
        users.add_user(s, "sami", "salasana-123456", ["supervisor"])
        return providers.create_provider(s, {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training"},
                                         by="sami", now=T0).id


def _deploy_with_first_script(sessions, script: str) -> None:
    """Deploy intake.bpmn again with a script task `first` between its start event and `hand_over`."""
    model = (MODELS / "intake.bpmn").read_text().replace(
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="hand_over" />',
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="first" />'
        '<bpmn:scriptTask id="first" name="First"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f0</bpmn:outgoing>'
        f'<bpmn:script>{script}</bpmn:script></bpmn:scriptTask>'
        '<bpmn:sequenceFlow id="f0" sourceRef="first" targetRef="hand_over" />').replace(
        '<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>',
        '<bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>')
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"intake.bpmn": model.encode()}, by="designer")


def _refusals(sessions, data, *, now=T0) -> dict[str, str]:
    with pytest.raises(FormInvalid) as raised, sessions.begin() as s:
        runtime.start_instance(s, "intake", by="anna", data=data, now=now)
    return raised.value.errors


def test_the_start_form_is_applied_with_the_database_and_the_starts_clock(sessions, trainer):
    tomorrow = (T0 + timedelta(days=1)).date().isoformat()  # months before the real today
    refused = _refusals(sessions, {"expert": "sami", "contacted_on": tomorrow, "trainer": "Tuntematon Oy"})
    assert refused.pop("contacted_on")  # in the future of the start's own day
    assert refused == {"customer": "this field is required", "expert": "choose an active user with the expert role",
                       "trainer": "choose an active provider from the registry"}
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "intake", by="anna", now=T0 + timedelta(days=1), data={
            "customer": "Acme Oy", "expert": "Aino", "contacted_on": tomorrow, "trainer": str(trainer)}).id
        variables = runtime.instance_variables(s, instance_id)
    assert (variables["expert"], variables["trainer"], variables["trainer_name"]) == ("aino", trainer, "Koulutus Oy")


def test_a_start_without_the_form_takes_the_data_but_never_an_office_copy(sessions, trainer):
    with sessions.begin() as s:  # as a parent process starts a child: no form, but no forged office settings
        instance_id = runtime.start_instance(s, "intake", by="anna", now=T0, validate_form=False,
                                             data={"note": "from the parent", "office": {"aftercare_days": 1}}).id
        variables = runtime.instance_variables(s, instance_id)
    assert variables["note"] == "from the parent" and "office" not in variables


def test_a_decision_cannot_be_started(sessions, deploy):
    decision = (MODELS.parents[2] / "bpmn" / "aftercare_target.dmn").read_bytes()
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"aftercare_target.dmn": decision}, by="designer")
    with pytest.raises(InvalidInput, match="^'aftercare_target' is a decision, not a process$"), sessions.begin() as s:
        runtime.start_instance(s, "aftercare_target", by="anna", now=T0)


def test_the_start_is_recorded_in_full(sessions, trainer):
    started_at = T0 + timedelta(hours=1)
    with sessions.begin() as s:
        parent = runtime.start_instance(s, "intake", by="anna", now=T0, validate_form=False).id
        instance = runtime.start_instance(s, "intake", by="ben", business_key="0737546-2", now=started_at,
                                          validate_form=False, parent_instance_id=parent, data={"note": "x"})
        instance_id, version_id = instance.id, instance.version_id
        [event] = [e for e in audit.history(s, instance_id) if e.kind == EventKind.INSTANCE_STARTED]
        version = deploy_mod.latest_version(s, "intake")
    assert (event.actor, event.instance_id, event.version_id, event.at) == ("ben", instance_id, version_id, started_at)
    assert json.loads(event.data) == {"process_id": "intake", "version": version.version,
                                      "business_key": "0737546-2", "data": {"note": "x"},
                                      "parent_instance_id": parent}
    with sessions.begin() as s:
        assert runtime.get_instance(s, instance_id).status == "running"


def test_a_process_reading_the_office_settings_starts_with_the_engines_snapshot(sessions, trainer):
    _deploy_with_first_script(sessions, 'seen = office["reminder_lead_days"]')
    with sessions.begin() as s:
        snapshot = office.snapshot(s)
        instance_id = runtime.start_instance(s, "intake", by="anna", now=T0, validate_form=False,
                                             data={"office": {"forged": True}}).id
        variables = runtime.instance_variables(s, instance_id)
        [event] = [e for e in audit.history(s, instance_id) if e.kind == EventKind.INSTANCE_STARTED]
    assert variables["office"] == snapshot and variables["seen"] == snapshot["reminder_lead_days"]
    assert json.loads(event.data)["office"] == snapshot and json.loads(event.data)["data"] == {}


def test_a_named_version_is_started_as_that_version(sessions, trainer):
    second = (MODELS / "intake.bpmn").read_bytes().replace(b'name="Write a memo"', b'name="Write the memo"')
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"intake.bpmn": second}, by="designer")
    with sessions.begin() as s:
        first = runtime.start_instance(s, "intake", by="anna", version=1, now=T0, validate_form=False)
        newest = runtime.start_instance(s, "intake", by="anna", now=T0, validate_form=False)
        versions = {v.id: v.version for v in (deploy_mod.get_version(s, "intake", 1), deploy_mod.latest_version(s, "intake"))}
        assert (versions[first.version_id], versions[newest.version_id]) == (1, 2)


def test_a_start_whose_first_script_fails_keeps_the_case_with_an_incident(sessions, trainer):
    _deploy_with_first_script(sessions, "total = visits + 1")
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "intake", by="anna", now=T0, validate_form=False).id
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, instance_id)
        assert (incident.element_id, runtime.get_instance(s, instance_id).status) == ("first", "running")
        incident_id = incident.id
    with sessions.begin() as s:
        runtime.retry_incident(s, incident_id, by="admin", data={"visits": 2}, now=T0)
        assert runtime.instance_variables(s, instance_id)["total"] == 3
        assert [t.element_id for t in inbox.tasks(s, instance_id=instance_id)] == ["hand_over"]
