"""Scenarios: the shipped customer service models driven through Polku's engine API.

Each scenario runs twice (`reload_mode`): with the in-process instance cache, and forgetting it
between every step so each action loads the instance from the database. Time never passes by
sleeping: every action carries its `now`, and timers fire at an explicit instant. Each service line
gets its own aftercare instance as soon as that line ends (`Case.aftercare`), due at the end of the
Helsinki day `line's end date + the office's target days`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine import audit, inbox, providers, runtime, timers
from engine.models import Instance

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BUSINESS_ID = "0737546-2"
EXPERT = "eeva.expert"
SUPERVISOR = "sanna.supervisor"
NEW_EXPERT = "pekka.expert"
PATH_KINDS = {"instance_started", "task_completed", "timer_fired", "message_received"}


def day(n: float) -> datetime:
    """Return the instant `n` days after T0."""
    return T0 + timedelta(days=n)


def midnight(n: int) -> datetime:
    """Return the start (UTC) of the day `n` days after T0: a due date given as a date."""
    return datetime.combine(day(n).date(), datetime.min.time(), tzinfo=UTC)


def end_of_day(n: int) -> datetime:
    """Return the end of the Helsinki day `n` days after T0 (UTC): when an aftercare contact is due."""
    return datetime.combine(day(n).date(), time(23, 59, 59), tzinfo=ZoneInfo("Europe/Helsinki")).astimezone(UTC)


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
                                              business_key=data["business_id"], now=now).id
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

    def aftercare(self, line: str | None = None) -> Case:
        """Return the aftercare instance this case started for `line` (the only one when no line is given)."""
        with self.sessions.begin() as s:
            children = s.scalars(select(Instance.id).where(Instance.parent_instance_id == self.iid,
                                                           Instance.process_id == "aftercare")
                                 .order_by(Instance.id)).all()
            found = [c for c in children
                     if line is None or runtime.instance_variables(s, c).get("service_line") == line]
        [iid] = found
        child = Case(self.sessions, self.step)
        child.iid = iid
        return child

    def summary(self) -> dict[str, Any]:
        assert self.iid is not None
        with self.sessions.begin() as s:
            return runtime.instance_summary(s, self.iid)

    def events(self, iid: int | None = None) -> list[dict[str, Any]]:
        """Return the audit events of the instance (or of `iid`) as plain data, oldest first."""
        target = iid or self.iid
        assert target is not None
        with self.sessions.begin() as s:
            return [audit.event_dict(e) for e in audit.history(s, target)]

    def path(self) -> list[str]:
        """Return the element ids of the instance's audit events that moved it on, in order."""
        return [e["element_id"] for e in self.events() if e["kind"] in PATH_KINDS and e["element_id"]]

    def completed_path(self) -> list[str]:
        """Return the elements the engine ran in the last step (the one that finished the case)."""
        steps = [e["data"]["elements"] for e in self.events() if e["kind"] == "path_taken"]
        return steps[-1] if steps else []

    def created(self) -> list[tuple[str, str, str | None]]:
        """Return every task created in the instance: (element id, role, assignee)."""
        return [(e["element_id"], e["data"]["role"], e["data"]["assignee"]) for e in self.events()
                if e["kind"] == "task_created"]


def assessment(needs: list[str], **extra: Any) -> dict[str, Any]:
    return {"assessment_date": iso(T0), "assessment_method": "company_visit", "company_situation": "growth",
            "headcount": 42, "segment": "local", "identified_needs": needs,
            "process_agreed_with_customer": True, "responsible_expert": EXPERT, **extra}


