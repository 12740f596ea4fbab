"""Incidents page: a failing script stops the case; fixing the data and running the step again goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import deploy, inbox, runtime

ORDER = Path(__file__).parents[1] / "engine" / "bpmn" / "order.bpmn"


@pytest.fixture
def incident(sessions):
    """Return (instance id, incident id) of a case stopped at a script that divides by a missing value."""
    with sessions.begin() as s:
        deploy.deploy_files(s, {"order.bpmn": ORDER.read_bytes()}, by="t")
        iid = runtime.start_instance(s, "order", by="t", data={"customer": "Acme", "amount": 5}).id
        [task] = inbox.tasks(s, instance_id=iid)
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="t")
    with sessions.begin() as s:
        [found] = runtime.open_incidents(s, iid)
        return iid, found.id


def test_admin_sees_the_incident_and_retries_it_with_fixed_data(client, login_as, sessions, incident):
    iid, incident_id = incident
    login_as("admin")
    page = client.get("/incidents/").get_data(as_text=True)
    assert f'id="incident-{incident_id}"' in page and "compute" in page and "divisor" in page
    bad = client.post(f"/incidents/{incident_id}/retry", data={"data": "{divisor: 2"})
    assert bad.status_code == 422 and "{divisor: 2" in bad.get_data(as_text=True)
    again = client.post(f"/incidents/{incident_id}/retry", data={"data": '{"divisor": "x"}'})
    assert again.status_code == 422  # the step fails again: still open, the typed data is kept
    assert '{&#34;divisor&#34;: &#34;x&#34;}' in again.get_data(as_text=True)
    done = client.post(f"/incidents/{incident_id}/retry", data={"data": '{"divisor": 2}'})
    assert done.status_code == 302
    with sessions.begin() as s:
        assert runtime.open_incidents(s, iid) == []
        assert runtime.instance_variables(s, iid)["price"] == 3.1


@pytest.mark.parametrize("role", ["expert", "auditor", "designer"])
def test_other_roles_cannot_retry(client, login_as, incident, role):
    login_as(role)
    assert client.get("/incidents/").status_code == 403
    assert client.post(f"/incidents/{incident[1]}/retry", data={"data": ""}).status_code == 403
