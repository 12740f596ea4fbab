"""The task page of a case this web process holds (it saved the case's last change) shows the case's
variables without reading them; a process that holds nothing reads them, and draws the same page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import deploy, runtime
from engine.models import Task, TaskStatus

MODEL = Path(__file__).parents[1] / "engine" / "bpmn" / "order.bpmn"


@pytest.fixture
def task_id(sessions) -> str:
    with sessions.begin() as s:
        deploy.deploy_files(s, {MODEL.name: MODEL.read_bytes()}, by="test")
        iid = runtime.start_instance(s, "order", by="test", validate_form=False, data={
            "customer": "Acme Oy", "amount": 500, "owner": "test-expert", "note": "soita ensin"}).id
        return s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))


def _variable_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("SELECT variable.name, variable.value FROM variable")]


def _form(page: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', "", page[page.index("<form"):page.rindex("</form>")])


def test_the_held_case_is_drawn_without_reading_its_variables_and_as_a_fresh_process_draws_it(
        app, client, login_as, task_id, statements_of):
    login_as("expert")
    engine = app.extensions["polku"].engine
    with statements_of(engine) as held:
        page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    assert ">soita ensin</textarea>" in page.text  # the form's note, filled from the case's variable
    assert _variable_reads(held) == []
    runtime.forget_cache()  # as another web process, which holds nothing of the case
    with statements_of(engine) as fresh:
        again = client.get(f"/tasks/{task_id}")
    assert len(_variable_reads(fresh)) == 1
    assert _form(again.text) == _form(page.text)
