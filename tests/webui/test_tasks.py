"""Expert pages on the shipped customer service process: inbox tabs, claim/release/reassign, the task
form (happy path, wrong fields, taken by someone else, expired sign-in), next-task redirect, start
from the customer page, my aftercare."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import audit, customers, deploy, runtime, users
from engine.db import utcnow
from engine.errors import Conflict
from engine.inbox import claim
from engine.inbox import tasks as open_tasks
from engine.models import Instance, Task
from webui.formfields import safe_markdown

BPMN = Path(__file__).parents[2] / "bpmn"
BUSINESS_ID = "0737546-2"
START = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
         "contact_reason": "Kasvusuunnitelma"}


@pytest.fixture
def shipped(sessions):
    """Deploy the shipped models and register the customer."""
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        return customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID}, by="test").id


@pytest.fixture
def expert(login_as, shipped):
    return login_as("expert")


def start_case(sessions, **kwargs) -> int:
    with sessions.begin() as s:
        return runtime.start_instance(s, "customer_service", by="test", data=START, business_key=BUSINESS_ID,
                                      **kwargs).id


def open_task(sessions, instance_id) -> Task:
    with sessions.begin() as s:
        found = open_tasks(s, instance_id=instance_id)
        s.expunge_all()
        return found[0]


def assessment(**overrides):
    """Return a valid posted needs assessment (checkbox lists as lists)."""
    form = {"assessment_date": date.today().isoformat(), "assessment_method": "company_visit",
            "company_situation": "growth", "headcount": "42", "segment": "local",
            "identified_needs": ["other_partner_service"], "contact_person": "Matti", "contact_phone": "040 1",
            "assessment_notes": "Hyvä käynti", "process_agreed_with_customer": "true",
            "responsible_expert": "test-expert"}
    return {**form, **overrides}


def events(sessions, instance_id, kind):
    with sessions.begin() as s:
        return [json.loads(e.data) | {"actor": e.actor} for e in audit.history(s, instance_id) if e.kind == kind]


def test_group_tab_lists_unassigned_tasks_and_my_tab_my_own(client, expert, sessions):
    instance_id = start_case(sessions)
    task = open_task(sessions, instance_id)
    group = client.get("/tasks/?tab=group").get_data(as_text=True)
    assert "Arvioi palvelutarve asiakkaan kanssa" in group and "Pirkan Puu Oy" in group and BUSINESS_ID in group
    assert "Arvioi palvelutarve" not in client.get("/tasks/").get_data(as_text=True)
    assert "Kaikki avoimet tehtävät" not in group  # the "all" tab is the supervisor's
    client.post(f"/tasks/{task.id}/claim")
    mine = client.get("/tasks/?tab=mine").get_data(as_text=True)
    assert "Arvioi palvelutarve asiakkaan kanssa" in mine and "Vapauta" in mine


def test_supervisor_sees_all_open_tasks_tab(client, login_as, shipped, sessions):
    start_case(sessions)
    login_as("supervisor")
    page = client.get("/tasks/?tab=all").get_data(as_text=True)
    assert "Kaikki avoimet tehtävät" in page and "Arvioi palvelutarve asiakkaan kanssa" in page
    assert "Siirrä" in page


def test_claim_release_and_reassign_write_audit_rows(client, expert, login_as, sessions):
    instance_id = start_case(sessions)
    task = open_task(sessions, instance_id)
    response = client.post(f"/tasks/{task.id}/claim")
    assert response.headers["Location"] == f"/tasks/{task.id}"
    assert events(sessions, instance_id, "task_claimed")[0]["actor"] == expert
    response = client.post(f"/tasks/{task.id}/release", data={"next": "/tasks/?tab=group"})
    assert response.headers["Location"] == "/tasks/?tab=group"
    assert events(sessions, instance_id, "task_released")[0]["actor"] == expert
    client.post("/logout")
    supervisor = login_as("supervisor")
    response = client.post(f"/tasks/{task.id}/assign", data={"assignee": expert})
    assert response.status_code == 302
    assert "Tehtävä siirretty henkilölle Test expert." in client.get(response.headers["Location"]).get_data(
        as_text=True)
    assigned = events(sessions, instance_id, "task_assigned")[0]
    assert (assigned["actor"], assigned["assignee"]) == (supervisor, expert)


def test_reassign_refuses_someone_who_is_not_an_expert(client, login_as, shipped, sessions):
    task = open_task(sessions, start_case(sessions))
    login_as("supervisor")
    assert client.post(f"/tasks/{task.id}/assign", data={"assignee": "test-supervisor"}).status_code == 400


def test_claim_of_a_taken_task_says_so(client, expert, sessions):
    task = open_task(sessions, start_case(sessions))
    with sessions.begin() as s:
        users.add_user(s, "toinen", "salasana-123", ["expert"])
        claim(s, task.id, by="toinen")
    response = client.post(f"/tasks/{task.id}/claim", follow_redirects=True)
    assert "Et saanut tehtävää" in response.get_data(as_text=True)


def test_task_page_renders_every_field_type_with_labels(client, expert, sessions):
    task = open_task(sessions, start_case(sessions))
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert '<label for="f-assessment_date">' in page and 'type="date"' in page
    assert re.search(r'id="f-headcount" name="headcount" type="number"[^>]* min="0" max="100000"', page)
    assert '<select id="f-segment" name="segment" required' in page
    assert 'type="checkbox" id="f-identified_needs-recruitment" name="identified_needs"' in page
    assert '<textarea id="f-assessment_notes"' in page
    assert 'type="checkbox" id="f-process_agreed_with_customer"' in page
    assert '<option value="company_visit" selected>' in page  # the field's default
    assert "(pakollinen)" in page and "TE-toimisto vastaa paikallisesti" in page  # required mark, help
    assert "<p>Käy yrityksen tilanne ja tarpeet läpi" in page  # documentation
    # customer and case data beside the form: labels and option names, not variable names and ids
    assert "Pirkan Puu Oy" in page and "<dt>Yhteydenoton syy</dt>" in page and "<dt>contact_reason</dt>" not in page
    assert "Puhelinpalvelu" in page and "phone_service" not in page


def test_completing_goes_straight_to_my_next_task(client, expert, sessions):
    instance_id = start_case(sessions)
    task = open_task(sessions, instance_id)
    response = client.post(f"/tasks/{task.id}", data=assessment())
    following = open_task(sessions, instance_id)
    assert following.element_id == "plan_referral" and following.assignee == expert
    assert response.headers["Location"] == f"/tasks/{following.id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "valmis" in page and "Sovi ohjauksesta asiakkaan kanssa" in page
    done = events(sessions, instance_id, "task_completed")[0]
    assert done["actor"] == expert and done["submitted"]["identified_needs"] == ["other_partner_service"]


def test_completing_when_the_next_task_is_someone_elses_returns_to_the_inbox(client, expert, sessions):
    with sessions.begin() as s:
        users.add_user(s, "toinen", "salasana-123", ["expert"])
    task = open_task(sessions, start_case(sessions))
    response = client.post(f"/tasks/{task.id}", data=assessment(responsible_expert="toinen"))
    assert response.headers["Location"] == "/tasks/"
    assert "Tässä asiassa ei ole nyt sinulle muita tehtäviä." in client.get("/tasks/").get_data(as_text=True)


def test_wrong_fields_rerender_with_every_typed_value_and_messages(client, expert, sessions):
    task = open_task(sessions, start_case(sessions))
    response = client.post(f"/tasks/{task.id}", data=assessment(
        headcount="-5", identified_needs=["recruitment", "financing"], assessment_date="",
        assessment_notes="Muistiinpano <b>tallessa</b>", process_agreed_with_customer="false"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Tarkista nämä kentät" in page
    assert "Tämä kenttä on pakollinen" in page and "Arvon on oltava vähintään 0" in page
    assert 'value="-5"' in page and "Muistiinpano &lt;b&gt;tallessa&lt;/b&gt;</textarea>" in page
    assert 'value="recruitment" checked' in page and 'value="financing" checked' in page
    assert 'value="start_up" checked' not in page
    agreed = re.search(r'<input type="checkbox" id="f-process_agreed_with_customer"[^>]*>', page)[0]
    assert "checked" not in agreed  # unticked stays unticked
    assert 'aria-invalid="true"' in page
    assert open_task(sessions, task.instance_id).id == task.id  # nothing completed


def test_task_completed_by_someone_else_keeps_what_i_typed(client, expert, sessions):
    instance_id = start_case(sessions)
    task = open_task(sessions, instance_id)
    page = client.get(f"/tasks/{task.id}")
    assert page.status_code == 200
    with sessions.begin() as s:
        users.add_user(s, "nopea", "salasana-123", ["expert"], display_name="Nopea Nina")
        runtime.complete_task(s, task.id, {k: v for k, v in assessment(responsible_expert="nopea").items()},
                              by="nopea", roles={"expert"})
    response = client.post(f"/tasks/{task.id}", data=assessment(assessment_notes="Oma tärkeä muistiinpano"))
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "nopea teki tämän tehtävän jo" in body
    assert "Oma tärkeä muistiinpano</textarea>" in body


def test_expired_sign_in_brings_me_back_to_the_filled_task_form(client, clock, expert, sessions):
    task = open_task(sessions, start_case(sessions))
    token = client.csrf_token()
    clock.move(hours=2)
    typed = assessment(assessment_notes="Kirjoitettu ennen uloskirjautumista", csrf_token=token)
    response = client.post(f"/tasks/{task.id}", data=typed)
    assert response.headers["Location"] == f"/login?next=/tasks/{task.id}"
    response = client.post("/login", data={"username": expert, "password": "test-password",
                                           "next": f"/tasks/{task.id}"})
    assert response.headers["Location"] == f"/tasks/{task.id}"
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Kirjoitettu ennen uloskirjautumista</textarea>" in page
    assert 'value="other_partner_service" checked' in page


def test_roles_without_tasks_get_403(client, login_as, shipped, sessions):
    task = open_task(sessions, start_case(sessions))
    login_as("auditor")
    assert client.get("/tasks/").status_code == 403
    assert client.get(f"/tasks/{task.id}").status_code == 403
    client.post("/logout")
    login_as("expert")
    assert client.post(f"/tasks/{task.id}/assign", data={"assignee": "test-expert"}).status_code == 403


def test_expert_cannot_complete_a_supervisor_task(client, expert, sessions):
    instance_id = start_case(sessions)
    with sessions.begin() as s:
        row = s.get(Task, open_task(sessions, instance_id).id)
        row.candidate_role = "supervisor"
    response = client.post(f"/tasks/{row.id}", data=assessment())
    assert response.status_code == 404  # not mine to see (engine.access): no case data either
    assert "Pirkan Puu Oy" not in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert s.get(Task, row.id).state == "ready"


def test_start_from_the_customer_page_opens_the_first_task(client, expert, shipped, sessions):
    form = client.get(f"/customers/{shipped}/start").get_data(as_text=True)
    assert f'value="{BUSINESS_ID}"' in form and 'value="Pirkan Puu Oy"' in form
    response = client.post(f"/customers/{shipped}/start", data={**START, "contact_reason": "Rekrytointi"})
    with sessions.begin() as s:
        first = s.query(Task).one()
        assert first.element_id == "assess_service_needs"
        assert runtime.get_instance(s, first.instance_id).business_key == BUSINESS_ID
    assert response.headers["Location"] == f"/tasks/{first.id}"
    page = client.get(f"/customers/{shipped}").get_data(as_text=True)
    assert "Arvioi palvelutarve asiakkaan kanssa" in page and "Aloita uusi palveluprosessi" in page


def test_start_form_errors_keep_the_typed_values(client, expert, shipped, sessions):
    response = client.post(f"/customers/{shipped}/start", data={**START, "contact_channel": "",
                                                                "contact_reason": "Pitkä syy"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Tämä kenttä on pakollinen" in page and "Pitkä syy</textarea>" in page
    other = client.post(f"/customers/{shipped}/start", data={**START, "business_id": "2617416-4"})
    assert other.status_code == 422
    with sessions.begin() as s:
        assert s.query(Task).count() == 0


def test_my_aftercare_lists_my_aftercare_tasks_by_due_date(client, expert, sessions):
    instance_id = start_case(sessions, now=utcnow() - timedelta(days=40))
    with sessions.begin() as s:
        for _ in range(5):
            rows = open_tasks(s, instance_id=instance_id)
            if not rows:  # the service line ended: its aftercare runs as the case's child instance
                instance_id = s.scalar(select(Instance.id).where(Instance.parent_instance_id == instance_id))
                rows = open_tasks(s, instance_id=instance_id)
            row = rows[0]
            if row.element_id == "aftercare_contact":
                break
            fields = runtime.task_details(s, row.id)["form"]
            at = utcnow() - timedelta(days=30)
            runtime.complete_task(s, row.id, _valid(fields, at.date()), by=expert, now=at)
    page = client.get("/tasks/aftercare").get_data(as_text=True)
    assert "Ota jälkihoitoyhteys asiakkaaseen" in page and "Myöhässä" in page
    assert "Arvioi palvelutarve" not in page


def _valid(fields, on=None):
    values = {}
    for f in fields:
        if f.provider_kinds is not None:  # a registry provider: none, the office delivered the service
            continue
        if f.type == "date":
            values[f.id] = (on or date.today()).isoformat()
        elif f.type == "enum":
            values[f.id] = ["other_partner_service"] if f.id == "identified_needs" else (
                [f.options[0][0]] if f.multiple else f.default or f.options[0][0])
        elif f.type == "long":
            values[f.id] = 3
        elif f.type == "boolean":
            values[f.id] = True
        else:
            values[f.id] = "test-expert" if f.id == "responsible_expert" else "x@te.fi" if f.id.endswith("_email") else "x"
    return values


def test_filters_and_sorting(client, expert, sessions):
    start_case(sessions)
    with sessions.begin() as s:
        runtime.start_instance(s, "customer_service", by="t", data={**START, "business_id": "2617416-4"},
                               business_key="2617416-4")
    page = client.get("/tasks/?tab=group&customer=2617416-4").get_data(as_text=True)
    assert "2617416-4" in page and BUSINESS_ID not in page.split("<tbody>")[1]
    assert "1 tehtävä." in page
    assert "Ei tehtäviä." in client.get("/tasks/?tab=group&due=overdue").get_data(as_text=True)
    page = client.get("/tasks/?tab=group&sort=-created").get_data(as_text=True)
    assert 'aria-sort="descending"' in page
    assert "2 tehtävää." in client.get("/tasks/?tab=group&process=customer_service").get_data(as_text=True)


def test_documentation_markdown_is_rendered_safely():
    html = str(safe_markdown("**Soita** asiakkaalle <script>alert(1)</script> [x](javascript:alert(1))"))
    assert "<strong>Soita</strong>" in html and "<script>" not in html and "javascript:" not in html


def test_a_corrected_form_completes_after_a_refused_one(client, expert, sessions):
    runtime.forget_cache()
    instance_id = start_case(sessions)
    task = open_task(sessions, instance_id)
    assert client.post(f"/tasks/{task.id}", data=assessment(headcount="-5")).status_code == 422
    response = client.post(f"/tasks/{task.id}", data=assessment())
    assert response.status_code == 302
    assert open_task(sessions, instance_id).element_id == "plan_referral"


def test_a_completed_task_page_says_who_did_it_and_offers_no_form(client, expert, sessions):
    task = open_task(sessions, start_case(sessions))
    client.post(f"/tasks/{task.id}", data=assessment())
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Test expert teki tämän tehtävän" in page and "Merkitse tehtävä tehdyksi" not in page


def test_a_concurrent_change_asks_to_try_again_and_keeps_values(client, expert, sessions, monkeypatch):
    task = open_task(sessions, start_case(sessions))

    def lose_the_race(*args, **kwargs):
        raise Conflict("someone else changed this case at the same time; reload and try again")

    monkeypatch.setattr(runtime, "complete_task", lose_the_race)  # a real race needs two writers at once
    response = client.post(f"/tasks/{task.id}", data=assessment(assessment_notes="Ei saa kadota"))
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Joku muu muutti tätä asiaa samalla hetkellä" in body and "Ei saa kadota</textarea>" in body
