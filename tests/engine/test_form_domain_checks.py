"""Domain checks of form fields (not_future, not_before, after, max_span, email) and their boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from engine import deploy, forms
from engine.errors import FormInvalid, InvalidModel

XML = """<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="t"><bpmn:extensionElements><camunda:formData>
  <camunda:formField id="started_on" label="Started" type="date">
    <camunda:validation><camunda:constraint name="not_future" config="true" /></camunda:validation>
  </camunda:formField>
  <camunda:formField id="ended_on" label="Ended" type="date">
    <camunda:validation>
      <camunda:constraint name="not_future" config="true" />
      <camunda:constraint name="after" config="started_on" />
      <camunda:constraint name="max_span" config="P2Y:started_on" />
    </camunda:validation>
  </camunda:formField>
  <camunda:formField id="closed_on" label="Closed" type="date">
    <camunda:validation><camunda:constraint name="not_before" config="started_on" />
      <camunda:constraint name="not_before" config="assessed_on" /></camunda:validation>
  </camunda:formField>
  <camunda:formField id="consultant_email" label="E-mail" type="string">
    <camunda:validation><camunda:constraint name="email" config="true" /></camunda:validation>
  </camunda:formField>
</camunda:formData></bpmn:extensionElements></bpmn:userTask>"""

# 2026-03-02 21:30 UTC is already 2026-03-02 23:30 in Helsinki; 22:30 UTC is 3 March there.
NOW = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
TODAY = "2026-03-02"


@pytest.fixture
def fields():
    parsed, problems = forms.parse_form(etree.fromstring(XML))
    assert problems == []
    return parsed


def check(fields, data, current=None, now=NOW):
    """Return the field errors of a submission ({} when it is accepted)."""
    try:
        forms.validate(fields, data, current, now=now)
    except FormInvalid as err:
        assert err.values == data
        return err.errors
    return {}


def test_checks_are_parsed_and_kept_through_the_catalogue(fields):
    ended = next(f for f in fields if f.id == "ended_on")
    assert ended.checks == [("not_future", "true"), ("after", "started_on"), ("max_span", "P2Y:started_on")]
    assert forms.Field.from_dict(ended.as_dict()) == ended
    old_entry = {k: v for k, v in ended.as_dict().items() if k != "checks"}  # a catalogue stored before checks
    assert forms.Field.from_dict(old_entry).checks == []


@pytest.mark.parametrize("day, error", [
    ("2026-03-01", None),  # yesterday
    (TODAY, None),  # today
    ("2026-03-03", "the date cannot be in the future"),  # tomorrow
    ("2027-01-01", "the date cannot be in the future"),
])
def test_not_future_accepts_today_and_refuses_tomorrow(fields, day, error):
    assert check(fields, {"started_on": day}).get("started_on") == error


def test_today_is_the_helsinki_day_of_the_engines_now(fields):
    assert check(fields, {"started_on": "2026-03-03"}, now=datetime(2026, 3, 2, 21, 59, tzinfo=UTC))
    assert check(fields, {"started_on": "2026-03-03"}, now=datetime(2026, 3, 2, 22, 0, tzinfo=UTC)) == {}
    summer = datetime(2026, 7, 1, 20, 59, tzinfo=UTC)  # 23:59 in Helsinki (UTC+3)
    assert check(fields, {"started_on": "2026-07-02"}, now=summer)
    assert check(fields, {"started_on": "2026-07-02"}, now=datetime(2026, 7, 1, 21, 0, tzinfo=UTC)) == {}
    naive = datetime(2026, 3, 2, 22, 0)  # read as UTC
    assert check(fields, {"started_on": "2026-03-03"}, now=naive) == {}


@pytest.mark.parametrize("start, end, error", [
    ("2024-03-02", "2026-03-02", None),  # exactly two years
    ("2024-03-01", "2026-03-02", "must be on or before 2026-03-01"),  # two years and a day
    ("2026-02-01", "2026-02-01", "must be after 2026-02-01"),  # same day
    ("2026-02-01", "2026-01-31", "must be after 2026-02-01"),  # before the start
    ("2026-02-01", "2026-02-02", None),  # the next day
])
def test_after_and_max_span_boundaries(fields, start, end, error):
    now = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert check(fields, {"started_on": start, "ended_on": end}, now=now).get("ended_on") == error


def test_max_span_from_a_leap_day_ends_on_the_last_of_february():
    assert forms._add_span(date(2024, 2, 29), 2, 0, 0) == date(2026, 2, 28)
    assert forms._add_span(date(2025, 1, 31), 0, 1, 0) == date(2025, 2, 28)
    assert forms._add_span(date(2025, 11, 30), 0, 3, 14) == date(2026, 3, 14)
    assert forms._add_span(date(9999, 1, 1), 2, 0, 0) == date.max
    assert forms._add_span(date(9999, 12, 30), 0, 0, 7) == date.max


@pytest.mark.parametrize("start, closed, error", [
    ("2026-02-01", "2026-02-01", None),  # same day is allowed by not_before
    ("2026-02-01", "2026-01-31", "must be on or after 2026-02-01"),
    ("2026-02-01", "2026-02-02", None),
])
def test_not_before_allows_the_same_day(fields, start, closed, error):
    assert check(fields, {"started_on": start, "closed_on": closed}).get("closed_on") == error


def test_the_other_date_comes_from_the_instance_when_the_form_does_not_have_it(fields):
    current = {"assessed_on": "2026-02-10", "started_on": "2026-01-01"}
    assert check(fields, {"closed_on": "2026-02-09"}, current) == {"closed_on": "must be on or after 2026-02-10"}
    assert check(fields, {"closed_on": "2026-02-10"}, current) == {}
    # a date submitted in the form wins over the instance's older value
    assert check(fields, {"started_on": "2026-02-20", "closed_on": "2026-02-15"}, current) == \
        {"closed_on": "must be on or after 2026-02-20"}
    # a datetime text (as scripts store) counts by its date
    assert check(fields, {"closed_on": "2026-02-09"}, {"assessed_on": "2026-02-10T09:00:00+02:00"})


def test_a_missing_or_wrong_other_date_skips_the_check(fields):
    assert check(fields, {"closed_on": "2020-01-01"}) == {}  # no start anywhere: nothing to compare with
    assert check(fields, {"closed_on": "2020-01-01"}, {"assessed_on": "soon"}) == {}
    assert check(fields, {"closed_on": "2020-01-01"}, {"assessed_on": 7}) == {}
    # the start itself is wrong: only the start gets a message
    assert check(fields, {"started_on": "2026-03-09", "ended_on": "2026-03-01"}) == \
        {"started_on": "the date cannot be in the future"}
    assert check(fields, {"started_on": "1.2.2026", "ended_on": "2026-01-01"}) == \
        {"started_on": "enter a date as YYYY-MM-DD"}


def test_every_broken_check_of_a_form_is_reported_at_once(fields):
    errors = check(fields, {"started_on": "2026-02-01", "ended_on": "2026-03-09", "closed_on": "2026-01-01",
                            "consultant_email": "nobody"})
    assert errors == {"ended_on": "the date cannot be in the future", "closed_on": "must be on or after 2026-02-01",
                      "consultant_email": "enter an e-mail address such as name@example.fi"}


@pytest.mark.parametrize("email, ok", [
    ("liisa.konsultti@kehitys.fi", True),
    (" Liisa@Example.COM ", True),
    ("a@b.fi", True),
    ("liisa", False),
    ("liisa@", False),
    ("liisa@kehitys", False),
    ("@kehitys.fi", False),
    ("liisa@@kehitys.fi", False),
    ("liisa konsultti@kehitys.fi", False),
    ("liisa@kehitys..fi", False),
    ("liisa@kehitys.fi.", False),
    ("x" * 250 + "@a.fi", False),
])
def test_email(fields, email, ok):
    errors = check(fields, {"consultant_email": email})
    assert (errors == {}) is ok, errors


def test_an_empty_optional_field_is_not_checked(fields):
    assert forms.validate(fields, {"consultant_email": "", "closed_on": ""}, now=NOW) == \
        {"started_on": None, "ended_on": None, "closed_on": None, "consultant_email": None}


FIELD = """<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="t"><bpmn:extensionElements><camunda:formData>
  <camunda:formField id="f" label="F" type="{type}"><camunda:validation>
    <camunda:constraint name="{name}" config="{config}" /></camunda:validation></camunda:formField>
