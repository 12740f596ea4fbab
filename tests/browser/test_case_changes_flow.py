"""Real Chromium, in Finnish and in English: an expert moves their customer to another responsible
expert from the customer page (the open case and its tasks follow, the new expert gets the "inform
the customer" task), and an expert cancels their case with a reason from its task page.

The harness (live server, chromium, sign-in) is in conftest.py.
"""

from __future__ import annotations

from datetime import date

import pytest

from engine import customers, runtime, users
from engine.inbox import tasks as open_tasks

BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"  # what conftest's sign_in types
START = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
         "contact_reason": "Kasvu"}
TEXTS = {
    "fi": {"change": "Vaihda asiantuntija", "moved": "Vastuuasiantuntija on nyt Eero Expert",
           "cancel": "Peru asia", "cancelled": "Asia peruttiin.", "reason_missing": "Kerro perumisen syy.",
           "timeline_cancelled": "Yritysasiakkaan palveluprosessi peruttiin"},
    "en": {"change": "Change expert", "moved": "Responsible expert is now Eero Expert",
           "cancel": "Cancel the case", "cancelled": "The case was cancelled.",
           "reason_missing": "Give the reason for cancelling.", "timeline_cancelled": "Customer service process cancelled"},
}
MOVED_TASKS = {"fi": ("Suunnittele rekrytointi työnantajan kanssa", "Kerro asiakkaalle uudesta yhteyshenkilöstä"),
               "en": ("Plan the recruitment with the employer", "Inform the customer of the new contact person")}


@pytest.fixture(params=["fi", "en"])
def office(request, live_db):
    """Return (session factory, customer id, case id, language): aino's customer with an assessed case."""
    lang, sessions = request.param, live_db[1]
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija", locale=lang)
        users.add_user(s, "eero", PASSWORD, ["expert"], display_name="Eero Expert", locale=lang)
        customer = customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID,
                                                 "responsible_expert": "aino"}, by="test")
        case = runtime.start_instance(s, "customer_service", by="aino", data=START, business_key=BUSINESS_ID)
        [task] = open_tasks(s, instance_id=case.id)
        runtime.complete_task(s, task.id, {
            "assessment_date": date.today().isoformat(), "assessment_method": "company_visit",
            "company_situation": "growth", "headcount": 42, "segment": "local", "identified_needs": ["recruitment"],
            "process_agreed_with_customer": True, "responsible_expert": "aino"}, by="aino")
    return sessions, customer.id, case.id, lang


def test_expert_changes_the_responsible_expert_from_the_customer_page(sign_in, base_url, office):
    sessions, customer_id, case_id, lang = office
    page = sign_in("aino")
    page.goto(f"{base_url}/customers/{customer_id}")
    page.select_option("#new_expert", "eero")
    page.click(f"#change-expert button:has-text('{TEXTS[lang]['change']}')")
    page.wait_for_selector(".flashes")
    assert TEXTS[lang]["moved"] in page.inner_text(".flashes")
    with sessions.begin() as s:
        assert customers.get_customer(s, customer_id).responsible_expert == "eero"
        assert {t.element_id: t.assignee for t in open_tasks(s, instance_id=case_id)} == {
            "plan_recruitment": "eero", "inform_customer_of_new_contact": "eero"}
    page = sign_in("eero")  # the moved case's open task and the new one are in the new expert's inbox
    page.goto(f"{base_url}/tasks/")
    inbox = page.inner_text("table.tasks")
    assert all(name in inbox for name in MOVED_TASKS[lang])


def test_expert_cancels_their_case_with_a_reason(sign_in, base_url, office):
    sessions, customer_id, case_id, lang = office
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=case_id)
    page = sign_in("aino")
    page.goto(f"{base_url}/tasks/{task.id}")
    page.click(f"details.cancel-case summary:has-text('{TEXTS[lang]['cancel']}')")
    page.fill("#cancel-reason", " ")
    page.evaluate("document.getElementById('cancel-reason').removeAttribute('required')")
    page.click("#cancel-case button")
    page.wait_for_selector("#cancel-reason-error")
    assert TEXTS[lang]["reason_missing"] in page.inner_text("#cancel-reason-error")
    page.fill("#cancel-reason", "Asiakas luopui hankkeesta")
    page.click("#cancel-case button")
    page.wait_for_selector(".flashes")
    assert TEXTS[lang]["cancelled"] in page.inner_text(".flashes")
    with sessions.begin() as s:
        assert runtime.instance_summary(s, case_id)["status"] == "cancelled"
        assert open_tasks(s, instance_id=case_id) == []
    page.goto(f"{base_url}/customers/{customer_id}")  # the customer's timeline says so
    assert TEXTS[lang]["timeline_cancelled"] in page.inner_text("section.timeline")
