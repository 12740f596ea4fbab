"""External tasks: a service task waits for a worker; fetch and lock, complete, fail, extend, expire.

Each flow runs straight in one process and again reloading everything between steps (`step`);
`test_cli_*` drive the same through `polku external …` with every step a new OS process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import audit, deploy, external, runtime, timers
from engine.errors import (
    DataInvalid,
    ExternalTaskNotAvailable,
    ExternalTaskNotFound,
    InvalidInput,
    InvalidModel,
)
from engine.models import ExternalTask, ExternalTaskState, Instance, InstanceStatus

from .conftest import MODELS, T0, at


def start(sessions, process_id="external_service", data=None, key="0101010-1", now=T0) -> int:
    with sessions.begin() as s:
        return runtime.start_instance(s, process_id, by="anna", data=data or {"company": "Acme"},
                                      business_key=key, now=now).id


def fetch(sessions, worker="w1", topics=(("registry", 60),), now=T0, **kw):
    with sessions.begin() as s:
        return external.fetch_and_lock(s, worker, list(topics), now=now, **kw)


def kinds(sessions, instance_id):
    with sessions.begin() as s:
        return [e.kind for e in audit.history(s, instance_id)]


def rows(sessions, **kw):
    with sessions.begin() as s:
        return [external.task_dict(r, now=T0) for r in external.list_tasks(s, state=None, **kw)]


def test_service_task_waits_for_a_worker_then_runs_on_with_its_variables(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    step()
    with sessions.begin() as s:
        summary = runtime.instance_summary(s, iid)
        assert summary["status"] == "running" and summary["tasks"] == [] and summary["incidents"] == []
        assert external.open_for_instance(s, iid) == 1
    [row] = rows(sessions)
    assert (row["topic"], row["element_id"], row["state"], row["priority"], row["retries"]) == \
        ("registry", "check_registry", "open", 5, None)
    step()
    [task] = fetch(sessions, now=at(5), max_tasks=5)
    assert task.as_dict() | {"lock_expires_at": None} == {
        "id": row["id"], "topic": "registry", "instance_id": iid, "process_id": "external_service",
        "element_id": "check_registry", "business_key": "0101010-1", "variables": {"company": "Acme"},
        "priority": 5, "retries": None, "worker_id": "w1", "lock_expires_at": None,
        "error_message": None, "error_details": None}
    assert task.lock_expires_at == at(65)
    step()
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(10))
    step()
    with sessions.begin() as s:
        summary = runtime.instance_summary(s, iid)
        assert [t["element_id"] for t in summary["tasks"]] == ["review"]
        assert summary["variables"] == {"company": "Acme", "status": "active", "outcome": "ok"}
        assert external.open_for_instance(s, iid) == 0
        events = audit.history(s, iid)
        assert audit.verify(s, iid).ok
    assert rows(sessions)[0]["state"] == "completed" and rows(sessions)[0]["ended_by"] == "w1"
    names = [e.kind for e in events]
    assert names.index("external_task_created") < names.index("external_task_locked") \
        < names.index("external_task_completed") < names.index("task_created")
    completed = next(e for e in events if e.kind == "external_task_completed")
    assert json.loads(completed.data)["variables"] == {"status": "active"} and completed.actor == "w1"
    paths = [json.loads(e.data)["elements"] for e in events if e.kind == "path_taken"]
    assert paths == [["start"], ["check_registry", "decide"]]


def test_a_locked_task_goes_to_no_other_worker_until_its_lock_expires(sessions, deploy, step):
    deploy("external_service.bpmn")
    start(sessions)
    [mine] = fetch(sessions, "w1", now=at(0))
    step()
    assert fetch(sessions, "w2", now=at(59)) == []
    step()
    [theirs] = fetch(sessions, "w2", now=at(60))  # w1's lock ran out at 60 s
    assert theirs.id == mine.id and theirs.worker_id == "w2"
    step()
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="locked by worker w2, not by w1"):
        external.complete(s, mine.id, "w1", {"status": "active"}, now=at(61))
    step()
    with sessions.begin() as s:
        external.complete(s, theirs.id, "w2", {"status": "active"}, now=at(62))
    step()
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="already completed by worker w2"):
        external.complete(s, mine.id, "w2", {}, now=at(63))


def test_an_expired_lock_refuses_its_own_worker(sessions, deploy, step):
    deploy("external_service.bpmn")
    start(sessions)
    [task] = fetch(sessions, "w1", now=at(0))
    step()
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="expired at .*fetch it again"):
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(60))
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="expired"):
        external.extend_lock(s, task.id, "w1", 60, now=at(61))


def test_refusals_say_why(sessions, deploy):
    deploy("external_service.bpmn")
    start(sessions)
    [row] = rows(sessions)
    with sessions.begin() as s, pytest.raises(ExternalTaskNotFound, match="no external task 999"):
        external.complete(s, 999, "w1", {})
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="not locked by worker w1: fetch"):
        external.complete(s, row["id"], "w1", {}, now=at(1))
    with sessions.begin() as s, pytest.raises(InvalidInput, match="at least one topic"):
        external.fetch_and_lock(s, "w1", [], now=at(1))
    with sessions.begin() as s, pytest.raises(InvalidInput, match="lock duration must be more than 0"):
        external.fetch_and_lock(s, "w1", [("registry", 0)], now=at(1))
    with sessions.begin() as s, pytest.raises(InvalidInput, match="worker id"):
        external.fetch_and_lock(s, " ", ["registry"], now=at(1))
    with sessions.begin() as s, pytest.raises(InvalidInput, match="max tasks"):
        external.fetch_and_lock(s, "w1", ["registry"], max_tasks=0, now=at(1))
    [task] = fetch(sessions, "w1", now=at(2))
    with sessions.begin() as s, pytest.raises(DataInvalid, match="status .*set"):
        external.complete(s, task.id, "w1", {"status": {"a", "b"}}, now=at(3))
    with sessions.begin() as s, pytest.raises(InvalidInput, match="failure message cannot be empty"):
        external.fail(s, task.id, "w1", "  ", now=at(3))
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="locked by worker w1, not by w2"):
        external.fail(s, task.id, "w2", "no", now=at(3))


def test_fetch_takes_the_highest_priority_then_the_oldest_and_only_named_variables(sessions, deploy, step):
    deploy("external_kinds.bpmn")
    low = start(sessions, "external_kinds", {"urgency": 1, "letter": "A"}, key="1", now=at(0))
    high = start(sessions, "external_kinds", {"urgency": 9, "letter": "B"}, key="2", now=at(1))
    later = start(sessions, "external_kinds", {"urgency": 1, "letter": "C"}, key="3", now=at(2))
    step()
    [first] = fetch(sessions, "w1", [external.Topic("letters", 30, ("letter",))], now=at(3))
    assert (first.instance_id, first.priority, first.variables) == (high, 9, {"letter": "B"})
    step()
    both = fetch(sessions, "w2", [("letters", 30)], now=at(4), max_tasks=5)
    assert [t.instance_id for t in both] == [low, later]
    assert both[0].variables == {"letter": "A", "urgency": 1}


def test_send_and_business_rule_tasks_can_be_external(sessions, deploy, step):
    deploy("external_kinds.bpmn")
    iid = start(sessions, "external_kinds", {"urgency": 2})
    step()
    [letter] = fetch(sessions, "mailer", [("letters", 30), ("scoring", 30)], now=at(1), max_tasks=5)
    assert letter.element_id == "send_letter"
    with sessions.begin() as s:
        external.complete(s, letter.id, "mailer", {"sent": True}, now=at(2))
    step()
    [score] = fetch(sessions, "scorer", [("scoring", 30)], now=at(3))
    assert score.element_id == "score" and score.variables["sent"] is True
    with sessions.begin() as s:
        external.complete(s, score.id, "scorer", {"score": 7}, now=at(4))
    step()
    with sessions.begin() as s:
        instance = runtime.get_instance(s, iid)
        assert instance.status == InstanceStatus.COMPLETED
        assert runtime.instance_variables(s, iid) == {"urgency": 2, "sent": True, "score": 7}
    assert "message_thrown" not in kinds(sessions, iid)  # the worker sent the letter, not the engine


def test_failures_with_retries_then_an_incident_then_a_retry(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    [task] = fetch(sessions, "w1", now=at(0))
    step()
    with sessions.begin() as s:
        row = external.fail(s, task.id, "w1", "registry timed out", "GET /companies: 504", retries=1,
                            retry_timeout_seconds=300, now=at(10))
        assert (row.retries, row.lock_owner, row.lock_expires_at) == (1, None, at(310))
    step()
    assert fetch(sessions, "w2", now=at(309)) == []
    [again] = fetch(sessions, "w2", now=at(310))
    assert (again.retries, again.error_message, again.error_details) == \
        (1, "registry timed out", "GET /companies: 504")
    step()
    with sessions.begin() as s:
        external.fail(s, again.id, "w2", "registry down", now=at(320))  # no retries given: one fewer, 0
    step()
    assert fetch(sessions, "w3", now=at(10_000)) == []
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        assert (incident.element_id, incident.message) == ("check_registry", "external task failed: registry down")
        assert runtime.get_instance(s, iid).open_incidents == 1
        incident_id = incident.id
    step()
    with sessions.begin() as s:
        resolved = runtime.retry_incident(s, incident_id, by="esimies", data={"hint": "use the mirror"},
                                          now=at(400))
        assert str(resolved.status) == "resolved"
    step()
    [third] = fetch(sessions, "w3", now=at(401))
    assert third.retries == 1 and third.variables["hint"] == "use the mirror"
    with sessions.begin() as s:
        external.complete(s, third.id, "w3", {"status": "active"}, now=at(402))
    step()
    with sessions.begin() as s:
        assert [t["element_id"] for t in runtime.instance_summary(s, iid)["tasks"]] == ["review"]
        failed = [json.loads(e.data) for e in audit.history(s, iid) if e.kind == "external_task_failed"]
        assert audit.verify(s, iid).ok
    assert [(f["message"], f["retries_left"]) for f in failed] == [("registry timed out", 1), ("registry down", 0)]


def test_extend_lock_keeps_the_task_from_other_workers(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    [task] = fetch(sessions, "w1", now=at(0))
    step()
    with sessions.begin() as s:
        assert external.extend_lock(s, task.id, "w1", 120, now=at(50)).lock_expires_at == at(170)
    step()
    assert fetch(sessions, "w2", now=at(100)) == []
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="not by w2"):
        external.extend_lock(s, task.id, "w2", 120, now=at(101))
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(150))
    assert "external_task_lock_extended" in kinds(sessions, iid)


def test_unlock_gives_the_task_to_any_worker_at_once(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    [task] = fetch(sessions, "w1", now=at(0))
    with sessions.begin() as s:
        external.unlock(s, task.id, by="admin", now=at(1))
    step()
    [taken] = fetch(sessions, "w2", now=at(2))
    assert taken.id == task.id
    assert "external_task_unlocked" in kinds(sessions, iid)


def test_cancelling_the_case_cancels_its_external_task(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    [task] = fetch(sessions, "w1", now=at(0))
    step()
    with sessions.begin() as s:
        runtime.cancel_instance(s, iid, by="esimies", reason="customer withdrew", now=at(5))
    step()
    assert rows(sessions)[0]["state"] == "cancelled"
    assert fetch(sessions, "w2", now=at(100)) == []
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="cancelled: its case no longer"):
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(6))
    with sessions.begin() as s:
        assert external.open_for_instance(s, iid) == 0


def test_an_interrupting_timer_on_the_service_task_cancels_its_external_task(sessions, deploy, step):
    deploy("external_boundary.bpmn")
    iid = start(sessions, "external_boundary")
    [task] = fetch(sessions, "w1", now=at(10))
    step()
    assert timers.fire_due_timers(sessions, now=at(3600)) >= 1
    step()
    [row] = rows(sessions)
    assert (row["state"], row["ended_by"]) == ("cancelled", "timer")
    with sessions.begin() as s:
        assert [t["element_id"] for t in runtime.instance_summary(s, iid)["tasks"]] == ["chase"]
    with sessions.begin() as s, pytest.raises(ExternalTaskNotAvailable, match="cancelled"):
        external.complete(s, task.id, "w1", {}, now=at(3601))
    assert "external_task_cancelled" in kinds(sessions, iid)


def test_the_worker_in_time_beats_the_timer(sessions, deploy, step):
    deploy("external_boundary.bpmn")
    iid = start(sessions, "external_boundary")
    [task] = fetch(sessions, "w1", now=at(10))
    step()
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"found": True}, now=at(20))
    step()
    with sessions.begin() as s:
        instance = runtime.instance_summary(s, iid)
    assert instance["status"] == "completed" and instance["timers"] == []


def test_a_script_failing_after_the_worker_is_an_incident_and_the_task_stays_done(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    [task] = fetch(sessions, "w1", now=at(0))
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"state": "typo"}, now=at(1))  # `decide` needs `status`
    step()
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, iid)
        assert incident.element_id == "decide" and "status" in incident.message
        assert external.open_for_instance(s, iid) == 0
        incident_id = incident.id
    step()
    assert fetch(sessions, "w2", now=at(1000)) == []
    with sessions.begin() as s:
        runtime.retry_incident(s, incident_id, by="esimies", data={"status": "active"}, now=at(2))
    step()
    with sessions.begin() as s:
        assert [t["element_id"] for t in runtime.instance_summary(s, iid)["tasks"]] == ["review"]


def test_a_migrated_case_keeps_waiting_for_its_worker(sessions, deploy, step):
    deploy("external_service.bpmn")
    iid = start(sessions)
    changed = (MODELS / "external_service.bpmn").read_text().replace('name="Review"', 'name="Review it"')
    with sessions.begin() as s:
        target = deploy_mod_files(s, changed)
        runtime.change_version(s, iid, target, lambda _i, _w: None, by="designer", now=at(5))
    step()
    [task] = fetch(sessions, "w1", now=at(6))
    assert task.element_id == "check_registry"
    with sessions.begin() as s:
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(7))
        assert [t["name"] for t in runtime.instance_summary(s, iid)["tasks"]] == ["Review it"]
        assert external.open_for_instance(s, iid) == 0


def deploy_mod_files(session, text):
    result = deploy.deploy_files(session, {"external_service.bpmn": text.encode()}, by="designer")
    return result.created[0]


def test_a_fetch_moves_the_case_revision_so_no_process_acts_on_a_stale_audit_head(sessions, deploy):
    deploy("external_service.bpmn")
    iid = start(sessions)
    with sessions.begin() as s:
        before = s.get(Instance, iid).revision
    [task] = fetch(sessions, "w1", now=at(1))
    with sessions.begin() as s:
        assert s.get(Instance, iid).revision == before + 1
        external.complete(s, task.id, "w1", {"status": "active"}, now=at(2))
    with sessions.begin() as s:
        assert audit.verify(s, iid).ok


# ---------------------------------------------------------------------------------------------
# Deploy: only what Polku can run


SERVICE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://polku.example/test">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s" />
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
    <bpmn:{tag} id="t" name="Call it" {attrs}>{inner}</bpmn:{tag}>
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" />
    <bpmn:endEvent id="e" />
  </bpmn:process>
</bpmn:definitions>"""
CONNECTOR = ("<bpmn:extensionElements><camunda:connector><camunda:connectorId>http-connector"
             "</camunda:connectorId></camunda:connector></bpmn:extensionElements>")


