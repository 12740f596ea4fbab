"""Contract test: a Python client generated from /api/v1/openapi.json drives the shipped process end to end.

openapi-python-client (a maintained generator) writes the client into a temporary folder during
the test; the client's httpx transport is bound to the Flask app in process (`httpx.WSGITransport`).
With it an expert starts a customer service case, works every task of a recruitment service
through aftercare, and the case ends completed. The example worker (`examples/external_worker.py`)
then completes the external service task of the example model through the same API.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import httpx

from engine import runtime

from .conftest import EXAMPLES, ROOT, START

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


def generate(client, tmp_path: Path):
    """Write the OpenAPI document, generate `polku_client` from it and import it."""
    doc = tmp_path / "openapi.json"
    doc.write_text(json.dumps(client.get("/api/v1/openapi.json").get_json()))
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")
    result = subprocess.run([str(GENERATOR), "generate", "--path", str(doc), "--meta", "none",
                             "--output-path", str(tmp_path / "polku_client"), "--config", str(config)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        for name in [m for m in sys.modules if m == "polku_client" or m.startswith("polku_client.")]:
            del sys.modules[name]
        return importlib.import_module("polku_client")
    finally:
        sys.path.remove(str(tmp_path))


def test_generated_client_drives_a_case_from_start_to_aftercare(app, client, bearer, shipped, tmp_path):
    generated = generate(client, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        from polku_client import AuthenticatedClient
        from polku_client.api.instances import get_instance, start_instance
        from polku_client.api.tasks import claim_task, complete_task, get_task, list_tasks
        from polku_client.models import CompleteTask, StartInstance
    finally:
        sys.path.remove(str(tmp_path))
    assert generated.__name__ == "polku_client"
    api = AuthenticatedClient(base_url="http://polku.test", token=bearer("expert"),
                              httpx_args={"transport": httpx.WSGITransport(app=app)})

    started = start_instance.sync(client=api, body=StartInstance.from_dict({
        "process_id": "customer_service", "business_key": START["business_id"], "data": START}))
    assert started.status == "running", started
    iid = started.id

    def work(element_id: str, data: dict) -> int:
        runtime.forget_cache()  # nothing held in memory between calls carries the case
        page = list_tasks.sync(client=api)
        [task] = [t for t in page.items if t.element_id == element_id]
        detail = get_task.sync(client=api, task_id=task.id)
        assert set(data) <= set(detail.form.to_dict()["properties"]), element_id
        if task.assignee is None:
            assert claim_task.sync(client=api, task_id=task.id).assignee == "api-expert"
        done = complete_task.sync_detailed(client=api, task_id=task.id, body=CompleteTask.from_dict({"data": data}))
        assert done.status_code == 200, done.content
        return task.instance_id

    work("assess_service_needs", {
        "assessment_date": "2026-03-02", "assessment_method": "company_visit", "company_situation": "growth",
        "headcount": 42, "segment": "local", "identified_needs": ["recruitment"],
        "process_agreed_with_customer": True, "responsible_expert": "api-expert"})
    work("plan_recruitment", {"recruitment_positions": 2, "recruitment_channels": ["job_posting", "eures"],
                              "recruitment_planned_end": "2026-05-01"})
    work("deliver_recruitment", {"recruitment_applicants": 31, "recruitment_candidates_proposed": 6})
    ended = date.today() - timedelta(days=2)  # the aftercare is due 14 days after the line's real end
    work("close_recruitment", {"recruitment_positions_filled": 2, "recruitment_ended_on": ended.isoformat(),
                               "recruitment_outcome": "completed"})
    aftercare = work("aftercare_contact", {  # the recruitment's own aftercare, started when it ended
        "aftercare_contacted_on": date.today().isoformat(), "aftercare_channel": "phone", "service_met_need": "yes",
        "feedback_from_customer": "The new welders started well.", "service_rating": 5,
        "experience_positive": True, "needs_reassessment": "No new needs now.", "named_contact_confirmed": True})

    final = get_instance.sync(client=api, instance_id=iid)
    assert final.status == "completed"
    assert [t.element_id for t in final.tasks] == ["assess_service_needs", "plan_recruitment",
                                                   "deliver_recruitment", "close_recruitment"]
    line = get_instance.sync(client=api, instance_id=aftercare)
    assert (line.process_id, line.status, aftercare != iid) == ("aftercare", "completed", True)
    assert [t.element_id for t in line.tasks] == ["aftercare_contact"]
    assert line.variables.to_dict()["aftercare_channel"] == "phone"
    assert line.variables.to_dict()["service_line"] == "recruitment"


def test_example_worker_completes_the_external_service_task(app, api, bearer, shipped):
    sys.path.insert(0, str(ROOT))
    try:
        worker = importlib.import_module("examples.external_worker")
    finally:
        sys.path.remove(str(ROOT))
    secret = bearer("supervisor")
    caller = api(secret)
    instance = caller.post("/instances", json={"process_id": "registry_check",
                                               "data": {"business_id": "0737546-2"}}).get_json()
    with httpx.Client(base_url="http://polku.test", transport=httpx.WSGITransport(app=app),
                      headers={"Authorization": f"Bearer {secret}"}) as http:
        done = worker.work_once(http)
        assert len(done) == 1
        assert worker.work_once(http) == [], "a completed task is not handed out again"
    case = caller.get(f"/instances/{instance['id']}").get_json()
    assert case["variables"]["registry_status"] == "active"
    assert [t["element_id"] for t in case["tasks"] if t["state"] == "ready"] == ["review"]
    assert (EXAMPLES / "registry_check.bpmn").is_file()
