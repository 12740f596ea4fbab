"""Faults against live processes: `polku serve` whose disk fills up while an expert submits a task
form, `polku serve` killed with SIGKILL while customers are being registered, and a `polku
worker` killed with SIGKILL while it fires timers. Every process is a real OS process on a real
SQLite file; the test talks HTTP to the server on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from engine import audit, customers, deploy, runtime, users
from engine.db import make_engine, make_sessions, upgrade
from engine.inbox import tasks as open_tasks
from engine.models import AuditEvent, Customer, Incident, Task, Timer

from .conftest import POLKU, fill_disk

ROOT = Path(__file__).parents[2]
BOUND = 60
BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"


class Browser:
    """A minimal HTTP client for one signed-in user: cookies by hand, no redirects followed."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | list | None = None) -> tuple[int, dict, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
        finally:
            conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, dict(response.headers), text

    def token(self, path: str = "/login") -> str:
        _status, _headers, page = self.request("GET", path)
        return re.search(r'<meta name="csrf-token" content="([^"]+)">', page)[1]

    def sign_in(self, username: str) -> None:
        status, _h, _p = self.request("POST", "/login", {"csrf_token": self.token(), "username": username,
                                                         "password": PASSWORD})
        assert status == 302


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(url: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "POLKU_DATABASE_URL": url, "POLKU_SECRET_KEY": "fault-test-secret-key-0123456789",
           "POLKU_EMBEDDED_WORKER": "0", "POLKU_INSECURE_COOKIES": "1"}
    with log.open("wb") as err:
        proc = subprocess.Popen([str(POLKU), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)  # its own group: killed whole, as a service is
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:  # ready when it answers a page (an open port alone is not: a web
        assert proc.poll() is None, log.read_text()  # process may still be starting, or the port another's)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                return proc
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise AssertionError("polku serve did not start")


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _verify_audit(url: str) -> None:
    done = subprocess.run([str(POLKU), "verify-audit"], env={**os.environ, "POLKU_DATABASE_URL": url},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"], done.stderr


@pytest.fixture
def office(tiny_disk):
    """A database on the tiny disk with the shipped process, an expert and one case."""
    url = f"sqlite:///{tiny_disk}/polku.db"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in (ROOT / "bpmn").iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        users.add_user(s, "eeva", PASSWORD, ["expert"])
        customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID}, by="test")
        start = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
                 "contact_reason": "Kasvu"}
        instance = runtime.start_instance(s, "customer_service", by="test", data=start, business_key=BUSINESS_ID)
        task_id = open_tasks(s, instance_id=instance.id)[0].id
    runtime.forget_cache()
    yield {"url": url, "sessions": sessions, "task_id": task_id, "instance_id": instance.id, "disk": tiny_disk}
    engine.dispose()


def test_live_server_with_a_full_disk_keeps_the_typed_task_form(office, tmp_path):
    port = _free_port()
    server = _serve(office["url"], port, tmp_path / "serve.log")
    try:
        browser = Browser(port)
        browser.sign_in("eeva")
        path = f"/tasks/{office['task_id']}"
        form = {"csrf_token": browser.token(path), "assessment_date": date.today().isoformat(),
                "assessment_method": "company_visit", "company_situation": "growth", "headcount": "42",
                "segment": "local", "identified_needs": ["other_partner_service"], "contact_person": "Matti",
                "contact_phone": "040 1", "assessment_notes": "Tärkeä muistiinpano levyn täyttyessä",
                "process_agreed_with_customer": "true", "responsible_expert": "eeva"}
        free = fill_disk(office["disk"])
        try:
            status, headers, page = browser.request("POST", path, form)
        finally:
            free()
        assert status == 503 and headers.get("Retry-After")
        assert "Ei tallennettu" in page and "Tärkeä muistiinpano levyn täyttyessä</textarea>" in page
        assert 'value="other_partner_service" checked' in page
        status, _headers, _page = browser.request("POST", path, form)  # room again: the same post goes through
        assert status == 302
    finally:
        _end(server)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
    with office["sessions"].begin() as s:
        completed = [e for e in audit.history(s, office["instance_id"]) if e.kind == "task_completed"]
        assert len(completed) == 1 and s.get(Task, office["task_id"]).completed_by == "eeva"
    _verify_audit(office["url"])


