"""Instance migration: previews say clean or blocked and why; migrating moves state, rows and history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import audit, deploy, inbox, migrate, runtime
from engine.errors import NotAllowed
from engine.models import Instance, InstanceStatus, Task, TaskStatus

ORDER = (Path(__file__).parent / "bpmn" / "order.bpmn").read_text()
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

RENAMED = ORDER.replace('name="Review order"', 'name="Check the order"') \
    .replace('name="Approve large order"', 'name="Sign off large order"')
WITHOUT_APPROVE = ORDER.replace('targetRef="approve">', 'targetRef="compute">') \
    .split('    <bpmn:userTask id="approve"')[0] + ORDER.split('<bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="compute" />')[1] \
    .replace('<bpmn:incoming>f3</bpmn:incoming>', '')
WITHOUT_NOTE = ORDER.replace('<camunda:formField id="note" label="Note" type="string">', '<camunda:formField id="remark" label="Note" type="string">')


def _deploy(sessions, text: str) -> int:
    with sessions.begin() as s:
        result = deploy.deploy_files(s, {"order.bpmn": text.encode()}, by="dora")
        return result.created[0].id


def _start(sessions, amount: int = 500) -> int:
    with sessions.begin() as s:
        return runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": amount},
                                      now=T0).id


def _complete_review(sessions, iid: int) -> None:
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        runtime.complete_task(s, task.id, {"channel": "phone"}, by="anna", now=T0)


def test_variants_are_valid_models(sessions):
    for text in (RENAMED, WITHOUT_APPROVE, WITHOUT_NOTE):
        assert deploy.validate_files({"order.bpmn": text.encode()}).problems == []


def test_renamed_tasks_migrate_cleanly_and_rows_take_the_new_names(sessions):
    v1 = _deploy(sessions, ORDER)
    iid = _start(sessions)
    v2 = _deploy(sessions, RENAMED)
    with sessions.begin() as s:
        [candidate] = migrate.preview(s, v1, v2)
        assert candidate.ok and candidate.instance_id == iid and candidate.active == ["Review order"]
    with sessions.begin() as s:
        migrate.migrate_instance(s, iid, v2, by="dora", source_id=v1)
    runtime.forget_cache()
    with sessions.begin() as s:
        assert s.get(Instance, iid).version_id == v2
        [task] = inbox.tasks(s, instance_id=iid)
        assert task.name == "Check the order"
        events = [e for e in audit.history(s, iid) if e.kind == "instance_migrated"]
        assert len(events) == 1 and "migrated from v1 to v2" in events[0].data
        assert audit.verify(s, iid).ok
    _complete_review(sessions, iid)
    with sessions.begin() as s:
        assert runtime.get_instance(s, iid).status == InstanceStatus.RUNNING  # waits at the script's incident


def test_partially_completed_instance_continues_on_the_new_version(sessions):
    v1 = _deploy(sessions, ORDER)
    iid = _start(sessions, amount=5000)
    _complete_review(sessions, iid)
    v2 = _deploy(sessions, RENAMED)
    with sessions.begin() as s:
        [candidate] = migrate.preview(s, v1, v2)
        assert candidate.ok and candidate.active == ["Approve large order"]
        migrate.migrate_instance(s, iid, v2, by="dora")
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        assert (task.element_id, task.name) == ("approve", "Sign off large order")
        runtime.complete_task(s, task.id, {"approved": True}, by="sam", now=T0)
    with sessions.begin() as s:
        assert [i.element_id for i in runtime.open_incidents(s, iid)] == ["compute"]


def test_instance_whose_active_task_was_removed_is_blocked_and_untouched(sessions):
    v1 = _deploy(sessions, ORDER)
    at_review = _start(sessions, amount=5000)
    at_approve = _start(sessions, amount=5000)
    _complete_review(sessions, at_approve)
    v2 = _deploy(sessions, WITHOUT_APPROVE)
    with sessions.begin() as s:
        preview = {c.instance_id: c for c in migrate.preview(s, v1, v2)}
        assert preview[at_review].ok
        assert not preview[at_approve].ok
        assert "active task 'Approve large order' (approve) no longer exists in v2" in preview[at_approve].blocked[0]
        state = s.get(Instance, at_approve).state
    with pytest.raises(NotAllowed, match="no longer exists"), sessions.begin() as s:
        migrate.migrate_instance(s, at_approve, v2, by="dora")
    with sessions.begin() as s:
        row = s.get(Instance, at_approve)
        assert (row.version_id, row.state) == (v1, state)
        assert not [e for e in audit.history(s, at_approve) if e.kind == "instance_migrated"]


def test_removed_form_field_of_an_active_task_blocks(sessions):
    v1 = _deploy(sessions, ORDER)
    _start(sessions)
    v2 = _deploy(sessions, WITHOUT_NOTE)
    with sessions.begin() as s:
        [candidate] = migrate.preview(s, v1, v2)
        assert candidate.blocked == ["the form field 'note' of its task 'Review order' was removed"]


def test_batch_migrates_each_clean_instance_in_its_own_transaction(sessions):
    v1 = _deploy(sessions, ORDER)
    clean = [_start(sessions), _start(sessions)]
    blocked = _start(sessions, amount=5000)
    _complete_review(sessions, blocked)
    v2 = _deploy(sessions, WITHOUT_APPROVE)
    outcome = {}
    for iid in [*clean, blocked]:
        try:
            with sessions.begin() as s:
                migrate.migrate_instance(s, iid, v2, by="dora", source_id=v1)
            outcome[iid] = "migrated"
        except NotAllowed:
            outcome[iid] = "blocked"
    assert outcome == {clean[0]: "migrated", clean[1]: "migrated", blocked: "blocked"}
    with sessions.begin() as s:
        assert [i.id for i in migrate.running_instances(s, v2)] == clean
        assert [i.id for i in migrate.running_instances(s, v1)] == [blocked]
        ready = s.scalars(select(Task).where(Task.instance_id == clean[0], Task.state == TaskStatus.READY)).all()
        assert [t.element_id for t in ready] == ["review"]


def test_migration_between_different_processes_is_refused(sessions):
    from engine.errors import InvalidInput

    v1 = _deploy(sessions, ORDER)
    with sessions.begin() as s:
        other = deploy.deploy_files(s, {"loop.bpmn": (Path(__file__).parent / "bpmn" / "loop.bpmn").read_bytes()},
                                    by="dora").created[0].id
    with pytest.raises(InvalidInput), sessions.begin() as s:
        migrate.preview(s, v1, other)


LOOP = (Path(__file__).parent / "bpmn" / "loop.bpmn").read_text()
LOOP_WITHOUT_INIT = LOOP.replace(
    '    <bpmn:scriptTask id="init" name="Init" scriptFormat="python">\n'
    '      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>\n'
    '      <bpmn:script>count = 0</bpmn:script>\n    </bpmn:scriptTask>\n', "") \
    .replace('<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init" />', "") \
    .replace('<bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="merge" />',
             '<bpmn:sequenceFlow id="f2" sourceRef="start" targetRef="merge" />') \
    .replace("<bpmn:outgoing>f1</bpmn:outgoing>", "<bpmn:outgoing>f2</bpmn:outgoing>")
REMINDER = (Path(__file__).parent / "bpmn" / "reminder.bpmn").read_text()
REMINDER_WITHOUT_ESCALATION = REMINDER.split('    <bpmn:boundaryEvent id="late"')[0] + \
    '    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>\n' \
    '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />\n' \
    '    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />\n' \
    "  </bpmn:process>\n</bpmn:definitions>\n"


def test_completed_step_compacted_out_of_the_history_does_not_block(sessions):
    with sessions.begin() as s:
        v1 = deploy.deploy_files(s, {"loop.bpmn": LOOP.encode()}, by="dora").created[0].id
        iid = runtime.start_instance(s, "loop", by="anna", now=T0).id
    with sessions.begin() as s:
        assert deploy.validate_files({"loop.bpmn": LOOP_WITHOUT_INIT.encode()}).problems == []
        v2 = deploy.deploy_files(s, {"loop.bpmn": LOOP_WITHOUT_INIT.encode()}, by="dora").created[0].id
    with sessions.begin() as s:
        [candidate] = migrate.preview(s, v1, v2)
        assert candidate.ok
        migrate.migrate_instance(s, iid, v2, by="dora")
    runtime.forget_cache()
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        runtime.complete_task(s, task.id, {"more": False}, by="anna", now=T0)
    with sessions.begin() as s:
        assert runtime.get_instance(s, iid).status == InstanceStatus.COMPLETED
        assert runtime.instance_variables(s, iid)["count"] == 1


def test_completed_step_kept_in_the_history_and_removed_blocks(sessions):
    from datetime import timedelta

    with sessions.begin() as s:
        v1 = deploy.deploy_files(s, {"reminder.bpmn": REMINDER.encode()}, by="dora").created[0].id
        iid = runtime.start_instance(s, "reminder", by="anna", data={"due": "P30D"}, now=T0).id
    with sessions.begin() as s:
        runtime.fire_instance_timers(s, iid, now=T0 + timedelta(days=15))
    with sessions.begin() as s:
        escalate = next(t for t in inbox.tasks(s, instance_id=iid) if t.element_id == "escalate")
        runtime.complete_task(s, escalate.id, {"handled": True}, by="sam", now=T0 + timedelta(days=15))
    with sessions.begin() as s:
        assert [t.element_id for t in inbox.tasks(s, instance_id=iid)] == ["call"]
        assert deploy.validate_files({"reminder.bpmn": REMINDER_WITHOUT_ESCALATION.encode()}).problems == []
        v2 = deploy.deploy_files(s, {"reminder.bpmn": REMINDER_WITHOUT_ESCALATION.encode()}, by="dora").created[0].id
    with sessions.begin() as s:
        [candidate] = migrate.preview(s, v1, v2)
        assert any("completed step 'Late' (late) no longer exists in v2" in r for r in candidate.blocked), candidate


def test_waiting_timer_keeps_its_due_time_unless_its_expression_changed(sessions):
    from datetime import timedelta

    from engine.models import Timer

    renamed = REMINDER.replace('name="Call the customer"', 'name="Phone the customer"')
    shorter = REMINDER.replace("'P14D'", "'P7D'")
    with sessions.begin() as s:
        v1 = deploy.deploy_files(s, {"reminder.bpmn": REMINDER.encode()}, by="dora").created[0].id
        kept = runtime.start_instance(s, "reminder", by="anna", data={"due": "P30D"}, now=T0).id
        changed = runtime.start_instance(s, "reminder", by="anna", data={"due": "P30D"}, now=T0).id
    with sessions.begin() as s:
        v2 = deploy.deploy_files(s, {"reminder.bpmn": renamed.encode()}, by="dora").created[0].id
        migrate.migrate_instance(s, kept, v2, by="dora", source_id=v1, now=T0 + timedelta(days=3))
    with sessions.begin() as s:
        v3 = deploy.deploy_files(s, {"reminder.bpmn": shorter.encode()}, by="dora").created[0].id
        migrate.migrate_instance(s, changed, v3, by="dora", source_id=v1, now=T0 + timedelta(days=3))
    with sessions.begin() as s:
        due = {t.instance_id: t.due_at for t in s.scalars(select(Timer))}
        assert due[kept] == T0 + timedelta(days=14)
        assert due[changed] == T0 + timedelta(days=3 + 7)
