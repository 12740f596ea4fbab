"""One definition of "on time" (kpi.AftercareCase), the same in the inbox, the supervisor view and the
KPI dashboard, on the shipped bpmn/aftercare.bpmn started as customer_service starts it.

Recruitment ends on day 30 and its close task is done on day 44: the aftercare is due from day 30
(the office's 14 days end on day 44), not from the day it started. Time is moved with `now=`; every
scenario runs straight and reloading every step (`step`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine import actions, inbox, kpi, office, runtime
from engine.models import Task

HELSINKI = ZoneInfo("Europe/Helsinki")
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # day 0 (winter: no clock change within the scenarios)
BUSINESS_ID = "0737546-2"
EXPERT = "eeva.expert"


def day(n: int, hour: int = 10, minute: int = 0) -> datetime:
    """Return Helsinki local `hour:minute` on day `n` (as an aware instant)."""
    local = (T0 + timedelta(days=n)).astimezone(HELSINKI).date()
    return datetime(local.year, local.month, local.day, hour, minute, tzinfo=HELSINKI)


def iso(n: int) -> str:
    return day(n).date().isoformat()


class Case:
    """One recruitment aftercare driven through the engine API (reloading between steps if asked)."""

    def __init__(self, sessions, step) -> None:
        self.sessions, self.step = sessions, step
        with sessions.begin() as s:
            self.iid = runtime.start_instance(
                s, "aftercare", by="customer_service", business_key=BUSINESS_ID, now=day(44),
                validate_form=False, start_message="service_line_ended",
                data={"service_line": "recruitment", "service_ended_on": iso(30), "responsible_expert": EXPERT,
                      "business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy", "segment": "local"}).id
        step()

    def contact_task(self) -> str:
        with self.sessions.begin() as s:
            [task] = [t for t in inbox.tasks(s, instance_id=self.iid) if t.element_id == "aftercare_contact"]
            return task.id

    def reached(self, on: int) -> None:
        data = {"aftercare_contacted_on": iso(on), "aftercare_channel": "phone", "service_met_need": "yes",
                "feedback_went_well": "Hyvin.", "needs_reassessment": "Ei uusia tarpeita nyt.",
                "named_contact_confirmed": True}
        task_id = self.contact_task()
        with self.sessions.begin() as s:
            runtime.complete_task(s, task_id, data, by=EXPERT, now=day(on))
        self.step()

    def not_reached(self, on: int) -> None:
        task_id = self.contact_task()
        with self.sessions.begin() as s:
            actions.run_task_action(s, task_id, "customer_not_reached", {
                "aftercare_attempt_on": iso(on), "aftercare_attempt_channel": "phone",
                "aftercare_attempt_note": "Ei vastannut"}, by=EXPERT, now=day(on))
        self.step()

    def figures(self, now: datetime) -> dict[str, Any]:
        """Return what the inbox, the supervisor view and the KPI dashboard say at `now`."""
        with self.sessions.begin() as s:
            open_contact = [t for t in inbox.tasks(s, instance_id=self.iid) if t.element_id == "aftercare_contact"]
            summary = kpi.summary(s, now)
            report = kpi.aftercare_report(s, kpi.AftercareFilter(), now=now)
            return {
                "inbox_overdue": [inbox.is_overdue(t, now) for t in open_contact],
                "supervisor_overdue": [i.id for _t, i in kpi.overdue_aftercare(s, now)],
                "supervisor_load": [(x.aftercare_due, x.aftercare_overdue) for x in summary["loads"]],
                "supervisor": (summary["on_time"].done, summary["on_time"].on_time, summary["on_time"].late,
                               summary["on_time"].not_reached),
                "kpi": (report.finished, report.done, report.within_target, report.late, report.not_reached,
                        report.overdue)}


@pytest.fixture
def case(deployed, step):
    return Case(deployed, step)


def test_due_counts_from_the_lines_end_not_from_the_close_day(case, deployed):
    task_id = case.contact_task()
    with deployed.begin() as s:
        data = runtime.instance_variables(s, case.iid)
        task = s.get(Task, task_id)
    assert data["service_ended_on"] == iso(30) and data["aftercare_target_days"] == 14
    assert data["office"]["aftercare_target_days_recruitment"] == 14
    assert task.due_at.astimezone(HELSINKI).date().isoformat() == iso(44)


def test_open_contact_becomes_overdue_after_the_last_target_day_everywhere(case):
    late_evening = case.figures(day(44, 23, 59))
    assert late_evening["inbox_overdue"] == [False] and late_evening["supervisor_overdue"] == []
    assert late_evening["supervisor_load"] == [(1, 0)] and late_evening["kpi"][5] == 0
    next_morning = case.figures(day(45, 0, 0))
    assert next_morning["inbox_overdue"] == [True] and next_morning["supervisor_overdue"] == [case.iid]
    assert next_morning["supervisor_load"] == [(0, 1)] and next_morning["kpi"] == (1, 0, 0, 0, 0, 1)


def test_contact_on_exactly_the_target_day_is_on_time_in_both(case):
    case.reached(44)
    seen = case.figures(day(44, 12))
    assert seen["supervisor"] == (1, 1, 0, 0)  # made, within the target, late, not reached
    assert seen["kpi"] == (1, 1, 1, 0, 0, 0)  # ended, made, within, late, not reached, overdue


def test_contact_after_the_target_is_late_in_both(case):
    case.reached(45)
    seen = case.figures(day(45, 12))
    assert seen["supervisor"] == (1, 0, 1, 0)
    assert seen["kpi"] == (1, 1, 0, 1, 0, 0)


def test_not_reached_is_counted_apart_in_both(case, deployed):
    with deployed.begin() as s:
        attempts = office.get(s, "aftercare_attempts")
    for n in range(attempts):
        case.not_reached(44 + n)
    seen = case.figures(day(44 + attempts, 12))
    assert seen["inbox_overdue"] == [] and seen["supervisor_overdue"] == []
    assert seen["supervisor"] == (0, 0, 0, 1)
    assert seen["kpi"] == (1, 0, 0, 0, 1, 0)


@pytest.mark.parametrize("ended_on", ["2026-01-15", "2026-03-15", "2026-06-01", "2026-10-11", "2026-10-12"])
def test_the_inbox_due_date_is_the_end_of_the_last_target_day_in_helsinki_all_year(deployed, ended_on):
    """The task's due instant (from the model's `aftercare_due`) agrees with the day definition on both
    sides of midnight, in winter, summer and on the days the clocks change (29 March, 25 October)."""
    with deployed.begin() as s:
        iid = runtime.start_instance(
            s, "aftercare", by="customer_service", business_key=BUSINESS_ID, now=T0, validate_form=False,
            start_message="service_line_ended",
            data={"service_line": "recruitment", "service_ended_on": ended_on, "responsible_expert": EXPERT,
                  "business_id": BUSINESS_ID, "company_name": "Oy", "segment": "local"}).id
        [task] = [t for t in inbox.tasks(s, instance_id=iid) if t.element_id == "aftercare_contact"]
        case = kpi.aftercare_cases(s, [iid])[iid]
    last = case.deadline
    before = datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=HELSINKI)
    after = datetime(last.year, last.month, last.day, tzinfo=HELSINKI) + timedelta(days=1)
    assert (inbox.is_overdue(task, before), case.overdue(before.date())) == (False, False)
    assert (inbox.is_overdue(task, after), case.overdue(after.date())) == (True, True)
