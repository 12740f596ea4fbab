"""Tampering with each audited field of a stored event is detected, by `audit.verify` and `polku verify-audit`.

Each case edits the real database row with plain SQL (as someone with database access would) and
checks that verification fails and names the event changed (or, for removals, the place).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from engine import audit, inbox, runtime
from engine.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]


def _case(sessions, deploy) -> int:
    deploy("order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 5}).id
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        inbox.claim(s, task.id, by="anna")
        runtime.complete_task(s, task.id, {"channel": "phone", "note": "ok"}, by="anna")
    return iid


def _event(s, iid: int, kind: str) -> AuditEvent:
    return s.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid, AuditEvent.kind == kind)
                     .order_by(AuditEvent.seq.desc())).first()


def _set(s, event: AuditEvent, column: str, value) -> int:
    s.execute(text(f"UPDATE audit_event SET {column} = :v WHERE id = :id"), {"v": value, "id": event.id})
    return event.id


def _edit_json(s, event: AuditEvent, change) -> int:
    data = json.loads(event.data)
    change(data)
    return _set(s, event, "data", json.dumps(data, sort_keys=True, separators=(",", ":")))


def _new_value(data):
    data["changes"]["channel"][1] = "email"


def _old_value(data):
    data["changes"]["channel"][0] = "sms"


def _submitted(data):
    data["submitted"]["note"] = "forged"


def _swap_order(s, iid: int) -> int:
    first = _event(s, iid, "task_claimed")
    second = _event(s, iid, "task_completed")
    s.execute(text("UPDATE audit_event SET seq = -1 WHERE id = :id"), {"id": first.id})
    s.execute(text("UPDATE audit_event SET seq = :seq WHERE id = :id"), {"seq": first.seq, "id": second.id})
    s.execute(text("UPDATE audit_event SET seq = :seq WHERE id = :id"), {"seq": second.seq, "id": first.id})
    return second.id


def _delete_middle(s, iid: int) -> None:
    s.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": _event(s, iid, "task_claimed").id})


# what is changed -> tamper(session, instance id) returning the id of the event verification must name
TAMPERS = {
    "new value of a data change": lambda s, i: _edit_json(s, _event(s, i, "data_changed"), _new_value),
    "old value of a data change": lambda s, i: _edit_json(s, _event(s, i, "data_changed"), _old_value),
    "submitted form data": lambda s, i: _edit_json(s, _event(s, i, "task_completed"), _submitted),
    "whole payload emptied": lambda s, i: _set(s, _event(s, i, "task_completed"), "data", "{}"),
    "element": lambda s, i: _set(s, _event(s, i, "task_completed"), "element_id", "approve"),
    "task": lambda s, i: _set(s, _event(s, i, "task_completed"), "task_id", "0" * 36),
    "actor": lambda s, i: _set(s, _event(s, i, "task_completed"), "actor", "mallory"),
    "kind": lambda s, i: _set(s, _event(s, i, "task_claimed"), "kind", "task_released"),
    "version": lambda s, i: _set(s, _event(s, i, "task_completed"), "version_id", 999),
    "instance": lambda s, i: _set(s, _event(s, i, "task_claimed"), "instance_id", 999),
    "previous hash": lambda s, i: _set(s, _event(s, i, "task_completed"), "prev_hash", "f" * 64),
    "order of two events": _swap_order,
}


def _shift_time(s, iid: int) -> int:
    event = _event(s, iid, "task_completed")
    return _set(s, event, "at", event.at.replace(microsecond=(event.at.microsecond + 1) % 1_000_000))


TAMPERS["time, by one microsecond"] = _shift_time


@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_tampering_with_a_field_is_detected_and_named(sessions, deploy, what):
    iid = _case(sessions, deploy)
    with sessions.begin() as s:
        assert audit.verify(s, iid).ok
        victim = TAMPERS[what](s, iid)
    with sessions.begin() as s:
        result = audit.verify(s)
        assert not result.ok, what
        assert [b.event_id for b in result.breaks] == [victim], what


@pytest.mark.parametrize("removed", ["a middle event", "the newest event"])
def test_removing_an_event_is_detected(sessions, deploy, removed):
    iid = _case(sessions, deploy)
    with sessions.begin() as s:
        if removed == "a middle event":
            _delete_middle(s, iid)
        else:
            newest = s.scalars(select(AuditEvent.id).where(AuditEvent.instance_id == iid)
                               .order_by(AuditEvent.seq.desc())).first()
            s.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": newest})
    with sessions.begin() as s:
        result = audit.verify(s, iid)
        assert not result.ok
        reason = result.breaks[0].reason
        assert ("missing" in reason) if removed == "a middle event" else ("removed" in reason)


def test_polku_verify_audit_fails_on_a_tampered_payload(sessions, deploy, tmp_path):
    iid = _case(sessions, deploy)
    url = str(sessions.kw["bind"].url)
    env = {**os.environ, "POLKU_DATABASE_URL": url}
    polku = [sys.executable, "-m", "engine.cli"]
    clean = subprocess.run([*polku, "verify-audit"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with sessions.begin() as s:
        _edit_json(s, _event(s, iid, "data_changed"), _old_value)
    broken = subprocess.run([*polku, "verify-audit"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           check=False)
    assert broken.returncode != 0
    assert f"instance:{iid}" in broken.stdout + broken.stderr