def aftercare_contact(when: datetime, **extra: Any) -> dict[str, Any]:
    return {"aftercare_contacted_on": iso(when), "aftercare_channel": "phone", "service_met_need": "yes",
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
    assert case.summary()["status"] == "completed", "the service process ends with its last line"
    after = case.aftercare()
    assert after.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(58 + 14)}}
    assert after.summary()["timers"] == [{"element_id": "aftercare_overdue", "kind": "date",
                                          "due_at": end_of_day(58 + 14).isoformat()}]
    owner = after.do("aftercare_contact", aftercare_contact(day(63)), now=day(63))
    assert owner == {"role": "expert", "assignee": EXPERT}
    assert case.fire(day(200)) == 0, "no escalation once the contact was made"

    summary = after.summary()
    assert summary["status"] == "completed"
    assert case.open() == {} and after.open() == {}
    assert case.path() == ["assess_service_needs", "plan_recruitment", "deliver_recruitment", "close_recruitment"]
    assert after.path() == ["aftercare_contact"]
    assert case.completed_path()[-3:] == ["throw_recruitment_ended", "join_services", "end_service_process"]
    assert after.completed_path()[-2:] == ["join_named_contact", "end_named_contact"]
    assert case.created() == [
        ("assess_service_needs", "expert", None), ("plan_recruitment", "expert", EXPERT),
        ("deliver_recruitment", "expert", EXPERT), ("close_recruitment", "expert", EXPERT)]
    assert after.created() == [("aftercare_contact", "expert", EXPERT)]
    assert case.summary()["variables"]["services"] == ["recruitment"]
    data = summary["variables"]
    assert data["service_line"] == "recruitment" and data["aftercare_target_days"] == 14
    assert data["aftercare_channel"] == "phone" and data["experience_positive"] is True
    assert data["new_service_needs"] == [] and "recruitment_positions_filled" not in data
    assert "follow_up_due" not in data
    [contact] = [t for t in summary["tasks"] if t["element_id"] == "aftercare_contact"]
    assert datetime.fromisoformat(contact["completed_at"]) <= datetime.fromisoformat(contact["due_at"]), \
        "aftercare within the target"


def next_timer(case: Case, element_id: str) -> datetime:
    [due] = [t["due_at"] for t in case.summary()["timers"] if t["element_id"] == element_id]
    return datetime.fromisoformat(due)


def test_training_over_eighteen_months_checks_progress_every_cycle_then_aftercare_and_follow_up_day(
        deployed, step):
    case = Case(deployed, step)
    case.start(contact_reason="Staff need CNC skills")
    case.do("assess_service_needs", assessment(["staff_training"]), now=day(1))
    assert case.summary()["variables"]["training_type"] == "tasmakoulutus"
    assert case.open() == {"plan_training": {"role": "expert", "assignee": EXPERT, "due_at": day(15)}}
    planned_end = day(7 + 548)
    case.do("plan_training", {"training_type": "tasmakoulutus", "training_planned_with": "te_expert",
                              "training_participants": 12, "training_co_funding_agreed": True,
                              "training_provider_name": "Koulutus Oy", "training_planned_start": iso(day(30)),
                              "training_planned_end": iso(planned_end), "training_progress_interval": "P3M"},
            now=day(7))
    checks = []
    due = next_timer(case, "training_progress_due")
    assert due == day(7) + (datetime(2026, 6, 9, tzinfo=UTC) - datetime(2026, 3, 9, tzinfo=UTC))
    while due < planned_end:
        assert case.fire(due + timedelta(minutes=1)) == 1
        tasks = case.open()
        assert tasks["check_training_progress"] == {"role": "expert", "assignee": EXPERT, "due_at": due + timedelta(
            days=14, minutes=1)}
        assert tasks["deliver_training"]["assignee"] == EXPERT
        case.do("check_training_progress", {"training_progress_checked_on": iso(due),
                                            "training_progress_status": "on_track"}, now=due + timedelta(days=2))
        checks.append(due)
        due = next_timer(case, "training_progress_due")
    assert len(checks) == 5, "a progress check every quarter of the 18-month programme"
    assert [b - a > timedelta(days=88) for a, b in pairwise(checks)] == [True] * 4

    case.do("deliver_training", {"training_completed_on": iso(day(550)), "training_participants_completed": 11},
            now=day(550))
    assert case.summary()["timers"] == [], "the progress cycle ends with the programme"
    case.do("close_training", {"training_ended_on": iso(day(552)), "training_outcome": "completed",
                               "training_provider_delivered": True}, now=day(552))
    assert case.summary()["status"] == "completed"
    after = case.aftercare("training")
    assert after.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(552 + 7)}}
    after.do("aftercare_contact", aftercare_contact(day(555), follow_up_day_wanted=True), now=day(555))
    opens = next_timer(after, "wait_follow_up_day")
    assert opens == midnight(552 + 351), "a year (the office's 365 days) after the training ended, two weeks ahead"
    assert after.open() == {}
    assert case.fire(opens - timedelta(days=1)) == 0
    assert case.fire(opens + timedelta(minutes=1)) == 1
    assert after.open() == {"hold_follow_up_day": {"role": "expert", "assignee": EXPERT, "due_at": midnight(552 + 365)}}
    after.do("hold_follow_up_day", {"follow_up_held_on": iso(day(918)), "follow_up_channel": "meeting",
                                    "follow_up_benefit": "Machining errors halved."}, now=day(918))

    summary = after.summary()
    assert summary["status"] == "completed" and after.open() == {}
    assert case.path() == (["assess_service_needs", "plan_training"]
                           + ["training_progress_due", "check_training_progress"] * 5
                           + ["deliver_training", "close_training"])
    assert after.path() == ["aftercare_contact", "wait_follow_up_day", "hold_follow_up_day"]
    assert after.completed_path()[-2:] == ["join_named_contact", "end_named_contact"]
    assert {(e, r, a) for e, r, a in case.created()} == {
        ("assess_service_needs", "expert", None), ("plan_training", "expert", EXPERT),
        ("deliver_training", "expert", EXPERT), ("check_training_progress", "expert", EXPERT),
        ("close_training", "expert", EXPERT)}
    assert after.created() == [("aftercare_contact", "expert", EXPERT), ("hold_follow_up_day", "expert", EXPERT)]
    assert [e for e, _r, _a in case.created()].count("check_training_progress") == 5
    assert case.summary()["variables"]["services"] == ["training"]
    assert case.summary()["variables"]["training_type"] == "tasmakoulutus"
    data = summary["variables"]
    assert data["service_line"] == "training" and data["service_ended_on"] == iso(day(552))
    assert data["aftercare_target_days"] == 7 and data["follow_up_day_wanted"] is True
    assert data["follow_up_due"] == iso(day(552 + 365))  # a date: the training's end + the office's 365 days
    assert data["follow_up_benefit"] == "Machining errors halved."


