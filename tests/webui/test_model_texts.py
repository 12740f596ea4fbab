"""Model texts on the web pages: the shipped process walked in English shows no Finnish model text,
a case shows the texts of its own version, and the case data beside a task shows labels and
formatted values instead of variable names and ids."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from babel.dates import format_date
from markupsafe import escape

from engine import customers, deploy, drafts, model_texts, runtime, timers, users
from engine.db import utcnow
from engine.inbox import tasks as open_tasks
from engine.models import Instance, InstanceStatus

BPMN = Path(__file__).parents[2] / "bpmn"
BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"
START = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
         "contact_reason": "Kasvusuunnitelma"}
MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="urn:t">
  <bpmn:process id="texts" name="Tekstit" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:userTask id="work" name="{task}" camunda:candidateGroups="expert">
      <bpmn:documentation>Tee työ.</bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="note" label="Muistiinpanot" type="string" />
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def shipped(sessions):
    """Deploy the shipped models and register the customer."""
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID}, by="test")


def sign_in(client, sessions, name: str, locale: str) -> str:
    """Create a user of every working role in the given language and sign the client in as them."""
    with sessions.begin() as s:
        users.add_user(s, name, PASSWORD, ["expert", "supervisor", "designer", "auditor"], locale=locale,
                       display_name=name.title())
    response = client.post("/login", data={"username": name, "password": PASSWORD})
    assert response.status_code == 302
    return name


def posted(fields, expert: str) -> dict:
    """Return a valid form submission that takes every service line and starts no new process."""
    data: dict = {}
    for f in fields:
        if f.readonly:
            continue
        if f.type == "date":  # the models' date checks: a start before its end, a planned end ahead
            shift = 30 if f.id.endswith("_planned_end") else -1 if f.id.endswith("_started_on") else 0
            data[f.id] = (date.today() + timedelta(days=shift)).isoformat()
        elif ("email", "true") in f.checks:
            data[f.id] = "emma@example.fi"
        elif f.provider_kinds is not None and not f.required:
            data[f.id] = ""  # a registry provider: this walk has none
        elif f.type == "enum" and f.multiple:
            every = f.required or f.id == "identified_needs"  # every service line; new needs: none
            data[f.id] = [key for key, _name in f.options] if every else []
        elif f.type == "enum":
            data[f.id] = f.default or f.options[0][0]
        elif f.type == "long":
            data[f.id] = "3"
        elif f.type == "boolean":
            data[f.id] = "true"
        else:
            data[f.id] = expert if f.id == "responsible_expert" else "x"
    return data


def finnish_on(page: str) -> list[str]:
    """Return the Finnish model texts (with an English translation of their own) shown whole on a page."""
    found = []
    for text, english in model_texts.catalogue("en").items():
        if english != text and re.search(r'[>"]\s*' + re.escape(str(escape(text))) + r'\s*[<"]', page):
            found.append(text)
    return found


def test_the_shipped_process_walked_in_english_shows_no_finnish_model_text(client, sessions, shipped):
    expert = sign_in(client, sessions, "emma", "en")
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "customer_service", by="test", data=START,
                                             business_key=BUSINESS_ID).id
    seen: list[str] = []
    for _ in range(60):
        with sessions.begin() as s:
            ready = open_tasks(s)  # the case's tasks and those of the aftercare each ended line started
            fields = {t.id: runtime.task_details(s, t.id)["form"] for t in ready}
            status = runtime.get_instance(s, instance_id).status
            running = s.query(Instance).filter(Instance.status == InstanceStatus.RUNNING).count()
            s.expunge_all()
        if not ready:
            if not running:
                break
            fired = timers.fire_due_timers(sessions, now=utcnow() + timedelta(days=400))
            assert fired, "the case waits for nothing the walk can give it"
            continue
        task = ready[0]
        page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
        assert finnish_on(page) == [], task.element_id
        english_name = model_texts.catalogue("en")[task.name]
        assert f"<h1>{escape(english_name)}</h1>" in page
        seen.append(task.element_id)
        response = client.post(f"/tasks/{task.id}", data=posted(fields[task.id], expert))
        assert response.status_code == 302, (task.element_id, response.get_data(as_text=True)[-3000:])
        runtime.forget_cache()  # every step from the database
    assert status == InstanceStatus.COMPLETED
    assert {"assess_service_needs", "plan_recruitment", "plan_training", "plan_development", "plan_change_security",
            "plan_startup", "plan_referral", "aftercare_contact", "hold_follow_up_day"} <= set(seen)
    for url in ("/tasks/?tab=mine", "/tasks/aftercare", "/supervisor/", "/customers/1", "/customers/1/start",
                "/designer/", f"/audit/instances/{instance_id}", "/audit/kpi"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert finnish_on(response.get_data(as_text=True)) == [], url
    assert "<td>Phone</td>" in client.get("/audit/kpi").get_data(as_text=True)  # channel by its option name


def test_a_case_shows_the_texts_of_its_own_version(client, sessions, login_as):
    with sessions.begin() as s:
        deploy.deploy_files(s, {"texts.bpmn": MODEL.format(task="Arvioi palvelutarve asiakkaan kanssa").encode()},
                            by="test")
        old = runtime.start_instance(s, "texts", by="test").id
        deploy.deploy_files(s, {"texts.bpmn": MODEL.format(task="Arvioi tarve uudelleen").encode()}, by="test")
        new = runtime.start_instance(s, "texts", by="test").id
        old_task, new_task = open_tasks(s, instance_id=old)[0].id, open_tasks(s, instance_id=new)[0].id
    runtime.forget_cache()
    sign_in(client, sessions, "emma", "en")
    assert "<h1>Assess service needs with the customer</h1>" in client.get(f"/tasks/{old_task}").get_data(as_text=True)
    page = client.get(f"/tasks/{new_task}").get_data(as_text=True)
    assert "<h1>Arvioi tarve uudelleen</h1>" in page  # no translation yet: the model's own text
    assert '<label for="f-note">Notes</label>' in page
    client.post("/logout")
    login_as("expert")
    assert "<h1>Arvioi palvelutarve asiakkaan kanssa</h1>" in client.get(f"/tasks/{old_task}").get_data(as_text=True)


def _assessed(client, sessions, expert: str) -> str:
    """Complete the needs assessment of a new case; return the next task's page."""
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "customer_service", by="test", data=START,
                                             business_key=BUSINESS_ID).id
        first = open_tasks(s, instance_id=instance_id)[0].id
    form = {"assessment_date": "2026-03-05", "assessment_method": "company_visit", "company_situation": "growth",
            "headcount": "1200", "segment": "local", "identified_needs": ["other_partner_service"],
            "assessment_notes": "Sisäinen muistiinpano", "process_agreed_with_customer": "true",
            "responsible_expert": expert}
    response = client.post(f"/tasks/{first}", data=form)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def _case_data(page: str) -> str:
    return page.split('<dl class="variables">')[1].split("</dl>")[0]


