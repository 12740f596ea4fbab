"""BPMN constructs run the same three ways: in one process, reloaded between steps, and through the CLI.

Each test drives a small model (`tests/engine/bpmn/c_*.bpmn`) through a `Driver`:
- "straight": one process, the runtime's instance cache and the parsed specs stay warm;
- "reload": before every step the instance cache and the parsed specs are dropped, so each step
  loads the case from the database onto freshly parsed specs (what a new OS process does);
- "cli": every step is `polku …` in a new OS process on a temporary SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine import audit, deploy, inbox, runtime
from engine.db import make_engine, make_sessions, upgrade
from engine.models import Incident, IncidentStatus, Instance

MODELS = Path(__file__).parent / "bpmn"
POLKU = Path(sys.executable).parent / "polku"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class CliFailed(Exception):
    """A polku command exited non-zero."""

    def __init__(self, code: int, err: str):
        super().__init__(f"exit {code}: {err}")
        self.code, self.err = code, err


class Driver:
    """Drive the engine one step at a time, the way the chosen mode does."""

    def __init__(self, mode: str, tmp_path: Path):
        self.mode = mode
        self.url = f"sqlite:///{tmp_path}/constructs.db"
        self.engine = make_engine(self.url)
        upgrade(self.engine)
        self.sessions = make_sessions(self.engine)
        runtime.forget_cache()

    # -- plumbing
    def _fresh(self) -> None:
        if self.mode == "reload":
            runtime.forget_cache()
            deploy._bundle_cached.cache_clear()

    def _cli(self, *argv: str) -> Any:
        env = {**os.environ, "POLKU_DATABASE_URL": self.url}
        done = subprocess.run([str(POLKU), "--json", *argv], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise CliFailed(done.returncode, done.stderr.strip())
        return json.loads(done.stdout) if done.stdout.strip() else None

    # -- steps
    def deploy(self, *names: str) -> None:
        """Deploy model files from tests/engine/bpmn."""
        files = {n: (MODELS / n).read_bytes() for n in names}
        with self.sessions.begin() as s:
            deploy.deploy_files(s, files, by="designer")

    def start(self, process_id: str, data: dict | None = None, business_key: str | None = None) -> int:
        """Start an instance; return its id."""
        self._fresh()
        if self.mode == "cli":
            argv = ["start", process_id, "--data", json.dumps(data or {}), "--by", "anna"]
            if business_key:
                argv += ["--business-key", business_key]
            return self._cli(*argv)["id"]
        with self.sessions.begin() as s:
            return runtime.start_instance(s, process_id, by="anna", data=data, business_key=business_key,
                                          now=T0).id

    def complete(self, task_id: str, data: dict | None = None) -> None:
        """Complete a task."""
        self._fresh()
        if self.mode == "cli":
            self._cli("complete", task_id, "--data", json.dumps(data or {}), "--by", "anna")
            return
        with self.sessions.begin() as s:
            runtime.complete_task(s, task_id, data, by="anna", now=T0)

    def message(self, name: str, data: dict | None = None, business_key: str | None = None) -> list[int]:
        """Deliver a message from outside."""
        self._fresh()
        if self.mode == "cli":
            argv = ["message", name, "--data", json.dumps(data or {})]
            if business_key:
                argv += ["--business-key", business_key]
            return self._cli(*argv)["delivered_to"]
        with self.sessions.begin() as s:
            return runtime.deliver_message(s, name, by="cli", data=data, business_key=business_key, now=T0)

    def signal(self, name: str, data: dict | None = None) -> dict:
        """Broadcast a signal."""
        self._fresh()
        if self.mode == "cli":
            return self._cli("signal", name, "--data", json.dumps(data or {}))
        with self.sessions.begin() as s:
            return runtime.broadcast_signal(s, name, by="cli", data=data, now=T0)

    def fire_timers(self, now: datetime) -> None:
        """Fire every timer due at `now`."""
        self._fresh()
        if self.mode == "cli":
            self._cli("fire-timers", "--now", now.isoformat())
            return
        from engine import timers

        timers.fire_due_timers(self.sessions, now=now, worker_id="test")

    # -- looking
    def tasks(self, instance_id: int) -> list[dict]:
        """List the instance's open tasks (id, element_id)."""
        with self.sessions.begin() as s:
            return [{"id": t.id, "element_id": t.element_id} for t in inbox.tasks(s, instance_id=instance_id)]

    def summary(self, instance_id: int) -> dict:
        """Return the instance summary."""
        with self.sessions.begin() as s:
            return runtime.instance_summary(s, instance_id)

    def path(self, instance_id: int) -> list[str]:
        """Return the element ids of every path event, in order."""
        with self.sessions.begin() as s:
            return [e for ev in audit.history(s, instance_id) if ev.kind == audit.EventKind.PATH_TAKEN
                    for e in json.loads(ev.data)["elements"]]

    def kinds(self, instance_id: int) -> list[str]:
        """Return the kinds of the instance's audit events, in order."""
        with self.sessions.begin() as s:
            return [str(ev.kind) for ev in audit.history(s, instance_id)]

    def events(self, instance_id: int, kind: str) -> list[dict]:
        """Return the data of the instance's audit events of one kind."""
        with self.sessions.begin() as s:
            return [json.loads(ev.data) for ev in audit.history(s, instance_id) if str(ev.kind) == kind]

    def instances(self, process_id: str) -> list[int]:
        """Return the ids of a process's instances."""
        with self.sessions.begin() as s:
            return list(s.scalars(select(Instance.id).where(Instance.process_id == process_id).order_by(Instance.id)))

    def incidents(self, instance_id: int) -> list[str]:
        """Return the messages of the instance's open incidents."""
        with self.sessions.begin() as s:
            return [i.message for i in s.scalars(select(Incident).where(
                Incident.instance_id == instance_id, Incident.status == IncidentStatus.OPEN))]

    def do_all(self, instance_id: int, element_id: str, data: dict | None = None) -> int:
        """Complete open tasks of one element one at a time until none is left; return how many."""
        for done in range(20):
            open_ = [t for t in self.tasks(instance_id) if t["element_id"] == element_id]
            if not open_:
                return done
            self.complete(open_[0]["id"], data)
        raise AssertionError(f"{element_id} never ran out")