def test_timer_fires_at_its_exact_due_instant(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    case.do("plan_recruitment", {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                                 "recruitment_planned_end": iso(day(30))}, now=day(2))
    case.do("deliver_recruitment", {}, now=day(20))
    case.do("close_recruitment", {"recruitment_positions_filled": 1, "recruitment_ended_on": iso(day(21)),
                                  "recruitment_outcome": "completed"}, now=day(21))
    due = next_timer(case.aftercare(), "aftercare_overdue")
    assert due == end_of_day(21 + 14)
    assert case.fire(due) == 1, "fire_due_timers(now=T) fires every timer due at T"


def test_parallel_development_and_training_each_get_their_own_aftercare_when_they_end(deployed, step):
    case = Case(deployed, step)
    case.start(contact_reason="Growth plans and new skills")
    case.do("assess_service_needs", assessment(["business_development", "staff_training"]), now=day(1))
    assert case.open() == {"plan_development": {"role": "expert", "assignee": EXPERT, "due_at": day(15)},
                           "plan_training": {"role": "expert", "assignee": EXPERT, "due_at": day(15)}}
    case.do("plan_training", {"training_type": "tasmakoulutus", "training_planned_with": "ely_expert",
                              "training_participants": 8, "training_co_funding_agreed": True,
                              "training_planned_start": iso(day(20)), "training_planned_end": iso(day(120)),
                              "training_progress_interval": "P6M"}, now=day(2))
    case.do("plan_development", {"development_service_type": "consulting", "development_goal": "Lean production",
                                 "development_consultant": "Konsultit Oy", "development_consulting_days": 10,
                                 "development_planned_end": iso(day(60)), "development_progress_interval": "P1M"},
            now=day(3))
    assert set(case.open()) == {"deliver_training", "deliver_development"}
    check_due = next_timer(case, "development_progress_due")
    assert check_due == datetime(2026, 4, 5, 8, 0, tzinfo=UTC)
    assert case.fire(check_due + timedelta(minutes=1)) == 1
    assert case.open()["check_development_progress"] == {"role": "expert", "assignee": EXPERT,
                                                         "due_at": check_due + timedelta(days=14, minutes=1)}
    case.do("check_development_progress", {"development_progress_checked_on": iso(check_due),
                                           "development_progress_status": "delayed"}, now=check_due + timedelta(days=1))
    case.do("deliver_development", {"development_completed_on": iso(day(50))}, now=day(50))
    case.do("close_development", {"development_benefit": "Lead time down 20 %", "development_ended_on": iso(day(52)),
                                  "development_consultant_name": "Kaisa Konsultti",
                                  "development_consultant_email": "kaisa@konsultit.fi",
                                  "development_outcome": "completed"}, now=day(52))
    assert set(case.open()) == {"deliver_training"}, "the training goes on"
    development = case.aftercare("business_development")
    assert development.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT,
                                                        "due_at": end_of_day(52 + 14)}}
    development.do("aftercare_contact", aftercare_contact(day(55), services_told_about=["recruitment"]), now=day(55))
    opens = next_timer(development, "wait_follow_up_day")
    assert opens == midnight(52 + 351), "consulting recommends a follow-up day a year after it ended"
    case.do("deliver_training", {"training_completed_on": iso(day(118))}, now=day(118))
    case.do("close_training", {"training_ended_on": iso(day(120)), "training_outcome": "partly_completed"},
            now=day(120))
    training = case.aftercare("training")
    assert training.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(127)}}
    training.do("aftercare_contact", aftercare_contact(day(124)), now=day(124))
    assert training.summary()["status"] == "completed", "no follow-up day recommended after a training"
    assert case.fire(opens + timedelta(minutes=1)) == 1
    development.do("hold_follow_up_day", {"follow_up_held_on": iso(day(410)), "follow_up_channel": "meeting",
                                          "follow_up_benefit": "Lean work continues."}, now=day(410))

    assert [c.summary()["status"] for c in (case, development, training)] == ["completed"] * 3
    created = [e for e, _r, _a in case.created()]
    assert sorted(created) == sorted([
        "assess_service_needs", "plan_development", "plan_training", "deliver_training", "deliver_development",
        "check_development_progress", "close_development", "close_training"])
    assert [e for e, _r, _a in development.created()] == ["aftercare_contact", "hold_follow_up_day"]
    assert [e for e, _r, _a in training.created()] == ["aftercare_contact"]
    assert {a for _e, _r, a in case.created()} == {None, EXPERT}
    assert case.path() == ["assess_service_needs", "plan_training", "plan_development", "development_progress_due",
                           "check_development_progress", "deliver_development", "close_development",
                           "deliver_training", "close_training"]
    data = case.summary()["variables"]
    assert data["services"] == ["business_development", "training"]
    assert data["development_outcome"] == "completed" and data["training_outcome"] == "partly_completed"
    first, second = development.summary()["variables"], training.summary()["variables"]
    assert (first["aftercare_target_days"], first["follow_up_day_recommended"]) == (14, True)
    assert (second["aftercare_target_days"], second["follow_up_day_recommended"]) == (7, False)


