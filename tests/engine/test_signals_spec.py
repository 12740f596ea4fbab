"""Signals and stuck cases (engine.runtime), stated from what the runtime promises.

A broadcast signal reaches every running case waiting for it (catch events, boundary events,
signal-started event subprocesses), each recorded as a `signal_received` event with its name and
payload by whoever sent it; the payload becomes the cases' data; the latest version of each process
with a signal start event of that name starts a new case with the payload. A signal nobody waits
for is not an error. `stuck_instances` lists running cases without an open incident that nothing
can move on, and only those.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from engine import audit, external, runtime
from engine import deploy as deploy_mod
from engine.deploy import deploy_files
from engine.models import Incident, Instance, InstanceStatus

from .conftest import MODELS, T0


def _start(sessions, process_id, data=None, key=None):
    with sessions.begin() as s:
        return runtime.start_instance(s, process_id, by="anna", data=data or {}, business_key=key, now=T0).id


def _tasks(sessions, iid):
    with sessions.begin() as s:
        return sorted(t["element_id"] for t in runtime.instance_summary(s, iid)["tasks"] if t["state"] == "ready")


def _received(sessions, iid):
    with sessions.begin() as s:
        return [(e.actor, e.at, e.version_id, json.loads(e.data)) for e in audit.history(s, iid)
                if e.kind == "signal_received"]


def test_a_signal_reaches_every_waiting_case_and_starts_the_processes_it_starts(sessions, deploy):
    deploy("c_signal.bpmn", "c_signal_start.bpmn")
    waiting = [_start(sessions, "c_signal"), _start(sessions, "c_signal")]
    later = T0 + timedelta(hours=1)
    with sessions.begin() as s:
        result = runtime.broadcast_signal(s, "go", by="esimies", data={"reason": "kick-off"}, now=later)
    assert result["delivered_to"] == waiting
    [started] = result["started"]
    with sessions.begin() as s:
        version_id = runtime.get_instance(s, waiting[0]).version_id
        new = runtime.get_instance(s, started)
        assert (new.process_id, new.started_by, new.started_at) == ("c_signal_start", "esimies", later)
        assert runtime.instance_variables(s, started) == {"reason": "kick-off"}
        assert runtime.instance_variables(s, waiting[1])["reason"] == "kick-off"
    for iid in waiting:
        assert _tasks(sessions, iid) == ["work"]
        assert _received(sessions, iid) == [("esimies", later, version_id,
                                             {"name": "go", "payload": {"reason": "kick-off"}})]
    assert _tasks(sessions, started) == ["react"]


def test_a_signal_nobody_waits_for_is_no_error(sessions, deploy):
    deploy("c_signal.bpmn")
    iid = _start(sessions, "c_signal")
    with sessions.begin() as s:
        assert runtime.broadcast_signal(s, "nobody", by="esimies", now=T0) == {"delivered_to": [], "started": []}
    assert _received(sessions, iid) == [] and _tasks(sessions, iid) == []


def test_a_signal_skips_finished_cases_and_the_excluded_one(sessions, deploy):
    deploy("c_signal.bpmn")
    first, second, third = (_start(sessions, "c_signal") for _ in range(3))
    with sessions.begin() as s:
        runtime.cancel_instance(s, first, by="esimies", now=T0)
    with sessions.begin() as s:
        assert runtime.broadcast_signal(s, "go", by="esimies", exclude=second, now=T0)["delivered_to"] == [third]
    assert _received(sessions, first) == [] and _received(sessions, second) == []


def test_a_signal_caught_by_an_event_subprocess_or_a_boundary_event(sessions, deploy):
    deploy("c_signal.bpmn", "c_signal_boundary.bpmn")
    subprocess_case = _start(sessions, "c_signal")
    boundary_case = _start(sessions, "c_signal_boundary")
    assert _tasks(sessions, boundary_case) == ["work"]
    with sessions.begin() as s:
        assert runtime.broadcast_signal(s, "alert", by="esimies", now=T0)["delivered_to"] == [subprocess_case]
    assert _tasks(sessions, subprocess_case) == ["handle_alert"]
    with sessions.begin() as s:
        assert runtime.broadcast_signal(s, "stop", by="esimies", now=T0)["delivered_to"] == [boundary_case]
    assert _tasks(sessions, boundary_case) == []  # the interrupting boundary cancelled the task
    with sessions.begin() as s:
        assert runtime.get_instance(s, boundary_case).status == InstanceStatus.COMPLETED


def test_only_the_latest_version_of_a_process_is_started_by_a_signal(sessions, deploy):
    deploy("c_signal_start.bpmn")
    second = (MODELS / "c_signal_start.bpmn").read_bytes().replace(b'name="React"', b'name="React again"')
    with sessions.begin() as s:
        deploy_files(s, {"c_signal_start.bpmn": second}, by="designer")
    with sessions.begin() as s:
        [started] = runtime.broadcast_signal(s, "go", by="esimies", now=T0)["started"]
        latest = deploy_mod.latest_version(s, "c_signal_start")
        assert latest.version == 2 and runtime.get_instance(s, started).version_id == latest.id


def _stuck_case(sessions, deploy):
    deploy("c_deadlock.bpmn")
    iid = _start(sessions, "c_deadlock", {"pick": "a"}, key="0101010-1")
    with sessions.begin() as s:
        [task] = runtime.instance_summary(s, iid)["tasks"]
        runtime.complete_task(s, task["id"], {}, by="anna", now=T0)
    _drop_incidents(sessions, iid)
    return iid


def _drop_incidents(sessions, iid):
    with sessions.begin() as s:  # as a case stuck before the check existed: no incident
        for incident in s.scalars(select(Incident).where(Incident.instance_id == iid)):
            s.delete(incident)
        s.get(Instance, iid).open_incidents = 0


def test_stuck_cases_are_listed_with_why_and_where(sessions, deploy):
    iid = _stuck_case(sessions, deploy)
    _start(sessions, "c_deadlock", {"pick": "a"})  # waits at its first task: not stuck
    with sessions.begin() as s:
        started = runtime.get_instance(s, iid).started_at
        [stuck] = runtime.stuck_instances(s)
    assert stuck | {"reason": None} == {"instance_id": iid, "process_id": "c_deadlock", "business_key": "0101010-1",
                                        "element_id": "join", "reason": None, "started_at": started.isoformat()}
    assert stuck["reason"].startswith("the case cannot go on: ")


def test_a_stuck_case_with_an_incident_or_no_longer_running_is_not_listed(sessions, deploy):
    iid = _stuck_case(sessions, deploy)
    with sessions.begin() as s:
        s.get(Instance, iid).open_incidents = 1
    with sessions.begin() as s:
        assert runtime.stuck_instances(s) == []
        instance = s.get(Instance, iid)
        instance.open_incidents, instance.status = 0, InstanceStatus.CANCELLED
    with sessions.begin() as s:
        assert runtime.stuck_instances(s) == []


def test_a_case_waiting_only_for_a_timer_a_signal_or_a_worker_is_not_stuck(sessions, deploy):
    deploy("wakeup.bpmn", "c_signal.bpmn", "external_service.bpmn")
    _start(sessions, "wakeup", {"follow_up_on": (T0 + timedelta(days=30)).isoformat()})
    _start(sessions, "c_signal")
    _start(sessions, "external_service", {"company": "Acme"})
    with sessions.begin() as s:
        assert all(not [t for t in runtime.instance_summary(s, i)["tasks"] if t["state"] == "ready"]
                   for i in (1, 2, 3))  # no ready task anywhere
        assert runtime.stuck_instances(s) == []


def test_the_clock_of_a_signal_defaults_to_now(sessions, deploy):
    deploy("c_signal.bpmn")
    iid = _start(sessions, "c_signal")
    before = datetime.now(UTC)
    with sessions.begin() as s:
        runtime.broadcast_signal(s, "go", by="esimies")
    [(_actor, at, _version, _data)] = _received(sessions, iid)
    assert before <= at <= datetime.now(UTC)


def test_a_stuck_case_whose_worker_task_is_done_is_listed(sessions):
    # c_deadlock with its first step done by a worker: a finished external task is no longer a wait
    model = (MODELS / "c_deadlock.bpmn").read_text(encoding="utf-8").replace(
        '<bpmn:userTask id="decide" name="Decide">',
        '<bpmn:serviceTask id="decide" name="Decide" camunda:type="external" camunda:topic="registry">',
    ).replace("</bpmn:userTask>", "</bpmn:serviceTask>")
    with sessions.begin() as s:
        deploy_files(s, {"c_deadlock.bpmn": model.encode()}, by="designer")
    iid = _start(sessions, "c_deadlock", {"pick": "a"})
    with sessions.begin() as s:
        [task] = external.fetch_and_lock(s, "w1", ["registry"], now=T0)
        external.complete(s, task.id, "w1", now=T0)
    _drop_incidents(sessions, iid)
    with sessions.begin() as s:
        assert [(c["instance_id"], c["element_id"]) for c in runtime.stuck_instances(s)] == [(iid, "join")]



def test_a_signal_a_case_throws_starts_a_child_of_that_case(sessions, deploy):
    deploy("c_throw.bpmn", "c_signal_start.bpmn")  # c_throw throws `go`; c_signal_start starts on it
    thrower = _start(sessions, "c_throw")
    with sessions.begin() as s:
        [child] = s.scalars(select(Instance).where(Instance.process_id == "c_signal_start")).all()
        assert (child.parent_instance_id, child.started_by) == (thrower, "anna")
    assert _tasks(sessions, child.id) == ["react"]
