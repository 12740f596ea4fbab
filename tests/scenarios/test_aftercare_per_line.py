"""Scenarios: every service line gets its own aftercare as soon as that line ends (issue 13 item 1).

`customer_service` throws `service_line_ended` right after each line's call activity; Polku starts
one `aftercare` instance per throw (same business key, the service process as parent). The
aftercare is due at the end of the Helsinki day `service_ended_on + the office's target days`, where
`service_ended_on` is the line's actual end date from its close task, not the day it was closed.
"On time" is the contract's one definition: `aftercare_contacted_on - service_ended_on <=
aftercare_target_days` in whole days.

Each scenario runs in one process (`straight`), reloading from the database before every step
(`reload`), and one through the `polku` CLI with every step a new OS process. Time never passes by
sleeping: every action carries its `now`, timers fire at an explicit instant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine import contacts, customers, office, users
from engine.models import Instance

from .test_service_process import (
    BUSINESS_ID,
    EXPERT,
    NEW_EXPERT,
    SUPERVISOR,
    Case,
    aftercare_contact,
    assessment,
    day,
    end_of_day,
    iso,
)

ROOT = Path(__file__).resolve().parents[2]
POLKU = Path(sys.executable).parent / "polku"
HELSINKI = ZoneInfo("Europe/Helsinki")


def on_time(variables: dict[str, Any]) -> bool:
    """Tell whether an aftercare contact was on time, by the contract's one definition."""
    contacted = date.fromisoformat(variables["aftercare_contacted_on"])
    ended = date.fromisoformat(variables["service_ended_on"])
    return (contacted - ended).days <= variables["aftercare_target_days"]


def recruit(case: Case, *, ended: int, closed: int, by: str = EXPERT) -> None:
    """Plan, deliver and close the recruitment line: it ended on day `ended`, was closed on day `closed`."""
    case.do("plan_recruitment", {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                                 "recruitment_planned_end": iso(day(ended))}, by=by, now=day(2))
    case.do("deliver_recruitment", {"recruitment_applicants": 12}, by=by, now=day(ended))
    case.do("close_recruitment", {"recruitment_positions_filled": 1, "recruitment_ended_on": iso(day(ended)),
                                  "recruitment_outcome": "completed"}, by=by, now=day(closed))


def aftercare_instances(case: Case) -> list[int]:
    with case.sessions.begin() as s:
        return list(s.scalars(select(Instance.id).where(Instance.process_id == "aftercare").order_by(Instance.id)))


def test_recruitment_closed_late_is_due_from_its_actual_end_and_a_later_contact_is_late(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"], contact_person="Ville Virtanen",
                                               contact_phone="040 123 4567"), now=day(1))
    recruit(case, ended=30, closed=44)

    assert case.summary()["status"] == "completed"
    after = case.aftercare()
    summary = after.summary()
    assert (summary["business_key"], summary["parent_instance_id"], summary["status"]) == (
        BUSINESS_ID, case.iid, "running")
    data = summary["variables"]
    assert {k: data[k] for k in ("service_line", "service_ended_on", "responsible_expert", "business_id",
                                 "company_name", "segment", "contact_person", "contact_phone")} == {
        "service_line": "recruitment", "service_ended_on": iso(day(30)), "responsible_expert": EXPERT,
        "business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy", "segment": "local",
        "contact_person": "Ville Virtanen", "contact_phone": "040 123 4567"}
    assert (data["service_provider_id"], data["service_provider_name"]) == (None, None), "the office delivered it"
    assert data["aftercare_target_days"] == 14 == data["office"]["aftercare_target_days_recruitment"]
    assert data["aftercare_started_at"] == day(44).isoformat(), "started when the line was closed"
    due = end_of_day(30 + 14)
    assert data["aftercare_due"] == datetime.combine(day(44).date(), time(23, 59, 59), tzinfo=HELSINKI).isoformat()
    assert data["aftercare_due"].endswith("+03:00"), "mid-April is summer time in Helsinki"
    assert after.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT, "due_at": due}}

    assert case.fire(due - timedelta(seconds=1)) == 0
    assert case.fire(due) == 1, "overdue at the end of day 30 + 14, whatever day the line was closed"
    assert set(after.open()) == {"aftercare_contact", "handle_overdue_aftercare"}
    after.do("aftercare_contact", aftercare_contact(day(50)), now=day(50))
    assert after.open() == {"handle_overdue_aftercare": after.open()["handle_overdue_aftercare"]}
    data = after.summary()["variables"]
    assert data["aftercare_contacted_on"] == iso(day(50))
    assert on_time(data) is False, "20 days after the end: late by the contract's definition"
    assert on_time({**data, "aftercare_contacted_on": iso(day(44))}) is True, "the 14th day is still on time"


