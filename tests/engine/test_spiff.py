"""The SpiffWorkflow boundary: the engine clock, state without specs, translated failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from engine import spiff
from engine.errors import ScriptError

MODELS = Path(__file__).parent / "bpmn"


def _bundle(name: str, pid: str) -> spiff.SpecBundle:
    tree = etree.parse(str(MODELS / name))
    result = spiff.parse_models([(name, "bpmn", tree)])
    assert result.problems == []
    return result.bundles[pid]


def test_clock_moves_spiffs_timers_and_script_now():
    bundle = _bundle("reminder.bpmn", "reminder")
    t0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    with spiff.clock(t0):
        wf = spiff.new_workflow(bundle, {"due": "P1D"})
        spiff.run_engine(wf)
        [timer] = spiff.waiting_timers(wf)
        assert timer.due_at == t0 + timedelta(days=14)
        assert spiff.engine_now() == t0
    with spiff.clock(t0 + timedelta(days=15)):
        assert "late" in spiff.fire_timers(wf)
    assert spiff.waiting_timers(wf) == []


def test_state_round_trips_without_the_specs():
    bundle = _bundle("order.bpmn", "order")
    wf = spiff.new_workflow(bundle, {"customer": "Acme", "amount": 5})
    spiff.run_engine(wf)
    text = spiff.dump_state(wf)
    assert '"spec"' not in text[:200] and "task_specs" not in text
    again = spiff.load_state(text, bundle)
    assert [t.element_id for t in spiff.ready_user_tasks(again)] == ["review"]
    assert spiff.variables(again)["customer"] == "Acme"


def test_failing_script_names_its_element():
    bundle = _bundle("order.bpmn", "order")
    wf = spiff.new_workflow(bundle, {"customer": "Acme", "amount": 5})
    spiff.run_engine(wf)
    [task] = spiff.ready_user_tasks(wf)
    spiff.complete_user_task(wf, task.id, {"channel": "phone"})
    with pytest.raises(ScriptError) as err:
        spiff.run_engine(wf)
    assert err.value.element == "compute" and "divisor" in str(err.value)


def test_sandbox_refusal_in_a_condition_becomes_script_error():
    bundle = _bundle("loop.bpmn", "loop")
    wf = spiff.new_workflow(bundle)
    spiff.run_engine(wf)
    [task] = spiff.ready_user_tasks(wf)
    spiff.complete_user_task(wf, task.id, {"more": "__import__('os')"})
    spiff.run_engine(wf)  # a non-empty string is simply true: data is never evaluated as code
    [task] = spiff.ready_user_tasks(wf)
    assert task.element_id == "work"


def test_compaction_keeps_the_tree_small_and_the_instance_working():
    bundle = _bundle("loop.bpmn", "loop")
    wf = spiff.new_workflow(bundle)
    spiff.run_engine(wf)
    for _ in range(300):
        [task] = spiff.ready_user_tasks(wf)
        spiff.complete_user_task(wf, task.id, {"more": True})
        spiff.run_engine(wf)
        spiff.compact(wf)
    assert spiff.task_count(wf) < 20
    assert spiff.variables(wf)["count"] == 300


def test_due_from_understands_durations_dates_and_datetimes():
    now = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
    assert spiff.due_from("P1D", now) == now + timedelta(days=1)
    assert spiff.due_from("2026-02-10T12:00:00+02:00", now) == datetime(2026, 2, 10, 10, 0, tzinfo=UTC)
    assert spiff.due_from(None, now) is None


def test_case_data_update_reaches_the_step_behind_a_waiting_timer():
    bundle = _bundle("timer_script.bpmn", "timer_script")
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    with spiff.clock(t0):
        wf = spiff.new_workflow(bundle, {"parts": 0})
        spiff.run_engine(wf)
    spiff.update_live_data(wf, {"parts": 4})
    with spiff.clock(t0 + timedelta(days=2)):
        spiff.fire_timers(wf)  # the script divides by parts: it must see 4, not the 0 it started with
    assert spiff.variables(wf)["share"] == 25.0
