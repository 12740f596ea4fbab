"""A refused completion shows the task as it is now, with what was typed, even when the task stopped
being mine to see while the request ran (webui.tasks._details, `again`).

The request's access check passes at its start; the page drawn after the refused write must not
check again and answer 404, which would lose what was typed. The model is order.bpmn: its "approve"
task is of the supervisor role, so an expert reads it only while it is assigned to her.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import deploy, inbox, runtime, users
from engine.errors import TaskNotAvailable

MODEL = Path(__file__).parents[1] / "engine" / "bpmn" / "order.bpmn"


@pytest.fixture
def approve(sessions, login_as):
    """An "approve" task (supervisor role) assigned to the signed-in expert; return its id."""
    with sessions.begin() as s:
        deploy.deploy_files(s, {"order.bpmn": MODEL.read_bytes()}, by="test")
        users.add_user(s, "muu", "salasana-123", ["expert"], display_name="Muu Asiantuntija")
        users.add_user(s, "esimies", "salasana-123", ["supervisor"])
        instance = runtime.start_instance(s, "order", by="test", data={"customer": "Acme Oy", "amount": 5000})
        [review] = inbox.tasks(s, instance_id=instance.id)
        runtime.complete_task(s, review.id, {"channel": "phone"}, by="muu")
        [task] = inbox.tasks(s, instance_id=instance.id)
        assert task.element_id == "approve" and task.candidate_role == "supervisor"
        task_id = task.id
    expert = login_as("expert")
    with sessions.begin() as s:
        inbox.assign(s, task_id, expert, by="esimies")
    return task_id


def test_a_task_reassigned_away_during_the_completion_is_refused_with_what_was_typed(client, sessions, approve,
                                                                                     monkeypatch):
    assert client.get(f"/tasks/{approve}").status_code == 200

    def reassigned_meanwhile(*_args, **_kwargs):
        with sessions.begin() as s:  # another request, committed while this one wrote
            inbox.assign(s, approve, "muu", by="esimies")
        raise TaskNotAvailable("this task is assigned to someone else")

    monkeypatch.setattr(runtime, "complete_task", reassigned_meanwhile)
    response = client.post(f"/tasks/{approve}", data={"approved": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 409, body[:500]
    assert "Muu Asiantuntija" in body or "muu" in body  # who holds it now
    ticked = re.search(r'<input type="checkbox" id="f-approved"[^>]*>', body)
    assert ticked is not None and "checked" in ticked[0]  # what was typed (ticked) is kept
    monkeypatch.undo()
    assert client.get(f"/tasks/{approve}").status_code == 404  # from now on it is not hers to see
