"""Model diff: elements added, removed and changed between two versions, compared by id."""

from __future__ import annotations

from pathlib import Path

from engine.diff import ChangeKind, diff_models

ORDER = (Path(__file__).parent / "bpmn" / "order.bpmn").read_text()
REMINDER = (Path(__file__).parent / "bpmn" / "reminder.bpmn").read_text()


def _by_id(old: str | None, new: str):
    return {c.element_id: c for c in diff_models(old.encode() if old else None, new.encode())}


def test_identical_files_have_no_changes():
    assert diff_models(ORDER.encode(), ORDER.encode()) == []


def test_renamed_task_is_changed_with_old_and_new_name():
    changes = _by_id(ORDER, ORDER.replace('name="Review order"', 'name="Check the order"'))
    assert list(changes) == ["review"]
    assert changes["review"].kind == ChangeKind.CHANGED
    assert changes["review"].details == ["name: 'Review order' → 'Check the order'"]


def test_form_condition_and_documentation_changes_are_named():
    new = ORDER.replace('<camunda:formField id="note"', '<camunda:formField id="remark"') \
        .replace("amount &gt; 1000", "amount &gt; 2000") \
        .replace("Approve or reject.", "Approve or reject the order.")
    changes = _by_id(ORDER, new)
    assert changes["review"].details == ["form: removed note; added remark"]
    expected = "condition: 'amount is not None and amount > 1000' → 'amount is not None and amount > 2000'"
    assert changes["f_large"].details == [expected]
    assert changes["approve"].details == ["documentation: 'Approve or reject.' → 'Approve or reject the order.'"]


def test_form_constraint_change_names_the_field():
    new = ORDER.replace('<camunda:constraint name="maxlength" config="20" />', '<camunda:constraint name="maxlength" config="40" />')
    assert _by_id(ORDER, new)["review"].details == ["form: changed note"]


def test_timer_change_is_shown():
    import re

    match = re.search(r"<bpmn:(timeDuration|timeDate|timeCycle)[^>]*>([^<]*)<", REMINDER)
    assert match, "reminder.bpmn has a timer"
    new = REMINDER.replace(match.group(0), match.group(0).replace(match.group(2), "'PT9H'"))
    [change] = [c for c in diff_models(REMINDER.encode(), new.encode()) if c.kind == ChangeKind.CHANGED]
    assert change.details[0].startswith("timer: ") and "PT9H" in change.details[0]


def test_added_and_removed_elements_are_listed():
    new = ORDER.replace('<bpmn:endEvent id="end" name="Done">', '<bpmn:endEvent id="finish" name="Done">') \
        .replace('targetRef="end"', 'targetRef="finish"')
    changes = _by_id(ORDER, new)
    assert changes["finish"].kind == ChangeKind.ADDED and changes["end"].kind == ChangeKind.REMOVED
    assert changes["f5"].details == ["targetRef: 'end' → 'finish'"]


def test_layout_changes_are_not_model_changes():
    new = ORDER.replace("</bpmn:definitions>", '<bpmndi:BPMNDiagram xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" id="D1"><bpmndi:BPMNPlane id="P1" bpmnElement="order"/></bpmndi:BPMNDiagram></bpmn:definitions>')
    assert diff_models(ORDER.encode(), new.encode()) == []


def test_first_version_lists_everything_as_added():
    changes = diff_models(None, ORDER.encode())
    assert changes and all(c.kind == ChangeKind.ADDED for c in changes)
    assert "review" in {c.element_id for c in changes}
