"""`polku serve` as a real OS process: gunicorn with two web processes sharing one signing key and one
embedded timer worker, stopped cleanly by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from engine import runtime, users
from engine.audit import EventKind
from engine.db import make_engine, make_sessions, upgrade
from engine.deploy import deploy_files
from engine.models import AuditEvent, Instance

POLKU = str(Path(sys.executable).with_name("polku"))
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
NAP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://t">
  <bpmn:process id="nap" name="Nap" isExecutable="true">
    <bpmn:startEvent id="go"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="t"><bpmn:timeDuration>'PT1S'</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="go" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="done" />
  </bpmn:process>
</bpmn:definitions>
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _wait_until(check, what: str, attempts: int = 600):
    for _ in range(attempts):  # readiness polling, not a timing assertion
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/login").status_code == 200
    except httpx.TransportError:
        return False


def test_serve_runs_two_web_processes_sharing_sign_ins_and_one_timer_worker(tmp_path):
    url = f"sqlite:///{tmp_path}/serve.db"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        users.add_user(s, "expert1", "expert1-password", ["expert"])
        deploy_files(s, {"nap.bpmn": NAP.encode()}, by="test")
        instance_id = runtime.start_instance(s, "nap", by="test").id
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "access.log"
    env = {**os.environ, "POLKU_DATABASE_URL": url, "POLKU_WORKER_POLL": "0.2", "POLKU_WEB_TIMEOUT": "300"}
    env.pop("POLKU_SECRET_KEY", None)
    env.pop("POLKU_ENV", None)
    server = subprocess.Popen([POLKU, "serve", "--port", str(port), "--workers", "2", "--threads", "1",
                               "--access-log", str(log)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until(lambda: _up(base), "the server answers")
        key_file = tmp_path / "var" / "secret_key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        timer_workers = [c for c in _children(server.pid) if "main(['worker'])" in _cmdline(c)]
        web = [c for c in _children(server.pid) if c not in timer_workers]
        assert len(timer_workers) == 1 and len(web) == 2
        for pid in web:  # each web process's heartbeat file is in memory (webui.server.heartbeat_dir), not on disk
            held_files = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            assert any(f.startswith("/dev/shm/wgunicorn-") for f in held_files), held_files

        # One web process (sync worker, one request at a time) is kept busy reading a half-sent request...
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"GET /tasks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(1)  # let it be accepted (ordering only; nothing is measured)
        # ...so the other one signs in.
        with httpx.Client(base_url=base) as client:
            page = client.get("/login").text
            token = next(a or b for a, b in CSRF.findall(page))
            signed = client.post("/login", data={"username": "expert1", "password": "expert1-password",
                                                 "csrf_token": token})
            assert signed.status_code == 302 and "/login" not in signed.headers["location"]
            cookie = client.cookies["polku_session"]
        # The busy one finishes the held request with that cookie: it reads a sign-in made by the other.
        held.sendall(f"Cookie: polku_session={cookie}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := held.recv(65536):
            reply += chunk
        held.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        lines = _wait_until(lambda: [ln for ln in log.read_text().splitlines() if ln], "the access log")
        pid_of = {ln.split('"')[1]: re.search(r"pid=<(\d+)>", ln).group(1) for ln in lines}
        assert pid_of["GET /tasks/ HTTP/1.1"] != pid_of["POST /login HTTP/1.1"]

        def finished() -> bool:
            with sessions.begin() as s:
                return s.get(Instance, instance_id).status == "completed"

        _wait_until(finished, "the timer fired")
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=120)
    assert server.returncode == 0, err.decode()[-2000:]
    assert b'"stopped": true' in out
    assert not Path(f"/proc/{timer_workers[0]}").exists()
    with sessions.begin() as s:
        fired = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.instance_id == instance_id, AuditEvent.kind == EventKind.TIMER_FIRED))
    assert fired == 1
    engine.dispose()


@pytest.mark.parametrize("status, sent", [("200 OK", 5120), ("302 FOUND", 0), (404, None)])
def test_the_access_line_is_gunicorns_own_from_fewer_values(status, sent):
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn import glogging
    from gunicorn.config import Config

    from webui.server import ACCESS_LOG_FORMAT, AccessLogger

    resp = SimpleNamespace(status=status, sent=sent, headers=[("Content-Type", "text/html"), ("Set-Cookie", "x=1")])
    req = SimpleNamespace(headers=[("HOST", "polku.example"), ("COOKIE", "polku_session=abc")])
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "RAW_URI": "/tasks/abc?tab=group",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/tasks/abc", "QUERY_STRING": "tab=group"}
    took = timedelta(seconds=1, microseconds=12_700)
    ours, theirs = AccessLogger(Config()), glogging.Logger(Config())
    line = ACCESS_LOG_FORMAT % glogging.SafeAtoms(ours.atoms(resp, req, environ, took))
    assert line == ACCESS_LOG_FORMAT % glogging.SafeAtoms(theirs.atoms(resp, req, environ, took))
    assert line.startswith('10.0.0.7 "POST /tasks/abc?tab=group HTTP/1.1" ') and " 1012ms pid=<" in line


def test_heartbeat_files_go_to_a_memory_backed_folder_where_there_is_one(tmp_path):
    from webui.server import heartbeat_dir

    assert heartbeat_dir(tmp_path) == str(tmp_path)
    assert heartbeat_dir(tmp_path / "absent") is None  # gunicorn's default: the temporary folder
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-file").chmod(0o755)  # writable and executable: refused only as not a folder
    assert heartbeat_dir(tmp_path / "a-file") is None
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert heartbeat_dir(locked) is None


SETTLE = """
import gc, sys
from webui import server
if sys.argv[1] != "default":
    gc.set_threshold(int(sys.argv[1]), 10, 10)
server.settle_heap()
print(*gc.get_threshold(), gc.get_freeze_count() > 1000)
"""


@pytest.mark.parametrize(("before", "after"), [
    ("default", "10000 10 10"),  # Python's 700: raised to webui.server.YOUNG_OBJECTS
    ("20000", "20000 10 10"),  # higher already: kept
    ("0", "0 10 10"),  # automatic collection turned off: stays off
])
def test_a_web_process_settles_its_heap_and_collects_the_young_generation_less_often(before, after):
    shown = subprocess.run([sys.executable, "-c", SETTLE, before], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parents[2], timeout=60).stdout.split()
    assert " ".join(shown[:3]) == after
    assert shown[3:] == ["True"]  # what the imports made is frozen


def test_serve_settles_each_web_process_heap_when_its_app_is_built(monkeypatch):
    from engine.config import Settings
    from webui import server

    settled = []
    monkeypatch.setattr(server, "settle_heap", lambda: settled.append(True))
    built = server.PolkuServer(Settings(database_url="sqlite://", secret_key="s" * 40), host="127.0.0.1",
                               port=0).load()
    assert settled == [True] and built.name == "webui"
