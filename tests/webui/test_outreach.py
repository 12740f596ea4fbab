"""Web: contact log on the customer page, worklists with CSV import, notifications badge, absences,
office settings, the admin's e-mail outbox."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from engine import customers, notices
from engine.models import Customer
from engine.outreach_models import Contact


def _customer(sessions, expert):
    with sessions.begin() as s:
        return customers.create_customer(s, {"name": "Konepaja Oy", "business_id": "0737546-2",
                                             "responsible_expert": expert}, by=expert).id


def test_contact_logged_on_the_customer_page_shows_in_log_and_timeline(client, login_as, sessions):
    expert = login_as("expert")
    customer_id = _customer(sessions, expert)
    response = client.post(f"/customers/{customer_id}/contacts",
                           data={"contacted_on": "2027-01-05", "channel": "visit", "topic": "Yrityskäynti",
                                 "participants": "toimitusjohtaja", "next_contact_on": "2027-02-01"})
    assert response.status_code == 302
    page = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert "Yrityskäynti" in page and "toimitusjohtaja" in page and "2027-02-01" in page
    bad = client.post(f"/customers/{customer_id}/contacts", data={"contacted_on": "x", "channel": "fax", "topic": ""})
    assert bad.status_code == 302
    with sessions.begin() as s:
        assert s.query(Contact).count() == 1


def test_worklist_import_and_notification_badge(client, login_as, sessions):
    expert = login_as("expert")
    csv = "business_id,name,first_posting_on\n1572860-0,Uusi Oy,2027-01-07\n123,Väärä Oy,\n"
    response = client.post("/worklists/import", data={"file": (io.BytesIO(csv.encode()), "companies.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get("/worklists").get_data(as_text=True)
    assert "Uusi Oy" in page and "Väärä Oy" not in page
    with sessions.begin() as s:
        notices.notify(s, "test:1", expert, "assigned", "Tehtävä sinulle", "body")
    page = client.get("/notifications").get_data(as_text=True)
    assert 'id="unread-badge"' in page and "Tehtävä sinulle" in page
    client.post("/notifications/read", data={})
    assert 'id="unread-badge"' not in client.get("/notifications").get_data(as_text=True)


def test_the_badge_counts_only_the_signed_in_users_unread_notices_on_every_page(client, login_as, sessions):
    expert = login_as("expert")
    with sessions.begin() as s:
        for n in range(3):
            notices.notify(s, f"test:{n}", expert, "assigned", f"Tehtävä {n}", "body")
        notices.notify(s, "test:other", "someone-else", "assigned", "Ei sinulle", "body")
    for path in ("/tasks/", "/customers/", "/notifications"):
        page = client.get(path).get_data(as_text=True)
        assert re.search(r'id="unread-badge"[^>]*>3</span>', page), path
    with sessions.begin() as s:
        first = min(n.id for n in notices.for_user(s, expert))
    client.post("/notifications/read", data={"notice_id": str(first)})
    page = client.get("/tasks/").get_data(as_text=True)
    assert re.search(r'id="unread-badge"[^>]*>2</span>', page)


def test_the_worklist_is_paged_fifty_customers_a_page_keeping_the_filter(client, login_as, sessions):
    me = login_as("supervisor")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)  # never contacted since: all of them are due, by name
    with sessions.begin() as s:
        s.execute(insert(Customer), [{"business_id": f"{1000000 + k}-{k % 10}", "name": f"Asiakas {k:03d} Oy",
                                      "responsible_expert": me if k % 2 else None, "created_at": long_ago,
                                      "updated_at": long_ago} for k in range(120)])

    def names(url):
        page = client.get(url).get_data(as_text=True)
        return re.findall(r"Asiakas (\d{3}) Oy", page), page

    first, page = names("/worklists")
    assert first == [f"{k:03d}" for k in range(50)]
    assert "Yhteydenottoa odottaa 120 asiakasta." in page and 'href="/worklists?page=2" rel="next"' in page
    assert names("/worklists?page=3")[0] == [f"{k:03d}" for k in range(100, 120)]
    assert names("/worklists?page=99")[0] == names("/worklists?page=3")[0]  # past the end: the last page
    assert names("/worklists?page=x")[0] == first
    mine, page = names("/worklists?mine=1&page=2")
    assert mine == [f"{k:03d}" for k in range(101, 120, 2)]  # 60 of mine: the second page holds the last 10
    assert "Yhteydenottoa odottaa 60 asiakasta." in page and "mine=1" in re.search(r'rel="prev"[^>]*|href="[^"]*" rel="prev"', page)[0]


def test_office_settings_page_changes_the_visit_target(client, login_as):
    login_as("supervisor")
    assert client.post("/office/settings", data={"visit_target": "1400"}).status_code == 302
    assert 'value="1400"' in client.get("/office/settings").get_data(as_text=True)


def test_absence_page_records_who_covers_whom(client, login_as, sessions):
    me = login_as("expert")
    with sessions.begin() as s:
        from engine import users
        users.add_user(s, "pekka", "password-1", ["expert"], display_name="Pekka Sijainen")
    client.post("/absences", data={"substitute": "pekka", "starts_on": "2027-01-10", "ends_on": "2099-01-20"})
    page = client.get("/absences").get_data(as_text=True)
    assert "2099-01-20" in page and "Pekka Sijainen" in page and me


def test_admin_sees_the_mail_outbox(client, login_as):
    login_as("admin")
    page = client.get("/admin/mail").get_data(as_text=True)
    assert "SMTP" in page


def _reads_absences(client, statements_of, path: str) -> bool:
    """Tell whether a page's request read the absences (only "my tasks" shows whom I cover)."""
    with statements_of(client.application.extensions["polku"].engine) as read:
        assert client.get(path).status_code == 200
    return any("FROM absence" in statement for statement in read)