def test_case_data_beside_a_task_shows_labels_and_formatted_values_in_finnish(client, sessions, shipped):
    data = _case_data(_assessed(client, sessions, sign_in(client, sessions, "aino", "fi")))
    assert "<dt>Yrityksen tilanne</dt>" in data and ">Kasvu- tai laajentumisvaihe</dd>" in data
    assert "<dt>Tunnistetut palvelutarpeet</dt>" in data and ">Muu Yritys-Suomi-kumppanin palvelu</dd>" in data
    assert f">{format_date(date(2026, 3, 5), 'short', locale='fi')}</dd>" in data
    assert "<dt>Prosessi ja jälkihoito sovittu asiakkaan kanssa</dt>" in data and ">kyllä</dd>" in data
    assert ">1\xa0200</dd>" in data  # headcount with the Finnish thousands separator
    assert ">Puhelinpalvelu</dd>" in data  # the start form's channel
    for raw in ("company_situation", ">growth<", "other_partner_service", "phone_service", "2026-03-05",
                "Sisäinen muistiinpano", "services"):
        assert raw not in data  # no variable names, ids or unmarked fields


def test_case_data_beside_a_task_shows_labels_and_formatted_values_in_english(client, sessions, shipped):
    data = _case_data(_assessed(client, sessions, sign_in(client, sessions, "emma", "en")))
    assert "<dt>Company situation</dt>" in data and ">Growth or expansion</dd>" in data
    assert f">{format_date(date(2026, 3, 5), 'short', locale='en')}</dd>" in data
    assert ">yes</dd>" in data and ">1,200</dd>" in data
    assert finnish_on(data) == []


def test_the_designer_lists_the_texts_of_a_draft_that_lack_a_translation(client, sessions, login_as):
    user = login_as("designer")
    text = (BPMN / "customer_service.bpmn").read_text()
    changed = text.replace('name="Arvioi palvelutarve asiakkaan kanssa"', 'name="Arvioi tarpeet"')
    response = client.post("/designer/validate", json={"filename": "customer_service.bpmn", "content": changed},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    assert response.get_json()["untranslated"] == [
        {"locale": "en", "text": "Arvioi tarpeet", "line": changed[:changed.index("Arvioi tarpeet")].count("\n") + 1,
         "where": "userTask assess_service_needs: name"}]
    clean = client.post("/designer/validate", json={"filename": "customer_service.bpmn", "content": text},
                        headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    assert clean.get_json()["untranslated"] == []
    with sessions.begin() as s:
        draft = drafts.save_draft(s, user, "customer_service.bpmn", changed, None)
        draft_id = draft.id
    page = client.get(f"/designer/drafts/{draft_id}/deploy").get_data(as_text=True)
    assert "Tekstit ilman käännöstä" in page and "“Arvioi tarpeet”" in page