@pytest.fixture(params=["straight", "reload", "cli"])
def drive(request, tmp_path):
    """Return a Driver in each of the three modes."""
    driver = Driver(request.param, tmp_path)
    yield driver
    driver.engine.dispose()


@pytest.fixture(params=["straight", "reload"])
def drive_in_process(request, tmp_path):
    """Return a Driver in the two in-process modes (for cases the CLI cannot express)."""
    driver = Driver(request.param, tmp_path)
    yield driver
    driver.engine.dispose()


# ---------------------------------------------------------------------------------------------
# 1. Loops and multi-instance


def test_standard_loop_runs_to_its_maximum(drive):
    drive.deploy("c_loop.bpmn")
    iid = drive.start("c_loop")
    assert drive.do_all(iid, "work") == 3
    summary = drive.summary(iid)
    assert summary["status"] == "completed" and summary["variables"]["looped"] is True
    assert drive.path(iid)[-2:] == ["after", "end"]


def test_parallel_multi_instance_by_cardinality_waits_for_every_instance(drive):
    drive.deploy("c_mi_parallel.bpmn")
    iid = drive.start("c_mi_parallel")
    assert len(drive.tasks(iid)) == 3
    assert drive.do_all(iid, "review") == 3
    assert drive.summary(iid)["status"] == "completed"


def test_sequential_multi_instance_over_a_collection_writes_each_item_back(drive):
    drive.deploy("c_mi_sequential.bpmn")
    iid = drive.start("c_mi_sequential", {"items": ["a", "b", "c"]})
    seen = []
    for _ in range(3):
        (task,) = drive.tasks(iid)
        seen.append(drive.summary(iid)["variables"]["item"])
        drive.complete(task["id"], {"item": seen[-1].upper()})
    summary = drive.summary(iid)
    assert seen == ["a", "b", "c"]
    assert summary["status"] == "completed" and summary["variables"]["items"] == ["A", "B", "C"]


