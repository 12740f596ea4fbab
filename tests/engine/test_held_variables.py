"""A task page's variables come from what this process holds of the case when it holds the revision the
page read, with no statement; from the database when the case changed elsewhere, when this transaction
acted on it, or when an action took the instance while they were being copied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine import inbox, runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def variable_reads(sessions, statements_of):
    """Return a `with` block giving the list of the statements in it that read a case's variables
    (filled when the block ends)."""

    @contextmanager
    def reads():
        found: list[str] = []
        with statements_of(sessions.kw["bind"]) as seen:
            yield found
        found.extend(s for s in seen if s.startswith("SELECT variable.name, variable.value FROM variable"))

    return reads


def _start(sessions, deploy, **data):
    deploy("order.bpmn")
    with sessions.begin() as s:  # unvalidated data (as a parent process passes it): a list value too
        iid = runtime.start_instance(s, "order", by="anna", validate_form=False,
                                     data={"customer": "Acme Oy", "amount": 500, "owner": "olli", **data}).id
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
    return iid, task.id


def test_a_case_this_process_holds_gives_its_variables_without_a_statement(sessions, deploy, variable_reads):
    iid, task_id = _start(sessions, deploy, tags=["a", "b"])
    with variable_reads() as reads, sessions.begin() as s:
        details = runtime.task_details(s, task_id)
    assert reads == []
    assert list(details["variables"].items()) == [("amount", 500), ("customer", "Acme Oy"), ("owner", "olli"),
                                                  ("tags", ["a", "b"])]  # by name, as the database gives them
    with sessions.begin() as s:
        assert runtime.instance_variables(s, iid) == details["variables"]  # no revision: from the database


def test_the_copy_is_the_callers_own(sessions, deploy):
    iid, task_id = _start(sessions, deploy, tags=["a"])
    with sessions.begin() as s:
        first = runtime.task_details(s, task_id)["variables"]
    first["tags"].append("changed")
    first["amount"] = 1
    with sessions.begin() as s:
        assert runtime.task_details(s, task_id)["variables"]["tags"] == ["a"]
        assert runtime.task_details(s, task_id)["variables"]["amount"] == 500
        assert runtime.instance_variables(s, iid)["tags"] == ["a"]  # the database's, unchanged too


def test_a_case_another_process_changed_is_read_from_the_database(sessions, deploy, variable_reads):
    """`polku complete` in a new OS process moves the case on; this process still holds the revision before."""
    iid, task_id = _start(sessions, deploy, amount=50_000)
    with sessions.begin() as s:
        held_revision = runtime.get_instance(s, iid).revision
    env = {**os.environ, "POLKU_DATABASE_URL": str(sessions.kw["bind"].url)}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "complete", task_id, "--by", "olli",
                           "--data", json.dumps({"channel": "email", "note": "checked"})],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    with sessions.begin() as s:
        [approve] = inbox.tasks(s, instance_id=iid)
    with variable_reads() as reads, sessions.begin() as s:
        details = runtime.task_details(s, approve.id)
        assert details["instance"].revision > held_revision
    assert len(reads) == 1
    assert details["variables"]["channel"] == "email" and details["variables"]["note"] == "checked"


def test_a_transaction_that_acted_on_the_case_reads_what_it_wrote(sessions, deploy, variable_reads):
    iid, task_id = _start(sessions, deploy, amount=50_000)
    with variable_reads() as reads, sessions.begin() as s:
        instance = runtime.complete_task(s, task_id, {"channel": "phone"}, by="olli")
        [approve] = inbox.tasks(s, instance_id=iid)
        details = runtime.task_details(s, approve.id)
        assert details["instance"].revision == instance.revision
        assert details["variables"]["channel"] == "phone"
    assert len(reads) == 1
    with variable_reads() as reads, sessions.begin() as s:  # committed: held at the new revision
        assert runtime.task_details(s, approve.id)["variables"]["channel"] == "phone"
    assert reads == []


def test_an_action_taking_the_case_while_its_variables_are_copied_sends_the_reader_to_the_database(
        sessions, deploy, variable_reads, monkeypatch):
    _iid, task_id = _start(sessions, deploy)
    cache, looks = runtime._cache, []
    real_get = cache.get

    def get(key, default=None):  # another thread's action pops the entry between the two looks
        looks.append(key)
        found = real_get(key, default)
        if len(looks) == 1:
            cache.pop(key)
        return found

    monkeypatch.setattr(cache, "get", get)
    with variable_reads() as reads, sessions.begin() as s:
        details = runtime.task_details(s, task_id)
    assert len(looks) == 2 and len(reads) == 1
    assert details["variables"]["customer"] == "Acme Oy"
