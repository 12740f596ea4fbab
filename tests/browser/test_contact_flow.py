"""Real Chromium against a live server: an expert logs a prospecting visit that starts a service
process and sets a next contact date; on that day (the worker's clock moved) the reminder e-mail
reaches a real in-process SMTP server. The expert records an absence with a substitute: her task
due in the period shows in the substitute's "my tasks" marked as cover, and the next reminder goes
to the substitute. The harness (live server, chromium, sign-in) is in conftest.py.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine import customers, inbox, jobs, notices, users
from engine.config import Settings
from engine.db import utcnow
from engine.models import Instance

PASSWORD = "salasana-123"
HELSINKI = ZoneInfo("Europe/Helsinki")



def _morning(day) -> datetime:
    return datetime.combine(day, time(8, 0), HELSINKI)


def test_prospecting_visit_reminder_mail_and_absence_cover(sign_in, base_url, live_db, smtp):
    sessions = live_db[1]
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija")
        users.add_user(s, "eero", PASSWORD, ["expert"], display_name="Eero Sijainen")
        notices.save_user_settings(s, "eero", email="eero@te.fi", email_opt_out=False, digest_opt_out=False)
        customer_id = customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": "0737546-2",
                                                    "responsible_expert": "aino"}, by="test").id
    settings = Settings(database_url=live_db[0], smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="polku@te.fi")
    today = utcnow().astimezone(HELSINKI).date()
    jobs.run_jobs(sessions, now=_morning(today), settings=settings)

    page = sign_in("aino")
    page.goto(f"{base_url}/notifications")
    page.fill("#email", "aino@te.fi")
    page.click("form[action$='/notifications/settings'] button[type=submit]")
    page.wait_for_selector("text=Muutokset tallennettu.")

    reminder_day = today + timedelta(days=2)
    page.goto(f"{base_url}/customers/{customer_id}")
    page.select_option("#channel", "visit")
    page.fill("#topic", "Kartoituskäynti tuotantotiloissa")
    page.fill("#participants", "toimitusjohtaja Matti")
    page.fill("#next_contact_on", reminder_day.isoformat())
    page.check("#prospecting")
    page.check("#start_process")
    page.click("#contact-form button[type=submit]")
    page.wait_for_selector("text=Palveluprosessi käynnistetty.")
    assert page.locator("#contacts").get_by_text("Kartoituskäynti tuotantotiloissa").count() == 1
    assert page.locator(".timeline").get_by_text("Yhteydenotto kirjattu").count() == 1
    with sessions.begin() as s:
        [instance] = s.query(Instance).filter_by(business_key="0737546-2").all()
        [task] = inbox.tasks(s, instance_id=instance.id)
        assert task.element_id == "assess_service_needs"
        inbox.claim(s, task.id, by="aino")

    jobs.run_jobs(sessions, now=_morning(reminder_day - timedelta(days=1)), settings=settings)
    assert [m for m in smtp.messages if "Pirkan Puu Oy" in m[1]] == []
    jobs.run_jobs(sessions, now=_morning(reminder_day), settings=settings)
    reminders = [m for m in smtp.messages if "Pirkan Puu Oy" in m[1]]
    assert [m[0] for m in reminders] == [["aino@te.fi"]]
    page.goto(f"{base_url}/notifications")
    assert page.locator("#unread-badge").inner_text() == "1"

    # Aino will be away; Eero covers her task due in the period and gets her reminders
    page.goto(f"{base_url}/absences")
    page.select_option("#substitute", "eero")
    page.fill("#starts_on", (today + timedelta(days=3)).isoformat())
    page.fill("#ends_on", (today + timedelta(days=20)).isoformat())
    page.click("#absence-form button[type=submit]")
    page.wait_for_selector("text=Poissaolo tallennettu.")
    assert page.locator("#absences").get_by_text("Eero Sijainen").count() == 1
    page.goto(f"{base_url}/customers/{customer_id}")
    page.select_option("#channel", "phone")
    page.fill("#topic", "Soitto rekrytointitarpeesta")
    page.fill("#next_contact_on", (today + timedelta(days=5)).isoformat())
    page.click("#contact-form button[type=submit]")
    page.wait_for_selector("text=Yhteydenotto tallennettu.")
    jobs.run_jobs(sessions, now=_morning(today + timedelta(days=5)), settings=settings)
    covered = [m for m in smtp.messages if "Pirkan Puu Oy" in m[1] and m[0] == ["eero@te.fi"]]
    assert len(covered) == 1

    substitute = sign_in("eero")
    substitute.goto(f"{base_url}/tasks/?tab=mine")
    row = substitute.locator("tr", has_text="Arvioi palvelutarve asiakkaan kanssa")
    assert row.count() == 1 and row.locator(".cover-mark").count() == 1
    row.locator("button", has_text="Ota hoitoon").click()
    substitute.wait_for_selector("h1:has-text('Arvioi palvelutarve asiakkaan kanssa')")