def test_the_office_target_of_the_day_the_line_ended_sets_the_due_day(deployed, step):
    with deployed.begin() as s:
        office.set_value(s, "aftercare_target_days_recruitment", 21, by=SUPERVISOR, now=day(0))
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    with deployed.begin() as s:
        office.set_value(s, "aftercare_target_days_recruitment", 10, by=SUPERVISOR, now=day(20))
    recruit(case, ended=230, closed=231)  # 2026-10-18: due 2026-11-08, winter time again
    after = case.aftercare()
    data = after.summary()["variables"]
    assert data["aftercare_target_days"] == 10, "the aftercare starts when the line ends, with that day's settings"
    assert data["aftercare_due"] == "2026-10-28T23:59:59+02:00"
    assert after.open()["aftercare_contact"]["due_at"] == end_of_day(240)


def test_parallel_recruitment_and_training_each_start_their_aftercare_when_they_end(deployed, step):
    case = Case(deployed, step)
    case.start(contact_reason="New welders and CNC skills")
    case.do("assess_service_needs", assessment(["recruitment", "staff_training"]), now=day(1))
    case.do("plan_training", {"training_type": "rekrykoulutus", "training_planned_with": "te_expert",
                              "training_participants": 6, "training_co_funding_agreed": True,
                              "training_planned_start": iso(day(20)), "training_planned_end": iso(day(200)),
                              "training_progress_interval": "P6M"}, now=day(3))
    assert aftercare_instances(case) == []
    recruit(case, ended=39, closed=40)

    [recruitment_id] = aftercare_instances(case)
    recruitment = case.aftercare("recruitment")
    assert recruitment.iid == recruitment_id
    assert set(case.open()) == {"deliver_training"}, "the training still runs"
    assert case.summary()["status"] == "running"
    assert recruitment.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT,
                                                        "due_at": end_of_day(39 + 14)}}
    recruitment.do("aftercare_contact", aftercare_contact(day(45)), now=day(45))
    assert on_time(recruitment.summary()["variables"]) is True

    assert case.fire(day(150)) == 0
    case.do("deliver_training", {"training_completed_on": iso(day(196))}, now=day(197))
    assert len(aftercare_instances(case)) == 1, "no aftercare before the training's close task"
    case.do("close_training", {"training_ended_on": iso(day(198)), "training_outcome": "completed"}, now=day(199))

    assert case.summary()["status"] == "completed"
    ids = aftercare_instances(case)
    assert len(ids) == 2 and ids[0] == recruitment_id, "one aftercare per line, none thrown twice"
    training = case.aftercare("training")
    data = training.summary()["variables"]
    assert (data["service_line"], data["service_ended_on"], data["aftercare_target_days"]) == (
        "training", iso(day(198)), 7)
    assert data["services"] == ["recruitment", "training"]
    assert training.open() == {"aftercare_contact": {"role": "expert", "assignee": EXPERT,
                                                     "due_at": end_of_day(198 + 7)}}
    assert recruitment.summary()["variables"]["service_line"] == "recruitment", "each instance keeps its own line"
    started = [e for e in case.events() if e["kind"] == "message_thrown"]
    assert [(e["data"]["name"], e["data"]["payload"]["service_line"], e["data"]["started"]) for e in started] == [
        ("service_line_ended", "recruitment", [recruitment_id]), ("service_line_ended", "training", [training.iid])]


