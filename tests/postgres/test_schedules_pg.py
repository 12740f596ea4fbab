"""On PostgreSQL: the annual plan starts once on 1 January with several workers (threads and OS
processes), and a due reminder becomes one notice and one e-mail however many workers sweep."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from engine import contacts, customers, deploy, jobs, notices, runtime, schedules
from engine.config import Settings
from engine.db import make_engine, make_sessions
from engine.models import Instance, ModelFile
from engine.outreach_models import MailOutbox, Notice

ROOT = Path(__file__).resolve().parents[2]
POLKU = Path(sys.executable).parent / "polku"
JAN1 = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)


def _deploy_plan(sessions):
    with sessions.begin() as s:
        deploy.deploy_files(s, {"annual_customer_plan.bpmn": (ROOT / "bpmn" / "annual_customer_plan.bpmn").read_bytes()},
                            by="designer")


def test_four_worker_threads_start_the_annual_plan_once(fresh_pg_url):
    engine = make_engine(fresh_pg_url)
    sessions = make_sessions(engine)
    runtime.forget_cache()
    try:
        _deploy_plan(sessions)
        schedules.start_due(sessions, now=JAN1.replace(hour=12, day=30))
        barrier = threading.Barrier(4)
        results: list[list[int]] = []

        def worker(name: str) -> None:
            barrier.wait()
            results.append(schedules.start_due(sessions, now=JAN1, worker_id=name))

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(len(r) for r in results) == [0, 0, 0, 1]
        with sessions.begin() as s:
            assert s.query(Instance).filter_by(process_id="annual_customer_plan").count() == 1
    finally:
        engine.dispose()


def test_a_timer_start_too_long_for_its_column_does_not_stop_the_rounds(fresh_pg_url, caplog):
    """PostgreSQL refuses a text longer than its column: a schedule of a model deployed before
    deploy checked lengths is skipped with a warning instead of failing every round."""
    engine = make_engine(fresh_pg_url)
    sessions = make_sessions(engine)
    runtime.forget_cache()
    try:
        _deploy_plan(sessions)
        with sessions.begin() as s:
            stored = s.scalars(select(ModelFile)).one()
            stored.content = stored.content.replace('"start_new_year"', '"' + "s" * 250 + '"')
        with caplog.at_level(logging.WARNING, logger="engine.schedules"), sessions.begin() as s:
            assert schedules.sync(s, now=JAN1, force=True) == 0  # was: DataError, and the round failed
            assert schedules.list_schedules(s) == []
        assert "its element id has 250 characters" in caplog.text
    finally:
        engine.dispose()


def test_two_worker_processes_start_the_annual_plan_once(fresh_pg_url):
    engine = make_engine(fresh_pg_url)
    sessions = make_sessions(engine)
    try:
        _deploy_plan(sessions)
        schedules.start_due(sessions, now=JAN1.replace(hour=12, day=30))
        env = {**os.environ, "POLKU_DATABASE_URL": fresh_pg_url}
        procs = [subprocess.Popen([str(POLKU), "--json", "run-jobs", "--now", "2027-01-01T00:00:00+02:00"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        started = sorted(len(json.loads(out)["started"]) for out, _err in outputs)
        assert started == [0, 1]
        with sessions.begin() as s:
            assert s.query(Instance).filter_by(process_id="annual_customer_plan").count() == 1
    finally:
        engine.dispose()


def test_a_due_reminder_is_one_notice_and_one_mail_with_concurrent_workers(fresh_pg_url):
    engine = make_engine(fresh_pg_url)
    sessions = make_sessions(engine)
    sent: list[str] = []
    lock = threading.Lock()

    def send(message) -> None:
        with lock:
            sent.append(message["To"])

    try:
        settings = Settings(database_url=fresh_pg_url)
        jobs.run_jobs(sessions, now=JAN1, settings=settings, send=send)
        with sessions.begin() as s:
            customer = customers.create_customer(s, {"name": "Konepaja Oy", "business_id": "0737546-2"}, by="t")
            notices.save_user_settings(s, "maija", email="maija@te.fi", email_opt_out=False, digest_opt_out=False)
            contacts.log_contact(s, customer.id, {"contacted_on": "2027-01-02", "channel": "phone", "topic": "Soitto",
                                                  "next_contact_on": "2027-01-05"}, by="maija")
        barrier = threading.Barrier(4)

        def worker(name: str) -> None:
            barrier.wait()
            jobs.run_jobs(sessions, now=datetime(2027, 1, 5, 6, tzinfo=UTC), worker_id=name, settings=settings,
                          send=send)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sent == ["maija@te.fi"]
        with sessions.begin() as s:
            assert s.query(Notice).filter_by(kind="contact_due").count() == 1
            assert s.query(MailOutbox).filter_by(state="sent").count() == 1
    finally:
        engine.dispose()
