"""The task page of a shipped close task re-renders with what the user typed and the engine's
domain-check messages (future end date, end before the assessment, consultant e-mail), in Finnish
and in English."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import deploy, runtime
from engine.inbox import tasks as open_tasks

BPMN = Path(__file__).parents[2] / "bpmn"


@pytest.fixture
def shipped(sessions):
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")


def to_close(sessions, process_id: str, assessed: str, expert: str) -> str:
    """Start a line's process and complete its tasks up to the close task; return the close task's id."""
    with sessions.begin() as s:
        iid = runtime.start_instance(s, process_id, by="test", business_key="0737546-2",
                                     data={"responsible_expert": expert, "assessment_date": assessed}).id
    while True:
        with sessions.begin() as s:
            [task] = open_tasks(s, instance_id=iid)
            if task.element_id.startswith("close_"):
                return task.id
            runtime.complete_task(s, task.id, PLANS[task.element_id], by=expert)


TODAY = datetime.now(ZoneInfo("Europe/Helsinki")).date()
PLANS = {
    "plan_recruitment": {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                         "recruitment_planned_end": (TODAY + timedelta(days=30)).isoformat()},
    "deliver_recruitment": {},
    "plan_development": {"development_service_type": "consulting", "development_goal": "Lean",
                         "development_planned_end": (TODAY + timedelta(days=30)).isoformat(),
                         "development_progress_interval": "P1M"},
    "deliver_development": {"development_completed_on": (TODAY - timedelta(days=1)).isoformat()},
}


def test_close_task_rerenders_with_the_typed_date_and_the_message(client, login_as, shipped, sessions):
    expert = login_as("expert")
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date()
    task_id = to_close(sessions, "recruitment", "2026-03-02", expert)
    future = (today + timedelta(days=2)).isoformat()
    form = {"recruitment_positions_filled": "2", "recruitment_ended_on": future, "recruitment_outcome": "completed",
            "recruitment_closing_notes": "Kaksi hitsaajaa aloitti"}
    response = client.post(f"/tasks/{task_id}", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Päivä ei voi olla tulevaisuudessa" in page
    assert f'value="{future}"' in page and "Kaksi hitsaajaa aloitti" in page and 'value="2"' in page
    assert 'aria-invalid="true"' in page
    response = client.post(f"/tasks/{task_id}", data={**form, "recruitment_ended_on": "2026-03-01"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Päivän on oltava 2.3.2026 tai myöhemmin" in page
    client.post("/language", data={"lang": "en"})
    response = client.post(f"/tasks/{task_id}", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "The date cannot be in the future" in page
    response = client.post(f"/tasks/{task_id}", data={**form, "recruitment_ended_on": "2026-03-01"})
    assert "The date must be Mar 2, 2026 or later" in response.get_data(as_text=True)
    response = client.post(f"/tasks/{task_id}", data={**form, "recruitment_ended_on": today.isoformat()})
    assert response.status_code == 302
    with sessions.begin() as s:
        assert runtime.instance_variables(s, runtime.task_details(s, task_id)["instance"].id)[
            "recruitment_ended_on"] == today.isoformat()


def test_development_close_shows_the_consultant_fields_and_the_email_message(client, login_as, shipped, sessions):
    expert = login_as("expert")
    task_id = to_close(sessions, "business_development", "2026-03-02", expert)
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Palvelun toteuttanut konsultti" in page and "Konsultin sähköpostiosoite" in page
    form = {"development_ended_on": (TODAY - timedelta(days=1)).isoformat(), "development_outcome": "completed",
            "development_consultant_name": "Kaisa Konsultti", "development_consultant_email": "kaisa.konsultit.fi"}
    response = client.post(f"/tasks/{task_id}", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Anna sähköpostiosoite, esimerkiksi nimi@esimerkki.fi" in page
    assert 'value="kaisa.konsultit.fi"' in page and 'value="Kaisa Konsultti"' in page
    response = client.post(f"/tasks/{task_id}", data={**form, "development_consultant_email": "kaisa@konsultit.fi"})
    assert response.status_code == 302
