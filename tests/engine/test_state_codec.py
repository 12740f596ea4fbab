"""The state codec: engine.spiff writes and reads task trees as SpiffWorkflow's own converters do.

`spiff.dump_state` / `load_state` build the task mapping themselves (a cold load is mostly this);
the JSON they write must be the same JSON as SpiffWorkflow's converters write (orjson writes it,
marked as such; a state orjson cannot write exactly goes to the standard encoder), and what they read
back must be the same tasks, so states stay readable by either. Each case below drives a model
with subprocesses, multi-instances, timers, events or loops through a few steps and compares.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from lxml import etree

from engine import spiff
from engine.errors import ScriptError

MODELS = Path(__file__).parent / "bpmn"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CASES = ["c_sub_mi", "c_event_subprocess", "c_mi_parallel", "c_mi_expression", "c_event_gateway", "reminder",
         "c_loop", "order", "external_boundary", "c_signal_boundary", "interrupt", "c_inclusive"]


def _bundle(name: str) -> spiff.SpecBundle:
    tree = etree.parse(str(MODELS / f"{name}.bpmn"))
    return spiff.parse_models([(f"{name}.bpmn", "bpmn", tree)]).bundles[name]


def _converter(typename: str):
    """Return the registered converter object of a type (its to_dict is bound to it)."""
    return spiff._registry.convert_to_dict[typename].args[1].__self__


def _stock_state(workflow) -> str:
    """Return the state as SpiffWorkflow's own WorkflowConverter and TaskConverter write it."""
    top, sub = _converter("BpmnWorkflow"), _converter("BpmnSubWorkflow")
    stock = spiff.BpmnWorkflowConverter.__mro__[1].to_dict  # WorkflowConverter.to_dict: tasks through the registry
    spiff._registry._encoder_mode = True
    try:
        dct = stock(top, workflow)
        dct["subprocesses"] = {}
        for key, sp in workflow.subprocesses.items():
            sub_dct = stock(sub, sp)
            sub_dct.update(parent_task_id=str(sp.parent_task_id), spec=sp.spec.name, typename="BpmnSubWorkflow")
            dct["subprocesses"][str(key)] = sub_dct
        dct["bpmn_events"] = spiff._registry.convert(workflow.bpmn_events)
        dct["typename"] = "BpmnWorkflow"
    finally:
        spiff._registry._encoder_mode = False
    dct[spiff._serializer.VERSION_KEY] = spiff._serializer.VERSION
    return json.dumps(dct, cls=spiff._serializer._encoder_cls, separators=(",", ":"))


def _tasks(workflow) -> list[tuple]:
    """Return every task of a workflow and its subprocesses as comparable values."""
    found = []
    for wf in [workflow, *workflow.subprocesses.values()]:
        for key, task in wf.tasks.items():
            found.append((str(key), str(task.id), str(task._parent), [str(c) for c in task._children],
                          task.task_spec.name, task._state, task.triggered, task.last_state_change,
                          json.dumps(task.data, default=str, sort_keys=True),
                          json.dumps(task.internal_data, default=str, sort_keys=True)))
    return found


def _stock_tasks(state: str, bundle: spiff.SpecBundle) -> list[tuple]:
    """Rebuild the task mappings from a state with SpiffWorkflow's own TaskConverter (through the registry)."""
    loaded = spiff.load_state(state, bundle)
    dct = json.loads(state)
    conv = _converter("BpmnWorkflow")
    loaded.tasks = {}
    loaded.tasks = conv.mapping_from_dict(dct["tasks"], UUID, workflow=loaded)
    for key, sp in loaded.subprocesses.items():
        sp.tasks = {}
        sp.tasks = conv.mapping_from_dict(dct["subprocesses"][str(key)]["tasks"], UUID, workflow=sp)
    return _tasks(loaded)


def _states(name: str):
    """Yield (bundle, workflow) at each step of driving one model: started, then after each user task."""
    bundle = _bundle(name)
    with spiff.clock(T0):
        wf = spiff.new_workflow(bundle, {"amount": 5, "items": [1, 2], "nested": {"a": [1, {"b": 2}]},
                                         "when": T0, "n": 0, "customer": "Acme"})
        try:
            spiff.run_engine(wf)
        except ScriptError:
            pass  # a model that wants other data stops early: its state is still a state to compare
        yield bundle, wf
        for step in range(4):
            ready = spiff.ready_user_tasks(wf)
            if not ready:
                return
            spiff.complete_user_task(wf, ready[0].id, {f"v{step}": step, "items": [step], "more": step < 2,
                                                       "day": T0.date().isoformat()})
            try:
                spiff.run_engine(wf)
            except ScriptError:
                return
            yield bundle, wf


MARK = '{"polku.json":"orjson",'


