"""A called process may use the element ids of the process calling it (ids are unique per file, and
Camunda runs such models): each task takes its name, role, assignee, form, documentation and
actions from its own process, also with the state reloaded from the database and through the CLI.

same_ids_main: userTask `review` "Main review" (expert, form: verdict, required), then a call
activity to same_ids_sub, whose userTask `review` "Sub review" (supervisor, assignee ${sub_owner},
form: ruling, required; a task action `hold`) sits in an embedded subprocess `part`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from engine import actions, audit, deploy, inbox, migrate, runtime
from engine.errors import FormInvalid, NotAllowed, NotFound, TaskNotAvailable
from engine.models import Task

from .conftest import MODELS, T0

FILES = ("same_ids_main.bpmn", "same_ids_sub.bpmn")
MAIN = {"process_id": "same_ids_main", "name": "Main review", "role": "expert", "assignee": None,
        "form": ["verdict"], "documentation": "Read the main file.", "actions": []}
SUB = {"process_id": "same_ids_sub", "name": "Sub review", "role": "supervisor", "assignee": "sam",
       "form": ["ruling"], "documentation": "Check the called file.", "actions": ["hold"]}


def _files(*changes: tuple[str, str]) -> dict[str, bytes]:
    files = {n: (MODELS / n).read_bytes() for n in FILES}
    for old, new in changes:
        files = {n: c.replace(old.encode(), new.encode()) for n, c in files.items()}
    return files


def _deploy(sessions) -> None:
    with sessions.begin() as s:
        created = deploy.deploy_files(s, _files(), by="designer").created
        assert sorted(v.process_id for v in created) == ["same_ids_main", "same_ids_sub"]


def _start(sessions) -> int:
    with sessions.begin() as s:
        return runtime.start_instance(s, "same_ids_main", by="anna", data={"sub_owner": "sam"}, now=T0).id


def _open_task(sessions, iid: int) -> str:
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        return task.id


def _at_the_called_task(sessions) -> int:
    """Deploy, start a case and complete its main review: the case then waits at the called process's review."""
    _deploy(sessions)
    iid = _start(sessions)
    with sessions.begin() as s:
        runtime.complete_task(s, _open_task(sessions, iid), {"verdict": "fine"}, by="anna", now=T0)
    return iid


def _seen(sessions, task_id: str) -> dict:
    """Return what the engine says of a task: its row, form, documentation and actions."""
    with sessions.begin() as s:
        details = runtime.task_details(s, task_id)
        row = details["task"]
        return {"process_id": row.process_id, "name": row.name, "role": row.candidate_role,
                "assignee": row.assignee, "form": [f.id for f in runtime.task_form(s, task_id)],
                "documentation": details["documentation"],
                "actions": [a.element_id for a in actions.actions_of_task(s, task_id)]}


def _refused(sessions, task_id: str, data: dict, **kwargs) -> dict[str, str]:
    with sessions.begin() as s, pytest.raises(FormInvalid) as err:
        runtime.complete_task(s, task_id, data, now=T0, **kwargs)
    return err.value.errors


def test_each_task_has_its_own_process_entry_and_form(sessions, step):
    _deploy(sessions)
    iid = _start(sessions)
    step()
    main = _open_task(sessions, iid)
    assert _seen(sessions, main) == MAIN
    step()
    # the main task's role, not the called task's (nor its assignee)
    with sessions.begin() as s, pytest.raises(TaskNotAvailable, match="expert role"):
        runtime.complete_task(s, main, {"verdict": "fine"}, by="sven", roles={"supervisor"}, now=T0)
    assert "verdict" in _refused(sessions, main, {}, by="anna", roles={"expert"})
    assert "ruling" in _refused(sessions, main, {"verdict": "fine", "ruling": "upheld"}, by="anna")
    step()
    with sessions.begin() as s:
        runtime.complete_task(s, main, {"verdict": "fine"}, by="anna", roles={"expert"}, now=T0)
    step()
    sub = _open_task(sessions, iid)
    assert sub != main
    assert _seen(sessions, sub) == SUB
    step()
    assert "ruling" in _refused(sessions, sub, {}, by="sam")
    assert "verdict" in _refused(sessions, sub, {"verdict": "fine", "ruling": "upheld"}, by="sam")
    with sessions.begin() as s, pytest.raises(TaskNotAvailable, match="assigned to sam"):
        runtime.complete_task(s, sub, {"ruling": "upheld"}, by="anna", roles={"expert"}, now=T0)
    step()
    with sessions.begin() as s:
        runtime.complete_task(s, sub, {"ruling": "upheld"}, by="sam", roles={"supervisor"}, now=T0)
    step()
    with sessions.begin() as s:
        assert runtime.instance_summary(s, iid)["status"] == "completed"
        created = [audit.event_dict(e)["data"] for e in audit.history(s, iid) if e.kind == "task_created"]
        assert [(d["name"], d["role"], d["assignee"]) for d in created] == [
            ("Main review", "expert", None), ("Sub review", "supervisor", "sam")]


def test_a_row_the_session_holds_completes_against_its_own_form(sessions):
    _deploy(sessions)
    iid = _start(sessions)
    main = _open_task(sessions, iid)
    with sessions.begin() as s:
        runtime.complete_task(s, main, {"verdict": "fine"}, by="anna", now=T0)
    sub = _open_task(sessions, iid)
    with sessions.begin() as s:  # the row is in the session's identity map: complete_task reads it from there
        held = s.get(Task, sub)  # (held: the identity map keeps rows weakly)
        assert held is not None and held.process_id == "same_ids_sub"
        with pytest.raises(FormInvalid) as err:
            runtime.complete_task(s, sub, {"verdict": "fine"}, by="sam", now=T0)
        assert "verdict" in err.value.errors