def test_a_new_responsible_expert_takes_the_running_aftercare_without_a_second_inform_task(deployed, step):
    with deployed.begin() as s:
        customer_id = customers.create_customer(s, {"name": "Konepaja Virtanen Oy", "business_id": BUSINESS_ID,
                                                    "responsible_expert": EXPERT}, by=SUPERVISOR).id
        users.add_user(s, SUPERVISOR, "salasana-123456", ["supervisor"])
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment", "staff_training"]), now=day(1))
    recruit(case, ended=30, closed=31)
    after = case.aftercare("recruitment")
    assert after.open()["aftercare_contact"]["assignee"] == EXPERT

    with deployed.begin() as s:
        moved = customers.change_responsible_expert(s, customer_id, NEW_EXPERT, by=SUPERVISOR,
                                                    roles={"supervisor"}, now=day(33))
    step()
    assert moved == [case.iid, after.iid]
    assert after.open() == {"aftercare_contact": {"role": "expert", "assignee": NEW_EXPERT,
                                                  "due_at": end_of_day(44)}}
    assert after.summary()["variables"]["responsible_expert"] == NEW_EXPERT, "later tasks go to the new expert"
    assert case.open()["inform_customer_of_new_contact"]["assignee"] == NEW_EXPERT
    informs = [e for c in (case, after) for e, _r, _a in c.created() if e == "inform_customer_of_new_contact"]
    assert informs == ["inform_customer_of_new_contact"], "the customer is told once"
    after.do("aftercare_contact", aftercare_contact(day(35)), by=NEW_EXPERT, now=day(35))
    assert after.summary()["status"] == "completed"


