"""Supervisor view on the shipped process: work and aftercare per expert, on-time share this month,
customers without an expert, reassigning overdue aftercare; experts are kept out."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine import audit, customers, deploy, kpi, runtime, users
from engine.db import utcnow
from engine.inbox import tasks as open_tasks
from engine.models import Instance

BPMN = Path(__file__).parents[2] / "bpmn"
BUSINESS_ID = "0737546-2"
HELSINKI = ZoneInfo("Europe/Helsinki")  # the office's day: what an expert types as a date


def _values(fields, expert, on=None):
    values = {}
    for f in fields:
        if f.provider_kinds is not None or f.readonly:  # no registry provider (the office delivered); shown only
            continue
        if f.type == "date":
            values[f.id] = (on or date.today()).isoformat()
        elif f.type == "enum":
            values[f.id] = ["other_partner_service"] if f.id == "identified_needs" else (
                ([f.options[0][0]] if f.required else []) if f.multiple else f.default or f.options[0][0])
        elif f.type == "long":
            values[f.id] = 3
        elif f.type == "boolean":
            values[f.id] = f.id != "follow_up_day_wanted"
        else:
            values[f.id] = expert if f.id == "responsible_expert" else "x@te.fi" if f.id.endswith("_email") else "x"
    return values


def drive_to_aftercare(sessions, expert, started, *, complete_aftercare=False) -> str:
    """Run a case for `expert` (clock at `started`) to its aftercare contact; return that task's id."""
    with sessions.begin() as s:
        start = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
                 "contact_reason": "x"}
        instance_id = runtime.start_instance(s, "customer_service", by=expert, data=start,
                                             business_key=BUSINESS_ID, now=started).id
        for _ in range(6):
            rows = open_tasks(s, instance_id=instance_id)
            if not rows:  # the service line ended: its aftercare runs as the case's child instance
                instance_id = s.scalar(select(Instance.id).where(Instance.parent_instance_id == instance_id))
                rows = open_tasks(s, instance_id=instance_id)
            row = rows[0]
            at = utcnow() if row.element_id == "aftercare_contact" else started
            if row.element_id == "aftercare_contact" and not complete_aftercare:
                return row.id
            runtime.complete_task(s, row.id, _values(runtime.task_details(s, row.id)["form"], expert, at.astimezone(HELSINKI).date()),
                                  by=expert, now=at)
            if row.element_id == "aftercare_contact":
                return row.id
    raise AssertionError("the case did not reach its aftercare contact")


@pytest.fixture
def office(sessions):
    """Deploy the models; two experts with cases in several aftercare states; one unassigned task."""
    now = utcnow()
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        users.add_user(s, "aino", "salasana-123", ["expert"], display_name="Aino Asiantuntija")
        users.add_user(s, "eero", "salasana-123", ["expert"], display_name="Eero Expert")
        users.add_user(s, "ville", "salasana-123", ["expert"], display_name="Ville Vapaa")
        customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID,
                                      "responsible_expert": "aino"}, by="test")
        customers.create_customer(s, {"name": "Vailla Oy", "business_id": "2617416-4"}, by="test")
    late = drive_to_aftercare(sessions, "aino", now - timedelta(days=60))
    drive_to_aftercare(sessions, "eero", now - timedelta(minutes=5))
    drive_to_aftercare(sessions, "eero", now - timedelta(days=60), complete_aftercare=True)
    drive_to_aftercare(sessions, "eero", now - timedelta(minutes=5), complete_aftercare=True)
    with sessions.begin() as s:
        runtime.start_instance(s, "customer_service", by="test", business_key=BUSINESS_ID,
                               data={"business_id": BUSINESS_ID, "company_name": "P", "contact_channel": "web_service",
                                     "contact_reason": "x"})
    return {"late": late}


@pytest.fixture
def supervisor(client, login_as, office):
    return login_as("supervisor")


def _row(page, username):
    row = re.search(rf'<tr id="load-{username}">(.*?)</tr>', page, re.DOTALL)[1]
    return [int(n) for n in re.findall(r"<td>(?:<strong[^>]*>)?(\d+)", row)]


def test_supervisor_page_counts_work_and_aftercare_per_expert(client, supervisor, sessions):
    page = client.get("/supervisor/").get_data(as_text=True)
    assert "Aino Asiantuntija" in page and "Ville Vapaa" in page
    assert _row(page, "aino") == [1, 1, 0, 1]     # open, overdue, aftercare due, aftercare overdue
    assert _row(page, "eero") == [1, 0, 1, 0]
    assert _row(page, "ville") == [0, 0, 0, 0]    # an idle expert is listed too
    with sessions.begin() as s:
        assert {load.assignee for load in kpi.expert_loads(s)} == {"aino", "eero"}