def test_loops_inside_a_subprocess_and_a_called_process_finish(drive):
    drive.deploy("c_sub_mi.bpmn")
    iid = drive.start("c_sub_mi")
    assert drive.do_all(iid, "inner") == 2
    assert drive.do_all(iid, "cl_work") == 2
    assert drive.summary(iid)["status"] == "completed"


# ---------------------------------------------------------------------------------------------
# 2-3. Send tasks, message throws, message start events


def test_send_task_delivers_to_a_waiting_receiver_and_a_throw_starts_a_process(drive):
    drive.deploy("c_send.bpmn", "c_receiver.bpmn", "c_msg_start.bpmn")
    receiver = drive.start("c_receiver", business_key="K-1")
    assert drive.tasks(receiver) == []
    sender = drive.start("c_sender", {"amount": 21}, business_key="K-1")
    assert drive.summary(sender)["status"] == "completed"
    assert [t["element_id"] for t in drive.tasks(receiver)] == ["handle"]
    assert [e["name"] for e in drive.events(sender, "message_thrown")] == ["order_ready", "new_case"]
    (started,) = drive.instances("c_msg_start")
    summary = drive.summary(started)
    assert [t["element_id"] for t in drive.tasks(started)] == ["handle"]
    assert summary["variables"]["order"] == {"amount": 42}  # camunda:resultVariable of the start event
    assert summary["business_key"] == "K-1" and summary["parent_instance_id"] == sender
    assert drive.path(started)[:1] == ["start"]


def test_send_task_with_no_receiver_is_recorded_not_a_crash(drive):
    drive.deploy("c_send.bpmn")
    sender = drive.start("c_sender", {"amount": 1})
    assert drive.summary(sender)["status"] == "completed"
    thrown = drive.events(sender, "message_thrown")
    assert [(e["name"], e["delivered_to"]) for e in thrown] == [("order_ready", []), ("new_case", [])]


# ---------------------------------------------------------------------------------------------
# 5-6. Signals


def test_signal_reaches_catch_events_event_subprocesses_and_signal_starts(drive):
    drive.deploy("c_signal.bpmn", "c_signal_start.bpmn")
    iid = drive.start("c_signal")
    assert drive.tasks(iid) == []
    reached = drive.signal("alert", {"level": 2})
    assert reached == {"delivered_to": [iid], "started": []}
    assert [t["element_id"] for t in drive.tasks(iid)] == ["handle_alert"]
    drive.do_all(iid, "handle_alert")  # finishing the event subprocess crashed in a new process
    assert drive.incidents(iid) == [] and drive.summary(iid)["status"] == "running"
    reached = drive.signal("go")
    (started,) = drive.instances("c_signal_start")
    assert reached == {"delivered_to": [iid], "started": [started]}
    assert [t["element_id"] for t in drive.tasks(started)] == ["react"]
    drive.do_all(iid, "work")
    summary = drive.summary(iid)
    assert summary["status"] == "completed" and summary["variables"]["level"] == 2
    assert "signal_received" in drive.kinds(iid)
    assert {"alert_start", "alert_end", "wait_go", "end"} <= set(drive.path(iid))


def test_a_signal_nobody_waits_for_reaches_nobody(drive):
    drive.deploy("c_signal.bpmn")
    assert drive.signal("nobody") == {"delivered_to": [], "started": []}


def test_translate_never_raises_whatever_spiff_hands_it():
    from SpiffWorkflow.exceptions import WorkflowException

    from engine import spiff

    odd = WorkflowException("No input task connected")
    odd.task_spec = "c_signal.EndJoin"  # Spiff sometimes gives a spec name, not a spec
    assert spiff.translate(odd).element == "c_signal.EndJoin"
    empty = WorkflowException("x")
    empty.args = ()
    assert isinstance(spiff.translate(empty), Exception)
