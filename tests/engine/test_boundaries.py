"""Boundaries of every comparison in forms, timers and KPIs, each checked on both sides of the edge.

Time is moved with `now=`; a timer due at T fires at T and not a microsecond before; a contact on
exactly its last target day is on time (kpi.AftercareCase); a KPI period is [start, end). The interrupting
boundary event of tests/engine/bpmn/interrupt.bpmn cancels its user task, which leaves the inbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlalchemy import select

from engine import external, inbox, kpi, runtime, timers
from engine.errors import FormInvalid, TaskNotAvailable
from engine.forms import LONG_MAX, LONG_MIN, Field, parse_form, validate
from engine.models import Instance, Task, TaskStatus, Timer, Variable

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def _error(fields, data) -> dict[str, str]:
    with pytest.raises(FormInvalid) as caught:
        validate(fields, data)
    return caught.value.errors


# ---------------------------------------------------------------- forms

@pytest.mark.parametrize("blank", [" ", "   \t\n", "\u00a0 "])
def test_a_required_text_of_only_whitespace_is_missing(blank):
    assert _error([Field("name", "Name", required=True)], {"name": blank}) == {"name": "this field is required"}


def test_an_optional_text_of_only_whitespace_is_stored_empty():
    assert validate([Field("name", "Name")], {"name": "  "}) == {"name": ""}


@pytest.mark.parametrize("value, ok", [(4, False), (5, True), (6, False)])
def test_min_equal_to_max_takes_exactly_that_number(value, ok):
    fields = [Field("n", "N", type="long", min=5, max=5)]
    if ok:
        assert validate(fields, {"n": str(value)}) == {"n": value}
    else:
        message = _error(fields, {"n": str(value)})["n"]
        assert message == ("must be at least 5" if value < 5 else "must be at most 5")


@pytest.mark.parametrize("text, ok", [("abc", False), ("abcd", True), ("abcde", False), ("  abcd  ", True)])
def test_minlength_equal_to_maxlength_takes_exactly_that_length(text, ok):
    fields = [Field("code", "Code", minlength=4, maxlength=4)]
    if ok:
        assert validate(fields, {"code": text}) == {"code": "abcd"}
    else:
        assert _error(fields, {"code": text})["code"].startswith("enter at ")


@pytest.mark.parametrize("value, ok", [(LONG_MAX, True), (LONG_MAX + 1, False), (LONG_MIN, True),
                                       (LONG_MIN - 1, False)])
def test_whole_numbers_stop_at_the_64_bit_range(value, ok):
    fields = [Field("n", "N", type="long")]
    if ok:
        assert validate(fields, {"n": str(value)}) == {"n": value}
    else:
        assert _error(fields, {"n": str(value)}) == {"n": "the number is too large"}


@pytest.mark.parametrize("chosen, ok", [(["a"], False), (["a", "b"], True), (["a", "b", "c"], False)])
def test_a_multiple_choice_counts_its_choices_against_min_and_max(chosen, ok):
    fields = [Field("pick", "Pick", type="enum", minlength=2, maxlength=2, options=[("a", "A"), ("b", "B"), ("c", "C")],
                    properties={"multiple": "true"})]
    if ok:
        assert validate(fields, {"pick": chosen}) == {"pick": chosen}
    else:
        assert "choices" in _error(fields, {"pick": chosen})["pick"]


@pytest.mark.parametrize("said, meant", [*[(w, True) for w in ("true", "on", "1", "yes", "kyllä", " Kyllä ", "TRUE")],
                                          *[(w, False) for w in ("false", "off", "0", "no", "ei", "EI")]])
def test_yes_no_choice_spellings(said, meant):
    assert validate([Field("ok", "OK", type="boolean")], {"ok": said}) == {"ok": meant}


def test_yes_no_choice_refuses_other_words():
    assert _error([Field("ok", "OK", type="boolean")], {"ok": "maybe"}) == {"ok": "choose yes or no"}


@pytest.mark.parametrize("typed, number", [("1 000", 1000), ("1\u00a0000", 1000), ("-5", -5), (" 7 ", 7), (12, 12),
                                           (-3, -3)])
def test_whole_numbers_as_people_type_them(typed, number):
    assert validate([Field("n", "N", type="long")], {"n": typed}) == {"n": number}


@pytest.mark.parametrize("typed", ["1.5", "12a", "--5", True, "\u00b2", "-\u0663", "9" * 5000])  # ², Arabic 3
def test_whole_numbers_refuse_anything_else(typed):
    assert _error([Field("n", "N", type="long")], {"n": typed}) == {"n": "enter a whole number"}


def test_length_errors_name_characters_for_text_and_choices_for_several_options():
    text = [Field("t", "T", minlength=3, maxlength=4)]
    assert _error(text, {"t": "ab"}) == {"t": "enter at least 3 characters"}
    assert _error(text, {"t": "abcde"}) == {"t": "enter at most 4 characters"}
    pick = [Field("p", "P", type="enum", minlength=2, maxlength=2, options=[("a", "A"), ("b", "B"), ("c", "C")],
                  properties={"multiple": "true"})]
    assert _error(pick, {"p": ["a"]}) == {"p": "enter at least 2 choices"}
    assert _error(pick, {"p": ["a", "b", "c"]}) == {"p": "enter at most 2 choices"}


def test_a_single_choice_is_not_measured_by_its_length():
    one = [Field("p", "P", type="enum", minlength=2, maxlength=3, options=[("abcdef", "Long"), ("a", "Short")])]
    assert validate(one, {"p": "abcdef"}) == {"p": "abcdef"}
    assert validate(one, {"p": "a"}) == {"p": "a"}


def test_non_text_values_become_trimmed_text():
    assert validate([Field("t", "T")], {"t": 42}) == {"t": "42"}
    assert validate([Field("t", "T")], {"t": "  x  "}) == {"t": "x"}


# ---------------------------------------------------------------- timers and interrupting events

def test_a_timer_due_at_t_fires_at_t_not_before_and_its_interrupting_event_cancels_the_task(sessions, deploy):
    deploy("interrupt.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "interrupt", by="anna", data={"due": "P7D"}, now=T0).id
        [call] = inbox.tasks(s, instance_id=iid)
        due = T0 + timedelta(days=14)
        assert inbox.overdue(s, now=call.due_at) == []  # due at T: not yet overdue at T …
        assert inbox.overdue(s, now=call.due_at + TICK) == [call]  # … but right after it
    assert timers.fire_due_timers(sessions, now=due - TICK) == 0
    runtime.forget_cache()
    assert timers.fire_due_timers(sessions, now=due) == 1
    runtime.forget_cache()
    with sessions.begin() as s:
        assert [t.element_id for t in inbox.tasks(s, instance_id=iid)] == ["escalate"]
        assert call.id not in {t.id for t in inbox.tasks(s)}
        assert s.get(Task, call.id).state == TaskStatus.CANCELLED
    with sessions.begin() as s, pytest.raises(TaskNotAvailable):
        runtime.complete_task(s, call.id, {"reached": True}, by="anna", now=due)


def test_completing_at_the_due_instant_is_before_the_timer(sessions, deploy):
    deploy("interrupt.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "interrupt", by="anna", data={"due": "P7D"}, now=T0).id
        [call] = inbox.tasks(s, instance_id=iid)
    due = T0 + timedelta(days=14)
    with sessions.begin() as s:
        runtime.complete_task(s, call.id, {"reached": True}, by="anna", now=due - TICK)
    assert timers.fire_due_timers(sessions, now=due) == 0
    with sessions.begin() as s:
        assert inbox.tasks(s, instance_id=iid) == []


# ---------------------------------------------------------------- KPIs

def _aftercare_contact(sessions, deploy, *, ended_on: str, target: int | None, contacted_on: str | None,
                       outcome: str | None = None, attempts: list | None = None) -> int:
    """A real instance carrying an aftercare case's variables (contract names); return its id."""
    deploy("interrupt.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "interrupt", by="anna", data={"due": "P7D"}, now=T0).id
        values = {"service_ended_on": ended_on, "aftercare_target_days": target, "aftercare_contacted_on": contacted_on,
                  "aftercare_outcome": outcome, "aftercare_attempts": attempts,
                  "aftercare_started_at": T0.isoformat()}
        s.add_all(Variable(instance_id=iid, name=k, value=v) for k, v in values.items() if v is not None)
    return iid


@pytest.mark.parametrize("contacted_on, on_time", [("2026-03-11", 1), ("2026-03-12", 1), ("2026-03-13", 0)])
def test_a_contact_on_the_last_target_day_is_on_time(sessions, deploy, contacted_on, on_time):
    _aftercare_contact(sessions, deploy, ended_on="2026-03-02", target=10, contacted_on=contacted_on)
    with sessions.begin() as s:
        figures = kpi.aftercare_on_time(s, T0, T0 + timedelta(days=30))
        assert (figures.done, figures.on_time, figures.late, figures.not_reached) == (1, on_time, 1 - on_time, 0)


HELSINKI = ZoneInfo("Europe/Helsinki")
MARCH = (datetime(2026, 3, 2, tzinfo=HELSINKI), datetime(2026, 4, 1, tzinfo=HELSINKI))


@pytest.mark.parametrize("contacted_on, counted", [("2026-03-01", 0), ("2026-03-02", 1), ("2026-03-31", 1),
                                                   ("2026-04-01", 0)])
def test_the_on_time_period_is_start_inclusive_end_exclusive(sessions, deploy, contacted_on, counted):
    _aftercare_contact(sessions, deploy, ended_on="2026-02-20", target=14, contacted_on=contacted_on)
    with sessions.begin() as s:
        assert kpi.aftercare_on_time(s, *MARCH).done == counted


def test_not_reached_is_counted_apart_neither_done_nor_late(sessions, deploy):
    attempts = [{"on": "2026-03-03", "channel": "phone", "note": ""}, {"on": "2026-03-20", "channel": "phone", "note": ""}]
    _aftercare_contact(sessions, deploy, ended_on="2026-02-20", target=14, contacted_on=None, outcome="not_reached",
                       attempts=attempts)
    with sessions.begin() as s:
        figures = kpi.aftercare_on_time(s, *MARCH)
        assert (figures.done, figures.on_time, figures.late, figures.not_reached) == (0, 0, 0, 1)
        assert figures.share is None


@pytest.mark.parametrize("ended, read", [(MARCH[0] - TICK, False), (MARCH[0], True), (None, True)])
def test_the_on_time_share_reads_the_cases_running_in_its_period_only(sessions, deploy, monkeypatch, ended, read):
    """A case that ended before the period cannot hold a contact made in it (a contact's day is never
    after the day it is recorded): the figure reads cases running at the period's start or later, however
    many the office finished before (kpi._ran_since), and still counts a case ending on the first instant."""
    iid = _aftercare_contact(sessions, deploy, ended_on="2026-02-20", target=14, contacted_on="2026-03-02",
                             outcome="reached")
    if ended is not None:
        with sessions.begin() as s:
            [call] = inbox.tasks(s, instance_id=iid)
            runtime.complete_task(s, call.id, {"reached": True}, by="anna", now=ended)
    seen: list[int] = []
    real = kpi.aftercare_cases
    monkeypatch.setattr(kpi, "aftercare_cases", lambda s, ids, tz=kpi.ZONE: seen.extend(ids) or real(s, ids, tz))
    with sessions.begin() as s:
        assert s.get(Instance, iid).status == ("running" if ended is None else "completed")
        assert kpi.aftercare_on_time(s, *MARCH).done == int(read)
    assert seen == ([iid] if read else [])


@pytest.mark.parametrize("day, overdue", [("2026-03-12", False), ("2026-03-13", True)])
def test_an_open_contact_is_overdue_the_day_after_its_last_target_day(day, overdue):
    case = kpi.AftercareCase.from_values(1, {"service_ended_on": "2026-03-02", "aftercare_target_days": 10})
    assert case.deadline.isoformat() == "2026-03-12"
    assert case.overdue(datetime.fromisoformat(day).date()) is overdue
    closed = kpi.AftercareCase.from_values(1, {"service_ended_on": "2026-03-02", "aftercare_target_days": 10,
                                              "aftercare_outcome": "not_reached"})
    assert closed.overdue(datetime.fromisoformat(day).date()) is False and closed.on_time is None


@pytest.mark.parametrize("contact_day, within", [("2026-03-11", 1), ("2026-03-12", 1), ("2026-03-13", 0)])
def test_a_contact_on_exactly_the_target_day_is_within_target(contact_day, within):
    report = kpi.AftercareReport()
    values = {"business_development_ended_on": "2026-03-02", "aftercare_contacted_on": contact_day,
              "aftercare_target_days": 10}
    kpi._contact_figures(report, [(kpi.AftercareCase.from_values(0, values, "Europe/Helsinki"), values)])
    assert report.within_target == within
    assert report.with_days == 1


def test_a_month_starts_at_local_midnight():
    # 1 March 00:00 in Helsinki is 28 February 22:00 UTC: an instant just before is still February
    start = kpi.month_start(datetime(2026, 3, 15, tzinfo=UTC))
    assert start == datetime(2026, 2, 28, 22, 0, tzinfo=UTC)
    assert kpi.month_start(start - TICK) == datetime(2026, 1, 31, 22, 0, tzinfo=UTC)
    assert kpi.month_start(start) == start


# ---------------------------------------------------------------- the timer claim's incident filter

def test_a_due_timer_of_a_case_with_an_open_incident_is_not_claimed(sessions, deploy):
    """Fresh timer rows, never leased: only the open incident keeps the worker from the due timer."""
    deploy("external_boundary.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "external_boundary", by="t", now=T0).id
        [locked] = external.fetch_and_lock(s, "worker-1", ["registry"], now=T0)
        external.fail(s, locked.id, "worker-1", "registry down", retries=0, now=T0)  # an incident opens
        assert len(runtime.open_incidents(s, iid)) == 1
        [timer] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
        assert timer.lease_until is None and timer.due_at == T0 + timedelta(hours=1)
    with sessions.begin() as s:
        assert timers.claim_due(s, now=T0 + timedelta(hours=2), worker_id="w") == []
        assert timers.next_due(s) is None
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        runtime.retry_incident(s, incident.id, by="admin", now=T0)
    with sessions.begin() as s:  # resolved: the same timer is work again
        assert timers.claim_due(s, now=T0 + timedelta(hours=2), worker_id="w") == [iid]


FORM_XML = """<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="t"><bpmn:extensionElements><camunda:formData>
  <camunda:formField id="kind" type="enum">
    <camunda:properties><camunda:property id="multiple" value="true" /><camunda:property id="hint" /></camunda:properties>
    <camunda:value id="a" name="Alpha" /><camunda:value id="b" />
  </camunda:formField>
  <camunda:formField id="size" label="Size" type="long">
    <camunda:validation><camunda:constraint name="min" config=" " /></camunda:validation>
  </camunda:formField>
</camunda:formData></bpmn:extensionElements></bpmn:userTask>"""


def test_form_definition_text_defaults():
    (kind, size), problems = parse_form(etree.fromstring(FORM_XML))
    assert problems == []
    assert kind.label == "kind" and kind.options == [("a", "Alpha"), ("b", "b")]  # the id stands in
    assert kind.properties == {"multiple": "true", "hint": ""} and kind.multiple
    assert (size.label, size.min) == ("Size", None)  # an empty number means no limit


def test_wrong_date_and_choice_texts():
    assert _error([Field("d", "D", type="date")], {"d": "2026-02-30"}) == {"d": "enter a date as YYYY-MM-DD"}
    assert validate([Field("d", "D", type="date")], {"d": " 2026-02-28 "}) == {"d": "2026-02-28"}
    one = [Field("p", "P", type="enum", options=[("a", "A"), ("b", "B")])]
    assert _error(one, {"p": ["a", "b"]}) == {"p": "choose one option"}
    assert _error(one, {"p": "c"}) == {"p": "'c' is not one of the options"}


@pytest.mark.parametrize("days, bucket", [(0, "0-7"), (7, "0-7"), (8, "8-14"), (14, "8-14"), (15, "15-21"),
                                          (21, "15-21"), (22, "22-30"), (30, "22-30"), (31, "31+")])
def test_day_bucket_edges_of_the_kpi_chart(days, bucket):
    report = kpi.AftercareReport()
    contact = (datetime(2026, 3, 2) + timedelta(days=days)).date().isoformat()
    values = {"business_development_ended_on": "2026-03-02", "aftercare_contacted_on": contact}
    kpi._contact_figures(report, [(kpi.AftercareCase.from_values(0, values, "Europe/Helsinki"), values)])
    chart = dict(report.charts["days"])
    assert list(chart) == ["0-7", "8-14", "15-21", "22-30", "31+"]
    assert chart == {label: int(label == bucket) for label in chart}


def test_every_field_is_checked_after_a_readonly_or_empty_optional_one_in_text_forms():
    fields = [Field("fixed", "Fixed", readonly=True, default="a"), Field("note", "Note"),
              Field("pick", "Pick", type="enum", options=[("a", "A")], properties={"multiple": "true"}),
              Field("bad", "Bad", type="long"), Field("name", "Name", required=True)]
    assert _error(fields, {"fixed": "a", "bad": "x", "extra": 1}) == {
        "bad": "enter a whole number", "name": "this field is required", "extra": "this form has no such field"}
    assert validate(fields, {"fixed": "a", "bad": "1", "name": "x"}) == {"note": None, "pick": [], "bad": 1,
                                                                          "name": "x"}
    assert validate(fields, {"fixed": "b", "name": "x"}, current={"fixed": "b"})["name"] == "x"
    assert _error(fields, {"fixed": "b", "name": "x"}) == {"fixed": "this field cannot be changed"}


def test_form_definition_problems_are_texts():
    xml = FORM_XML.replace('id="size" label="Size" type="long"', 'id="2size" label="Size"').replace(
        '<camunda:value id="a" name="Alpha" /><camunda:value id="b" />', '')
    _fields, problems = parse_form(etree.fromstring(xml))
    assert problems == ["enum form field 'kind' has no values to choose from",
                        "form field id '2size' must be a name usable as a variable (letters, digits, _)"]
    plain, _ = parse_form(etree.fromstring(FORM_XML.replace(' type="long"', "")))
    assert plain[1].type == "string"
