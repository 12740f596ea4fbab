"""The shipped service lines check their dates: every close task records when the line actually
ended (required, not in the future, not before the needs assessment or the line's start), a
training lasts at most two years, and the development close records the delivering consultant.

Each line's process is started on its own with the variables `customer_service` hands it
(`responsible_expert`, `assessment_date`), and driven through `runtime.complete_task` with the
engine's clock moved by `now=`; the reload runs forget every in-memory copy between steps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from engine import runtime, timers
from engine.errors import FormInvalid
from engine.forms import Field
from engine.inbox import tasks as open_tasks

EXPERT = "eeva.expert"
ASSESSED = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LINES = {"recruitment": "recruitment", "joint_purchase_training": "training",
         "business_development": "development", "change_security": "change_security",
         "startup_services": "startup", "partner_referral": "referral"}


def valid(fields: list[Field], today: date) -> dict[str, Any]:
    """Return a submission filling every required field of a form with a plain valid value."""
    data: dict[str, Any] = {}
    for f in fields:
        if not f.required or f.readonly:
            continue
        if f.type == "date":
            offset = 60 if f.id.endswith("_planned_end") else 1 if f.id.endswith("_planned_start") else 0
            data[f.id] = (today + timedelta(days=offset)).isoformat()
        elif f.type == "long":
            data[f.id] = int(f.min) if f.min is not None and f.min > 0 else 1
        elif f.type == "boolean":
            data[f.id] = True
        elif f.type == "enum":
            data[f.id] = [f.options[0][0]] if f.multiple else f.options[0][0]
        elif ("email", "true") in f.checks:
            data[f.id] = "kaisa@konsultit.fi"
        else:
            data[f.id] = "Kirjattu"
    return data


class Line:
    """One service line's process, driven task by task."""

    def __init__(self, sessions, step, process_id: str) -> None:
        self.sessions, self.step = sessions, step
        with sessions.begin() as s:
            self.iid = runtime.start_instance(s, process_id, by="test", now=T0, business_key="0737546-2", data={
                "responsible_expert": EXPERT, "assessment_date": ASSESSED.isoformat()}).id
        step()

    def task(self, element_id: str | None = None):
        with self.sessions.begin() as s:
            found = [t for t in open_tasks(s, instance_id=self.iid)
                     if element_id is None or t.element_id == element_id]
            fields = runtime.task_form(s, found[0].id) if found else []
            s.expunge_all()
        return (found[0], fields) if found else (None, [])

    def do(self, element_id: str, now: datetime, **overrides: Any) -> None:
        task, fields = self.task(element_id)
        assert task is not None, f"no open {element_id}"
        data = {**valid(fields, now.date()), **overrides}
        with self.sessions.begin() as s:
            runtime.complete_task(s, task.id, {k: v for k, v in data.items() if v is not ...}, by=EXPERT, now=now)
        self.step()

    def refused(self, element_id: str, now: datetime, **overrides: Any) -> dict[str, str]:
        with pytest.raises(FormInvalid) as err:
            self.do(element_id, now, **overrides)
        self.step()
        return err.value.errors

    def walk_to_close(self, now: datetime) -> str:
        """Complete every task before the close task with valid values; return the close task's id."""
        while True:
            task, _fields = self.task()
            assert task is not None, "the line ended before its close task"
            if task.element_id.startswith("close_"):
                return task.element_id
            self.do(task.element_id, now)

    def status(self) -> str:
        with self.sessions.begin() as s:
            return str(runtime.get_instance(s, self.iid).status)


@pytest.mark.parametrize("process_id", list(LINES))
def test_every_close_task_records_a_real_end_date(deployed, step, process_id):
    prefix = LINES[process_id]
    line = Line(deployed, step, process_id)
    now = datetime(2026, 4, 10, 21, 30, tzinfo=UTC)  # 11 April 00:30 in Helsinki, still 10 April in UTC
    close = line.walk_to_close(now)
    assert close == ("close_referral" if prefix == "referral" else f"close_{prefix}")
    field = f"{prefix}_ended_on"
    assert line.refused(close, now, **{field: ...}) == {field: "this field is required"}
    assert line.refused(close, now, **{field: "2026-04-12"}) == {field: "the date cannot be in the future"}
    assert line.refused(close, now, **{field: "2026-03-01"}) == {field: "must be on or after 2026-03-02"}
    line.do(close, now, **{field: "2026-04-11"})  # today in Helsinki
    assert line.status() == "completed"