def _business_ids(count: int) -> list[str]:
    found, number = [], 1000000
    weights = (7, 9, 10, 5, 8, 4, 2)
    while len(found) < count:
        number += 1
        digits = [int(d) for d in str(number)]
        rest = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11
        if rest != 1:
            found.append(f"{number}-{0 if rest == 0 else 11 - rest}")
    return found


def test_web_process_killed_while_customers_are_registered(office, tmp_path):
    port = _free_port()
    server = _serve(office["url"], port, tmp_path / "serve.log")
    confirmed: list[str] = []
    ids = _business_ids(200)
    stop = threading.Event()

    def register(chunk: list[str]) -> None:
        try:
            browser = Browser(port)
            browser.sign_in("eeva")
            token = browser.token("/customers/new")
            for business_id in chunk:
                if stop.is_set():
                    return
                status, _h, _p = browser.request("POST", "/customers/new", {
                    "csrf_token": token, "name": f"Yritys {business_id}", "business_id": business_id})
                if status == 302:
                    confirmed.append(business_id)
        except (OSError, http.client.HTTPException):  # the server died under us: the last one may or may not be saved
            return

    threads = [threading.Thread(target=register, args=(ids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + BOUND
    while len(confirmed) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    # kill -9 in the middle of the writes, the master and its web processes at once (as systemd stops a
    # service): a master killed alone leaves its web processes serving on the port until they notice
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=15)
    stop.set()
    for thread in threads:
        thread.join(timeout=BOUND)
    assert len(confirmed) >= 20
    restarted = _serve(office["url"], port, tmp_path / "serve2.log")  # the same database opens again
    try:
        browser = Browser(port)
        browser.sign_in("eeva")
        status, _h, _page = browser.request("GET", "/customers/?q=Yritys")
        assert status == 200
    finally:
        _end(restarted)
    with office["sessions"].begin() as s:
        stored = [c.business_id for c in s.scalars(select(Customer).where(Customer.name.like("Yritys %")))]
        assert set(confirmed) <= set(stored), "a confirmed registration was lost"
        assert len(stored) == len(set(stored)), "a registration was stored twice"
        events = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "customer_changed",
                                                                            AuditEvent.actor == "eeva"))
        assert events == len(stored), "every stored customer has its audit event, and only those"
    _verify_audit(office["url"])


def test_worker_killed_while_firing_loses_and_doubles_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/w.db"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        deploy.deploy_files(s, {"reminder.bpmn": (ROOT / "tests" / "engine" / "bpmn" / "reminder.bpmn").read_bytes()},
                            by="test")
        past = datetime.now(UTC) - timedelta(days=15)
        instance_ids = [runtime.start_instance(s, "reminder", by="load", data={"due": "P7D"}, now=past).id
                        for _ in range(600)]
    env = {**os.environ, "POLKU_DATABASE_URL": url}

    def fired() -> int:
        # a plain reader (WAL lets it read beside the writer); the engine's sessions begin IMMEDIATE and
        # would queue behind the worker's back-to-back firing transactions until it has fired everything
        with contextlib.closing(sqlite3.connect(f"file:{tmp_path}/w.db?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM audit_event WHERE kind = 'timer_fired'").fetchone()[0]

    def start_worker(name: str) -> subprocess.Popen:
        with (tmp_path / f"{name}.log").open("wb") as err:
            return subprocess.Popen([str(POLKU), "worker", "--poll", "0.2", "--lease", "2"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)

    first = start_worker("first")
    deadline = time.monotonic() + BOUND
    while fired() < 1 and time.monotonic() < deadline:  # kill as soon as it is firing
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=15)
    assert fired() < len(instance_ids), "the worker finished before it was killed: nothing was tested"
    second = start_worker("second")
    try:
        while fired() < len(instance_ids) and time.monotonic() < deadline + BOUND:
            assert second.poll() is None, (tmp_path / "second.log").read_text()
            time.sleep(0.2)
    finally:
        _end(second)
    with sessions.begin() as s:
        rows = s.execute(select(AuditEvent.instance_id).where(AuditEvent.kind == "timer_fired")).scalars().all()
        assert sorted(rows) == sorted(instance_ids), "a timer was lost or fired twice"
        assert s.scalar(select(func.count()).select_from(Timer)) == 0
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
        assert audit.verify(s).ok
    engine.dispose()
