"""Customer page: change the responsible expert (own customer for an expert, anyone's for a supervisor);
task page: cancel a case with a reason, and a supervisor's reassign that also moves the case."""

from __future__ import annotations

import json

import pytest

from engine import audit, customers, runtime, users
from engine.inbox import tasks as open_tasks

from .test_tasks import BUSINESS_ID, assessment, shipped, start_case  # noqa: F401 - fixture

NEW = "eero.expert"
PASSWORD = "test-password"  # the harness's login_as password


@pytest.fixture
def office(sessions, shipped):  # noqa: F811 - the fixture above
    with sessions.begin() as s:
        users.add_user(s, NEW, PASSWORD, ["expert"], display_name="Eero Expert")
        users.add_user(s, "test-expert", PASSWORD, ["expert"], display_name="Test expert")
        customer = customers.get_customer(s, shipped)
        customer.responsible_expert = "test-expert"
    return shipped


def _assessed_case(sessions) -> int:
    instance_id = start_case(sessions)
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=instance_id)
        form = assessment(identified_needs=["recruitment"], headcount=42, process_agreed_with_customer=True)
        runtime.complete_task(s, task.id, {k: v for k, v in form.items()
                                           if k not in ("contact_person", "contact_phone")}, by="test-expert")
    return instance_id


def test_expert_moves_their_customer_and_its_open_process_to_another_expert(client, login_as, sessions, office):
    instance_id = _assessed_case(sessions)
    login_as("test-expert")
    page = client.get(f"/customers/{office}").get_data(as_text=True)
    assert 'id="change-expert"' in page and f'<option value="{NEW}">Eero Expert ({NEW})</option>' in page
    response = client.post(f"/customers/{office}/responsible-expert", data={"responsible_expert": NEW})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Vastuuasiantuntija on nyt Eero Expert" in page
    with sessions.begin() as s:
        assert customers.get_customer(s, office).responsible_expert == NEW
        mine = {t.element_id: t.assignee for t in open_tasks(s, instance_id=instance_id)}
    assert mine == {"plan_recruitment": NEW, "inform_customer_of_new_contact": NEW}


def test_unknown_expert_is_a_field_error_and_nothing_moves(client, login_as, sessions, office):
    login_as("test-expert")
    response = client.post(f"/customers/{office}/responsible-expert", data={"responsible_expert": "eeroo"})
    assert response.status_code == 422
    assert "Valitse asiantuntija luettelosta." in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert customers.get_customer(s, office).responsible_expert == "test-expert"


def test_another_expert_cannot_change_it_but_a_supervisor_can(client, login_as, sessions, office):
    login_as(NEW, PASSWORD)
    assert 'id="change-expert"' not in client.get(f"/customers/{office}").get_data(as_text=True)
    response = client.post(f"/customers/{office}/responsible-expert", data={"responsible_expert": NEW})
    assert response.status_code in (403, 404)
    client.post("/logout")
    login_as("supervisor")
    assert 'id="change-expert"' in client.get(f"/customers/{office}").get_data(as_text=True)
    response = client.post(f"/customers/{office}/responsible-expert", data={"responsible_expert": NEW})
    assert response.status_code == 302
    with sessions.begin() as s:
        assert customers.get_customer(s, office).responsible_expert == NEW


def test_expert_cancels_their_own_case_with_a_reason(client, login_as, sessions, office):
    instance_id = _assessed_case(sessions)
    login_as("test-expert")
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=instance_id)
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'id="cancel-case"' in page and "Peru asia" in page
    response = client.post(f"/tasks/{task.id}/cancel-case", data={"reason": "  "})
    assert response.status_code == 422 and "Kerro perumisen syy." in response.get_data(as_text=True)
    response = client.post(f"/tasks/{task.id}/cancel-case", data={"reason": "Asiakas luopui hankkeesta"})
    assert response.status_code == 302
    assert "Asia peruttiin." in client.get(response.headers["Location"]).get_data(as_text=True)
    with sessions.begin() as s:
        summary = runtime.instance_summary(s, instance_id)
        assert summary["status"] == "cancelled" and open_tasks(s, instance_id=instance_id) == []
        [event] = [e for e in audit.history(s, instance_id) if e.kind == "instance_cancelled"]
        assert event.actor == "test-expert" and json.loads(event.data)["reason"] == "Asiakas luopui hankkeesta"


def test_another_expert_cannot_cancel_but_a_supervisor_can(client, login_as, sessions, office):
    instance_id = _assessed_case(sessions)
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=instance_id)
        task.assignee = NEW  # NEW sees the task but the case is test-expert's
    login_as(NEW, PASSWORD)
    assert 'id="cancel-case"' not in client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert client.post(f"/tasks/{task.id}/cancel-case", data={"reason": "x"}).status_code == 403
    client.post("/logout")
    login_as("supervisor")
    assert client.post(f"/tasks/{task.id}/cancel-case", data={"reason": "Päällekkäinen"}).status_code == 302
    with sessions.begin() as s:
        assert runtime.instance_summary(s, instance_id)["status"] == "cancelled"


def test_supervisor_reassigns_and_makes_them_the_responsible_expert_of_the_case(client, login_as, sessions, office):
    instance_id = _assessed_case(sessions)
    login_as("supervisor")
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=instance_id)
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Tee hänestä myös tämän asian vastuuasiantuntija" in page
    response = client.post(f"/tasks/{task.id}/assign", data={"assignee": NEW, "make_responsible": "true"})
    assert response.status_code == 302
    with sessions.begin() as s:
        mine = {t.element_id: t.assignee for t in open_tasks(s, instance_id=instance_id)}
        assert runtime.instance_variables(s, instance_id)["responsible_expert"] == NEW
    assert mine == {"plan_recruitment": NEW, "inform_customer_of_new_contact": NEW}


def test_the_assessment_offers_the_active_experts_and_refuses_a_typo(client, login_as, sessions, office):
    instance_id = start_case(sessions)
    login_as("test-expert")
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=instance_id)
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert '<select id="f-responsible_expert" name="responsible_expert" required' in page
    assert f'<option value="{NEW}">Eero Expert ({NEW})</option>' in page
    form = assessment(identified_needs=["recruitment"], responsible_expert="eero.exprt")
    response = client.post(f"/tasks/{task.id}", data=form)
    assert response.status_code == 422 and "Valitse asiantuntija luettelosta" in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert [t.id for t in open_tasks(s, instance_id=instance_id)] == [task.id]


def test_the_case_expert_and_the_customer_expert_may_cancel_and_no_other_expert(client, login_as, sessions, office):
    instance_id = _assessed_case(sessions)  # the case's responsible expert: test-expert
    with sessions.begin() as s:
        users.add_user(s, "third-expert", PASSWORD, ["expert"], display_name="Third Expert")
        customers.get_customer(s, office).responsible_expert = NEW  # the customer's: NEW
        [task] = open_tasks(s, instance_id=instance_id)
        task.assignee = None  # open to every expert
    for who, may in (("test-expert", True), (NEW, True), ("third-expert", False)):
        login_as(who, PASSWORD)
        page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
        assert ('id="cancel-case"' in page) is may, who
        with sessions.begin() as s:
            instance = runtime.get_instance(s, instance_id)
            assert customers.may_cancel_case(s, instance, who, {"expert"}) is may, who
        client.post("/logout")