def test_cancelling_the_service_process_leaves_the_aftercare_of_an_ended_line_running(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment", "staff_training"]), now=day(1))
    recruit(case, ended=30, closed=31)
    after = case.aftercare("recruitment")
    with deployed.begin() as s:
        customers.cancel_case(s, case.iid, "The company stopped the training", by=SUPERVISOR, now=day(32))
    step()
    assert case.summary()["status"] == "cancelled" and case.open() == {}
    assert after.summary()["status"] == "running", "the recruitment was delivered: its aftercare is still owed"
    after.do("aftercare_contact", aftercare_contact(day(33)), now=day(33))
    assert after.summary()["status"] == "completed"
    assert len(aftercare_instances(case)) == 1, "the cancelled training never ended: no aftercare for it"


# ---------------------------------------------------------------------------------------------
# The same through the CLI, every step a new OS process (actions run at the real time, so the
# dates are relative to today; timers fire with --now).


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}

    def __call__(self, *argv: str) -> Any:
        done = subprocess.run([str(POLKU), "--json", *argv], check=False, env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def task(self, instance_id: int, element_id: str) -> dict[str, Any]:
        [task] = [t for t in self("tasks", "--instance", str(instance_id)) if t["element_id"] == element_id]
        return task

    def do(self, instance_id: int, element_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return self("complete", self.task(instance_id, element_id)["id"], "--data", json.dumps(data), "--by", EXPERT)

    def children(self, instance_id: int) -> dict[str, int]:
        """Return the aftercare instances a service process started, by service line."""
        found = {}
        for event in self("history", str(instance_id)):
            if event["kind"] == "message_thrown" and event["data"]["name"] == "service_line_ended":
                [child] = event["data"]["started"]
                found[event["data"]["payload"]["service_line"]] = child
        return found


def test_per_line_aftercare_through_the_cli_every_step_a_new_process(tmp_path):
    polku = Cli(tmp_path)
    polku("init")
    polku("deploy", str(ROOT / "bpmn"))
    polku("user", EXPERT, "--password", "salasana-123456", "--roles", "expert")
    today = datetime.now(HELSINKI).date()
    ago = lambda n: (today - timedelta(days=n)).isoformat()  # a date n days before today

    iid = polku("start", "customer_service", "--business-key", BUSINESS_ID, "--by", "palvelu.neuvoja", "--data",
                json.dumps({"business_id": BUSINESS_ID, "company_name": "Konepaja Virtanen Oy",
                            "contact_channel": "phone_service", "contact_reason": "Needs staff"}))["id"]
    polku.do(iid, "assess_service_needs", {**assessment(["recruitment", "staff_training"]),
                                            "assessment_date": ago(60)})
    polku.do(iid, "plan_recruitment", {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                                       "recruitment_planned_end": ago(20)})
    polku.do(iid, "deliver_recruitment", {})
    polku.do(iid, "close_recruitment", {"recruitment_positions_filled": 1, "recruitment_ended_on": ago(20),
                                        "recruitment_outcome": "completed"})
    children = polku.children(iid)
    assert list(children) == ["recruitment"], "the training still runs"
    after = polku("instance", str(children["recruitment"]))
    assert (after["process_id"], after["business_key"], after["parent_instance_id"]) == (
        "aftercare", BUSINESS_ID, iid)
    due = datetime.combine(today - timedelta(days=6), time(23, 59, 59), tzinfo=HELSINKI)
    assert after["variables"]["service_ended_on"] == ago(20)
    assert after["variables"]["aftercare_due"] == due.isoformat()
    assert datetime.fromisoformat(polku.task(after["id"], "aftercare_contact")["due_at"]) == due
    assert after["timers"] == [], "closed after its due day: the aftercare is overdue from its start"
    assert {t["element_id"] for t in after["tasks"]} == {"aftercare_contact", "handle_overdue_aftercare"}
    polku.do(after["id"], "aftercare_contact", aftercare_contact(datetime.combine(today, time(9), tzinfo=UTC)))
    done = polku("instance", str(after["id"]))["variables"]
    assert done["aftercare_contacted_on"] == today.isoformat() and on_time(done) is False

    polku.do(iid, "plan_training", {"training_type": "rekrykoulutus", "training_planned_with": "te_expert",
                                    "training_participants": 6, "training_co_funding_agreed": True,
                                    "training_planned_start": ago(50), "training_planned_end": ago(3),
                                    "training_progress_interval": "P6M"})
    polku.do(iid, "deliver_training", {"training_completed_on": ago(3)})
    assert list(polku.children(iid)) == ["recruitment"], "not thrown again by a later step of the case"
    polku.do(iid, "close_training", {"training_ended_on": ago(2), "training_outcome": "completed"})
    children = polku.children(iid)
    assert list(children) == ["recruitment", "training"]
    training = polku("instance", str(children["training"]))
    assert (training["variables"]["service_line"], training["variables"]["aftercare_target_days"]) == ("training", 7)
    assert polku("instance", str(iid))["status"] == "completed"
    assert datetime.fromisoformat(polku.task(training["id"], "aftercare_contact")["due_at"]) == datetime.combine(
        today + timedelta(days=5), time(23, 59, 59), tzinfo=HELSINKI)

    # a change of expert sent from outside (no customer_informed_elsewhere): the tasks move, no inform task
    moved = polku("message", "responsible_expert_changed", "--business-key", BUSINESS_ID,
                  "--data", json.dumps({"responsible_expert": NEW_EXPERT}))["delivered_to"]
    assert moved == [after["id"], training["id"]], "the recruitment aftercare still has its overdue task open"
    assert [(t["element_id"], t["assignee"]) for t in polku("tasks", "--instance", str(training["id"]))] == [
        ("aftercare_contact", NEW_EXPERT)]
    assert polku("instance", str(training["id"]))["incidents"] == []


# ---------------------------------------------------------------------------------------------
# Exits before any service (issue 12): no service need now; the customer declines the promise.


def test_no_service_need_now_ends_the_case_and_puts_the_later_contact_on_the_worklist(deployed, step):
    case = Case(deployed, step)
    case.start(contact_reason="Asks about recruiting next year")
    case.do("assess_service_needs", assessment([], assessment_outcome="no_service_need_now",
                                               assessment_notes="Recruiting maybe in spring.",
                                               next_contact_on=iso(day(90))), now=day(1))

    summary = case.summary()
    assert summary["status"] == "completed" and case.open() == {}
    assert case.completed_path()[-2:] == ["check_service_need", "end_no_service_need"]
    assert "decide_services" not in case.completed_path() and aftercare_instances(case) == []
    assert summary["variables"]["next_contact_on"] == iso(day(90))
    [thrown] = [e for e in case.events() if e["kind"] == "message_thrown"]
    with deployed.begin() as s:
        customer = customers.find_by_business_id(s, BUSINESS_ID)
        assert (customer.name, customer.responsible_expert) == ("Konepaja Virtanen Oy", EXPERT), \
            "the customer keeps a named contact"
        [contact] = contacts.customer_contacts(s, customer.id)
        assert thrown["data"]["contact_id"] == contact.id
        assert (contact.contacted_on, contact.channel, contact.next_contact_on, contact.instance_id) == (
            day(0).date(), "visit", day(90).date(), case.iid)
        assert contact.topic == "Palvelutarvearvio: ei palvelutarvetta nyt"
        assert contact.notes == "Recruiting maybe in spring." and contact.created_by == EXPERT
        assert contacts.customers_to_contact(s, day(89).date()) == []
        [row] = contacts.customers_to_contact(s, day(90).date(), expert=EXPERT)
        assert (row.customer.id, row.reason, row.next_contact_on) == (customer.id, "due", day(90).date())


def test_an_assessment_without_needs_ends_as_no_service_need_for_a_known_customer(deployed, step):
    with deployed.begin() as s:
        customer_id = customers.create_customer(s, {"name": "Konepaja Virtanen Oy", "business_id": BUSINESS_ID,
                                                    "responsible_expert": NEW_EXPERT}, by=SUPERVISOR).id
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment([], assessment_method="phone"), now=day(1))
    assert case.summary()["status"] == "completed"
    assert case.completed_path()[-1] == "end_no_service_need"
    with deployed.begin() as s:
        [contact] = contacts.customer_contacts(s, customer_id)
        assert (contact.channel, contact.next_contact_on) == ("phone", None), "no later date agreed"
        assert customers.get_customer(s, customer_id).responsible_expert == NEW_EXPERT, "the registry's expert stays"


def test_a_declined_service_promise_ends_the_case_with_the_reason(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"], process_agreed_with_customer=False), now=day(1))
    assert case.open() == {"agree_service_promise": {"role": "expert", "assignee": EXPERT, "due_at": day(8)}}
    case.do("agree_service_promise", {"service_promise_outcome": "declined",
                                      "service_promise_declined_reason": "Hires through its own network."},
            now=day(5))

    summary = case.summary()
    assert summary["status"] == "completed" and case.open() == {}
    assert case.completed_path()[-2:] == ["check_promise_decision", "end_service_promise_declined"]
    assert case.path() == ["assess_service_needs", "agree_service_promise"]
    data = summary["variables"]
    assert (data["service_promise_outcome"], data["service_promise_declined_reason"]) == (
        "declined", "Hires through its own network.")
    assert "services" not in data and aftercare_instances(case) == []


def test_an_agreed_service_promise_starts_the_services_once(deployed, step):
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment"], process_agreed_with_customer=False), now=day(1))
    case.do("agree_service_promise", {"service_promise_outcome": "agreed"}, now=day(3))
    assert case.open() == {"plan_recruitment": {"role": "expert", "assignee": EXPERT, "due_at": day(17)}}
    assert [e for e, _r, _a in case.created()].count("agree_service_promise") == 1, "no loop back to the promise"
    assert case.summary()["variables"]["services"] == ["recruitment"]


def test_exits_through_the_cli_every_step_a_new_process(tmp_path):
    polku = Cli(tmp_path)
    polku("init")
    polku("deploy", str(ROOT / "bpmn"))
    polku("user", EXPERT, "--password", "salasana-123456", "--roles", "expert")
    today = datetime.now(HELSINKI).date()
    later = (today + timedelta(days=60)).isoformat()

    def start(business_id: str) -> int:
        return polku("start", "customer_service", "--business-key", business_id, "--by", "palvelu.neuvoja", "--data",
                     json.dumps({"business_id": business_id, "company_name": f"Yritys {business_id}",
                                 "contact_channel": "phone_service", "contact_reason": "Kysyy palveluista"}))["id"]

    quiet = start(BUSINESS_ID)
    polku.do(quiet, "assess_service_needs", {**assessment([]), "assessment_date": today.isoformat(),
                                             "assessment_outcome": "no_service_need_now", "next_contact_on": later})
    done = polku("instance", str(quiet))
    assert done["status"] == "completed" and done["tasks"][-1]["element_id"] == "assess_service_needs"
    [thrown] = [e for e in polku("history", str(quiet)) if e["kind"] == "message_thrown"]
    assert thrown["data"]["name"] == "customer_contact_logged" and thrown["data"]["contact_id"]
    assert polku("to-contact", "--today", (today + timedelta(days=59)).isoformat()) == []
    [row] = polku("to-contact", "--today", later)
    assert (row["business_id"], row["reason"], row["next_contact_on"]) == (BUSINESS_ID, "due", later)

    declining = start("2617416-4")
    polku.do(declining, "assess_service_needs", {**assessment(["recruitment"]), "assessment_date": today.isoformat(),
                                                 "process_agreed_with_customer": False})
    polku.do(declining, "agree_service_promise", {"service_promise_outcome": "declined",
                                                  "service_promise_declined_reason": "Ei aikaa tänä vuonna."})
    done = polku("instance", str(declining))
    assert done["status"] == "completed"
    assert [t["element_id"] for t in done["tasks"]] == ["assess_service_needs", "agree_service_promise"]
    assert done["variables"]["service_promise_declined_reason"] == "Ei aikaa tänä vuonna."
    walked = [x for e in polku("history", str(declining)) if e["kind"] == "path_taken" for x in e["data"]["elements"]]
    assert walked[-2:] == ["check_promise_decision", "end_service_promise_declined"]
    assert "decide_services" not in walked


def test_a_new_expert_tells_the_customer_from_the_aftercare_when_the_service_process_has_ended(deployed, step):
    with deployed.begin() as s:
        customer_id = customers.create_customer(s, {"name": "Konepaja Virtanen Oy", "business_id": BUSINESS_ID,
                                                    "responsible_expert": EXPERT}, by=SUPERVISOR).id
    case = Case(deployed, step)
    case.start()
    case.do("assess_service_needs", assessment(["recruitment", "staff_training"]), now=day(1))
    case.do("plan_training", {"training_type": "rekrykoulutus", "training_planned_with": "te_expert",
                              "training_participants": 6, "training_co_funding_agreed": True,
                              "training_planned_start": iso(day(5)), "training_planned_end": iso(day(20)),
                              "training_progress_interval": "P6M"}, now=day(3))
    recruit(case, ended=20, closed=21)
    case.do("deliver_training", {"training_completed_on": iso(day(20))}, now=day(21))
    case.do("close_training", {"training_ended_on": iso(day(21)), "training_outcome": "completed"}, now=day(22))
    assert case.summary()["status"] == "completed"
    recruitment, training = case.aftercare("recruitment"), case.aftercare("training")

    with deployed.begin() as s:
        moved = customers.change_responsible_expert(s, customer_id, NEW_EXPERT, by=SUPERVISOR,
                                                    roles={"supervisor"}, now=day(23))
    step()
    assert moved == [recruitment.iid, training.iid]
    assert recruitment.open() == {
        "aftercare_contact": {"role": "expert", "assignee": NEW_EXPERT, "due_at": end_of_day(20 + 14)},
        "inform_customer_of_new_contact": {"role": "expert", "assignee": NEW_EXPERT, "due_at": day(30)}}
    assert training.open() == {"aftercare_contact": {"role": "expert", "assignee": NEW_EXPERT,
                                                     "due_at": end_of_day(21 + 7)}}, "the customer is told once"
    recruitment.do("inform_customer_of_new_contact", {"customer_informed_on": iso(day(23)),
                                                      "new_contact_channel": "phone"}, by=NEW_EXPERT, now=day(23))
    recruitment.do("aftercare_contact", aftercare_contact(day(24)), by=NEW_EXPERT, now=day(24))
    training.do("aftercare_contact", aftercare_contact(day(24)), by=NEW_EXPERT, now=day(24))
    assert [c.summary()["status"] for c in (recruitment, training)] == ["completed", "completed"]
