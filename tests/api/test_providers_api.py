"""REST API of the providers registry: add, list, read, replace; field errors 422; auditors read only."""

from __future__ import annotations

from sqlalchemy import select

from engine import runtime
from engine.models import Task, TaskStatus

from .conftest import START


def test_providers_add_list_get_replace_and_roles(api, bearer, sessions):
    expert = api(bearer("expert"))
    body = {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training", "email": "kaisa@koulutus.fi"}
    created = expert.post("/providers", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    provider = created.get_json()
    assert provider["business_id"] == "1234567-1" and provider["active"] is True
    bad = expert.post("/providers", json={**body, "business_id": "1234567-2", "email": "kaisa@"})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"business_id", "email"}
    assert expert.post("/providers", json={**body, "kind": "bank"}).status_code in (400, 422)
    replaced = expert.put(f"/providers/{provider['id']}", json={**body, "name": "Koulutus Oyj", "active": False})
    assert replaced.status_code == 200 and replaced.get_json()["active"] is False
    auditor = api(bearer("auditor"))
    assert [p["name"] for p in auditor.get("/providers").get_json()["items"]] == ["Koulutus Oyj"]
    assert auditor.get("/providers?active=true").get_json()["items"] == []
    assert auditor.get(f"/providers/{provider['id']}").get_json()["name"] == "Koulutus Oyj"
    assert auditor.get("/providers/99999").status_code == 404
    assert auditor.post("/providers", json=body).status_code == 403
    assert api(bearer("designer")).get("/providers").status_code == 403


def test_a_close_task_through_the_api_takes_a_registry_provider(api, bearer, shipped):
    expert = api(bearer("expert"))
    provider = expert.post("/providers", json={"name": "Rekry Oy", "business_id": "2345678-0",
                                               "kind": "consultant"}).get_json()
    with shipped.begin() as s:
        iid = runtime.start_instance(s, "recruitment", by="api-expert", business_key=START["business_id"],
                                     data={"responsible_expert": "api-expert"}).id
    for element, data in (("plan_recruitment", {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                                                "recruitment_planned_end": "2026-01-10"}),
                          ("deliver_recruitment", {})):
        with shipped.begin() as s:
            task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY,
                                                  Task.element_id == element))
        done = expert.post(f"/tasks/{task}/complete", json={"data": data})
        assert done.status_code == 200, done.get_data(as_text=True)
    with shipped.begin() as s:
        task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))
    close = {"recruitment_positions_filled": 1, "recruitment_ended_on": "2026-01-10", "recruitment_outcome": "completed",
             "recruitment_provider_delivered": True}
    refused = expert.post(f"/tasks/{task}/complete", json={"data": {**close, "recruitment_provider": "4711"}})
    assert refused.status_code == 422 and "recruitment_provider" in refused.get_json()["errors"]
    done = expert.post(f"/tasks/{task}/complete",
                       json={"data": {**close, "recruitment_provider": str(provider["id"])}})
    assert done.status_code == 200, done.get_data(as_text=True)
    variables = expert.get(f"/instances/{iid}/variables").get_json()
    assert variables["variables"]["recruitment_provider_name"] == "Rekry Oy"