@pytest.mark.parametrize("name", CASES)
def test_states_are_written_as_spiffworkflow_writes_them(name):
    compared = 0
    for _bundle_, wf in _states(name):
        state = spiff.dump_state(wf)
        assert state.startswith(MARK)
        assert json.loads(state) == {"polku.json": "orjson", **json.loads(_stock_state(wf))}
        compared += 1
    assert compared >= 1


@pytest.mark.parametrize("name", CASES)
def test_a_state_written_by_the_standard_encoder_is_read_as_before(name):
    """States stored before orjson wrote them (and those it cannot write) carry no mark."""
    for bundle, wf in _states(name):
        stock = _stock_state(wf)
        loaded = spiff.load_state(stock, bundle)
        assert _tasks(loaded) == _tasks(wf)
        assert json.loads(spiff.dump_state(loaded)) == {"polku.json": "orjson", **json.loads(stock)}


@pytest.mark.parametrize("value", [2 ** 64, -(2 ** 63) - 1, {"a": [10 ** 30]}, "x\ud800y"])
def test_data_orjson_cannot_write_exactly_goes_to_the_standard_encoder_and_comes_back_unchanged(value):
    bundle = _bundle("order")
    with spiff.clock(T0):
        wf = spiff.new_workflow(bundle, {"big": value, "n": 2 ** 63 - 1})
        spiff.run_engine(wf)
    state = spiff.dump_state(wf)
    assert not state.startswith(MARK) and state == _stock_state(wf)
    data = _task_data(spiff.load_state(state, bundle))
    assert repr(data) == repr(_task_data(wf)) and any(d.get("big") == value for d in data)  # repr: 2**64 == float
    assert all(type(d["n"]) is int for d in data if "n" in d)


def test_the_largest_64_bit_integers_are_written_by_orjson_and_read_back_exactly():
    bundle = _bundle("order")
    with spiff.clock(T0):
        wf = spiff.new_workflow(bundle, {"high": 2 ** 64 - 1, "low": -(2 ** 63), "x": 0.1 + 0.2})
        spiff.run_engine(wf)
    state = spiff.dump_state(wf)
    assert state.startswith(MARK)
    data = _task_data(spiff.load_state(state, bundle))
    assert repr(data) == repr(_task_data(wf))
    assert {(d["high"], d["low"], d["x"]) for d in data if "high" in d} == {(2 ** 64 - 1, -(2 ** 63), 0.1 + 0.2)}


def _task_data(wf) -> list[dict]:
    return [t.data for t in sorted(wf.get_tasks(), key=lambda t: str(t.id))]


@pytest.mark.parametrize("name", CASES)
def test_states_are_read_as_spiffworkflow_reads_them(name):
    for bundle, wf in _states(name):
        state = spiff.dump_state(wf)
        loaded = spiff.load_state(state, bundle)
        assert _tasks(loaded) == _stock_tasks(state, bundle) == _tasks(wf)
        assert spiff.dump_state(loaded) == state
        assert sorted(str(t.id) for t in loaded.event_manager.tasks.values()) == \
            sorted(str(t.id) for t in wf.event_manager.tasks.values())


def test_an_id_that_is_not_canonical_is_read_by_uuid_itself():
    text = "12345678-1234-5678-1234-567812345678"
    assert spiff._uuid(text) == UUID(text) and hash(spiff._uuid(text)) == hash(UUID(text))
    assert spiff._uuid("{" + text + "}") == UUID(text)
    assert spiff._uuid(text.replace("-", "")) == UUID(text)
    with pytest.raises(ValueError):
        spiff._uuid("12345678-1234-5678-1234-56781234567g")
    with pytest.raises(ValueError):
        spiff._uuid("1234567-81234-5678-1234-5678123456789")


@pytest.mark.parametrize("name", CASES)
def test_one_walk_answers_what_the_walks_of_each_question_answer(name):
    for _bundle_, wf in _states(name):
        found = spiff.survey(wf)
        assert found.ready == spiff.ready_user_tasks(wf)
        assert found.external == spiff.external_tasks(wf)
        assert found.variables == spiff.variables(wf)
        assert found.timers == spiff.waiting_timers(wf)
        assert found.messages == spiff.waiting_messages(wf)
        assert found.signals == spiff.waiting_signals(wf)
        assert found.completed == spiff.is_completed(wf)
        assert [t.id for t in spiff._ready_within(wf)] == [t.id for t in wf.get_tasks(state=spiff.TaskState.READY)]


def test_the_engine_steps_reach_as_deep_as_spiffworkflows_iterator():
    wf = spiff.new_workflow(_bundle("c_endless"), {"n": 0})
    with pytest.raises(ScriptError, match="without waiting"):
        spiff.run_engine(wf)
    assert len(wf.tasks) > spiff._ITERATOR_DEPTH  # the loop grew the tree past the iterator's reach
    ready = wf.get_tasks(state=spiff.TaskState.READY)
    assert [t.id for t in spiff._ready_within(wf)] == [t.id for t in ready]
    assert [t.id for t in spiff._tree_tasks(wf, spiff.TaskState.READY)] != [t.id for t in ready]
