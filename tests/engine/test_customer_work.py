"""Contact log, worklists, timer start schedules, notices with real SMTP, absence cover."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import (
    absences,
    contacts,
    customers,
    deploy,
    inbox,
    jobs,
    notices,
    office,
    runtime,
    schedules,
    users,
)
from engine.config import Settings
from engine.errors import FormInvalid, InvalidInput
from engine.models import Instance, ModelFile
from engine.outreach_models import MailOutbox, Notice

ROOT = Path(__file__).resolve().parents[2]
JAN1 = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)  # 1 January 2027 00:00 in Helsinki



def _settings(smtp) -> Settings:
    return Settings(database_url="sqlite://", smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="polku@te.fi")


def _deploy_shipped(sessions, *names):
    with sessions.begin() as s:
        deploy.deploy_files(s, {n: (ROOT / "bpmn" / n).read_bytes() for n in names}, by="designer")


def _people(sessions):
    with sessions.begin() as s:
        users.add_user(s, "maija", "password-1", ["expert"], display_name="Maija")
        users.add_user(s, "pekka", "password-1", ["expert"], display_name="Pekka")
        users.add_user(s, "esko", "password-1", ["supervisor"], display_name="Esko")
        notices.save_user_settings(s, "maija", email="maija@te.fi", email_opt_out=False, digest_opt_out=False)
        notices.save_user_settings(s, "pekka", email="pekka@te.fi", email_opt_out=False, digest_opt_out=False)
        c = customers.create_customer(s, {"name": "Konepaja Oy", "business_id": "0737546-2",
                                          "responsible_expert": "maija"}, by="maija")
        return c.id


def test_contact_log_prospecting_visit_starts_a_process_and_counts_against_the_target(sessions):
    _deploy_shipped(sessions, "customer_service.bpmn", "service_selection.dmn", "aftercare_target.dmn",
                    "recruitment.bpmn", "joint_purchase_training.bpmn", "business_development.bpmn",
                    "change_security.bpmn", "startup_services.bpmn", "partner_referral.bpmn", "aftercare.bpmn")
    customer_id = _people(sessions)
    with sessions.begin() as s:
        with pytest.raises(FormInvalid) as err:
            contacts.log_contact(s, customer_id, {"contacted_on": "2027-02-01", "channel": "phone", "topic": "x",
                                                  "prospecting": "on"}, by="maija")
        assert "prospecting" in err.value.errors
        contact = contacts.log_contact(s, customer_id, {"contacted_on": "2027-02-01", "channel": "visit",
                                                        "topic": "Yrityskäynti", "prospecting": "on",
                                                        "next_contact_on": "2027-03-01"},
                                       by="maija", start_process=True)
        assert contact.instance_id is not None
        office.set_value(s, "visit_target", 10, by="esko")
    runtime.forget_cache()
    with sessions.begin() as s:
        instance = s.get(Instance, contact.instance_id)
        assert instance.business_key == "0737546-2"
        progress = contacts.visit_progress(s, date(2027, 6, 1))
        assert (progress["target"], progress["done"]) == (10, 1)
        with pytest.raises(InvalidInput):
            office.set_value(s, "visit_target", "-1", by="esko")
        due = contacts.customers_to_contact(s, date(2027, 3, 1))
        assert [(r.customer.id, r.reason) for r in due] == [(customer_id, "due")]
        assert contacts.customers_to_contact(s, date(2027, 2, 28)) == []


def test_a_years_visits_are_those_from_its_first_day_to_its_last(sessions):
    customer_id = _people(sessions)
    later = datetime(2028, 1, 2, 9, tzinfo=UTC)  # every contact day below is in the past then
    with sessions.begin() as s:
        for day, who in (("2026-12-31", "maija"), ("2027-01-01", "maija"), ("2027-12-31", "pekka"),
                         ("2028-01-01", "pekka")):
            contacts.log_contact(s, customer_id, {"contacted_on": day, "channel": "visit", "topic": "Käynti"},
                                 by=who, now=later)
        contacts.log_contact(s, customer_id, {"contacted_on": "2027-06-01", "channel": "phone", "topic": "Puhelu"},
                             by="maija", now=later)
        office.set_value(s, "visit_target", 4, by="esko")
    with sessions.begin() as s:
        assert contacts.visits_in_year(s, 2027) == 2
        assert contacts.visits_by_expert(s, 2027) == {"maija": 1, "pekka": 1}
        progress = contacts.visit_progress(s, date(2027, 12, 31))
        assert (progress["done"], progress["target"], progress["expected"], progress["percent"]) == (2, 4, 4, 50)


def test_company_import_validates_business_ids_and_becomes_a_worklist(sessions):
    text = "business_id;name;first_posting_on\n0737546-2;Konepaja Oy;2027-01-05\n0737546-3;Wrong Oy;\n" \
           "1572860-0;Uusi Oy;2027-01-07\n0737546-2;Konepaja Oy;2027-01-05\n"
    with sessions.begin() as s:
        result = contacts.import_companies(s, text, by="esko")
    assert (result.added, result.known, list(result.errors)) == (2, 1, [3])
    with sessions.begin() as s:
        again = contacts.import_companies(s, text, by="esko")
        assert again.added == 0
        rows = contacts.new_web_companies(s)
        assert [r.name for r in rows] == ["Konepaja Oy", "Uusi Oy"]
        customer = contacts.handle_company(s, rows[0].id, by="esko", register=True)
        assert customer is not None and customer.business_id == "0737546-2"
        assert [r.name for r in contacts.new_web_companies(s)] == ["Uusi Oy"]


def test_annual_plan_starts_on_1_january_exactly_once_with_two_workers_and_once_after_downtime(sessions):
    _deploy_shipped(sessions, "annual_customer_plan.bpmn")
    assert schedules.start_due(sessions, now=JAN1 - timedelta(seconds=1)) == []
    results: list[list[int]] = []
    barrier = threading.Barrier(2)

    def worker(name):
        barrier.wait()
        results.append(schedules.start_due(sessions, now=JAN1, worker_id=name))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 1]
    runtime.forget_cache()
    with sessions.begin() as s:
        assert s.query(Instance).filter_by(process_id="annual_customer_plan").count() == 1
        [task] = inbox.tasks(s)
        assert task.element_id == "review_segments" and task.candidate_role == "supervisor"
    # the machine was off for three years: one catch-up, not three, then the next 1 January
    assert len(schedules.start_due(sessions, now=JAN1 + timedelta(days=3 * 365 + 30))) == 1
    assert schedules.start_due(sessions, now=JAN1 + timedelta(days=3 * 365 + 31)) == []
    with sessions.begin() as s:
        [row] = schedules.list_schedules(s)
        assert row.next_due_at == datetime(2030, 12, 31, 22, 0, tzinfo=UTC)


def test_a_newer_version_replaces_the_older_schedule(sessions):
    _deploy_shipped(sessions, "annual_customer_plan.bpmn")
    schedules.start_due(sessions, now=JAN1 - timedelta(days=1))
    changed = (ROOT / "bpmn" / "annual_customer_plan.bpmn").read_text().replace(
        "Uusi vuosi alkaa", "Uusi vuosi alkaa nyt")
    with sessions.begin() as s:
        deploy.deploy_files(s, {"annual_customer_plan.bpmn": changed.encode()}, by="designer")
    assert len(schedules.start_due(sessions, now=JAN1)) == 1
    with sessions.begin() as s:
        [row] = schedules.list_schedules(s)
        assert row.version_id == deploy.get_version(s, "annual_customer_plan").id


def test_a_timer_start_of_an_older_release_too_long_for_its_column_is_skipped_with_a_warning(sessions, caplog):
    """A model deployed before deploy checked lengths: its schedule is not written (PostgreSQL would
    refuse the row and every worker round would fail), the reason is logged, start_due goes on."""
    _deploy_shipped(sessions, "annual_customer_plan.bpmn")
    with sessions.begin() as s:
        stored = s.scalars(select(ModelFile)).one()
        stored.content = stored.content.replace('"start_new_year"', '"' + "s" * 250 + '"')
    with caplog.at_level(logging.WARNING, logger="engine.schedules"):
        assert schedules.start_due(sessions, now=JAN1) == []
    with sessions.begin() as s:
        assert schedules.list_schedules(s) == []
    assert "is not scheduled: its element id has 250 characters, more than 200" in caplog.text
    # what docs/operations.md tells the operator: deploy a corrected version, and it is scheduled
    corrected = (ROOT / "bpmn" / "annual_customer_plan.bpmn").read_text().replace("Uusi vuosi alkaa", "Vuosi alkaa")
    with sessions.begin() as s:
        deploy.deploy_files(s, {"annual_customer_plan.bpmn": corrected.encode()}, by="designer")
    assert len(schedules.start_due(sessions, now=JAN1)) == 1


def test_contact_reminder_and_assignment_notice_are_mailed_once_through_real_smtp(sessions, smtp):
    customer_id = _people(sessions)
    settings = _settings(smtp)
    jobs.run_jobs(sessions, now=JAN1, settings=settings)  # sets the watermark
    with sessions.begin() as s:
        contacts.log_contact(s, customer_id, {"contacted_on": "2027-01-02", "channel": "phone", "topic": "Soitto",
                                              "next_contact_on": "2027-02-01"}, by="maija")
    day_before = datetime(2027, 1, 31, 12, tzinfo=UTC)
    assert jobs.run_jobs(sessions, now=day_before, settings=settings)["sent"] == 0
    on_the_day = datetime(2027, 2, 1, 6, tzinfo=UTC)
    for _ in range(2):  # a second worker round (or a restart) sends nothing twice
        jobs.run_jobs(sessions, now=on_the_day, settings=settings)
    mails = [m for m in smtp.messages if "Konepaja" in m[1]]
    assert len(mails) == 1 and mails[0][0] == ["maija@te.fi"]
    with sessions.begin() as s:
        assert notices.unread_count(s, "maija") == 1
        notices.mark_read(s, "maija")
        assert notices.unread_count(s, "maija") == 0


def test_failed_mail_is_retried_with_backoff_and_visible(sessions, smtp):
    customer_id = _people(sessions)
    broken = Settings(database_url="sqlite://", smtp_host="127.0.0.1", smtp_port=1)  # nothing listens there
    jobs.run_jobs(sessions, now=JAN1, settings=broken)
    with sessions.begin() as s:
        contacts.log_contact(s, customer_id, {"contacted_on": "2027-01-02", "channel": "phone", "topic": "Soitto",
                                              "next_contact_on": "2027-01-03"}, by="maija")
    t = datetime(2027, 1, 3, 8, tzinfo=UTC)
    jobs.run_jobs(sessions, now=t, settings=broken)
    with sessions.begin() as s:
        [mail] = notices.outbox(s)
        assert (mail.state, mail.attempts) == ("pending", 1) and mail.last_error
        assert mail.next_attempt_at == t + timedelta(minutes=1)
    assert jobs.run_jobs(sessions, now=t + timedelta(seconds=30), settings=_settings(smtp))["sent"] == 0
    assert jobs.run_jobs(sessions, now=t + timedelta(minutes=1), settings=_settings(smtp))["sent"] == 1
    with sessions.begin() as s:
        assert s.query(MailOutbox).one().state == "sent"


def test_absent_experts_due_task_shows_for_the_substitute_and_reminders_go_there(sessions, smtp):
    customer_id = _people(sessions)
    with sessions.begin() as s:
        absences.record_absence(s, "maija", "pekka", "2027-01-10", "2027-01-20", by="esko")
        with pytest.raises(FormInvalid):
            absences.record_absence(s, "maija", "maija", "2027-01-10", "2027-01-20", by="esko")
        contacts.log_contact(s, customer_id, {"contacted_on": "2027-01-02", "channel": "visit", "topic": "Käynti",
                                              "next_contact_on": "2027-01-12"}, by="maija")
        assert [a.substitute for a in absences.current_and_coming(s, date(2027, 1, 11))] == ["pekka"]
    settings = _settings(smtp)
    jobs.run_jobs(sessions, now=JAN1, settings=settings)
    jobs.run_jobs(sessions, now=datetime(2027, 1, 12, 6, tzinfo=UTC), settings=settings)
    assert [m[0] for m in smtp.messages if "Konepaja" in m[1]] == [["pekka@te.fi"]]
    with sessions.begin() as s:
        assert s.query(Notice).filter_by(username="pekka", kind="contact_due").count() == 1


REMINDER = Path(__file__).parent / "bpmn" / "reminder.bpmn"
T0 = datetime(2027, 1, 11, 8, 0, tzinfo=UTC)


def _reminder_tasks(sessions, *dues):
    with sessions.begin() as s:
        deploy.deploy_files(s, {"reminder.bpmn": REMINDER.read_bytes()}, by="designer")
    ids = []
    for due in dues:
        with sessions.begin() as s:
            instance = runtime.start_instance(s, "reminder", by="esko", data={"due": due}, now=T0)
            [task] = inbox.tasks(s, instance_id=instance.id)
            ids.append(task.id)
    return ids


def test_substitute_sees_the_absent_experts_due_tasks_marked_by_the_filter(sessions):
    _people(sessions)
    soon, later = _reminder_tasks(sessions, "P1D", "P30D")
    with sessions.begin() as s:
        for task_id in (soon, later):
            inbox.assign(s, task_id, "maija", by="esko")
        absences.record_absence(s, "maija", "pekka", "2027-01-10", "2027-01-20", by="esko")
    with sessions.begin() as s:
        windows = absences.cover_windows(s, "pekka", date(2027, 1, 11))
        page = inbox.list_tasks(s, inbox.TaskFilter(assignee="pekka", cover=windows))
        assert [t.id for t, _i in page.rows] == [soon]
        assert [t.id for t, _a in absences.cover_tasks(s, "pekka", date(2027, 1, 11))] == [soon]
        assert inbox.list_tasks(s, inbox.TaskFilter(assignee="pekka")).total == 0


def test_assignment_notices_and_digests(sessions, smtp):
    _people(sessions)
    settings = _settings(smtp)
    jobs.run_jobs(sessions, now=T0 - timedelta(days=1), settings=settings)  # watermark; digest of that day
    soon, later = _reminder_tasks(sessions, "P1D", "P30D")
    with sessions.begin() as s:
        inbox.assign(s, soon, "maija", by="esko")  # someone else assigns: a notice
        inbox.claim(s, later, by="maija")  # my own claim: none
    jobs.run_jobs(sessions, now=T0, settings=settings)
    jobs.run_jobs(sessions, now=T0 + timedelta(minutes=1), settings=settings)
    with sessions.begin() as s:
        kinds = sorted((n.username, n.kind) for n in s.query(Notice))
    assert kinds == [("maija", "assigned"), ("maija", "digest")]
    assert len([m for m in smtp.messages if m[0] == ["maija@te.fi"]]) == 2
    with sessions.begin() as s:
        notices.save_user_settings(s, "maija", email="maija@te.fi", email_opt_out=False, digest_opt_out=True)
    jobs.run_jobs(sessions, now=T0 + timedelta(days=1), settings=settings)  # the next day's digest: no e-mail
    with sessions.begin() as s:
        assert s.query(Notice).filter_by(kind="digest").count() == 2
    assert len([m for m in smtp.messages if m[0] == ["maija@te.fi"]]) == 2


def test_english_user_gets_english_notices(sessions):
    _people(sessions)
    with sessions.begin() as s:
        users.set_profile(s, "maija", locale="en", by="maija")
    jobs.run_jobs(sessions, now=T0 - timedelta(days=1), settings=Settings(database_url="sqlite://"))
    soon, = _reminder_tasks(sessions, "P1D")
    with sessions.begin() as s:
        inbox.assign(s, soon, "maija", by="esko")
    jobs.run_jobs(sessions, now=T0, settings=Settings(database_url="sqlite://"))
    with sessions.begin() as s:
        subjects = [n.subject for n in s.query(Notice).filter_by(kind="assigned")]
    assert subjects and subjects[0].startswith("A task was assigned to you")


def test_long_texts_are_kept_as_long_as_their_columns(sessions):
    with sessions.begin() as s:
        contacts.import_companies(s, "business_id;name\n0737546-2;Konepaja Oy\n", by="esko", source="s" * 250)
        user = users.add_user(s, "pitka", "salasana-123", ["expert"], display_name="D" * 300)
        assert user.display_name == "D" * 200
    with sessions.begin() as s:
        [row] = contacts.new_web_companies(s)
        assert row.source == "s" * 200


def test_a_notice_for_a_name_no_user_can_have_is_skipped_not_a_failed_jobs_round(sessions):
    with sessions.begin() as s:
        assert notices.notify(s, "k-long", "x" * 100, "reminder", "Soita", "Soita asiakkaalle") is None
        assert notices.notify(s, "k-ok", "anna", "reminder", "Soita", "Soita asiakkaalle") is not None
