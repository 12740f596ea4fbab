"""Office settings: the aftercare day counts are the office's own choices, audited with history,
and every new instance keeps a snapshot of them as its variable `office`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine import audit, office, runtime
from engine.errors import InvalidInput

from .conftest import T0

LINES = ("recruitment", "training", "business_development", "change_security", "startup", "referral")


def test_defaults_are_the_contracts(sessions):
    with sessions() as s:
        values = office.all_settings(s)
    assert {line: values["aftercare_target_days_" + line] for line in LINES} == {
        "recruitment": 14, "training": 7, "business_development": 14, "change_security": 14, "startup": 14,
        "referral": 14}
    assert (values["aftercare_attempts"], values["follow_up_offset_days"], values["reminder_lead_days"]) == (3, 365, 3)
    assert office.SERVICE_LINES == LINES


def test_change_is_audited_and_history_lists_past_values(sessions):
    with sessions.begin() as s:
        office.set_value(s, "aftercare_target_days_training", "10", by="sanna", now=T0)
    with sessions.begin() as s:
        office.set_value(s, "aftercare_target_days_training", 5, by="pekka", now=T0 + timedelta(days=1))
        office.set_value(s, "aftercare_target_days_training", 5, by="pekka", now=T0 + timedelta(days=2))  # no change
        office.set_value(s, "aftercare_attempts", 4, by="pekka", now=T0 + timedelta(days=2))
    with sessions() as s:
        assert office.get(s, "aftercare_target_days_training") == 5
        assert office.target_days(s, "training") == 5 and office.target_days(s, "nonsense") is None
        past = office.history(s, "aftercare_target_days_training")
        assert [(c.old, c.new, c.by, c.at) for c in past] == [(10, 5, "pekka", T0 + timedelta(days=1)),
                                                              (7, 10, "sanna", T0)]
        assert [c.key for c in office.history(s)] == ["aftercare_attempts", "aftercare_target_days_training",
                                                       "aftercare_target_days_training"]


@pytest.mark.parametrize(("key", "value"), [("aftercare_target_days_startup", "-1"),
                                            ("aftercare_attempts", "0"), ("follow_up_offset_days", "x"),
                                            ("aftercare_target_days_nonsense", "3")])
def test_bad_values_are_refused_and_nothing_changes(sessions, key, value):
    with sessions.begin() as s, pytest.raises(InvalidInput):
        office.set_value(s, key, value, by="sanna")
    with sessions() as s:
        assert office.history(s) == []


def test_every_new_instance_that_reads_them_keeps_the_settings_of_its_start_day(sessions, deploy):
    deploy("aftercare_fixture.bpmn", "order.bpmn")
    start = {"service_line": "recruitment", "service_ended_on": "2026-01-05", "responsible_expert": "sanna",
             "business_id": "1234567-8"}
    with sessions.begin() as s:
        first = runtime.start_instance(s, "aftercare", by="t", data=start, start_message="service_line_ended",
                                       business_key="1234567-8", now=T0).id
        plain = runtime.start_instance(s, "order", by="t", data={}, now=T0, validate_form=False).id
    with sessions.begin() as s:
        office.set_value(s, "aftercare_target_days_recruitment", 21, by="sanna", now=T0)
    with sessions.begin() as s:
        stale = {**start, "office": {"aftercare_target_days_recruitment": 99}}  # a sender's older copy
        second = runtime.start_instance(s, "aftercare", by="t", data=stale, start_message="service_line_ended",
                                        business_key="1234567-8", now=T0).id
    runtime.forget_cache()
    with sessions() as s:
        one, two = runtime.instance_variables(s, first), runtime.instance_variables(s, second)
        assert one["office"]["aftercare_target_days_recruitment"] == 14 and one["aftercare_target_days"] == 14
        assert two["office"]["aftercare_target_days_recruitment"] == 21 and two["aftercare_target_days"] == 21
        assert one["aftercare_due"] == "2026-01-19T23:59:59+02:00"
        assert "office" not in runtime.instance_variables(s, plain)  # its model never reads the settings
        [started] = [e for e in audit.history(s, second) if e.kind == "instance_started"]
        assert json.loads(started.data)["office"]["aftercare_target_days_recruitment"] == 21