def test_supervisor_page_shows_on_time_share_and_unassigned_work(client, supervisor):
    page = client.get("/supervisor/").get_data(as_text=True)
    on_time = re.search(r'id="on-time">(.*?)</li>', page, re.DOTALL)[1]
    assert "50 %" in on_time and "1 / 2" in on_time
    assert re.search(r'id="unassigned">.*?<strong>1</strong>', page, re.DOTALL)
    assert re.search(r'id="overdue-aftercare">.*?<strong>1</strong>', page, re.DOTALL)


def test_supervisor_page_lists_customers_without_expert(client, supervisor):
    page = client.get("/supervisor/").get_data(as_text=True)
    section = page.split('id="no-expert-heading"')[1]
    assert "Vailla Oy" in section and "Pirkan Puu Oy" not in section


def test_on_time_share_counts_only_this_month(sessions, office):
    with sessions.begin() as s:
        assert kpi.aftercare_on_time(s, utcnow() - timedelta(days=400), utcnow() - timedelta(days=1)).done == 0
        result = kpi.summary(s)["on_time"]
        assert (result.done, result.on_time, result.share) == (2, 1, 0.5)


def test_supervisor_reassigns_overdue_aftercare_and_comes_back(client, supervisor, office, sessions):
    late = office["late"]
    response = client.post(f"/tasks/{late}/assign", data={"assignee": "ville", "next": "/supervisor/"})
    assert response.headers["Location"] == "/supervisor/"
    page = client.get("/supervisor/").get_data(as_text=True)
    assert "Tehtävä siirretty henkilölle Ville Vapaa." in page
    assert _row(page, "ville") == [1, 1, 0, 1] and _row(page, "aino") == [0, 0, 0, 0]
    with sessions.begin() as s:
        instance_id = runtime.task_details(s, late)["instance"].id
        moved = [json.loads(e.data) for e in audit.history(s, instance_id) if e.kind == "task_assigned"]
    assert moved == [{"previous": "aino", "assignee": "ville"}]


def test_experts_cannot_open_the_supervisor_view(client, login_as, office):
    login_as("expert")
    assert client.get("/supervisor/").status_code == 403


def test_customer_page_shows_current_steps_and_aftercare_due_and_done(client, login_as, office):
    login_as("aino", "salasana-123")  # the customer's responsible expert sees every case of it
    page = client.get("/customers/").get_data(as_text=True)
    customer_url = re.search(r'href="(/customers/\d+)">Pirkan Puu Oy', page)[1]
    page = client.get(customer_url).get_data(as_text=True)
    section = page.split('id="processes-heading"')[1]
    assert section.count("Yritysasiakkaan palveluprosessi #") == 5
    assert "Ota jälkihoitoyhteys asiakkaaseen: määräaika" in section and "Myöhässä" in section
    assert section.count("Ota jälkihoitoyhteys asiakkaaseen: tehty") == 2
    assert "Arvioi palvelutarve asiakkaan kanssa" in section  # the unassigned case's current step
    # feedback of the two completed aftercare contacts (the test form answers 3/5, positive)
    assert section.count("Arvio 3/5") == 2 and section.count(">Myönteinen<") == 2
    timeline = page.split('id="timeline-heading"')[1]
    assert "Yritysasiakkaan palveluprosessi alkoi" in timeline and "Jälkihoito alkoi" in timeline
    assert "Tehtävä tehty: Ota jälkihoitoyhteys asiakkaaseen" in timeline
    assert "Viesti lähetetty: palvelulinja päättyi, sen jälkihoito alkaa" in timeline


def test_expert_row_links_to_that_experts_open_tasks(client, supervisor):
    page = client.get("/supervisor/").get_data(as_text=True)
    assert 'href="/tasks/?tab=all&amp;assignee=aino"' in page
    tasks = client.get("/tasks/?tab=all&assignee=aino").get_data(as_text=True)
    assert "1 tehtävä." in tasks and "Ota jälkihoitoyhteys asiakkaaseen" in tasks and "Aino Asiantuntija" in tasks


def _name_lookups(statements):
    return [s for s in statements if s.startswith(
        "SELECT user_account.username, user_account.display_name FROM user_account WHERE user_account.username IN")]


def _load_name(page, username):
    return re.search(rf'<tr id="load-{username}"><th scope="row"><a [^>]*>(.*?)</a>', page)[1]


def test_names_of_active_experts_come_with_them_and_only_other_holders_are_looked_up(
        app, client, supervisor, sessions, statements_of):
    engine = app.extensions["polku"].engine
    with statements_of(engine) as seen:
        page = client.get("/supervisor/").get_data(as_text=True)
    assert _name_lookups(seen) == []  # every holder is an active expert, read for the page already
    assert (_load_name(page, "aino"), _load_name(page, "eero")) == ("Aino Asiantuntija", "Eero Expert")
    with sessions.begin() as s:  # aino is a supervisor now, still holding her tasks
        users.set_roles(s, "aino", ["supervisor"], by="test")
    with statements_of(engine) as seen:
        page = client.get("/supervisor/").get_data(as_text=True)
    assert len(_name_lookups(seen)) == 1
    assert (_load_name(page, "aino"), _load_name(page, "eero")) == ("Aino Asiantuntija", "Eero Expert")
