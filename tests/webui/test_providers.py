"""Providers pages: list, add, edit, the report with the provider's own feedback, who may do what, and
the provider select of a task form."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine import deploy, providers, runtime
from engine.models import Task, TaskStatus

MODELS = Path(__file__).parents[1] / "engine" / "bpmn"


def _form(**overrides):
    data = {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training", "contact_person": "Kaisa Koulu",
            "email": "kaisa@koulutus.fi", "phone": "+358 40 123 4567", "active": "true"}
    return {**data, **overrides}


def test_expert_adds_a_provider_and_sees_it_listed(client, login_as, sessions):
    login_as("expert")
    response = client.post("/providers/new", data=_form())
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Palveluntuottaja Koulutus Oy lisätty." in page
    assert "1234567-1" in page and "Koulutusorganisaatio" in page and "kaisa@koulutus.fi" in page
    assert "Yksikään palvelulinja ei ole vielä nimennyt tätä palveluntuottajaa." in page
    listing = client.get("/providers/").get_data(as_text=True)
    assert "Koulutus Oy" in listing and "1 palveluntuottaja." in listing
    assert "Koulutus Oy" not in client.get("/providers/?kind=consultant").get_data(as_text=True)


def test_wrong_fields_rerender_the_form_with_the_typed_values(client, login_as):
    login_as("supervisor")
    response = client.post("/providers/new", data=_form(business_id="1234567-2", email="kaisa@", kind="bank"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Y-tunnuksen tarkistusmerkki ei täsmää." in page
    assert "Anna sähköpostiosoite, esim. nimi@esimerkki.fi." in page
    assert 'value="1234567-2"' in page and 'value="Kaisa Koulu"' in page


def test_edit_takes_a_provider_out_of_use(client, login_as, sessions):
    with sessions.begin() as s:
        pid = providers.create_provider(s, _form(), by="seed").id
    login_as("expert")
    page = client.get(f"/providers/{pid}/edit").get_data(as_text=True)
    assert 'value="Koulutus Oy"' in page and 'name="active" value="true" checked' in page
    data = _form(name="Koulutus Oyj")
    del data["active"]  # an unticked checkbox sends nothing
    response = client.post(f"/providers/{pid}/edit", data=data)
    assert response.status_code == 302
    with sessions.begin() as s:
        provider = providers.get_provider(s, pid)
        assert (provider.name, provider.active) == ("Koulutus Oyj", False)
    assert client.get("/providers/999/edit").status_code == 404


def test_provider_feedback_is_recorded_with_date_and_who(client, login_as, sessions):
    with sessions.begin() as s:
        pid = providers.create_provider(s, _form(), by="seed").id
    login_as("expert")
    response = client.post(f"/providers/{pid}/feedback", data={"given_on": "2026-01-15", "text": "Hyvä yhteistyö"})
    assert response.status_code == 302
    page = client.get(f"/providers/{pid}").get_data(as_text=True)
    assert "Palveluntuottajan palaute kirjattiin." in page
    assert "2026-01-15" in page and "Hyvä yhteistyö" in page and "Test expert" in page
    refused = client.post(f"/providers/{pid}/feedback", data={"given_on": "", "text": " "})
    assert refused.status_code == 422 and "Kirjoita palveluntuottajan palaute." in refused.get_data(as_text=True)


def test_auditor_reads_but_does_not_keep_the_registry(client, login_as, sessions):
    with sessions.begin() as s:
        pid = providers.create_provider(s, _form(), by="seed").id
    login_as("auditor")
    page = client.get(f"/providers/{pid}").get_data(as_text=True)
    assert "Koulutus Oy" in page and "Kirjaa palaute" not in page and f"/providers/{pid}/edit" not in page
    assert "Uusi palveluntuottaja" not in client.get("/providers/").get_data(as_text=True)
    assert client.post("/providers/new", data=_form()).status_code == 403
    assert client.post(f"/providers/{pid}/feedback", data={"text": "x"}).status_code == 403


@pytest.fixture
def line_task(sessions):
    with sessions.begin() as s:
        deploy.deploy_files(s, {n: (MODELS / n).read_bytes() for n in ("provider_line.bpmn",
                                                                        "provider_aftercare.bpmn")}, by="d")
        trainer = providers.create_provider(s, _form(), by="seed").id
        providers.create_provider(s, _form(name="Finnvera", business_id="0112233-3", kind="partner"), by="seed")
        providers.create_provider(s, _form(name="Vanha Konsultti", business_id="2345678-0", kind="consultant",
                                           active="false"), by="seed")
        iid = runtime.start_instance(s, "provider_line", by="seed", business_key="0737546-2").id
        task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))
    return trainer, iid, task


def test_task_form_offers_the_active_providers_of_the_field_kinds(client, login_as, sessions, line_task):
    trainer, iid, task = line_task
    login_as("expert")
    page = client.get(f"/tasks/{task}").get_data(as_text=True)
    assert f'<option value="{trainer}">Koulutus Oy (Koulutusorganisaatio)</option>' in page
    assert "Finnvera" not in page and "Vanha Konsultti" not in page  # other kind, not in use
    refused = client.post(f"/tasks/{task}", data={"line_ended_on": "2026-03-01", "line_provider": "999"})
    assert refused.status_code == 422
    assert "Valitse palveluntuottaja rekisteristä" in refused.get_data(as_text=True)
    done = client.post(f"/tasks/{task}", data={"line_ended_on": "2026-03-01", "line_provider": str(trainer)})
    assert done.status_code == 302
    with sessions.begin() as s:
        variables = runtime.instance_variables(s, iid)
    assert (variables["line_provider"], variables["line_provider_name"]) == (trainer, "Koulutus Oy")
    report = client.get(f"/providers/{trainer}").get_data(as_text=True)
    assert 'data-figure="delivered">1<' in report and "2026-03-01" in report


def test_report_page_shows_the_aftercare_figures_and_feedback(client, login_as, sessions, line_task):
    trainer, _iid, _task = line_task
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "provider_aftercare", by="seed", business_key="0737546-2",
                                     data={"service_provider_id": trainer, "service_provider_name": "Koulutus Oy"}).id
        task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))
        runtime.complete_task(s, task, {"aftercare_contacted_on": "2026-03-05", "service_met_need": "partly",
                                        "service_rating": "4", "feedback_from_customer": "Aikataulu venyi",
                                        "new_service_needs": ["recruitment"]}, by="seed")
    login_as("supervisor")
    page = client.get(f"/providers/{trainer}").get_data(as_text=True)
    assert 'data-figure="rating">4.0' in page and "(1 arvio)" in page
    assert "Osittain: 1" in page and "Aikataulu venyi" in page and "Mitä TE-toimisto voisi tehdä paremmin" in page
    assert 'data-figure="new-needs">1' in page and "recruitment: 1" in page


def test_an_expert_sees_every_figure_but_only_the_cases_they_may_read(client, login_as, sessions, line_task):
    trainer, iid, task = line_task
    with sessions.begin() as s:  # a colleague closes the line of a customer this expert does not work on
        runtime.complete_task(s, task, {"line_ended_on": "2026-03-01", "line_provider": str(trainer)}, by="kollega")
    login_as("expert")
    page = client.get(f"/providers/{trainer}").get_data(as_text=True)
    assert 'data-figure="delivered">1<' in page and f"#{iid}" not in page and 'id="hidden-cases"' in page
    client.post("/logout")
    login_as("auditor")
    page = client.get(f"/providers/{trainer}").get_data(as_text=True)
    assert 'data-figure="delivered">1<' in page and f"#{iid}" in page and 'id="hidden-cases"' not in page
