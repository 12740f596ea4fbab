"""The audit chain: every change recorded, an edited, removed or reordered row is named."""

from __future__ import annotations

from sqlalchemy import select, text

from engine import audit, inbox, runtime
from engine.models import AuditEvent


def _instance_with_history(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme", "amount": 5}).id
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        inbox.claim(s, task.id, by="anna")
        runtime.complete_task(s, task.id, {"channel": "phone", "note": "ok"}, by="anna")
    return iid


def test_history_records_who_what_and_variable_changes(sessions, deploy):
    iid = _instance_with_history(sessions, deploy)
    with sessions.begin() as s:
        events = audit.history(s, iid)
        kinds = [e.kind for e in events]
        assert kinds[:4] == ["instance_started", "path_taken", "task_created", "data_changed"]
        assert "task_claimed" in kinds and "task_completed" in kinds
        completed = next(audit.event_dict(e) for e in events if e.kind == "task_completed")
        assert completed["actor"] == "anna" and completed["element_id"] == "review"
        assert completed["data"]["submitted"]["channel"] == "phone"
        changes = [audit.event_dict(e)["data"]["changes"] for e in events if e.kind == "data_changed"]
        assert ["", "phone"] != changes[-1].get("channel") and changes[-1]["channel"] == [None, "phone"]
        assert all(e.at.tzinfo is not None for e in events)
        assert audit.verify(s).ok


def test_edited_row_is_detected_and_named(sessions, deploy):
    iid = _instance_with_history(sessions, deploy)
    with sessions.begin() as s:
        victim = s.scalars(select(AuditEvent).where(AuditEvent.kind == "task_completed")).one()
        s.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = :id"), {"id": victim.id})
    with sessions.begin() as s:
        result = audit.verify(s, iid)
        assert not result.ok
        assert result.breaks[0].event_id == victim.id
        assert "changed" in result.breaks[0].reason


def test_removed_last_event_is_detected(sessions, deploy):
    iid = _instance_with_history(sessions, deploy)
    with sessions.begin() as s:
        last = s.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid)
                         .order_by(AuditEvent.seq.desc())).first()
        s.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": last.id})
    with sessions.begin() as s:
        result = audit.verify(s, iid)
        assert not result.ok and "removed" in result.breaks[0].reason


def test_deployments_are_audited(sessions, deploy):
    deploy("order.bpmn", by="dora")
    with sessions.begin() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.stream == "models")).all()
        assert event.kind == "deployed" and event.actor == "dora"
