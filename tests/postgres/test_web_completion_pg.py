"""A task completed through the web UI on PostgreSQL: the post reads its page and writes in one
transaction (`webui.db._reads_first`), and still takes the task's state from what is committed
when it writes, so an expert who completes a task someone finished a moment ago is told who did.
"""

from __future__ import annotations

import pytest

from engine import inbox, runtime
from engine.config import Settings

from .conftest import deploy_models


@pytest.fixture
def settings(pg_url):
    return Settings(database_url=pg_url, secret_key="test-secret-key")


def _task(sessions) -> str:
    deploy_models(sessions, "two_steps.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "two_steps", by="test").id
        return inbox.tasks(s, instance_id=iid)[0].id


def test_a_completion_goes_on_to_the_next_task_on_postgresql(client, login_as, sessions):
    task_id = _task(sessions)
    login_as("expert")
    assert client.get(f"/tasks/{task_id}").status_code == 200
    response = client.post(f"/tasks/{task_id}", data={})
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Second" in page


def test_a_task_completed_by_someone_else_after_the_page_was_read_is_refused_naming_them(
        client, login_as, sessions, monkeypatch):
    task_id = _task(sessions)
    login_as("expert")
    real = runtime.complete_task

    def meanwhile(session, tid, data, **kw):  # another expert completes it after this post read the page
        with sessions.begin() as other:
            real(other, tid, {}, by="other-expert", roles={"expert"})
        return real(session, tid, data, **kw)

    monkeypatch.setattr(runtime, "complete_task", meanwhile)
    response = client.post(f"/tasks/{task_id}", data={})
    page = response.get_data(as_text=True)
    assert response.status_code == 409, page[:300]
    assert "other-expert teki tämän tehtävän jo." in page  # who did it, not "someone changed the case"
