"""The REST API gets the same domain-check answers as the web page and the CLI: a close task with
a future end date is a 422 naming the field, and the task's form schema tells the checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def test_close_task_refuses_a_future_end_date_through_the_api(api, bearer, shipped):
    expert = api(bearer("expert"))
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date()
    body = {"process_id": "recruitment", "business_key": "0737546-2",
            "data": {"responsible_expert": "api-expert", "assessment_date": (today - timedelta(days=5)).isoformat()}}
    created = expert.post("/instances", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    iid = created.get_json()["id"]
    steps = {"plan_recruitment": {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                                  "recruitment_planned_end": (today + timedelta(days=30)).isoformat()},
             "deliver_recruitment": {}}
    for element_id, data in steps.items():
        [task] = expert.get(f"/tasks?instance_id={iid}").get_json()["items"]
        assert task["element_id"] == element_id
        assert expert.post(f"/tasks/{task['id']}/complete", json={"data": data}).status_code == 200
    [task] = expert.get(f"/tasks?instance_id={iid}").get_json()["items"]
    schema = expert.get(f"/tasks/{task['id']}").get_json()["form"]
    assert schema["properties"]["recruitment_ended_on"]["x-checks"] == [
        {"name": "not_future", "config": "true"}, {"name": "not_before", "config": "assessment_date"}]
    close = {"recruitment_positions_filled": 1, "recruitment_outcome": "completed",
             "recruitment_ended_on": (today + timedelta(days=2)).isoformat()}
    refused = expert.post(f"/tasks/{task['id']}/complete", json={"data": close})
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"recruitment_ended_on": "the date cannot be in the future"}
    close["recruitment_ended_on"] = (today - timedelta(days=1)).isoformat()
    assert expert.post(f"/tasks/{task['id']}/complete", json={"data": close}).status_code == 200


def test_development_close_schema_marks_the_consultant_email(api, bearer, shipped):
    expert = api(bearer("expert"))
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date()
    body = {"process_id": "business_development", "business_key": "0737546-2",
            "data": {"responsible_expert": "api-expert", "assessment_date": (today - timedelta(days=5)).isoformat()}}
    iid = expert.post("/instances", json=body).get_json()["id"]
    steps = {"plan_development": {"development_service_type": "consulting", "development_goal": "Lean",
                                  "development_planned_end": (today + timedelta(days=30)).isoformat(),
                                  "development_progress_interval": "P1M"},
             "deliver_development": {"development_completed_on": (today - timedelta(days=1)).isoformat()}}
    for element_id, data in steps.items():
        [task] = expert.get(f"/tasks?instance_id={iid}").get_json()["items"]
        assert task["element_id"] == element_id
        assert expert.post(f"/tasks/{task['id']}/complete", json={"data": data}).status_code == 200
    [task] = expert.get(f"/tasks?instance_id={iid}").get_json()["items"]
    form = expert.get(f"/tasks/{task['id']}").get_json()["form"]
    assert form["properties"]["development_consultant_email"]["format"] == "email"
    assert {"development_consultant_name", "development_consultant_email", "development_ended_on"} <= set(
        form["required"])