def test_task_actions_are_those_of_the_tasks_own_process(sessions, step):
    _deploy(sessions)
    iid = _start(sessions)
    main = _open_task(sessions, iid)
    with sessions.begin() as s, pytest.raises(NotFound, match="no action 'hold'"):
        actions.run_task_action(s, main, "hold", {}, by="anna", now=T0)
    with sessions.begin() as s:
        runtime.complete_task(s, main, {"verdict": "fine"}, by="anna", now=T0)
    step()
    sub = _open_task(sessions, iid)
    with sessions.begin() as s:
        actions.run_task_action(s, sub, "hold", {}, by="sam", now=T0)
    step()
    with sessions.begin() as s:
        assert [r["action"] for r in actions.action_runs(s, iid)] == ["hold"]
        assert [t.id for t in inbox.tasks(s, instance_id=iid)] == [sub]  # non-interrupting: still open


def test_new_case_data_reassigns_by_the_tasks_own_expression(sessions, step):
    iid = _at_the_called_task(sessions)
    step()
    sub = _open_task(sessions, iid)
    with sessions.begin() as s:  # the message the sub task's action waits for, with a new owner
        runtime.deliver_message(s, "same_ids_hold", by="office", data={"sub_owner": "sara"}, instance_id=iid,
                                now=T0)
    assert _seen(sessions, sub)["assignee"] == "sara"


def test_rows_without_a_process_take_the_first_process_that_has_the_element(sessions):
    """Rows written before task rows named their process (NULL) keep the lookup they had."""
    iid = _at_the_called_task(sessions)
    sub = _open_task(sessions, iid)
    with sessions.begin() as s:
        s.execute(update(Task).where(Task.id == sub).values(process_id=None))
    runtime.forget_cache()
    seen = _seen(sessions, sub)
    assert (seen["process_id"], seen["form"], seen["documentation"]) == (None, ["verdict"], "Read the main file.")


def test_migration_retitles_each_task_from_its_own_process(sessions):
    iid = _at_the_called_task(sessions)
    sub = _open_task(sessions, iid)
    with sessions.begin() as s:
        created = deploy.deploy_files(s, _files(('"Main review"', '"Main review, 2"'), ('"Sub review"', '"Sub review, 2"')),
                                      by="designer").created
        target = next(v.id for v in created if v.process_id == "same_ids_main")
    with sessions.begin() as s:
        migrate.migrate_instance(s, iid, target, by="admin", now=T0)
    seen = _seen(sessions, sub)
    assert (seen["name"], seen["role"], seen["form"]) == ("Sub review, 2", "supervisor", ["ruling"])


def test_migration_checks_the_form_of_each_tasks_own_process(sessions):
    iid = _at_the_called_task(sessions)
    with sessions.begin() as s:
        created = deploy.deploy_files(s, _files(('id="ruling"', 'id="decision"')), by="designer").created
        target = next(v.id for v in created if v.process_id == "same_ids_main")
    with sessions.begin() as s, pytest.raises(NotAllowed, match="form field 'ruling' of its task 'Sub review'"):
        migrate.migrate_instance(s, iid, target, by="admin", now=T0)


def test_through_the_cli_each_step_a_new_process(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    polku = Path(sys.executable).parent / "polku"

    def run(*argv: str, ok: bool = True) -> object:
        out = subprocess.run([str(polku), "--json", *argv], env=env, capture_output=True, text=True, check=False)
        assert (out.returncode == 0) is ok, out.stderr
        return json.loads(out.stdout) if ok else out.stderr

    run("deploy", *(str(MODELS / n) for n in FILES))
    inst = run("start", "same_ids_main", "--data", '{"sub_owner": "sam"}', "--by", "anna")
    iid = str(inst["id"])  # type: ignore[index]
    [main] = run("tasks", "--instance", iid)  # type: ignore[misc]
    shown = run("task", "show", main["id"])
    assert (shown["name"], shown["role"], shown["assignee"], shown["documentation"]) == (  # type: ignore[index]
        "Main review", "expert", None, "Read the main file.")
    assert [f["id"] for f in shown["form"]] == ["verdict"]  # type: ignore[index]
    assert "verdict" in run("complete", main["id"], "--data", '{"ruling": "upheld"}', "--by", "anna", ok=False)
    run("complete", main["id"], "--data", '{"verdict": "fine"}', "--by", "anna")
    [sub] = run("tasks", "--instance", iid)  # type: ignore[misc]
    shown = run("task", "show", sub["id"])
    assert (shown["name"], shown["role"], shown["assignee"], shown["documentation"]) == (  # type: ignore[index]
        "Sub review", "supervisor", "sam", "Check the called file.")
    assert [f["id"] for f in shown["form"]] == ["ruling"]  # type: ignore[index]
    assert "ruling" in run("complete", sub["id"], "--data", '{"verdict": "fine"}', "--by", "sam", ok=False)
    run("complete", sub["id"], "--data", '{"ruling": "upheld"}', "--by", "sam")
    assert run("instance", iid)["status"] == "completed"  # type: ignore[index]
