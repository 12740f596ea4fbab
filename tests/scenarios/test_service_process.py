"""Scenarios: the shipped customer service models driven through Polku's engine API.

Each scenario runs twice (`reload_mode`): with the in-process instance cache, and forgetting it
between every step so each action loads the instance from the database. Time never passes by
sleeping: every action carries its `now`, and timers fire at an explicit instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine import audit, inbox, runtime, timers
from engine.models import Instance

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BUSINESS_ID = "0737546-2"
EXPERT = "eeva.expert"
SUPERVISOR = "sanna.supervisor"
PATH_KINDS = {"instance_started", "task_completed", "timer_fired", "message_received"}


def day(n: float) -> datetime:
    """Return the instant `n` days after T0."""
    return T0 + timedelta(days=n)


def midnight(n: int) -> datetime:
    """Return the start (UTC) of the day `n` days after T0: a due date given as a date."""
    return datetime.combine(day(n).date(), datetime.min.time(), tzinfo=UTC)


def iso(when: datetime) -> str:
    """Return the date of an instant as a form's date value."""
    return when.date().isoformat()


class Case:
    """One customer's service process, driven step by step through the engine API."""

    def __init__(self, sessions, step) -> None:
        self.sessions, self.step = sessions, step
        self.iid: int | None = None

    def start(self, *, now: datetime = T0, by: str = "palvelu.neuvoja", **start: Any) -> int:
        data = {"business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy",
                "contact_channel": "phone_service", "contact_reason": "Needs staff", **start}
        with self.sessions.begin() as s:
            assert {f.id for f in runtime.start_form(s, "customer_service")} == {
                "business_id", "company_name", "contact_channel", "contact_reason"}
            self.iid = runtime.start_instance(s, "customer_service", by=by, data=data,
                                              business_key=BUSINESS_ID, now=now).id
        self.step()
        return self.iid

    def open(self) -> dict[str, dict[str, Any]]:
        """Return the open tasks by element id: role, assignee, due."""
        with self.sessions.begin() as s:
            rows = inbox.tasks(s, instance_id=self.iid)
            result = {t.element_id: {"role": t.candidate_role, "assignee": t.assignee, "due_at": t.due_at}
                      for t in rows}
            assert len(result) == len(rows), "one open task per element"
            return result

    def do(self, element_id: str, data: dict[str, Any], *, by: str = EXPERT, now: datetime) -> dict[str, Any]:
        """Complete the one open task of `element_id`; return who it was for (role, assignee)."""
        with self.sessions.begin() as s:
            [task] = [t for t in inbox.tasks(s, instance_id=self.iid) if t.element_id == element_id]
            fields = {f.id for f in runtime.task_details(s, task.id)["form"]}
            assert set(data) <= fields, f"{element_id}: no field {set(data) - fields}"
            owner = {"role": task.candidate_role, "assignee": task.assignee}
            runtime.complete_task(s, task.id, data, by=by, now=now)
        self.step()
        return owner

    def fire(self, now: datetime) -> int:
        fired = timers.fire_due_timers(self.sessions, now=now)
        self.step()
        return fired

    def summary(self) -> dict[str, Any]:
        with self.sessions.begin() as s:
            return runtime.instance_summary(s, self.iid)

    def events(self, iid: int | None = None) -> list[dict[str, Any]]:
        """Return the audit events of the instance (or of `iid`) as plain data, oldest first."""
        with self.sessions.begin() as s:
            return [audit.event_dict(e) for e in audit.history(s, iid or self.iid)]

    def path(self) -> list[str]:
        """Return the element ids of the instance's audit events that moved it on, in order."""
        return [e["element_id"] for e in self.events() if e["kind"] in PATH_KINDS and e["element_id"]]

    def completed_path(self) -> list[str]:
        return [p for e in self.events() if e["kind"] == "instance_completed" for p in e["data"]["path"]]

    def created(self) -> list[tuple[str, str, str | None]]:
        """Return every task created in the instance: (element id, role, assignee)."""
        return [(e["element_id"], e["data"]["role"], e["data"]["assignee"]) for e in self.events()
                if e["kind"] == "task_created"]


def assessment(needs: list[str], **extra: Any) -> dict[str, Any]:
    return {"assessment_date": iso(T0), "assessment_method": "company_visit", "company_situation": "growth",
            "headcount": 42, "segment": "local", "identified_needs": needs,
            "process_agreed_with_customer": True, "responsible_expert": EXPERT, **extra}


def aftercare_contact(when: datetime, **extra: Any) -> dict[str, Any]:
    return {"aftercare_contacted_on": iso(when), "aftercare_channel": "phone",
            "feedback_from_customer": "The new welders started well.", "service_rating": 5,
            "experience_positive": True, "needs_reassessment": "No new needs now.",
            "named_contact_confirmed": True, **extra}


def test_recruitment_only_ends_with_aftercare_by_phone_within_target(deployed, step):
    case = Case(deployed, step)
    case.start()
    assert case.open() == {"assess_service_needs": {"role": "expert", "assignee": None, "due_at": day(14)}}
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    assert case.open() == {"plan_recruitment": {"role": "expert", "assignee": EXPERT, "due_at": day(15)}}
    case.do("plan_recruitment", {"recruitment_positions": 2, "recruitment_channels": ["job_posting", "eures"],
                                 "recruitment_planned_end": iso(day(60))}, now=day(3))
    assert case.open() == {"deliver_recruitment": {"role": "expert", "assignee": EXPERT, "due_at": midnight(60)}}
    case.do("deliver_recruitment", {"recruitment_applicants": 31, "recruitment_candidates_proposed": 6}, now=day(55))
    case.do("close_recruitment", {"recruitment_positions_filled": 2, "recruitment_ended_on": iso(day(58)),
                                  "recruitment_outcome": "completed"}, now=day(58))
    assert case.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": day(58 + 14)}}
    assert case.summary()["timers"] == [{"element_id": "aftercare_overdue", "kind": "date",
                                         "due_at": day(58 + 14).isoformat()}]
    owner = case.do("aftercare_contact", aftercare_contact(day(63)), now=day(63))
    assert owner == {"role": "expert", "assignee": EXPERT}
    assert case.fire(day(200)) == 0, "no escalation once the contact was made"

    summary = case.summary()
    assert summary["status"] == "completed"
    assert case.open() == {}
    assert case.path() == ["assess_service_needs", "plan_recruitment", "deliver_recruitment",
                           "close_recruitment", "aftercare_contact"]
    assert case.completed_path() == ["check_new_needs", "check_follow_up_day", "join_named_contact",
                                     "end_named_contact", "call_aftercare", "end_service_process"]
    assert case.created() == [
        ("assess_service_needs", "expert", None), ("plan_recruitment", "expert", EXPERT),
        ("deliver_recruitment", "expert", EXPERT), ("close_recruitment", "expert", EXPERT),
        ("aftercare_contact", "expert", EXPERT)]
    data = summary["variables"]
    assert data["services"] == ["recruitment"] and data["aftercare_target_days"] == 14
    assert data["aftercare_channel"] == "phone" and data["experience_positive"] is True
    assert data["new_service_needs"] == [] and data["recruitment_positions_filled"] == 2
    assert "follow_up_due" not in data
