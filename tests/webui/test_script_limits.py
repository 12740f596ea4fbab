"""A hostile gateway condition behind a task form: the web request ends with the case at an incident
(never a hang or a 500), also when the request runs in a thread of its own."""

from __future__ import annotations

import threading
import time
from xml.sax.saxutils import escape

from sqlalchemy import select

from engine import deploy, limits, runtime
from engine.inbox import tasks as open_tasks
from engine.models import Incident

HOSTILE = "any(len(set(r)) < 0 for r in [range(999999)] for i in range(3000))"
MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Defs_web_hostile" targetNamespace="http://polku.test/web_hostile">
  <bpmn:process id="web_hostile" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="work" />
    <bpmn:userTask id="work" name="Work" camunda:candidateGroups="expert" />
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="decide" />
    <bpmn:exclusiveGateway id="decide" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="decide" targetRef="yes">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(HOSTILE)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="decide" targetRef="no" />
    <bpmn:endEvent id="yes" /><bpmn:endEvent id="no" />
  </bpmn:process>
</bpmn:definitions>""".encode()


def test_hostile_condition_after_a_web_form_becomes_an_incident_in_a_request_thread(client, login_as, sessions):
    with sessions.begin() as s:
        deploy.deploy_files(s, {"web_hostile.bpmn": MODEL}, by="designer")
        instance_id = runtime.start_instance(s, "web_hostile", by="test", data={}, validate_form=False).id
    with sessions.begin() as s:
        [task] = open_tasks(s, instance_id=instance_id)
        task_id = task.id
    login_as("expert")
    client.post(f"/tasks/{task_id}/claim")
    result: dict[str, object] = {}

    def submit() -> None:  # as gunicorn's threads do: not the main thread
        started = time.monotonic()
        result["status"] = client.post(f"/tasks/{task_id}").status_code
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=submit)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["status"] in (200, 302, 303), result
    assert result["took"] < limits.current().timeout + 2.0 + 1.0  # the limit, the bound, the request itself
    with sessions.begin() as s:
        [incident] = s.scalars(select(Incident).where(Incident.instance_id == instance_id)).all()
        assert incident.element_id == "decide" and "time limit" in incident.message


PRINTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs_printing"
    targetNamespace="http://polku.test/printing">
  <bpmn:process id="printing" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="report" />
    <bpmn:scriptTask id="report" scriptFormat="python"><bpmn:script>print('checked', n, '&lt;b&gt;')</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="report" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>"""


def test_audit_history_shows_what_a_script_printed(client, login_as, sessions):
    with sessions.begin() as s:
        deploy.deploy_files(s, {"printing.bpmn": PRINTING}, by="designer")
        instance_id = runtime.start_instance(s, "printing", by="test", data={"n": 3}, validate_form=False).id
    login_as("auditor")
    page = client.get(f"/audit/instances/{instance_id}").get_data(as_text=True)
    assert "Skriptin tuloste" in page and "checked 3 &lt;b&gt;" in page  # the event kind's label