@pytest.mark.parametrize(("tag", "attrs", "inner", "phrase"), [
    ("serviceTask", "", "", ("The service task 'Call it' has no implementation Polku can run: "
                             'use camunda:type="external" with a camunda:topic.')),
    ("serviceTask", 'camunda:class="fi.te.Score"', "", "implemented by camunda:class, which Polku cannot run"),
    ("serviceTask", 'camunda:delegateExpression="${score}"', "", "implemented by camunda:delegateExpression"),
    ("serviceTask", 'camunda:expression="${x.y()}"', "", "implemented by camunda:expression"),
    ("serviceTask", 'camunda:type="external"', "", "is external but names no camunda:topic"),
    ("serviceTask", "", CONNECTOR, "uses a camunda:connector"),
    ("sendTask", 'camunda:class="fi.te.Mail"', "", "The send task 'Call it' is implemented by camunda:class"),
    ("businessRuleTask", 'camunda:class="fi.te.Rules"', "", "business rule task"),  # and names no decision
])
def test_deploy_refuses_service_tasks_polku_cannot_run(sessions, tag, attrs, inner, phrase):
    text = SERVICE.format(tag=tag, attrs=attrs, inner=inner)
    with sessions.begin() as s, pytest.raises(InvalidModel) as err:
        deploy.deploy_files(s, {"p.bpmn": text.encode()}, by="designer")
    problems = [p for p in err.value.problems if p.element == "t"]
    assert any(phrase in p.message for p in problems), err.value.problems


