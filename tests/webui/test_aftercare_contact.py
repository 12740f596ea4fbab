"""The aftercare contact's task page: the "customer not reached" action (a task action of the
model), its earlier attempts, refused input, the conversation form's order, both languages."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from engine import deploy, runtime
from engine.inbox import tasks as open_tasks

BPMN = Path(__file__).parents[2] / "bpmn"
BUSINESS_ID = "0737546-2"
YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


@pytest.fixture
def expert(login_as, sessions):
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
    return login_as("expert")


def start_line(sessions, expert: str) -> int:
    data = {"service_line": "recruitment", "service_ended_on": YESTERDAY, "responsible_expert": expert,
            "business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "segment": "local"}
    with sessions.begin() as s:
        return runtime.start_instance(s, "aftercare", by="test", data=data, business_key=BUSINESS_ID,
                                      validate_form=False, start_message="service_line_ended").id


def contact_id(sessions, instance_id: int) -> str:
    with sessions.begin() as s:
        [task] = [t for t in open_tasks(s, instance_id=instance_id) if t.element_id == "aftercare_contact"]
        return task.id


def attempt(note: str, on: str = YESTERDAY) -> dict[str, str]:
    return {"aftercare_attempt_on": on, "aftercare_attempt_channel": "phone", "aftercare_attempt_note": note}


def test_customer_not_reached_twice_then_reached_on_the_task_page(client, expert, sessions):
    iid = start_line(sessions, expert)
    first = contact_id(sessions, iid)
    page = client.get(f"/tasks/{first}").get_data(as_text=True)
    assert '<h2 id="action-heading-customer_not_reached">Asiakasta ei tavoitettu</h2>' in page
    assert f'action="/tasks/{first}/action/customer_not_reached"' in page
    assert '<button type="submit" class="button secondary">Asiakasta ei tavoitettu</button>' in page
    for name in ("aftercare_attempt_on", "aftercare_attempt_channel", "aftercare_attempt_note"):
        assert f'name="{name}"' in page
    response = client.post(f"/tasks/{first}/action/customer_not_reached", data=attempt("Ei vastannut"))
    second = contact_id(sessions, iid)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/tasks/{second}")
    assert second != first
    page = client.get(f"/tasks/{second}").get_data(as_text=True)
    assert "Kirjattu: Asiakasta ei tavoitettu." in page and "Kirjattu aiemmin" in page
    assert re.search(r"<li>" + re.escape(YESTERDAY) + r" · Puhelin · Ei vastannut", page)
    client.post(f"/tasks/{second}/action/customer_not_reached", data=attempt("Soittopyyntö jätetty"))
    third = contact_id(sessions, iid)
    page = client.get(f"/tasks/{third}").get_data(as_text=True)
    assert page.count("<li>" + YESTERDAY) == 2
    response = client.post(f"/tasks/{third}", data={
        "aftercare_contacted_on": YESTERDAY, "aftercare_channel": "phone", "service_met_need": "yes",
        "needs_reassessment": "Ei uusia tarpeita", "named_contact_confirmed": "true"})
    assert response.status_code == 302
    with sessions.begin() as s:
        data = runtime.instance_variables(s, iid)
        assert str(runtime.get_instance(s, iid).status) == "completed"
    assert data["aftercare_outcome"] == "reached" and len(data["aftercare_attempts"]) == 2


def test_a_refused_attempt_keeps_what_was_typed_and_opens_no_new_contact(client, expert, sessions):
    iid = start_line(sessions, expert)
    task_id = contact_id(sessions, iid)
    future = (date.today() + timedelta(days=7)).isoformat()
    response = client.post(f"/tasks/{task_id}/action/customer_not_reached", data=attempt("Ei vastannut", future))
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Ei vastannut</textarea>" not in page  # a one-line input
    assert 'value="Ei vastannut"' in page and f'value="{future}"' in page and 'aria-invalid="true"' in page
    assert contact_id(sessions, iid) == task_id
    assert client.post(f"/tasks/{task_id}/action/no_such_action", data={}).status_code == 404


def test_the_conversation_follows_the_themes_in_order_and_the_impression_is_not_the_survey(client, expert,
                                                                                          sessions):
    iid = start_line(sessions, expert)
    page = client.get(f"/tasks/{contact_id(sessions, iid)}").get_data(as_text=True)
    form = page[page.index('class="stack task-form"'):]
    order = ["service_met_need", "feedback_went_well", "feedback_from_customer", "feedback_to_customer",
             "keep_in_touch", "service_rating", "experience_positive", "needs_reassessment"]
    positions = [form.index(f'name="{name}"') for name in order]
    assert positions == sorted(positions)
    assert "Asiantuntijan käsitys" in form and "ei ole valtakunnallisen asiakaspalautekyselyn tulos" in form


def test_the_action_speaks_english_to_an_english_user(client, expert, sessions):
    iid = start_line(sessions, expert)
    client.post("/language", data={"lang": "en"})
    page = client.get(f"/tasks/{contact_id(sessions, iid)}").get_data(as_text=True)
    assert '<button type="submit" class="button secondary">Customer not reached</button>' in page
    assert "Did the service meet the company&#39;s need?" in page or "Did the service meet the company's need?" in page


def test_the_contact_page_offers_the_other_lines_due_at_about_the_same_time_and_covers_them(client, expert,
                                                                                             sessions):
    with sessions.begin() as s:
        parent = runtime.start_instance(s, "customer_service", by="test", business_key=BUSINESS_ID, data={
            "business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
            "contact_reason": "Kasvu"}).id
        iids = [runtime.start_instance(s, "aftercare", by="test", business_key=BUSINESS_ID, validate_form=False,
                                       start_message="service_line_ended", parent_instance_id=parent, data={
                                           "service_line": line, "service_ended_on": YESTERDAY,
                                           "responsible_expert": expert, "business_id": BUSINESS_ID,
                                           "company_name": "Pirkan Puu Oy", "segment": "local"}).id
                for line in ("recruitment", "referral")]
    mine, other = contact_id(sessions, iids[0]), contact_id(sessions, iids[1])
    page = client.get(f"/tasks/{mine}").get_data(as_text=True)
    assert "Tämä yhteydenotto kattaa myös" in page
    assert f'name="covered_contacts" value="{other}"' in page and "Yritys-Suomi-kumppanien palvelut" in page
    response = client.post(f"/tasks/{mine}", data={
        "aftercare_contacted_on": YESTERDAY, "aftercare_channel": "phone", "service_met_need": "yes",
        "needs_reassessment": "Ei uusia tarpeita", "named_contact_confirmed": "true", "covered_contacts": other})
    assert response.status_code == 302
    with sessions.begin() as s:
        covered = runtime.instance_variables(s, iids[1])
        assert str(runtime.get_instance(s, iids[1]).status) == "completed"
    assert covered["aftercare_covered_by"] == iids[0] and covered["service_met_need"] == "yes"
