"""Real Chromium, in Finnish and in English: an expert starts a service process from the customer page,
meets a wrong field in the needs assessment (the message in the user's language, the values kept),
fixes it and lands on the case's next task; or records "no service need now" with a later contact day,
which ends the case and puts the contact and that day in the customer's contact log; or the process
is not agreed in the assessment and the customer declines it on the later call. The model texts
(task names, options) come in the same language.

The harness (live server, chromium, sign-in) is in conftest.py.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from engine import customers, runtime, users
from engine.inbox import tasks as open_tasks
from engine.models import Instance

BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"  # what conftest's sign_in types
TEXTS = {
    "fi": {"start": "Aloita uusi palveluprosessi", "start_button": "Aloita prosessi",
           "assess": "Arvioi palvelutarve asiakkaan kanssa", "complete": "Merkitse tehtävä tehdyksi",
           "min": "vähintään 0", "next_task": "Sovi ohjauksesta asiakkaan kanssa",
           "next_flash": "Seuraava tehtävä tässä asiassa", "no_need": "Ei palvelutarvetta nyt",
           "no_more": "Tässä asiassa ei ole nyt sinulle muita tehtäviä.",
           "promise": "Sovi prosessi ja jälkihoito asiakkaan kanssa", "declined": "Asiakas ei halua palveluprosessia"},
    "en": {"start": "Start a new service process", "start_button": "Start the process",
           "assess": "Assess service needs with the customer", "complete": "Complete the task",
           "min": "at least 0", "next_task": "Agree the referral with the customer",
           "next_flash": "Next task in this case", "no_need": "No service need now",
           "no_more": "This case has no further task for you right now.",
           "promise": "Agree the process and aftercare with the customer",
           "declined": "The customer does not want the service process"},
}


@pytest.fixture(params=["fi", "en"])
def office(request, live_db):
    """Return (session factory, customer id, language): aino (speaking the language) and her customer."""
    lang, sessions = request.param, live_db[1]
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija", locale=lang)
        customer = customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID,
                                                 "responsible_expert": "aino"}, by="test")
    return sessions, customer.id, lang


def test_expert_starts_a_case_from_the_customer_page(sign_in, base_url, office):
    sessions, customer_id, lang = office
    texts = TEXTS[lang]
    page = sign_in("aino")
    assert page.get_attribute("html", "lang") == lang
    page.goto(f"{base_url}/customers/{customer_id}")
    page.click(f"text={texts['start']}")
    assert page.input_value("#f-business_id") == BUSINESS_ID
    page.select_option("#f-contact_channel", "phone_service")
    page.fill("#f-contact_reason", "Yritys hakee kasvua ja tarvitsee uusia työntekijöitä.")
    page.click(f"text={texts['start_button']}")
    page.wait_for_selector(f"h1:has-text('{texts['assess']}')")

    page.fill("#f-assessment_date", date.today().isoformat())
    page.select_option("#f-company_situation", "growth")
    page.fill("#f-headcount", "-5")
    page.select_option("#f-segment", "local")
    page.check("#f-identified_needs-other_partner_service")
    page.fill("#f-assessment_notes", "Kävimme läpi kasvusuunnitelman.")
    page.check("#f-process_agreed_with_customer")
    page.select_option("#f-responsible_expert", "aino")
    page.click(f"text={texts['complete']}")
    page.wait_for_selector(".error-summary")
    assert texts["min"] in page.inner_text("#e-headcount")
    assert page.input_value("#f-headcount") == "-5"
    assert page.input_value("#f-assessment_notes") == "Kävimme läpi kasvusuunnitelman."

    page.fill("#f-headcount", "42")
    page.click(f"text={texts['complete']}")
    page.wait_for_selector(f"h1:has-text('{texts['next_task']}')")
    assert texts["next_flash"] in page.inner_text(".flashes")
    with sessions.begin() as s:
        (case,) = customers.customer_processes(s, customers.get_customer(s, customer_id))
        assert case.started_by == "aino" and case.business_key == BUSINESS_ID
        variables = runtime.instance_variables(s, case.id)
        assert variables["headcount"] == 42 and variables["contact_channel"] == "phone_service"
        assert [t.element_id for t in open_tasks(s, instance_id=case.id)] == ["plan_referral"]
    page.goto(f"{base_url}/tasks/")
    assert texts["next_task"] in page.inner_text("table.tasks")


def test_the_assessment_ends_the_case_with_no_service_need_now(sign_in, base_url, office):
    sessions, customer_id, lang = office
    texts = TEXTS[lang]
    today = date.today()
    later = today + timedelta(days=180)
    page = sign_in("aino")
    page.goto(f"{base_url}/customers/{customer_id}")
    page.click(f"text={texts['start']}")
    page.select_option("#f-contact_channel", "expert_initiative")
    page.fill("#f-contact_reason", "Tarkistetaan tilanne vuoden alussa.")
    page.click(f"text={texts['start_button']}")
    page.wait_for_selector(f"h1:has-text('{texts['assess']}')")
    page.fill("#f-assessment_date", today.isoformat())
    page.select_option("#f-company_situation", "steady")
    page.fill("#f-headcount", "8")
    page.select_option("#f-segment", "local")
    assert texts["no_need"] in page.inner_text("#f-assessment_outcome")
    page.select_option("#f-assessment_outcome", "no_service_need_now")
    page.fill("#f-next_contact_on", later.isoformat())
    page.fill("#f-assessment_notes", "Tilauskanta vakaa, ei rekrytointitarvetta nyt.")
    page.select_option("#f-responsible_expert", "aino")
    page.click(f"text={texts['complete']}")
    page.wait_for_selector(".flashes")
    assert texts["no_more"] in page.inner_text(".flashes")
    with sessions.begin() as s:
        (case,) = customers.customer_processes(s, customers.get_customer(s, customer_id))
        assert runtime.instance_summary(s, case.id)["status"] == "completed"
        assert runtime.instance_variables(s, case.id)["assessment_outcome"] == "no_service_need_now"
        assert open_tasks(s, instance_id=case.id) == []
    page.goto(f"{base_url}/customers/{customer_id}")
    log = page.inner_text("#contacts table")
    assert "ei palvelutarvetta nyt" in log and later.isoformat() in log and f"#{case.id}" in log


def test_the_customer_declines_the_service_promise(sign_in, base_url, office):
    sessions, _customer_id, lang = office
    texts = TEXTS[lang]
    with sessions.begin() as s:
        case = runtime.start_instance(s, "customer_service", by="aino", business_key=BUSINESS_ID, data={
            "business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
            "contact_reason": "Kasvu"})
        [task] = open_tasks(s, instance_id=case.id)
        runtime.complete_task(s, task.id, {
            "assessment_date": date.today().isoformat(), "assessment_method": "phone", "company_situation": "growth",
            "headcount": 42, "segment": "local", "identified_needs": ["recruitment"],
            "process_agreed_with_customer": False, "responsible_expert": "aino"}, by="aino")
        [promise] = open_tasks(s, instance_id=case.id)
    page = sign_in("aino")
    page.goto(f"{base_url}/tasks/{promise.id}")
    assert texts["promise"] in page.inner_text("h1")
    assert texts["declined"] in page.inner_text("#f-service_promise_outcome")
    page.select_option("#f-service_promise_outcome", "declined")
    page.fill("#f-service_promise_declined_reason", "Yritys hoitaa rekrytoinnin itse.")
    page.click(f"text={texts['complete']}")
    page.wait_for_selector(".flashes")
    assert texts["no_more"] in page.inner_text(".flashes")
    with sessions.begin() as s:
        variables = runtime.instance_variables(s, case.id)
        assert runtime.instance_summary(s, case.id)["status"] == "completed" and open_tasks(s, instance_id=case.id) == []
        assert variables["service_promise_declined_reason"] == "Yritys hoitaa rekrytoinnin itse."
        assert s.scalar(select(func.count()).select_from(Instance).where(Instance.process_id == "aftercare")) == 0
