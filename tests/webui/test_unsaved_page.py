"""The task page kept for a failed write (`errors.later_page`): read before the write, drawn only when
the write fails, and then without a single statement to the database.

A completion reads everything its "not saved" page shows before it writes: the case, the people
and the providers of the form's selects, the signed-in user's menu. Here the write fails and from
that moment every statement fails too, as when the database server goes away: the page still comes
back with what was typed. A completion that succeeds does not draw the page at all.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask import template_rendered
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from engine import deploy, notices, providers, runtime
from engine.models import Task, TaskStatus

MODEL = Path(__file__).parents[1] / "engine" / "bpmn" / "record_service.bpmn"  # people and providers in its form
NOTES = "Asiakas soitti takaisin <b>"


@pytest.fixture
def task_id(sessions) -> str:
    with sessions.begin() as s:
        deploy.deploy_files(s, {MODEL.name: MODEL.read_bytes()}, by="test")
        providers.create_provider(s, {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training",
                                      "active": "true"}, by="test")
        iid = runtime.start_instance(s, "record_service", by="test").id
        return s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))


def _typed(sessions) -> dict[str, str]:
    with sessions.begin() as s:
        trainer = providers.choices(s, ("training",))[0][0]
    return {"notes": NOTES, "handler": "test-expert", "trainer": str(trainer)}


def test_a_failed_write_shows_the_page_kept_before_it_without_reading_the_database(app, client, login_as,
                                                                                 sessions, task_id, monkeypatch,
                                                                                 statements_of):
    login_as("expert")
    typed = _typed(sessions)
    with sessions.begin() as s:
        notices.notify(s, "unsaved-test", "test-expert", "reminder", "Muistutus", "Soita asiakkaalle")
    engine = app.extensions["polku"].engine
    after_failure: list[str] = []
    gone = [False]

    def fail_when_gone(statement):  # the database server went away: every statement fails, on the cursor too
        if gone[0]:
            after_failure.append(statement)
            raise sa_exc.OperationalError(statement, {}, sqlite3.OperationalError("disk I/O error"))

    def failing_write(*_args, **_kwargs):
        gone[0] = True
        raise sa_exc.OperationalError("UPDATE task", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(runtime, "complete_task", failing_write)
    with statements_of(engine, fail_when_gone):
        response = client.post(f"/tasks/{task_id}", data=typed)
    page = response.get_data(as_text=True)
    assert response.status_code == 503, page[:500]
    assert after_failure == []
    assert "Ei tallennettu" in page and "Asiakas soitti takaisin &lt;b&gt;</textarea>" in page
    assert '<option value="test-expert" selected>Test expert (test-expert)</option>' in page
    assert f'<option value="{typed["trainer"]}" selected>Koulutus Oy (' in page
    assert '<span class="user-name">Test expert</span>' in page  # the menu, from the copy of the user
    assert 'id="unread-badge"' in page and ">1</span>" in page  # as read with the sign-in: nothing was saved
    assert f'<form method="post" action="/tasks/{task_id}"' in page
    with sessions.begin() as s:
        assert s.get(Task, task_id).state == TaskStatus.READY


def test_a_completion_that_succeeds_does_not_draw_the_page_kept_for_a_failure(app, client, login_as, sessions,
                                                                             task_id):
    login_as("expert")
    drawn: list[str] = []

    def record(_sender, template, context, **_extra):
        drawn.append(template.name)

    template_rendered.connect(record, app)
    try:
        assert client.get(f"/tasks/{task_id}").status_code == 200
        response = client.post(f"/tasks/{task_id}", data=_typed(sessions))
    finally:
        template_rendered.disconnect(record, app)
    assert response.status_code == 302
    assert drawn.count("tasks/task.html") == 1  # the page shown before the post, not one kept for a failure
    with sessions.begin() as s:
        assert s.get(Task, task_id).state == TaskStatus.COMPLETED


def test_a_completion_reads_the_badge_the_process_names_and_the_user_only_with_its_sign_in(app, client, login_as,
                                                                                         sessions, task_id,
                                                                                         statements_of):
    login_as("expert")
    typed = {**_typed(sessions), "csrf_token": client.csrf_token()}
    with statements_of(app.extensions["polku"].engine) as statements:
        response = client.post(f"/tasks/{task_id}", data=typed)
    assert response.status_code == 302
    assert statements and statements[0].startswith("SELECT user_session.id")  # the sign-in, with what every page shows
    assert not [q for q in statements[1:] if "FROM notice" in q or "max(process_version.id)" in q
                or q.startswith(("SELECT user_account.id AS user_account_id", "SELECT user_account.id, user_account.username"))
                or "FROM variable WHERE variable.instance_id = ? AND" in q], statements
