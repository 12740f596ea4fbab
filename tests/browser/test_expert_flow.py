"""Real Chromium against a live server: an expert starts a service process for a customer, meets a
wrong field (message shown, value kept), completes the assessment and lands on the next task; a
supervisor reassigns an overdue aftercare contact. The sign-in and field-error screenshots go to a temporary
folder, or to docs/screenshots/ with `POLKU_SCREENSHOTS=1` (then commit them).

The harness (live server, chromium, sign-in) is in conftest.py.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import customers, runtime, users
from engine.db import utcnow
from engine.inbox import tasks as open_tasks
from engine.models import Instance

ROOT = Path(__file__).parents[2]
BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"  # what conftest's sign_in types


@pytest.fixture
def office(live_db):
    """Return (session factory, customer id) of the live database with users and a customer."""
    sessions = live_db[1]
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija")
        users.add_user(s, "eero", PASSWORD, ["expert"], display_name="Eero Expert")
        users.add_user(s, "sanna", PASSWORD, ["supervisor"], display_name="Sanna Esimies")
        customer = customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID,
                                                 "responsible_expert": "aino", "contact_person": "Matti Meikäläinen",
                                                 "phone": "040 123 4567"}, by="test")
        customers.create_customer(s, {"name": "Vailla Oy", "business_id": "2617416-4"}, by="test")
    return sessions, customer.id


@pytest.fixture
def shots(tmp_path) -> Path:
    """Return the folder for screenshots: docs/screenshots/ when asked for, else a temporary one."""
    folder = ROOT / "docs" / "screenshots" if os.environ.get("POLKU_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_expert_starts_a_process_fixes_a_field_and_goes_on(sign_in, base_url, office, shots, tmp_path):
    sessions, customer_id = office
    page = sign_in("aino", shot=shots / "login.png")
    page.goto(f"{base_url}/customers/{customer_id}")
    page.click("text=Aloita uusi palveluprosessi")
    assert page.input_value("#f-business_id") == BUSINESS_ID
    page.select_option("#f-contact_channel", "phone_service")
    page.fill("#f-contact_reason", "Yritys hakee kasvua ja tarvitsee uusia työntekijöitä.")
    page.click("text=Aloita prosessi")
    page.wait_for_selector("h1:has-text('Arvioi palvelutarve asiakkaan kanssa')")

    page.fill("#f-assessment_date", date.today().isoformat())
    page.select_option("#f-company_situation", "growth")
    page.fill("#f-headcount", "-5")
    page.select_option("#f-segment", "local")
    page.check("#f-identified_needs-other_partner_service")
    page.fill("#f-assessment_notes", "Kävimme läpi kasvusuunnitelman.")
    page.check("#f-process_agreed_with_customer")
    page.select_option("#f-responsible_expert", "aino")  # a select of the active experts
    page.click("text=Merkitse tehtävä tehdyksi")
    page.wait_for_selector(".error-summary")
    assert "Arvon on oltava vähintään 0" in page.inner_text("#e-headcount")
    assert page.input_value("#f-headcount") == "-5"
    assert page.input_value("#f-assessment_notes") == "Kävimme läpi kasvusuunnitelman."
    assert page.is_checked("#f-identified_needs-other_partner_service")
    page.screenshot(path=str(shots / "task-form-error.png"), full_page=True)

    page.fill("#f-headcount", "42")
    page.click("text=Merkitse tehtävä tehdyksi")
    page.wait_for_selector("h1:has-text('Sovi ohjauksesta asiakkaan kanssa')")
    assert "Seuraava tehtävä tässä asiassa" in page.inner_text(".flashes")
    with sessions.begin() as s:
        (case,) = customers.customer_processes(s, customers.get_customer(s, customer_id))
        assert runtime.instance_variables(s, case.id)["headcount"] == 42

    page.goto(f"{base_url}/tasks/")
    assert "Sovi ohjauksesta asiakkaan kanssa" in page.inner_text("table.tasks")
    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)  # README: test_demo_office.py
    page.goto(f"{base_url}/customers/{customer_id}")
    assert "Sovi ohjauksesta asiakkaan kanssa" in page.inner_text("section.processes")
    page.screenshot(path=str(tmp_path / "customer.png"), full_page=True)


def _overdue_aftercare(sessions, expert) -> str:
    """Drive a case whose clock ran 60 days ago to its (now overdue) aftercare contact."""
    past = utcnow() - timedelta(days=60)
    with sessions.begin() as s:
        start = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "web_service",
                 "contact_reason": "Koulutustarve"}
        instance_id = runtime.start_instance(s, "customer_service", by=expert, data=start, business_key=BUSINESS_ID,
                                             now=past).id
        for _ in range(6):
            rows = open_tasks(s, instance_id=instance_id)
            if not rows:  # the service line ended: its aftercare runs as the case's child instance
                instance_id = s.scalar(select(Instance.id).where(Instance.parent_instance_id == instance_id))
                rows = open_tasks(s, instance_id=instance_id)
            row = rows[0]
            if row.element_id == "aftercare_contact":
                return row.id
            values = {}
            for f in runtime.task_details(s, row.id)["form"]:
                if f.provider_kinds is not None:  # a registry provider: none, the office delivered the service
                    continue
                if f.id.endswith("_email"):
                    values[f.id] = "aino@te.fi"
                elif f.type == "date":
                    values[f.id] = past.date().isoformat()
                elif f.type == "enum":
                    first = "other_partner_service" if f.id == "identified_needs" else f.options[0][0]
                    values[f.id] = ([first] if f.required or f.id == "identified_needs" else []) if f.multiple \
                        else f.default or first  # a need (else the assessment ends: no service need now)
                elif f.type == "long":
                    values[f.id] = 12
                elif f.type == "boolean":
                    values[f.id] = True
                else:
                    values[f.id] = expert if f.id == "responsible_expert" else "Sovittu asiakkaan kanssa."
            runtime.complete_task(s, row.id, values, by=expert, now=past)
    raise AssertionError("the case did not reach its aftercare contact")


def test_supervisor_reassigns_an_overdue_aftercare_contact(sign_in, base_url, office, tmp_path):
    sessions, _customer_id = office
    task_id = _overdue_aftercare(sessions, "aino")
    page = sign_in("sanna")
    page.goto(f"{base_url}/supervisor/")
    assert "Myöhässä" in page.inner_text("table.tasks")
    page.screenshot(path=str(tmp_path / "supervisor.png"), full_page=True)  # README: test_demo_office.py
    page.select_option(f"#assignee-{task_id}", "eero")
    page.click(f"form:has(#assignee-{task_id}) button")
    page.wait_for_selector("text=Tehtävä siirretty henkilölle Eero Expert.")
    row = page.inner_text("table.tasks")
    assert "Eero Expert" in row and "Ota jälkihoitoyhteys asiakkaaseen" in row
