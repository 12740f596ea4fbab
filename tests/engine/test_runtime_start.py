"""Starting a case through `runtime.start_instance`: the start form is the engine's to apply.

As for a task's form (test_runtime_completion.py), the start event's form is checked against the
database and the action's clock: a required field, a `userRole` field against active users, a
`not_future` date against the start's own `now`, a `provider` field against the registry. A parent
process or an integration starts without the form (`validate_form=False`); the `office` variable is
the engine's own snapshot, never a caller's. A decision cannot be started.

The model is tests/engine/bpmn/intake.bpmn (the start form above, then two user tasks).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import deploy as deploy_mod
from engine import providers, runtime, users
from engine.errors import FormInvalid, InvalidInput

from .conftest import MODELS

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def trainer(sessions, deploy) -> int:
    deploy("intake.bpmn")
    with sessions.begin() as s:
        users.add_user(s, "aino", "salasana-123456", ["expert"])
        users.add_user(s, "sami", "salasana-123456", ["supervisor"])
        return providers.create_provider(s, {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training"},
                                         by="sami", now=T0).id


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