@pytest.mark.parametrize(("tag", "attrs"), [
    ("serviceTask", 'camunda:type="external" camunda:topic="scoring"'),
    ("sendTask", ""),
    ("sendTask", 'camunda:type="external" camunda:topic="letters"'),
])
def test_deploy_accepts_external_tasks_and_plain_send_tasks(sessions, tag, attrs):
    text = SERVICE.format(tag=tag, attrs=attrs, inner="")
    with sessions.begin() as s:
        assert deploy.deploy_files(s, {"p.bpmn": text.encode()}, by="designer").created


# ---------------------------------------------------------------------------------------------
# Through the CLI: every step a new OS process


@pytest.fixture
def polku(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    binary = Path(sys.executable).parent / "polku"

    def run(*argv: str, ok: bool = True):
        done = subprocess.run([str(binary), "--json", *argv], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        if ok:
            assert done.returncode == 0, done.stderr
        out = done.stdout.strip()
        return done.returncode, json.loads(out) if out else None, done.stderr.strip()

    return run


def test_cli_fetch_complete_with_a_new_process_per_step(polku):
    polku("deploy", str(MODELS / "external_service.bpmn"))
    _, inst, _ = polku("start", "external_service", "--data", '{"company": "Acme"}', "--business-key", "K-1")
    _, empty, _ = polku("external", "fetch", "--worker", "w1", "--topic", "other")
    assert empty == []
    _, fetched, _ = polku("external", "fetch", "--worker", "w1", "--topic", "registry", "--topic", "other",
                          "--lock-seconds", "300", "--max", "5")
    [task] = fetched
    assert {k: task[k] for k in ("topic", "instance_id", "element_id", "business_key", "variables", "retries")} == \
        {"topic": "registry", "instance_id": inst["id"], "element_id": "check_registry", "business_key": "K-1",
         "variables": {"company": "Acme"}, "retries": None}
    assert task["lock_expires_at"] and task["id"]
    code, _, err = polku("external", "complete", str(task["id"]), "--worker", "w2", "--data", "{}", ok=False)
    assert code == 1 and err.count("\n") == 0 and "locked by worker w1, not by w2" in err
    _, listed, _ = polku("external", "list", "--topic", "registry")
    assert [(t["id"], t["worker_id"], t["locked"]) for t in listed] == [(task["id"], "w1", True)]
    _, extended, _ = polku("external", "extend", str(task["id"]), "--worker", "w1", "--lock-seconds", "600")
    assert extended["lock_expires_at"] > task["lock_expires_at"]
    _, done, _ = polku("external", "complete", str(task["id"]), "--worker", "w1", "--data", '{"status": "active"}')
    assert done["state"] == "completed" and done["instance_status"] == "running"
    _, tasks, _ = polku("tasks", "--instance", str(inst["id"]))
    assert [t["element_id"] for t in tasks] == ["review"]
    _, history, _ = polku("history", str(inst["id"]))
    assert {"external_task_created", "external_task_locked", "external_task_lock_extended",
            "external_task_completed"} <= {e["kind"] for e in history}
    polku("verify-audit")


def test_cli_failure_to_incident_and_retry(polku):
    polku("deploy", str(MODELS / "external_service.bpmn"))
    polku("start", "external_service", "--data", '{"company": "Acme"}')
    _, [task], _ = polku("external", "fetch", "--worker", "w1", "--topic", "registry")
    _, failed, _ = polku("external", "fail", str(task["id"]), "--worker", "w1", "--message", "registry down",
                         "--details", "HTTP 503", "--retries", "0")
    assert failed["retries"] == 0 and failed["error_message"] == "registry down"
    _, none, _ = polku("external", "fetch", "--worker", "w2", "--topic", "registry")
    assert none == []
    _, [incident], _ = polku("incidents")
    assert incident["message"] == "external task failed: registry down"
    _, resolved, _ = polku("incidents", "--retry", str(incident["id"]))
    assert resolved["status"] == "resolved"
    _, [again], _ = polku("external", "fetch", "--worker", "w2", "--topic", "registry")
    assert again["id"] == task["id"] and again["retries"] == 1 and again["error_details"] == "HTTP 503"
    _, done, _ = polku("external", "complete", str(again["id"]), "--worker", "w2", "--data", '{"status": "x"}')
    assert done["state"] == "completed"
    code, _, err = polku("external", "complete", str(again["id"]), "--worker", "w2", ok=False)
    assert code == 1 and "already completed by worker w2" in err
    code, _, err = polku("external", "complete", "999", "--worker", "w2", ok=False)
    assert code == 1 and "no external task 999" in err


def test_external_rows_match_the_waiting_tasks_after_many_steps(sessions, deploy):
    deploy("external_kinds.bpmn")
    ids = [start(sessions, "external_kinds", {"urgency": n}, key=str(n), now=at(n)) for n in range(3)]
    with sessions.begin() as s:
        got = s.scalars(select(ExternalTask.instance_id).where(ExternalTask.state == ExternalTaskState.OPEN))
        assert sorted(got) == ids


def test_each_instance_of_a_multi_instance_external_task_gets_its_own_item(sessions, deploy, step):
    deploy("external_mi.bpmn")
    iid = start(sessions, "external_mi", {"people": ["Aino", "Eino", "Tyyne"]})
    step()
    tasks = fetch(sessions, "mailer", [("notify", 30)], now=at(1), max_tasks=10)
    assert sorted(t.variables["person"] for t in tasks) == ["Aino", "Eino", "Tyyne"]
    for n, task in enumerate(tasks):
        step()
        with sessions.begin() as s:
            external.complete(s, task.id, "mailer", {"sent": True}, now=at(2 + n))
    step()
    with sessions.begin() as s:
        assert runtime.get_instance(s, iid).status == InstanceStatus.COMPLETED
        assert external.open_for_instance(s, iid) == 0


def test_cli_multi_instance_items_with_a_new_process_per_step(polku):
    polku("deploy", str(MODELS / "external_mi.bpmn"))
    _, inst, _ = polku("start", "external_mi", "--data", '{"people": ["Aino", "Eino"]}')
    _, tasks, _ = polku("external", "fetch", "--worker", "m", "--topic", "notify", "--variable", "person")
    assert sorted(t["variables"]["person"] for t in tasks) == ["Aino", "Eino"]
    assert all(set(t["variables"]) == {"person"} for t in tasks)
    for task in tasks:
        polku("external", "complete", str(task["id"]), "--worker", "m")
    _, summary, _ = polku("instance", str(inst["id"]))
    assert summary["status"] == "completed"