def test_undone_aftercare_escalates_to_the_supervisor_after_the_target_days(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    case.do("plan_recruitment", {"recruitment_positions": 1, "recruitment_channels": ["candidate_search"],
                                 "recruitment_planned_end": iso(day(30))}, now=day(2))
    case.do("deliver_recruitment", {}, now=day(28))
    case.do("close_recruitment", {"recruitment_positions_filled": 0, "recruitment_ended_on": iso(day(30)),
                                  "recruitment_outcome": "cancelled"}, now=day(30))
    after = case.aftercare()
    assert case.fire(end_of_day(30 + 14) - timedelta(seconds=1)) == 0, "not before the end of the 14th day"
    assert set(after.open()) == {"aftercare_contact"}
    overdue_at = end_of_day(30 + 14) + timedelta(minutes=1)
    assert case.fire(overdue_at) == 1
    assert after.open() == {
        "aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(44)},
        "handle_overdue_aftercare": {"role": "supervisor", "assignee": None, "due_at": overdue_at + timedelta(days=7)}}
    assert case.fire(day(100)) == 0, "the escalation comes once"
    owner = after.do("handle_overdue_aftercare", {"overdue_action": "reminded_expert",
                                                  "overdue_notes": "Phoned Eeva."}, by=SUPERVISOR, now=day(45))
    assert owner == {"role": "supervisor", "assignee": None}
    assert set(after.open()) == {"aftercare_contact"}, "the escalation does not cancel the contact"
    after.do("aftercare_contact", aftercare_contact(day(46), experience_positive=False, service_rating=2), now=day(46))

    summary = after.summary()
    assert summary["status"] == "completed" and after.open() == {}
    assert case.path() == ["assess_service_needs", "plan_recruitment", "deliver_recruitment", "close_recruitment"]
    assert after.path() == ["aftercare_overdue", "handle_overdue_aftercare", "aftercare_contact"]
    assert ("handle_overdue_aftercare", "supervisor", None) in after.created()
    [completed] = [e for e in after.events() if e["kind"] == "task_completed"
                   and e["element_id"] == "handle_overdue_aftercare"]
    assert completed["actor"] == SUPERVISOR
    data = summary["variables"]
    assert data["overdue_action"] == "reminded_expert" and data["experience_positive"] is False


def test_new_needs_found_in_aftercare_start_a_new_service_process_for_the_same_customer(deployed, step):
    case = Case(deployed, step)
    first = case.start()
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    case.do("plan_recruitment", {"recruitment_positions": 3, "recruitment_channels": ["recruitment_event"],
                                 "recruitment_planned_end": iso(day(40))}, now=day(2))
    case.do("deliver_recruitment", {}, now=day(38))
    case.do("close_recruitment", {"recruitment_positions_filled": 3, "recruitment_ended_on": iso(day(40)),
                                  "recruitment_outcome": "completed"}, now=day(40))
    after = case.aftercare()
    after.do("aftercare_contact", aftercare_contact(
        day(45), needs_reassessment="Expanding to Sweden", new_service_needs=["innovation_internationalisation"],
        new_needs_description="Export to Sweden"), now=day(45))

    assert case.summary()["status"] == "completed" and after.summary()["status"] == "completed"
    with deployed.begin() as s:
        [child] = s.scalars(select(Instance).where(Instance.id.not_in([first, after.iid]))).all()
        child_id = child.id
        assert (child.process_id, child.business_key, child.parent_instance_id, str(child.status)) == (
            "customer_service", BUSINESS_ID, after.iid, "running")
    step()
    new = Case(deployed, step)
    new.iid = child_id
    assert new.open() == {"assess_service_needs": {"role": "expert", "assignee": None, "due_at": day(45 + 14)}}
    data = new.summary()["variables"]
    assert {k: data[k] for k in ("business_id", "company_name", "responsible_expert", "contact_channel",
                                 "contact_reason", "identified_needs", "found_in")} == {
        "business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy", "responsible_expert": EXPERT,
        "contact_channel": "aftercare", "contact_reason": "Export to Sweden",
        "identified_needs": ["innovation_internationalisation"], "found_in": "aftercare_contact"}
    [started] = [e for e in new.events() if e["kind"] == "instance_started"]
    assert started["data"]["parent_instance_id"] == after.iid
    # the new process goes on like any other: the referral of the new need to Business Finland
    new.do("assess_service_needs", assessment(["innovation_internationalisation"], assessment_date=iso(day(50))),
           now=day(50))
    assert new.open() == {"plan_referral": {"role": "expert", "assignee": EXPERT, "due_at": day(57)}}


def test_referral_only_forwards_the_need_to_a_partner_then_aftercare(deployed, step):
    case = Case(deployed, step)
    case.start(contact_reason="Needs a loan guarantee")
    case.do("assess_service_needs", assessment(["financing"]), now=day(1))
    assert case.open() == {"plan_referral": {"role": "expert", "assignee": EXPERT, "due_at": day(8)}}
    case.do("plan_referral", {"referral_partners": ["finnvera"], "referral_carrier": "expert",
                              "referral_need_summary": "Guarantee for a 400 k€ machine investment"}, now=day(2))
    assert case.open() == {"forward_need_to_partner": {"role": "expert", "assignee": EXPERT, "due_at": day(9)}}
    case.do("forward_need_to_partner", {"referral_forwarded_on": iso(day(3)),
                                        "referral_partner_contact": "Finnvera, Tampere office"}, now=day(3))
    assert case.open() == {"close_referral": {"role": "expert", "assignee": EXPERT,
                                              "due_at": datetime(2026, 4, 5, 8, 0, tzinfo=UTC)}}
    with deployed.begin() as s:  # the partner is picked from the providers registry
        finnvera = providers.create_provider(s, {"name": "Finnvera", "business_id": "0112233-3", "kind": "partner"},
                                             by=EXPERT).id
    case.do("close_referral", {"referral_partner_reached": True, "referral_ended_on": iso(day(20)),
                               "referral_outcome": "completed", "referral_provider_delivered": True,
                               "referral_provider": str(finnvera)}, now=day(20))
    after = case.aftercare("referral")
    assert after.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(34)}}
    after.do("aftercare_contact", aftercare_contact(day(25)), now=day(25))

    summary = case.summary()
    assert summary["status"] == "completed" and case.open() == {}
    assert after.summary()["status"] == "completed" and after.open() == {}
    assert case.path() == ["assess_service_needs", "plan_referral", "forward_need_to_partner", "close_referral"]
    assert after.path() == ["aftercare_contact"]
    assert "give_partner_contacts" not in [e for e, _r, _a in case.created()]
    data = summary["variables"]
    assert data["services"] == ["referral"] and data["referral_partners"] == ["finnvera"]
    assert data["referral_partner_reached"] is True
    line = after.summary()["variables"]
    assert (line["service_line"], line["aftercare_target_days"]) == ("referral", 14)
    assert (line["service_provider_id"], line["service_provider_name"]) == (finnvera, "Finnvera"), \
        "the line's provider travels to its aftercare"