</camunda:formData></bpmn:extensionElements></bpmn:userTask>"""


@pytest.mark.parametrize("type_, name, config, problem", [
    ("string", "not_future", "true", "constraint 'not_future' applies to date fields only"),
    ("long", "after", "start", "constraint 'after' applies to date fields only"),
    ("date", "email", "true", "constraint 'email' applies to string fields only"),
    ("date", "after", "", "constraint 'after' needs the id of another date field, got ''"),
    ("date", "not_before", "f", "constraint 'not_before' needs the id of another date field, got 'f'"),
    ("date", "not_before", "a-b", "needs the id of another date field"),
    ("date", "max_span", "P2Y", "needs a duration and another date field such as 'P2Y:start_date', got 'P2Y'"),
    ("date", "max_span", "2Y:start", "such as 'P2Y:start_date'"),
    ("date", "max_span", "P:start", "such as 'P2Y:start_date'"),
    ("date", "max_span", "P2H:start", "such as 'P2Y:start_date'"),
    ("date", "max_span", "P2Y:f", "such as 'P2Y:start_date'"),
])
def test_a_check_that_cannot_work_is_a_definition_problem(type_, name, config, problem):
    fields, problems = forms.parse_form(etree.fromstring(FIELD.format(type=type_, name=name, config=config)))
    assert len(problems) == 1 and problem in problems[0] and problems[0].startswith("form field 'f': ")
    assert fields[0].checks == []


@pytest.mark.parametrize("config, last", [
    ("P2Y:s", "2028-01-31"), ("P6M:s", "2026-07-31"), ("P1Y6M:s", "2027-07-31"), ("P2W:s", "2026-02-14"),
    ("P10D:s", "2026-02-10"), ("p1m:s", "2026-02-28"), ("P1M3D:s", "2026-03-03"),
])
def test_max_span_durations(config, last):
    xml = FIELD.format(type="date", name="max_span", config=config).replace(
        '<camunda:formField id="f"', '<camunda:formField id="s" label="S" type="date" /><camunda:formField id="f"')
    fields, problems = forms.parse_form(etree.fromstring(xml))
    assert problems == []
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert check(fields, {"s": "2026-01-31", "f": last}, now=later) == {}
    following = date.fromordinal(date.fromisoformat(last).toordinal() + 1).isoformat()
    assert check(fields, {"s": "2026-01-31", "f": following}, now=later) == \
        {"f": f"must be on or before {last}"}


def test_readonly_fields_are_not_checked():
    xml = FIELD.format(type="date", name="not_future", config="true").replace(
        "</camunda:validation>", '<camunda:constraint name="readonly" config="true" /></camunda:validation>')
    fields, _ = forms.parse_form(etree.fromstring(xml))
    assert forms.validate(fields, {}, {"f": "2999-01-01"}, now=NOW) == {}


def test_deploy_refuses_a_shipped_model_whose_check_cannot_work(session):
    text = (Path(__file__).parents[2] / "bpmn" / "recruitment.bpmn").read_text(encoding="utf-8")
    broken = text.replace('<camunda:constraint name="not_before" config="assessment_date" />',
                          '<camunda:constraint name="max_span" config="P2Y" />', 1)
    assert broken != text
    with pytest.raises(InvalidModel) as err:
        deploy.deploy_files(session, {"recruitment.bpmn": broken.encode()}, by="designer")
    [problem] = err.value.problems
    assert problem.element == "plan_recruitment" and "recruitment_planned_end" in problem.message
    assert "'P2Y:start_date'" in problem.message