def test_an_end_on_the_assessment_day_is_accepted(deployed, step):
    line = Line(deployed, step, "recruitment")
    now = T0 + timedelta(days=1)
    line.walk_to_close(now)
    line.do("close_recruitment", now, recruitment_ended_on=ASSESSED.isoformat())
    assert line.status() == "completed"


def test_a_planned_end_before_the_assessment_is_refused(deployed, step):
    line = Line(deployed, step, "recruitment")
    assert line.refused("plan_recruitment", T0, recruitment_planned_end="2026-03-01") == \
        {"recruitment_planned_end": "must be on or after 2026-03-02"}
    line.do("plan_recruitment", T0, recruitment_planned_end="2026-03-02")  # the same day is allowed


def test_a_training_lasts_at_most_two_years_planned_and_actual(deployed, step):
    line = Line(deployed, step, "joint_purchase_training")
    plan = {"training_planned_start": "2026-04-01"}
    assert line.refused("plan_training", T0, **plan, training_planned_end="2026-04-01") == \
        {"training_planned_end": "must be after 2026-04-01"}
    assert line.refused("plan_training", T0, **plan, training_planned_end="2028-04-02") == \
        {"training_planned_end": "must be on or before 2028-04-01"}
    assert line.refused("plan_training", T0, training_planned_start="2026-03-01") == \
        {"training_planned_start": "must be on or after 2026-03-02"}
    line.do("plan_training", T0, **plan, training_planned_end="2028-04-01")  # exactly two years
    later = datetime(2028, 5, 2, 9, 0, tzinfo=UTC)
    assert line.refused("deliver_training", later, training_started_on="2026-04-01",
                        training_completed_on="2028-04-02") == {"training_completed_on": "must be on or before 2028-04-01"}
    assert line.refused("deliver_training", later, training_started_on="2028-05-03",
                        training_completed_on="2028-05-02") == {"training_started_on": "the date cannot be in the future"}
    assert line.refused("deliver_training", later, training_started_on="2026-04-01",
                        training_completed_on="2026-04-01") == {"training_completed_on": "must be after 2026-04-01"}
    line.do("deliver_training", later, training_started_on="2026-04-01", training_completed_on="2028-04-01")
    # the line cannot have ended before the programme started
    assert line.refused("close_training", later, training_ended_on="2026-03-31") == \
        {"training_ended_on": "must be on or after 2026-04-01"}
    line.do("close_training", later, training_ended_on="2028-04-01")
    assert line.status() == "completed"


def test_a_training_that_never_started_can_still_close(deployed, step):
    line = Line(deployed, step, "joint_purchase_training")
    line.do("plan_training", T0)
    now = T0 + timedelta(days=20)
    line.do("deliver_training", now, training_completed_on="2026-03-20")  # no training_started_on
    line.do("close_training", now, training_ended_on="2026-03-20")
    assert line.status() == "completed"


def test_development_close_records_the_delivering_consultant(deployed, step):
    line = Line(deployed, step, "business_development")
    now = T0 + timedelta(days=40)
    line.walk_to_close(now)
    assert line.refused("close_development", now, development_consultant_name=...,
                        development_consultant_email="kaisa.konsultit.fi") == {
        "development_consultant_name": "this field is required",
        "development_consultant_email": "enter an e-mail address such as name@example.fi"}
    line.do("close_development", now, development_consultant_name="Kaisa Konsultti",
            development_consultant_email="kaisa@konsultit.fi")
    with deployed.begin() as s:
        variables = runtime.instance_variables(s, line.iid)
    assert variables["development_consultant_name"] == "Kaisa Konsultti"
    assert variables["development_consultant_email"] == "kaisa@konsultit.fi"
    assert variables["development_ended_on"] == now.date().isoformat()