def test_new_responsible_expert_informs_the_customer_and_owns_the_remaining_tasks(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    case.do("plan_recruitment", {"recruitment_positions": 2, "recruitment_channels": ["job_posting"],
                                 "recruitment_planned_end": iso(day(60))}, now=day(2))
    assert case.open()["deliver_recruitment"]["assignee"] == EXPERT
    with deployed.begin() as s:
        targets = runtime.deliver_message(s, "responsible_expert_changed", by=SUPERVISOR,
                                          data={"responsible_expert": NEW_EXPERT}, business_key=BUSINESS_ID,
                                          now=day(10))
    step()
    assert targets == [case.iid]
    assert case.open() == {
        "deliver_recruitment": {"role": "expert", "assignee": NEW_EXPERT, "due_at": midnight(60)},
        "inform_customer_of_new_contact": {"role": "expert", "assignee": NEW_EXPERT, "due_at": day(17)}}
    case.do("inform_customer_of_new_contact", {"customer_informed_on": iso(day(11)), "new_contact_channel": "phone"},
            by=NEW_EXPERT, now=day(11))
    case.do("deliver_recruitment", {}, by=NEW_EXPERT, now=day(55))
    assert case.open() == {"close_recruitment": {"role": "expert", "assignee": NEW_EXPERT, "due_at": day(69)}}
    case.do("close_recruitment", {"recruitment_positions_filled": 2, "recruitment_ended_on": iso(day(58)),
                                  "recruitment_outcome": "completed"}, by=NEW_EXPERT, now=day(58))
    after = case.aftercare()
    assert after.open() == {"aftercare_contact": {"role": "expert", "assignee": NEW_EXPERT, "due_at": end_of_day(72)}}
    after.do("aftercare_contact", aftercare_contact(day(60)), by=NEW_EXPERT, now=day(60))

    summary = case.summary()
    assert summary["status"] == "completed" and case.open() == {} and after.open() == {}
    assert case.path() == ["assess_service_needs", "plan_recruitment", "inform_customer_of_new_contact",
                           "deliver_recruitment", "close_recruitment"]
    [received] = [e for e in case.events() if e["kind"] == "message_received"]
    assert received["data"]["name"] == "responsible_expert_changed" and received["actor"] == SUPERVISOR
    assert case.created() == [
        ("assess_service_needs", "expert", None), ("plan_recruitment", "expert", EXPERT),
        ("deliver_recruitment", "expert", EXPERT), ("inform_customer_of_new_contact", "expert", NEW_EXPERT),
        ("close_recruitment", "expert", NEW_EXPERT)]
    assert after.created() == [("aftercare_contact", "expert", NEW_EXPERT)]
    completed_by = {t["element_id"]: t["completed_by"] for t in summary["tasks"] + after.summary()["tasks"]}
    assert completed_by == {"assess_service_needs": EXPERT, "plan_recruitment": EXPERT,
                            "inform_customer_of_new_contact": NEW_EXPERT, "deliver_recruitment": NEW_EXPERT,
                            "close_recruitment": NEW_EXPERT, "aftercare_contact": NEW_EXPERT}
    assert summary["variables"]["responsible_expert"] == NEW_EXPERT


def test_expert_change_in_one_case_does_not_stop_later_cases_from_completing(deployed, step):
    first = Case(deployed, step)
    first.start()
    first.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    with deployed.begin() as s:
        runtime.deliver_message(s, "responsible_expert_changed", by=SUPERVISOR,
                                data={"responsible_expert": NEW_EXPERT}, business_key=BUSINESS_ID, now=day(2))
    step()
    assert "inform_customer_of_new_contact" in first.open()

    other = Case(deployed, step)
    other.start(business_id="1234567-8", now=day(3))
    other.do("assess_service_needs", assessment(["financing"]), now=day(3))
    other.do("plan_referral", {"referral_partners": ["ely_centre"], "referral_carrier": "customer",
                               "referral_need_summary": "Development grant"}, now=day(4))
    other.do("give_partner_contacts", {"referral_contacts_given_on": iso(day(4)),
                                       "referral_contact_details": "ELY Centre, grants desk"}, now=day(4))
    other.do("close_referral", {"referral_ended_on": iso(day(20)), "referral_outcome": "completed"}, now=day(20))
    other.aftercare().do("aftercare_contact", aftercare_contact(day(22)), now=day(22))
    assert other.open() == {} and other.aftercare().open() == {}
    assert other.summary()["status"] == "completed" and other.aftercare().summary()["status"] == "completed"


def test_change_security_after_layoffs_with_training_for_the_remaining_staff(deployed, step):
    case = Case(deployed, step)
    case.start(contact_reason="Lay-offs of 15 people")
    case.do("assess_service_needs", assessment(["staff_reduction", "staff_training"], company_situation="declining",
                                               need_segment="production_or_financial_problems"), now=day(1))
    data = case.summary()["variables"]
    assert data["services"] == ["change_security", "training"] and data["training_type"] == "muutoskoulutus"
    assert case.open() == {"plan_change_security": {"role": "expert", "assignee": EXPERT, "due_at": day(8)},
                           "plan_training": {"role": "expert", "assignee": EXPERT, "due_at": day(15)}}
    case.do("plan_change_security", {"change_security_layoffs": 15, "change_security_remaining_staff": 27,
                                     "change_security_notice_given_on": iso(day(0)),
                                     "change_security_measures": ["info_session", "job_search_coaching",
                                                                  "remaining_staff_development"],
                                     "change_security_planned_end": iso(day(90))}, now=day(3))
    case.do("plan_training", {"training_type": "muutoskoulutus", "training_planned_with": "te_expert",
                              "training_participants": 27, "training_co_funding_agreed": True,
                              "training_planned_start": iso(day(30)), "training_planned_end": iso(day(80)),
                              "training_progress_interval": "P3M"}, now=day(5))
    case.do("deliver_change_security", {"change_security_participants": 15,
                                        "change_security_remaining_staff_training_needed": True}, now=day(85))
    case.do("close_change_security", {"change_security_ended_on": iso(day(90)), "change_security_outcome": "completed"},
            now=day(90))
    assert set(case.open()) == {"deliver_training"}
    case.do("deliver_training", {"training_completed_on": iso(day(80)), "training_participants_completed": 25},
            now=day(92))
    case.do("close_training", {"training_ended_on": iso(day(93)), "training_outcome": "completed"}, now=day(93))
    change, training = case.aftercare("change_security"), case.aftercare("training")
    assert change.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(90 + 14)}}
    assert training.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": end_of_day(93 + 7)}}
    change.do("aftercare_contact", aftercare_contact(day(96)), now=day(96))
    training.do("aftercare_contact", aftercare_contact(day(96)), now=day(96))

    summary = case.summary()
    assert summary["status"] == "completed" and case.open() == {}
    assert [c.summary()["status"] for c in (change, training)] == ["completed"] * 2
    assert case.path() == ["assess_service_needs", "plan_change_security", "plan_training",
                           "deliver_change_security", "close_change_security", "deliver_training", "close_training"]
    assert {a for _e, r, a in case.created() if r == "expert"} == {None, EXPERT}
    assert "aftercare_contact" not in [e for e, _r, _a in case.created()]
    data = summary["variables"]
    assert data["change_security_remaining_staff_training_needed"] is True
    assert data["change_security_measures"] == ["info_session", "job_search_coaching", "remaining_staff_development"]
    assert data["training_participants_completed"] == 25
    assert [c.summary()["variables"]["aftercare_target_days"] for c in (change, training)] == [14, 7]