def test_absent_experts_due_task_shows_in_the_substitutes_my_tasks_marked_as_cover(client, login_as, sessions,
                                                                                   statements_of):
    from datetime import timedelta
    from pathlib import Path

    from engine import absences, deploy, inbox, runtime, users
    from engine.db import utcnow

    model = Path(__file__).resolve().parents[1] / "engine" / "bpmn" / "reminder.bpmn"
    with sessions.begin() as s:
        users.add_user(s, "maija", "password-1", ["expert"], display_name="Maija Poissa")
        users.add_user(s, "pekka", "test-password", ["expert"], display_name="Pekka Sijainen")
        deploy.deploy_files(s, {"reminder.bpmn": model.read_bytes()}, by="designer")
        instance = runtime.start_instance(s, "reminder", by="maija", data={"due": "P1D"})
        [task] = inbox.tasks(s, instance_id=instance.id)
        inbox.claim(s, task.id, by="maija")
        today = utcnow().date()
        absences.record_absence(s, "maija", "pekka", today - timedelta(days=1), today + timedelta(days=5),
                                by="maija")
    login_as("pekka")
    page = client.get("/tasks/?tab=mine").get_data(as_text=True)
    assert "Call the customer" in page and "cover-mark" in page and "Maija Poissa" in page
    assert _reads_absences(client, statements_of, "/tasks/?tab=mine")
    assert not _reads_absences(client, statements_of, "/tasks/?tab=group")
    response = client.post(f"/absences/take/{task.id}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/tasks/{task.id}")
    assert client.get(f"/tasks/{task.id}").status_code == 200
    with sessions.begin() as s:
        assert s.get(type(task), task.id).assignee == "pekka"
    assert client.post(f"/absences/take/{task.id}").status_code == 302  # no longer a cover task: refused


def test_supervisor_view_shows_visits_against_the_target_and_who_covers_whom(client, login_as, sessions):
    from engine import absences, contacts, office, users
    from engine.db import utcnow

    boss = login_as("supervisor")
    with sessions.begin() as s:
        users.add_user(s, "maija", "password-1", ["expert"], display_name="Maija Poissa")
        users.add_user(s, "pekka", "password-1", ["expert"], display_name="Pekka Sijainen")
        customer = customers.create_customer(s, {"name": "Konepaja Oy", "business_id": "0737546-2"}, by=boss)
        today = utcnow().astimezone(ZoneInfo("Europe/Helsinki")).date()  # the office's day, a day ahead of UTC's after 22:00 UTC
        contacts.log_contact(s, customer.id, {"contacted_on": today.isoformat(), "channel": "visit",
                                              "topic": "Käynti"}, by="maija")
        office.set_value(s, "visit_target", 4, by=boss)
        absences.record_absence(s, "maija", "pekka", today, today, by=boss)
    page = client.get("/supervisor/").get_data(as_text=True)
    assert "1 / 4 käyntiä (25 %)" in page
    assert "Maija Poissa → Pekka Sijainen" in page
