"""Real Chromium, in Finnish and in English: an expert's aftercare contact. The customer is not reached
twice ("customer not reached" on the task page: day, channel, note; a day in the future is refused in
the user's language), each attempt is listed on the reopened contact, then the customer is reached and
the conversation recorded. The aftercare ends as reached with both attempts kept, and the customer's
timeline (the case history an expert reads) shows both attempts.

The case is walked to its aftercare contact through the engine with the demo office's form values;
the harness (live server, chromium, sign-in) is in conftest.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import customers, demo, runtime, users
from engine.db import utcnow
from engine.models import Instance, InstanceStatus, Task, TaskStatus

BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"  # what conftest's sign_in types
TEXTS = {
    "fi": {"action": "Asiakasta ei tavoitettu", "contact": "Ota jälkihoitoyhteys asiakkaaseen",
           "future": "ei voi olla tulevaisuudessa", "earlier": "Kirjattu aiemmin", "complete": "Merkitse tehtävä tehdyksi",
           "timeline": "Kirjattu tehtävään: Asiakasta ei tavoitettu", "audit": "Tehtävän toiminto", "phone": "Puhelin", "email": "Sähköposti"},
    "en": {"action": "Customer not reached", "contact": "Make the aftercare contact",
           "future": "cannot be in the future", "earlier": "Recorded earlier", "complete": "Complete the task",
           "timeline": "Recorded on a task: Customer not reached", "audit": "Task action", "phone": "Phone", "email": "E-mail"},
}


def _to_aftercare_contact(sessions, expert: str) -> str:
    """Walk a recruitment case that started 20 days ago to its line's aftercare contact; return the task id."""
    moment = utcnow() - timedelta(days=20)
    with sessions.begin() as s:
        runtime.start_instance(s, "customer_service", by=expert, business_key=BUSINESS_ID, now=moment, data={
            "business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
            "contact_reason": "Tarvitsee lisää osaajia"})
        for _ in range(40):
            ids = select(Instance.id).where(Instance.business_key == BUSINESS_ID,
                                            Instance.status == InstanceStatus.RUNNING)
            ready = list(s.scalars(select(Task).where(Task.instance_id.in_(ids), Task.state == TaskStatus.READY)
                                   .order_by(Task.created_at, Task.id)))
            contact = next((t for t in ready if t.element_id == "aftercare_contact"), None)
            if contact is not None:
                return contact.id
            moment += timedelta(hours=6)
            if not ready:
                for iid in s.scalars(ids):
                    runtime.fire_instance_timers(s, iid, now=utcnow())
                continue
            task = ready[0]
            runtime.complete_task(s, task.id, demo.form_data(s, task.id, by=expert, now=moment),
                                  by=task.assignee or expert, now=moment)
    raise AssertionError("the case did not reach its aftercare contact")


@pytest.fixture(params=["fi", "en"])
def office(request, live_db):
    """Return (session factory, customer id, aftercare contact task id, language)."""
    lang, sessions = request.param, live_db[1]
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija", locale=lang)
        users.add_user(s, "tarja", PASSWORD, ["auditor"], display_name="Tarja Tarkastaja", locale=lang)
        customer = customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID,
                                                 "responsible_expert": "aino"}, by="test")
    return sessions, customer.id, _to_aftercare_contact(sessions, "aino"), lang


def _not_reached(page, day: str, channel: str, note: str) -> None:
    form = page.locator("#action-customer_not_reached form")
    form.locator("#f-aftercare_attempt_on").fill(day)
    form.locator("#f-aftercare_attempt_channel").select_option(channel)
    form.locator("#f-aftercare_attempt_note").fill(note)
    form.locator("button[type=submit]").click()


def test_customer_not_reached_twice_then_reached(sign_in, base_url, office):
    sessions, customer_id, task_id, lang = office
    texts = TEXTS[lang]
    today, tomorrow = utcnow().date(), utcnow().date() + timedelta(days=2)
    page = sign_in("aino")
    page.goto(f"{base_url}/tasks/{task_id}")
    assert texts["contact"] in page.inner_text("h1")

    _not_reached(page, tomorrow.isoformat(), "phone", "Ei vastannut")
    page.wait_for_selector("#action-customer_not_reached .error-summary")
    assert texts["future"] in page.inner_text("#action-customer_not_reached")
    assert page.input_value("#action-customer_not_reached #f-aftercare_attempt_note") == "Ei vastannut"

    _not_reached(page, today.isoformat(), "phone", "Ei vastannut")
    page.wait_for_selector(f"h1:has-text('{texts['contact']}')")
    assert texts["action"] in page.inner_text(".flashes")
    runs = page.locator("#action-customer_not_reached ol.action-runs li")
    assert runs.count() == 1 and "Ei vastannut" in runs.first.inner_text()

    _not_reached(page, today.isoformat(), "email", "Jätetty soittopyyntö")
    page.wait_for_selector("#action-customer_not_reached ol.action-runs li:nth-child(2)")
    runs = page.locator("#action-customer_not_reached ol.action-runs li")
    assert texts["earlier"] in page.inner_text("#action-customer_not_reached")
    assert texts["phone"] in runs.nth(0).inner_text() and texts["email"] in runs.nth(1).inner_text()
    assert "Jätetty soittopyyntö" in runs.nth(1).inner_text()

    page.fill("#f-aftercare_contacted_on", today.isoformat())
    page.select_option("#f-aftercare_channel", "phone")
    page.select_option("#f-service_met_need", "yes")
    page.fill("#f-feedback_from_customer", "Hakijoita tuli hyvin.")
    page.fill("#f-needs_reassessment", "Ei uusia tarpeita nyt.")
    page.click(f".task-form button:has-text('{texts['complete']}')")
    page.wait_for_url(f"{base_url}/tasks/")

    with sessions.begin() as s:
        (aftercare,) = s.scalars(select(Instance).where(Instance.business_key == BUSINESS_ID,
                                                        Instance.process_id == "aftercare"))
        variables = runtime.instance_variables(s, aftercare.id)
        assert aftercare.status == InstanceStatus.COMPLETED
        assert variables["aftercare_outcome"] == "reached"
        assert variables["aftercare_contacted_on"] == today.isoformat()
        assert [(a["on"], a["channel"], a["note"]) for a in variables["aftercare_attempts"]] == [
            (today.isoformat(), "phone", "Ei vastannut"), (today.isoformat(), "email", "Jätetty soittopyyntö")]
    page.goto(f"{base_url}/customers/{customer_id}")
    assert page.inner_text("section.timeline").count(texts["timeline"]) == 2
    page = sign_in("tarja")  # the auditor's history of the aftercare instance: both attempts with their notes
    page.goto(f"{base_url}/audit/instances/{aftercare.id}")
    actions = page.locator("table.timeline tr[data-element=customer_not_reached]")
    assert actions.count() == 2
    assert texts["audit"] in actions.nth(0).inner_text() and "Ei vastannut" in actions.nth(0).inner_text()
    assert "Jätetty soittopyyntö" in actions.nth(1).inner_text()
