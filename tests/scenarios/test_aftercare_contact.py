"""The aftercare contact of one ended service line (bpmn/aftercare.bpmn from `aftercare_contact` on).

"Customer not reached" attempts (a task action on the contact), the conversation, the follow-up
day counted from the end of the consulting and kept when new needs were found, the consultant's
invitation. Each scenario runs straight and reloading every step (`step`); the CLI runs are in
test_aftercare_contact_cli.py. Time is moved with `now=`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine import actions, aftercare, audit, inbox, notices, office, runtime, timers
from engine.config import Settings
from engine.errors import FormInvalid, TaskNotFound
from engine.models import Instance
from engine.outreach_models import MailOutbox, Notice

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BUSINESS_ID = "0737546-2"
EXPERT = "eeva.expert"


def day(n: float) -> datetime:
    """Return the instant `n` days after T0."""
    return T0 + timedelta(days=n)


def line_ended(service_line: str, ended_on: str, **extra: Any) -> dict[str, Any]:
    """Return the start data of one ended service line as customer_service throws it (the contract)."""
    return {"service_line": service_line, "service_ended_on": ended_on, "responsible_expert": EXPERT,
            "business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy", "segment": "local", **extra}


def conversation(contacted_on: str, **extra: Any) -> dict[str, Any]:
    """Return a filled aftercare conversation (only what an expert must fill, plus `extra`)."""
    return {"aftercare_contacted_on": contacted_on, "aftercare_channel": "phone", "service_met_need": "yes",
            "feedback_went_well": "Uudet hitsaajat aloittivat hyvin.", "needs_reassessment": "Ei uusia tarpeita nyt.",
            "named_contact_confirmed": True, **extra}


def not_reached(on: str, note: str = "Ei vastannut") -> dict[str, Any]:
    return {"aftercare_attempt_on": on, "aftercare_attempt_channel": "phone", "aftercare_attempt_note": note}


class Aftercare:
    """One aftercare instance driven through the engine API, forgetting the cache between steps if asked."""

    def __init__(self, sessions, step) -> None:
        self.sessions, self.step = sessions, step
        self.iid = 0

    def start(self, data: dict[str, Any], *, now: datetime = T0) -> int:
        with self.sessions.begin() as s:
            self.iid = runtime.start_instance(s, "aftercare", by="customer_service", data=data,
                                              business_key=BUSINESS_ID, now=now, validate_form=False,
                                              start_message="service_line_ended").id
        self.step()
        return self.iid

    def open(self) -> dict[str, Any]:
        """Return the open tasks by element id."""
        with self.sessions.begin() as s:
            rows = inbox.tasks(s, instance_id=self.iid)
            found = {t.element_id: {"id": t.id, "due_at": t.due_at, "assignee": t.assignee,
                                    "role": t.candidate_role} for t in rows}
            assert len(found) == len(rows)
            return found

    def not_reached(self, data: dict[str, Any], *, now: datetime) -> None:
        task_id = self.open()["aftercare_contact"]["id"]
        with self.sessions.begin() as s:
            assert [a.element_id for a in actions.actions_of_task(s, task_id)] == ["customer_not_reached"]
            actions.run_task_action(s, task_id, "customer_not_reached", data, by=EXPERT, now=now)
        self.step()

    def do(self, element_id: str, data: dict[str, Any], *, now: datetime) -> None:
        task_id = self.open()[element_id]["id"]
        with self.sessions.begin() as s:
            runtime.complete_task(s, task_id, data, by=EXPERT, now=now)
        self.step()

    def fire(self, now: datetime) -> int:
        fired = timers.fire_due_timers(self.sessions, now=now)
        self.step()
        return fired

    def variables(self) -> dict[str, Any]:
        with self.sessions.begin() as s:
            return runtime.instance_variables(s, self.iid)

    def status(self) -> str:
        with self.sessions.begin() as s:
            return str(runtime.get_instance(s, self.iid).status)

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self.sessions.begin() as s:
            return [audit.event_dict(e) for e in audit.history(s, self.iid) if e.kind == kind]

    def ended_at(self) -> list[str]:
        """Return the elements the engine ran in the last step."""
        steps = self.events("path_taken")
        return steps[-1]["data"]["elements"] if steps else []


def set_office(sessions, **values: int) -> None:
    with sessions.begin() as s:
        for key, value in values.items():
            office.set_value(s, key, value, by="sanna.supervisor")


def test_not_reached_twice_then_reached(deployed, step):
    case = Aftercare(deployed, step)
    case.start(line_ended("recruitment", "2026-03-01"))
    first = case.open()["aftercare_contact"]
    assert first["assignee"] == EXPERT
    case.not_reached(not_reached("2026-03-03"), now=day(1))
    second = case.open()["aftercare_contact"]
    assert second["id"] != first["id"] and second["due_at"] == first["due_at"]  # opens again, same due date
    case.not_reached(not_reached("2026-03-05", "Jätetty soittopyyntö"), now=day(3))
    third = case.open()
    assert list(third) == ["aftercare_contact"] and third["aftercare_contact"]["due_at"] == first["due_at"]
    assert case.variables()["aftercare_attempts"] == [
        {"on": "2026-03-03", "channel": "phone", "note": "Ei vastannut"},
        {"on": "2026-03-05", "channel": "phone", "note": "Jätetty soittopyyntö"}]
    history = case.events("task_action")
    assert [(e["element_id"], e["actor"], e["data"]["submitted"]["aftercare_attempt_on"]) for e in history] == [
        ("customer_not_reached", EXPERT, "2026-03-03"), ("customer_not_reached", EXPERT, "2026-03-05")]
    assert history[0]["data"]["name"] == "Asiakasta ei tavoitettu"
    case.do("aftercare_contact", conversation("2026-03-06", service_met_need="partly",
                                              feedback_from_customer="Ehdokkaita olisi voinut tulla nopeammin."),
            now=day(4))
    data = case.variables()
    assert case.status() == "completed" and case.ended_at()[-1] == "end_named_contact"
    assert data["aftercare_outcome"] == "reached" and data["aftercare_contacted_on"] == "2026-03-06"
    assert data["service_met_need"] == "partly" and len(data["aftercare_attempts"]) == 2
    assert data["service_rating"] is None and data["experience_positive"] is False  # optional: not asked
    assert data["follow_up_wanted"] is False and "follow_up_due" not in data


def test_not_reached_as_many_times_as_the_office_says_closes_the_aftercare(deployed, step):
    set_office(deployed, aftercare_attempts=2)
    case = Aftercare(deployed, step)
    case.start(line_ended("training", "2026-03-01"))
    assert case.variables()["office"]["aftercare_attempts"] == 2
    case.not_reached(not_reached("2026-03-02"), now=day(0.5))
    assert case.status() == "running" and list(case.open()) == ["aftercare_contact"]
    set_office(deployed, aftercare_attempts=5)  # the case keeps the settings of the day it started
    case.not_reached(not_reached("2026-03-04"), now=day(2))
    data = case.variables()
    assert case.status() == "completed" and case.open() == {}
    assert case.ended_at()[-3:] == ["check_aftercare_attempts", "close_not_reached", "end_not_reached"]
    assert data["aftercare_outcome"] == "not_reached" and len(data["aftercare_attempts"]) == 2
    assert "aftercare_contacted_on" not in data


def test_an_attempt_needs_a_date_that_is_not_in_the_future(deployed, step):
    case = Aftercare(deployed, step)
    case.start(line_ended("recruitment", "2026-03-01"))
    task_id = case.open()["aftercare_contact"]["id"]
    with deployed.begin() as s:
        try:
            actions.run_task_action(s, task_id, "customer_not_reached", not_reached("2026-03-09"), by=EXPERT,
                                    now=day(1))
        except FormInvalid as err:
            assert set(err.errors) == {"aftercare_attempt_on"}
        else:
            raise AssertionError("an attempt dated next week was accepted")
    assert case.open()["aftercare_contact"]["id"] == task_id and case.events("task_action") == []


def test_the_supervisor_hears_of_an_overdue_contact_once_however_many_attempts_follow(deployed, step):
    case = Aftercare(deployed, step)
    case.start(line_ended("recruitment", "2026-03-01"))  # due at the end of 15.3. in Helsinki
    assert case.fire(datetime(2026, 3, 15, 21, 0, tzinfo=UTC)) == 0
    assert case.fire(datetime(2026, 3, 15, 22, 0, tzinfo=UTC)) == 1
    assert set(case.open()) == {"aftercare_contact", "handle_overdue_aftercare"}
    case.not_reached(not_reached("2026-03-16"), now=day(14.5))
    case.fire(day(14.6))  # the reopened contact's timer is past due at once
    assert set(case.open()) == {"aftercare_contact", "handle_overdue_aftercare"}
    assert len(case.events("task_created")) == 3  # contact, overdue handling, contact again


def test_the_case_data_keeps_every_attempt_while_the_supervisors_overdue_task_waits(deployed, step):
    case = Aftercare(deployed, step)
    case.start(line_ended("recruitment", "2026-03-01"))
    assert case.fire(datetime(2026, 3, 15, 22, 0, tzinfo=UTC)) == 1  # the supervisor's task opens, older data
    for n, on in enumerate(("2026-03-16", "2026-03-17", "2026-03-18"), start=1):
        case.not_reached(not_reached(on), now=day(14 + n))
    data = case.variables()
    assert list(case.open()) == ["handle_overdue_aftercare"]  # still open: the aftercare itself has ended
    assert [a["on"] for a in data["aftercare_attempts"]] == ["2026-03-16", "2026-03-17", "2026-03-18"]
    assert data["aftercare_outcome"] == "not_reached"


def test_follow_up_day_is_counted_from_the_end_of_the_consulting(deployed, step):
    set_office(deployed, follow_up_offset_days=300)
    case = Aftercare(deployed, step)
    case.start(line_ended("business_development", "2026-02-20", service_consultant_name="Kaisa Konsultti",
                          service_consultant_email="kaisa@konsultointi.fi"))
    # the form shows the consultant from the line's data; a submission is the whole form, as the page posts it
    case.do("aftercare_contact", conversation("2026-03-12", service_consultant_name="Kaisa Konsultti",
                                              service_consultant_email="kaisa@konsultointi.fi"), now=day(10))
    data = case.variables()
    assert data["follow_up_wanted"] is True and data["follow_up_day_wanted"] is False
    assert data["follow_up_due"] == (date(2026, 2, 20) + timedelta(days=300)).isoformat() == "2026-12-17"
    assert data["follow_up_opens"] == "2026-12-03T00:00:00+00:00"
    assert case.open() == {} and case.status() == "running"
    assert case.fire(datetime(2026, 12, 2, 23, 0, tzinfo=UTC)) == 0
    assert case.fire(datetime(2026, 12, 3, 0, 0, tzinfo=UTC)) == 1
    held = case.open()["hold_follow_up_day"]
    assert held["assignee"] == EXPERT and held["due_at"].date() == date(2026, 12, 17)
    with deployed.begin() as s:
        details = runtime.task_details(s, held["id"])
        shown = {f.id: f.readonly for f in details["form"]}
        assert shown["service_consultant_name"] and shown["service_consultant_email"]  # shown, not editable
        assert details["variables"]["service_consultant_name"] == "Kaisa Konsultti"
    case.do("hold_follow_up_day", {"follow_up_held_on": "2026-12-17", "follow_up_channel": "meeting",
                                   "follow_up_with_provider": True, "follow_up_benefit": "Myynti kasvoi."},
            now=datetime(2026, 12, 17, 12, 0, tzinfo=UTC))
    assert case.status() == "completed" and case.ended_at()[-1] == "end_named_contact"


def test_the_follow_up_days_task_opens_as_many_days_before_as_the_office_says(deployed, step):
    set_office(deployed, follow_up_offset_days=300, follow_up_lead_days=30)
    case = Aftercare(deployed, step)
    case.start(line_ended("startup", "2026-02-20"))
    case.do("aftercare_contact", conversation("2026-03-12", follow_up_day_wanted=True), now=day(10))
    data = case.variables()
    assert data["follow_up_due"] == "2026-12-17" and data["follow_up_opens"] == "2026-11-17T00:00:00+00:00"
    assert case.fire(datetime(2026, 11, 16, 23, 0, tzinfo=UTC)) == 0
    assert case.fire(datetime(2026, 11, 17, 0, 0, tzinfo=UTC)) == 1
    assert case.open()["hold_follow_up_day"]["due_at"].date() == date(2026, 12, 17)


def test_follow_up_day_the_customer_asked_for_is_kept_when_new_needs_start_a_new_process(deployed, step):
    case = Aftercare(deployed, step)
    case.start(line_ended("recruitment", "2026-03-01"))
    case.do("aftercare_contact", conversation("2026-03-05", follow_up_day_wanted=True,
                                              new_service_needs=["staff_training"],
                                              new_needs_description="Uusille hitsaajille koulutusta"), now=day(3))
    data = case.variables()
    assert data["follow_up_wanted"] is True and data["follow_up_due"] == "2027-03-01"  # office default 365 days
    assert case.status() == "running"
    assert case.ended_at()[-5:] == ["check_new_needs", "throw_new_service_need", "join_new_needs",
                                    "check_follow_up_day", "plan_follow_up_day"]
    with deployed.begin() as s:
        [started] = s.scalars(select(Instance).where(Instance.parent_instance_id == case.iid)).all()
        assert (started.process_id, started.business_key) == ("customer_service", BUSINESS_ID)
        new_data = runtime.instance_variables(s, started.id)
        assert new_data["identified_needs"] == ["staff_training"] and new_data["found_in"] == "aftercare_contact"
    [thrown] = case.events("message_thrown")
    assert thrown["data"]["name"] == "new_service_need" and thrown["data"]["started"] == [started.id]
    assert case.fire(datetime(2027, 2, 15, 0, 0, tzinfo=UTC)) == 1
    assert list(case.open()) == ["hold_follow_up_day"]


def test_the_consultant_is_invited_by_e_mail_when_the_follow_up_day_is_planned(deployed, step, smtp):
    case = Aftercare(deployed, step)
    case.start(line_ended("startup", "2026-02-27", service_consultant_name="Kaisa Konsultti",
                          service_consultant_email="kaisa@vanha.fi"))
    with deployed.begin() as s:
        assert notices.generate(s, now=day(1)) == 0  # no follow-up day planned yet
    case.do("aftercare_contact", conversation("2026-03-04", service_consultant_name="Kaisa Konsultti",
                                              service_consultant_email="kaisa@konsultointi.fi"), now=day(2))
    with deployed.begin() as s:
        notices.generate(s, now=day(2))
        [mail] = s.scalars(select(MailOutbox)).all()
        assert mail.to_address == "kaisa@konsultointi.fi" and "Konepaja Virtanen Oy" in mail.subject
        [notice] = s.scalars(select(Notice).where(Notice.kind == "follow_up_invitation")).all()
        assert notice.username == EXPERT and "kaisa@konsultointi.fi" in notice.body
    with deployed.begin() as s:
        notices.generate(s, now=day(2.1))
        assert len(s.scalars(select(MailOutbox)).all()) == 1  # invited once
    settings = Settings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="polku@te.fi")
    assert notices.deliver(deployed, settings=settings, now=day(2.2)) == 1
    [(to, content)] = smtp.messages
    assert to == ["kaisa@konsultointi.fi"]
    assert "Kaisa Konsultti" in content and "27.2.2027" in content  # a year after the consulting ended


def test_no_invitation_without_the_consultants_address(deployed, step):
    case = Aftercare(deployed, step)
    case.start(line_ended("business_development", "2026-02-27"))
    case.do("aftercare_contact", conversation("2026-03-04", service_consultant_name="Kalle Konsultti"), now=day(2))
    with deployed.begin() as s:
        notices.generate(s, now=day(2))
        assert s.scalars(select(MailOutbox)).all() == []
    assert case.variables()["service_consultant_name"] == "Kalle Konsultti"


def _lines_of_one_case(sessions, step, *lines: tuple[str, str]) -> tuple[int, list[Aftercare]]:
    """Start a service process and one aftercare per ended line as its children; return (parent, cases)."""
    with sessions.begin() as s:
        parent = runtime.start_instance(s, "customer_service", by="palvelu.neuvoja", business_key=BUSINESS_ID, now=T0,
                                        data={"business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy",
                                              "contact_channel": "phone_service", "contact_reason": "Kasvu"}).id
        cases = []
        for service_line, ended_on in lines:
            case = Aftercare(sessions, step)
            case.iid = runtime.start_instance(s, "aftercare", by="customer_service", data=line_ended(
                service_line, ended_on, service_consultant_name=f"Konsultti {service_line}"), business_key=BUSINESS_ID,
                now=T0, validate_form=False, start_message="service_line_ended", parent_instance_id=parent).id
            cases.append(case)
    step()
    return parent, cases


def test_one_contact_covers_the_other_lines_due_at_about_the_same_time(deployed, step):
    parent, (development, training, recruitment) = _lines_of_one_case(
        deployed, step, ("business_development", "2026-02-27"), ("training", "2026-03-02"),
        ("recruitment", "2026-01-20"))
    contact = development.open()["aftercare_contact"]["id"]
    with deployed.begin() as s:
        offered = aftercare.coverable_contacts(s, contact)
        # training is due 9.3., four days from this contact's 13.3.; recruitment's 3.2. is past the window
        assert [(c.instance_id, c.service_line) for c in offered] == [(training.iid, "training")]
        aftercare.complete_covering(s, contact, conversation(
            "2026-03-05", service_met_need="partly", new_service_needs=["recruitment"],
            service_consultant_name="Konsultti business_development"), [offered[0].task_id], by=EXPERT, now=day(3))
    step()
    mine, covered = development.variables(), training.variables()
    assert mine["aftercare_covers"] == [training.iid] and covered["aftercare_covered_by"] == development.iid
    assert (covered["aftercare_outcome"], covered["aftercare_contacted_on"], covered["service_met_need"]) == (
        "reached", "2026-03-05", "partly")
    assert covered["service_consultant_name"] == "Konsultti training"  # each line keeps its own consultant
    assert covered["new_service_needs"] == [] and training.status() == "completed"
    assert development.status() == "running"  # its follow-up day is recommended after consulting
    assert "aftercare_contact" in recruitment.open()  # (long overdue: the supervisor has it too)
    with deployed.begin() as s:
        children = s.scalars(select(Instance).where(Instance.process_id == "customer_service",
                                                    Instance.id != parent)).all()
        assert [c.parent_instance_id for c in children] == [development.iid]  # one new process, not one per line


def test_a_contact_cannot_cover_a_line_outside_its_window(deployed, step):
    _parent, (development, recruitment) = _lines_of_one_case(
        deployed, step, ("business_development", "2026-02-27"), ("recruitment", "2026-01-20"))
    other = recruitment.open()["aftercare_contact"]["id"]
    with deployed.begin() as s:
        try:
            aftercare.complete_covering(s, development.open()["aftercare_contact"]["id"], conversation("2026-03-05"),
                                        [other], by=EXPERT, now=day(3))
        except FormInvalid as err:
            assert set(err.errors) == {"covered_contacts"}
        else:
            raise AssertionError("a contact outside the window was covered")
    assert development.status() == recruitment.status() == "running"


def test_covering_from_a_task_that_does_not_exist_says_so(deployed):
    with deployed.begin() as s:
        try:
            aftercare.complete_covering(s, "no-such-task", {}, ["other"], by=EXPERT, now=T0)
        except TaskNotFound as err:
            assert "no-such-task" in str(err)
        else:
            raise AssertionError("covering from an unknown task was accepted")