def test_startup_consultant_is_optional_but_its_email_is_checked(deployed, step):
    line = Line(deployed, step, "startup_services")
    now = T0 + timedelta(days=40)
    line.walk_to_close(now)
    assert line.refused("close_startup", now, startup_consultant_email="kaisa@") == \
        {"startup_consultant_email": "enter an e-mail address such as name@example.fi"}
    line.do("close_startup", now, startup_consultant_name="Kaisa Konsultti", startup_consultant_email="kaisa@konsultit.fi")
    assert line.status() == "completed"


def test_referral_cannot_end_before_the_need_was_forwarded(deployed, step):
    line = Line(deployed, step, "partner_referral")
    line.do("plan_referral", T0, referral_carrier="expert")
    now = T0 + timedelta(days=10)
    assert line.refused("forward_need_to_partner", now, referral_forwarded_on="2026-03-13") == \
        {"referral_forwarded_on": "the date cannot be in the future"}
    line.do("forward_need_to_partner", now, referral_forwarded_on="2026-03-06")
    assert line.refused("close_referral", now, referral_ended_on="2026-03-05") == \
        {"referral_ended_on": "must be on or after 2026-03-06"}
    line.do("close_referral", now, referral_ended_on="2026-03-06")
    assert line.status() == "completed"


def test_progress_checks_and_the_notice_date_record_the_past(deployed, step):
    line = Line(deployed, step, "change_security")
    assert line.refused("plan_change_security", T0, change_security_notice_given_on="2026-03-03") == \
        {"change_security_notice_given_on": "the date cannot be in the future"}
    line.do("plan_change_security", T0, change_security_notice_given_on="2026-02-27")
    development = Line(deployed, step, "business_development")
    development.do("plan_development", T0, development_progress_interval="P1M")
    check_at = datetime(2026, 4, 3, 9, 0, tzinfo=UTC)
    assert timers.fire_due_timers(deployed, now=check_at) >= 1
    step()
    assert development.refused("check_development_progress", check_at, development_progress_checked_on="2026-04-04") == \
        {"development_progress_checked_on": "the date cannot be in the future"}
    development.do("check_development_progress", check_at, development_progress_checked_on="2026-04-03")


def test_the_assessment_date_reaches_the_line_called_by_customer_service(deployed, step):
    start = {"business_id": "0737546-2", "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
             "contact_reason": "Rekrytointitarve"}
    with deployed.begin() as s:
        iid = runtime.start_instance(s, "customer_service", by="test", data=start, business_key="0737546-2", now=T0).id
    step()
    with deployed.begin() as s:
        [task] = open_tasks(s, instance_id=iid)
        runtime.complete_task(s, task.id, {
            "assessment_date": "2026-03-05", "assessment_method": "company_visit", "company_situation": "growth",
            "headcount": 42, "segment": "local", "identified_needs": ["recruitment"],
            "process_agreed_with_customer": True, "responsible_expert": EXPERT}, by=EXPERT, now=T0 + timedelta(days=3))
    step()
    plan = {"recruitment_positions": 1, "recruitment_channels": ["job_posting"]}
    with deployed.begin() as s:
        [task] = [t for t in open_tasks(s, instance_id=iid) if t.element_id == "plan_recruitment"]
        task_id = task.id
    with pytest.raises(FormInvalid) as err, deployed.begin() as s:
        runtime.complete_task(s, task_id, {**plan, "recruitment_planned_end": "2026-03-04"}, by=EXPERT,
                              now=T0 + timedelta(days=4))
    assert err.value.errors == {"recruitment_planned_end": "must be on or after 2026-03-05"}
    step()
    with deployed.begin() as s:
        runtime.complete_task(s, task_id, {**plan, "recruitment_planned_end": "2026-03-05"}, by=EXPERT,
                              now=T0 + timedelta(days=4))
