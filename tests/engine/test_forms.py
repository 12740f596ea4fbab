"""Form parsing from camunda:formData and validation of submitted values."""

from __future__ import annotations

import pytest
from lxml import etree

from engine import forms
from engine.errors import FormInvalid

XML = """<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="t"><bpmn:extensionElements><camunda:formData>
  <camunda:formField id="name" label="Name" type="string">
    <camunda:validation><camunda:constraint name="required" config="true" />
      <camunda:constraint name="minlength" config="2" /><camunda:constraint name="maxlength" config="5" />
    </camunda:validation>
    <camunda:properties><camunda:property id="help" value="Who" /></camunda:properties>
  </camunda:formField>
  <camunda:formField id="staff" label="Staff" type="long">
    <camunda:validation><camunda:constraint name="min" config="0" /><camunda:constraint name="max" config="10" />
    </camunda:validation></camunda:formField>
  <camunda:formField id="ok" label="OK" type="boolean" />
  <camunda:formField id="day" label="Day" type="date" />
  <camunda:formField id="kind" label="Kind" type="enum"><camunda:value id="a" name="A" /><camunda:value id="b" name="B" /></camunda:formField>
  <camunda:formField id="needs" label="Needs" type="enum">
    <camunda:properties><camunda:property id="multiple" value="true" /></camunda:properties>
    <camunda:value id="x" name="X" /><camunda:value id="y" name="Y" /></camunda:formField>
  <camunda:formField id="ref" label="Ref" type="string" defaultValue="R1">
    <camunda:validation><camunda:constraint name="readonly" config="true" /></camunda:validation></camunda:formField>
</camunda:formData></bpmn:extensionElements></bpmn:userTask>"""


@pytest.fixture
def fields():
    parsed, problems = forms.parse_form(etree.fromstring(XML))
    assert problems == []
    return parsed


def test_fields_keep_types_constraints_and_properties(fields):
    by_id = {f.id: f for f in fields}
    assert by_id["name"].required and by_id["name"].minlength == 2 and by_id["name"].help == "Who"
    assert by_id["staff"].min == 0 and by_id["staff"].max == 10
    assert by_id["needs"].multiple and not by_id["kind"].multiple
    assert by_id["ref"].readonly and by_id["ref"].default == "R1"
    assert forms.Field.from_dict(by_id["kind"].as_dict()) == by_id["kind"]


def test_valid_submission_is_typed(fields):
    clean = forms.validate(fields, {"name": " Ann ", "staff": "7", "ok": "on", "day": "2026-02-03",
                                    "kind": "b", "needs": ["x", "y"]})
    assert clean == {"name": "Ann", "staff": 7, "ok": True, "day": "2026-02-03", "kind": "b", "needs": ["x", "y"]}


def test_unticked_checkbox_means_false(fields):
    assert forms.validate(fields, {"name": "Ann"})["ok"] is False


@pytest.mark.parametrize("data, field, phrase", [
    ({}, "name", "required"),
    ({"name": "A"}, "name", "at least 2"),
    ({"name": "Annikki"}, "name", "at most 5"),
    ({"name": "Ann", "staff": "11"}, "staff", "at most 10"),
    ({"name": "Ann", "staff": "-1"}, "staff", "at least 0"),
    ({"name": "Ann", "staff": "seven"}, "staff", "whole number"),
    ({"name": "Ann", "staff": True}, "staff", "whole number"),
    ({"name": "Ann", "day": "3.2.2026"}, "day", "YYYY-MM-DD"),
    ({"name": "Ann", "kind": "c"}, "kind", "not one of"),
    ({"name": "Ann", "kind": ["a", "b"]}, "kind", "one option"),
    ({"name": "Ann", "needs": ["x", "z"]}, "needs", "not one of"),
    ({"name": "Ann", "ok": "maybe"}, "ok", "yes or no"),
    ({"name": "Ann", "ref": "changed"}, "ref", "cannot be changed"),
    ({"name": "Ann", "extra": 1}, "extra", "no such field"),
])
def test_each_wrong_field_gets_a_message_and_values_are_kept(fields, data, field, phrase):
    with pytest.raises(FormInvalid) as err:
        forms.validate(fields, data)
    assert phrase in err.value.errors[field]
    assert err.value.values == data


def test_all_wrong_fields_are_reported_at_once(fields):
    with pytest.raises(FormInvalid) as err:
        forms.validate(fields, {"name": "", "staff": "x", "kind": "q"})
    assert set(err.value.errors) == {"name", "staff", "kind"}


def test_bad_definitions_are_reported():
    xml = XML.replace('type="long"', 'type="money"').replace('config="2"', 'config="two"')
    _fields, problems = forms.parse_form(etree.fromstring(xml))
    assert any("money" in p for p in problems) and any("two" in p for p in problems)


def test_a_user_field_takes_only_an_active_user_of_its_role():
    field = forms.Field(id="responsible_expert", label="Expert", properties={"userRole": "expert"})
    assert field.user_role == "expert"
    active = {"expert": {"aino", "eero"}, "supervisor": {"sanna"}}
    lookup = lambda role: active.get(role, set())
    assert forms.validate([field], {"responsible_expert": " Aino "}, users_of_role=lookup) == {
        "responsible_expert": "aino"}
    for wrong in ("aimo", "sanna"):  # a typo, and an active user without the role
        with pytest.raises(FormInvalid) as err:
            forms.validate([field], {"responsible_expert": wrong}, users_of_role=lookup)
        assert err.value.errors == {"responsible_expert": "choose an active user with the expert role"}


def test_a_user_field_is_checked_by_the_engine_against_active_users(tmp_path):
    from engine import runtime, users
    from engine.db import make_engine, make_sessions, upgrade

    engine = make_engine(f"sqlite:///{tmp_path}/f.db")
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        users.add_user(s, "aino", "salasana-123456", ["expert"])
        users.add_user(s, "lauri", "salasana-123456", ["expert", "supervisor"])
        users.set_profile(s, "lauri", active=False)
        lookup = runtime.users_of_role(s)
        assert lookup("expert") == {"aino"} and lookup("supervisor") == set()
    engine.dispose()
