"""The SpiffWorkflow boundary: the only module that imports SpiffWorkflow.

It owns the parser (Camunda flavour), the serializer (workflow state without the specs, which
are cached per deployment), the restricted script engine (every BPMN/DMN expression and script
runs under `engine.sandbox`), the engine clock (SpiffWorkflow's notion of "now", so timers can be
fired at a chosen instant), history compaction for long-lived instances, and the translation of
SpiffWorkflow's exceptions into `engine.errors`. Callers get plain dataclasses, never Spiff objects,
except for the opaque `Workflow` handle they pass back in.
"""

from __future__ import annotations

import ast
import contextvars
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from copy import copy, deepcopy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, SafeUUID

import orjson
from lxml import etree
from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.parser.BpmnParser import XSD_PATH as _BPMN_XSD
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag as _full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import SendTaskParser as _SendTaskParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter as _SpiffSubWorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.control import BoundaryEventJoin, BoundaryEventSplit, BpmnStartTask
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference as _TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import ReceiveTask as _ReceiveTask
from SpiffWorkflow.bpmn.specs.defaults import SendTask as _SendTask
from SpiffWorkflow.bpmn.specs.event_definitions import timer as _timer_module
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition,
    EscalationEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask as _SubWorkflowTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow as _SpiffSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import CamundaEventDefinitionParser as _CamundaEventParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as _CamundaMessage
from SpiffWorkflow.camunda.specs.multiinstance_task import ParallelMultiInstanceTask as _CamundaParallelMI
from SpiffWorkflow.camunda.specs.multiinstance_task import SequentialMultiInstanceTask as _CamundaSequentialMI
from SpiffWorkflow.dmn.parser.BpmnDmnParser import XSD_DIR as _DMN_XSD_DIR
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.task import Task as _SpiffTask
from SpiffWorkflow.util.task import TaskState

from . import juel, limits, prepare, sandbox, values
from .errors import DataInvalid, Problem, ScriptError

BPMN_XSD_PATH = _BPMN_XSD
DMN_XSD_PATHS = {
    "https://www.omg.org/spec/DMN/20191111/MODEL/": os.path.join(_DMN_XSD_DIR, "DMN13.xsd"),
    "http://www.omg.org/spec/DMN/20180521/MODEL/": os.path.join(_DMN_XSD_DIR, "DMN12.xsd"),
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": os.path.join(_DMN_XSD_DIR, "DMN.xsd"),
}

Workflow = BpmnWorkflow

# ---------------------------------------------------------------------------------------------
# The engine clock: SpiffWorkflow's timer module calls datetime.now(timezone.utc) itself.

_clock: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("polku_clock", default=None)


class _ClockDatetime(datetime):
    """datetime whose now() answers the engine clock when one is set."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
        fixed = _clock.get()
        if fixed is None:
            return datetime.now(tz)
        return fixed.astimezone(tz) if tz is not None else fixed.astimezone(UTC).replace(tzinfo=None)


_TICK = timedelta(microseconds=1)
_timer_module.datetime = _ClockDatetime  # type: ignore[misc]


def _trigger_event_subprocess(self: Any, my_task: Any, spec_name: str) -> Any:
    """Start an event subprocess without rewiring the shared process spec.

    SpiffWorkflow's own `BpmnStartTask.trigger_wf` connects the event subprocess as an output of
    Start in the *spec*; Polku caches specs per deployment, so every instance started afterwards
    would open that event subprocess at once and never complete. Here Start only becomes its input.
    """
    spec = self._wf_spec.task_specs.get(spec_name)
    if self.name not in spec._inputs:
        spec._inputs.append(self.name)
    if self._wf_spec.end.name not in spec._outputs:
        spec.connect(self._wf_spec.end)
    child = my_task._add_child(spec, TaskState.FUTURE)
    child.triggered = True
    child.task_spec._update(child)
    return child.id


BpmnStartTask.trigger_wf = _trigger_event_subprocess  # type: ignore[method-assign]


def engine_now() -> datetime:
    """Return the engine clock: the instant set by `clock()`, else the real time (UTC)."""
    fixed = _clock.get()
    return fixed if fixed is not None else datetime.now(UTC)


@contextmanager
def clock(at: datetime | None) -> Iterator[None]:
    """Run the enclosed engine work as if it were `at` (None: the real time)."""
    token = _clock.set(at.astimezone(UTC) if at is not None else None)
    try:
        yield
    finally:
        _clock.reset(token)


# ---------------------------------------------------------------------------------------------
# Restricted script engine


def configure(script_steps: int) -> None:
    """Set the step budget of one script or expression (the other limits: `engine.limits.configure`)."""
    limits.configure(None, steps=script_steps)


def _strip_template(expression: str) -> str:
    """Return the Python for an expression: a Camunda-style ${…} one is read as JUEL (`engine.juel`)."""
    return juel.translate(expression)


class _RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluate through `engine.sandbox`, never through plain eval/exec."""

    def evaluate(self, expression: Any, context: dict, external_context: dict | None = None) -> Any:
        if expression is None or not str(expression).strip():
            return dict(context)  # a message without a payload expression carries the task data
        names = {**(external_context or {}), **context}  # evaluation never changes them (sandbox)
        return sandbox.evaluate(_strip_template(str(expression)), names, clock=engine_now)

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        external = external_context or {}
        run = sandbox.run_script(script, {**external, **context}, clock=engine_now)
        changed = {k: v for k, v in run.changed.items() if k not in external}
        for name, kind in run.unstorable.items():
            raise sandbox.SandboxViolation(f"script result: {name} is a {kind}; only text, numbers, "
                                           "true/false, null, lists and objects can be stored", limit="data")
        try:  # what a script leaves must survive the case's storage: plain, bounded, no reserved keys
            values.check_plain(changed, what="script result", max_bytes=limits.current().max_bytes)
        except DataInvalid as err:
            raise sandbox.SandboxViolation(str(err), limit="data") from None
        context.update(changed)
        for key in run.deleted:  # `del x` removes the variable from the case
            if key not in external:
                context.pop(key, None)
        _script_output.output = run.output
        return True

    def call_service(self, context: dict, **kwargs: Any) -> Any:
        raise sandbox.SandboxViolation("service tasks are not supported by Polku")


class _ScriptEngine(PythonScriptEngine):
    def validate(self, expression: str) -> None:
        ast.parse(_strip_template(expression))  # DMN uses SyntaxError to decide on "=="

    def execute(self, task: Any, script: str, external_context: Any = None) -> Any:
        _script_output.output = ""
        result = super().execute(task, script, external_context)
        if _script_output.output:  # what print() wrote: kept until the runtime records it
            top = task.workflow.top_workflow
            top.polku_script_output = [*getattr(top, "polku_script_output", []),
                                       (getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name,
                                        _script_output.output)]
        return result


_script_output = threading.local()  # .output: what the script run last on this thread printed


def take_script_output(workflow: BpmnWorkflow) -> list[tuple[str, str]]:
    """Return (element id, text) for every script that printed since the last call, and forget them."""
    output = getattr(workflow, "polku_script_output", [])
    workflow.polku_script_output = []
    return list(output)


from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException as _WorkflowTaskException


def _timer_failures_name_their_element(method: Any) -> Any:
    """Wrap a timer's check so that a value it cannot use fails as the timer's element (an incident).

    SpiffWorkflow parses what a timer expression returned outside its evaluation, so "Invalid
    duration" or an AttributeError would otherwise escape as a plain exception: the timer worker
    would hold the timer back and try again forever (a poison timer).
    """
    def checked(self: Any, my_task: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, my_task, *args, **kwargs)
        except (SpiffWorkflowException, sandbox.SandboxViolation):
            raise
        except Exception as err:  # any value the timer cannot use
            raise _WorkflowTaskException(f"the timer's value cannot be used: {err}", task=my_task,
                                         exception=err) from err
    return checked


for _timer_class, _check in ((_timer_module.TimeDateEventDefinition, "has_fired"),
                             (_timer_module.DurationTimerEventDefinition, "has_fired"),
                             (_timer_module.CycleTimerEventDefinition, "cycle_complete")):
    setattr(_timer_class, _check, _timer_failures_name_their_element(getattr(_timer_class, _check)))


_spiff_message_throw = _CamundaMessage.throw


def _throw_plain_payload(self: Any, my_task: Any) -> None:
    """Throw a message only if its payload is plain data (else: an incident on the throwing element).

    The payload reaches other cases and their storage; it is checked like script results. The
    expression is evaluated again by SpiffWorkflow's throw: expressions cannot change anything.
    """
    payload = my_task.workflow.script_engine.evaluate(my_task, self.expression)
    try:
        values.check_plain(payload if isinstance(payload, dict) else {"payload": payload},
                           what=f"message payload of '{self.name}'", max_bytes=limits.current().max_bytes)
        sent_correlations(self, payload)
    except DataInvalid as err:
        raise _WorkflowTaskException(str(err), task=my_task, exception=err) from None
    _spiff_message_throw(self, my_task)


_CamundaMessage.throw = _throw_plain_payload  # type: ignore[method-assign]


SCRIPT_ENGINE = _ScriptEngine(environment=_RestrictedEnvironment())


def _merge_message_payload(self: Any, my_task: Any) -> None:
    """Put a caught message's payload into the catching task's data.

    The catching event's `camunda:resultVariable` takes the payload whole; otherwise a payload
    Polku delivered (a message from outside or from another instance) is merged when it is an
    object and kept as `payload` when it is not; a throw inside the same instance keeps Spiff's rule.
    """
    event_data = my_task.internal_data.get(self.name) or {}
    payload = event_data.get("payload")
    if self.result_var:
        my_task.data[self.result_var] = payload
    elif event_data.get("merge") and isinstance(payload, dict):
        my_task.data.update(payload)
    elif event_data.get("merge"):
        my_task.data["payload"] = payload
    else:
        my_task.data[event_data["result_var"]] = payload


_CamundaMessage.update_task_data = _merge_message_payload  # type: ignore[method-assign]


def _correlations_of(self: Any, my_task: Any, payload: Any) -> dict[str, dict[str, Any]]:
    """Compute a message's correlation keys from its payload: {key: {property: value}}.

    A Camunda message carries its payload wrapped ({"payload": …, "result_var": …}): the
    retrieval expressions read the payload inside. A property the payload lacks is left out.
    """
    inner = payload.get("payload") if isinstance(payload, dict) and "result_var" in payload else payload
    return message_correlations(self, inner)


def message_correlations(definition: Any, data: Any) -> dict[str, dict[str, Any]]:
    """Evaluate a message definition's correlation properties against `data` (never raises)."""
    found: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        return found
    for prop in getattr(definition, "correlation_properties", None) or []:
        try:
            value = SCRIPT_ENGINE.environment.evaluate(prop.retrieval_expression, dict(data))
        except Exception:  # noqa: BLE001, S112 - a payload without the property does not correlate on it
            continue
        for key in prop.correlation_keys:
            found.setdefault(key, {})[prop.name] = value
    return found


def sent_correlations(definition: Any, data: Any) -> dict[str, dict[str, Any]]:
    """Return the correlation keys a message carries (`message_correlations` of its payload).

    Raises:
        DataInvalid: a retrieval expression gave what case data cannot hold (a set, NaN, an integer
            beyond 64 bits…): the keys are kept in the receiving case's state and compared after a
            reload, where such a value would not be what it was (NaN is read back as null).
    """
    found = message_correlations(definition, data)
    for key, props in found.items():
        values.check_plain(props, what=f"correlation key '{key}' of message '{definition.name}'")
    return found


def message_correlates(workflow: BpmnWorkflow, name: str, payload: Any) -> bool:
    """Tell whether a message from outside matches the correlation keys of what waits for it here.

    Raises:
        DataInvalid: the payload gives a correlation value that is not plain data (`sent_correlations`).
    """
    waits = [(sent_correlations(d, payload), message_correlations(d, t.data))
             for t, d, _e in _pending_events(workflow) if isinstance(d, MessageEventDefinition) and d.name == name]
    return not waits or any(not sent or correlations_match(sent, mine) for sent, mine in waits)


def correlations_match(sent: dict[str, dict[str, Any]], waiting: dict[str, dict[str, Any]]) -> bool:
    """Tell whether two sets of correlation keys agree on every property both have."""
    return all(sent[key][prop] == value for key, props in waiting.items() if key in sent
               for prop, value in props.items() if prop in sent[key])


_CamundaMessage.get_correlations = _correlations_of  # type: ignore[method-assign]


class _CamundaSendTaskParser(_CamundaEventParser, _SendTaskParser):
    """Parse send and receive tasks with the Camunda message definition (payload, result variable).

    SpiffWorkflow's Camunda parser leaves them to the plain BPMN parser, whose message definition
    the Camunda serializer cannot store: a send task crashed every save.
    """

    def create_task(self) -> Any:
        return _SendTaskParser.create_task(self)


CamundaParser.OVERRIDE_PARSER_CLASSES[_full_tag("sendTask")] = (_CamundaSendTaskParser, _SendTask)  # see below
CamundaParser.OVERRIDE_PARSER_CLASSES[_full_tag("receiveTask")] = (_CamundaSendTaskParser, _ReceiveTask)


# ---------------------------------------------------------------------------------------------
# Serializer: the state is stored without the specs; specs come from the deployment cache.


class _StateConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow: BpmnWorkflow) -> dict:
        dct = _workflow_to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict, spec: Any = None, subprocess_specs: Any = None) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = _tasks_from_dict(dct["tasks"], workflow)
        workflow.task_tree = workflow.tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        workflow.script_engine = SCRIPT_ENGINE
        return workflow


class _SubStateConverter(_SpiffSubWorkflowConverter):
    def to_dict(self, workflow: Any) -> dict:
        dct = _workflow_to_dict(self, workflow)
        dct["parent_task_id"] = str(workflow.parent_task_id)
        dct["spec"] = workflow.spec.name
        return dct

    def from_dict(self, dct: dict, task: Any, top_workflow: Any) -> Any:
        spec = top_workflow.subprocess_specs.get(task.task_spec.spec)
        subprocess = self.target_class(spec, task.id, top_workflow, deserializing=True)
        subprocess.tasks = _tasks_from_dict(dct["tasks"], subprocess)
        subprocess.task_tree = subprocess.tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(subprocess, dct)
        return subprocess


# SpiffWorkflow's converters write and read each task through its registry (a dispatch, a wrapper and
# a dict copy per task, every id parsed or printed up to four times): two thirds of a cold load and
# most of a save. These do the same per task, in the same key order, each id printed or parsed once;
# tests/engine/test_state_codec.py checks them against SpiffWorkflow's own converters.


def _workflow_to_dict(converter: Any, workflow: Any) -> dict:
    """Return what SpiffWorkflow's `WorkflowConverter.to_dict` returns for a (sub)workflow."""
    registry = converter.registry
    return {
        "data": registry.convert(registry.clean(workflow.data)),
        "correlations": workflow.correlations,
        "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
        "success": workflow.success,
        "completed": workflow.completed,
        "tasks": _tasks_to_dict(workflow),
        "root": str(workflow.task_tree.id),
    }


def _tasks_to_dict(workflow: Any) -> dict[str, dict[str, Any]]:
    """Return `mapping_to_dict(workflow.tasks)` as SpiffWorkflow's `TaskConverter` writes it (data as deltas)."""
    tasks = workflow.tasks
    text = {key: str(key) for key in tasks}
    convert = _registry.convert
    out = {}
    for key, task in tasks.items():
        parent = tasks.get(task._parent)
        if parent is None:
            data, delta, parent_text = task.data, {}, None
        else:
            own, inherited = task.data, parent.data
            data, parent_text = {}, text.get(task._parent) or str(task._parent)
            delta = {"updates": {k: own[k] for k in own if k not in inherited or own[k] != inherited[k]},
                     "deletions": [k for k in inherited if k not in own]}
        out[text[key]] = {
            "id": text.get(task.id) or str(task.id), "parent": parent_text,
            "children": [text.get(child) or str(child) for child in task._children],
            "last_state_change": task.last_state_change, "state": task._state, "task_spec": task.task_spec.name,
            "triggered": task.triggered, "internal_data": convert(task.internal_data), "data": data,
            "delta": delta, "typename": "Task",
        }
    return out


def _tasks_from_dict(tasks: dict[str, dict[str, Any]], workflow: Any) -> dict[Any, Any]:
    """Return the task mapping SpiffWorkflow's `TaskConverter.from_dict` rebuilds from `_tasks_to_dict` output."""
    ids = {text: _uuid(text) for text in tasks}
    specs = workflow.spec.task_specs
    restore = _registry.restore
    events = workflow.top_workflow.event_manager
    out = {}
    for text, dct in tasks.items():
        if dct.get("typename") != "Task":  # not what _tasks_to_dict writes: SpiffWorkflow's own way
            out[ids[text]] = restore(dct, workflow=workflow)
            continue
        task_spec = specs.get(dct["task_spec"])
        task = _SpiffTask(workflow, task_spec, state=dct["state"], id=ids.get(dct["id"]) or _uuid(dct["id"]))
        parent_text = dct["parent"]
        task._parent = (ids.get(parent_text) or _uuid(parent_text)) if parent_text is not None else None
        task._children = [ids.get(child) or _uuid(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        internal = dct["internal_data"]
        task.internal_data = {} if type(internal) is dict and not internal else restore(internal)
        if isinstance(task_spec, CatchingEvent) and task._state & TaskState.WAITING:
            events.add_task(task)
        delta = dct.get("delta")
        parent = task.parent  # already rebuilt when it came first: the task registered itself in workflow.tasks
        if delta and parent is not None:  # the parent's data, shallow-copied as DeepMerge.merge({}, …) does
            data = {k: copy(v) if isinstance(v, (dict, list, set)) else v for k, v in parent.data.items()}
            updates = delta.get("updates", {})
            if updates:
                data.update(restore(updates))
            for key in delta.get("deletions", {}):
                data.pop(key, None)
        else:
            data = restore(dct["data"])
        task.data = data
        out[ids[text]] = task
    return out


def _uuid(value: str) -> Any:
    """Return UUID(value); the canonical text the serializer writes is read at a quarter of the cost."""
    digits = value.replace("-", "")
    if len(value) != 36 or len(digits) != 32:
        return UUID(value)
    try:
        number = int(digits, 16)
    except ValueError:  # braces or a urn: prefix, which UUID() takes off
        return UUID(value)
    found = _new_uuid(UUID)
    _set_slot(found, "int", number)
    _set_slot(found, "is_safe", SafeUUID.unknown)
    return found


_new_uuid, _set_slot = object.__new__, object.__setattr__  # UUID refuses attribute writes: its own __init__ uses these


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_config = dict(CAMUNDA_CONFIG)
_config[BpmnWorkflow] = _StateConverter
_config[_SpiffSubWorkflow] = _SubStateConverter
_registry = BpmnWorkflowSerializer.configure(_config)
_serializer = BpmnWorkflowSerializer(_registry)


# The state is written by orjson (ten times faster than the standard encoder) and marked as such;
# orjson reads back exactly what orjson wrote: it refuses to write an integer beyond 64 bits or text
# with a lone surrogate, and such a state is written by the standard encoder, unmarked. An unmarked
# text (one of those, or a state stored before) is read by the standard decoder, as it was written:
# orjson would read an integer beyond 64 bits as a float. Where the two encoders differ otherwise,
# case data cannot reach: orjson writes NaN and infinities as null (the standard encoder: NaN) and a
# UUID as plain text (the standard encoder: through the registry), and every value entering case data
# (forms, task and message data, script and decision results) passes `engine.values.check_plain`,
# which refuses those. Datetimes and dataclasses go through SpiffWorkflow's registry with both.
_ORJSON_MARK = "polku.json"
_ORJSON_HEAD = '{"' + _ORJSON_MARK + '":"orjson",'
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_encoder = _serializer._encoder_cls(separators=(",", ":"))  # SpiffWorkflow's, as its serializer uses it


def dump_state(workflow: BpmnWorkflow) -> str:
    """Serialize an instance's runtime state (without its specs) to JSON text."""
    _registry._encoder_mode = True
    try:
        dct = _serializer.to_dict(workflow)
    finally:
        _registry._encoder_mode = False
    dct[_serializer.VERSION_KEY] = _serializer.VERSION
    try:
        body = orjson.dumps(dct, default=_encoder.default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate: the standard encoder
        return _encoder.encode(dct)
    return _ORJSON_HEAD + body[1:].decode()  # never empty: the version key is in it


def load_state(text: str, bundle: SpecBundle) -> BpmnWorkflow:
    """Rebuild a workflow from `dump_state` output and its process specs."""
    dct = orjson.loads(text) if text.startswith(_ORJSON_HEAD) else json.loads(text)
    dct.pop(_ORJSON_MARK, None)  # also from a marked state read and written again by other code
    _serializer.migrate(dct)
    bundle.wire()
    workflow = _serializer.from_dict(dct, spec=bundle.spec, subprocess_specs=bundle.subprocess_specs)
    if bundle.camunda_mi:  # else no task to settle: spare the walk
        _settle_live_multi_instances(workflow)
    return workflow


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass
class SpecBundle:
    """A process spec with the specs of everything it calls."""

    process_id: str
    spec: Any
    subprocess_specs: dict[str, Any]
    camunda_mi: bool = field(default=False, init=False, repr=False)  # a Camunda multi-instance anywhere in it

    def __post_init__(self) -> None:
        self.wire()

    def wire(self) -> None:
        """Connect every loop's child to its loop, as SpiffWorkflow's spec deserializer does.

        SpiffWorkflow makes this connection at run time, on the shared spec, when a loop first
        creates a child; a spec freshly parsed in a new OS process lacks it, and the loop would stop
        after its first child. Idempotent, so every process wires its specs the same way.
        """
        for spec in [self.spec, *self.subprocess_specs.values()]:
            for task_spec in list(spec.task_specs.values()):
                if not isinstance(task_spec, LoopTask):
                    continue
                child = spec.task_specs.get(task_spec.task_spec)
                if child is not None and not child.completed_event.is_connected(task_spec.merge_child):
                    child.completed_event.connect(task_spec.merge_child)
                if isinstance(task_spec, _CAMUNDA_MI):
                    _settle_camunda_collection(task_spec)
                    self.camunda_mi = True
            _wire_event_subprocesses(spec)


    def element_ids(self) -> set[str]:
        """Return the BPMN ids of every flow node Spiff kept, in the process and its subprocesses."""
        ids: set[str] = set()
        for spec in [self.spec, *self.subprocess_specs.values()]:
            ids.update(t.bpmn_id for t in spec.task_specs.values() if getattr(t, "bpmn_id", None))
        return ids



_CAMUNDA_MI = (_CamundaSequentialMI, _CamundaParallelMI)
_CONTAINERS = (LoopTask, _SubWorkflowTask)  # wait for what runs inside them, never by themselves


def _wire_event_subprocesses(spec: Any) -> None:
    """Link each event-triggered subprocess to Start and End as `_trigger_event_subprocess` does.

    The links are made when the event first arrives; a spec parsed afterwards in another OS process
    lacked them, and finishing the event subprocess there failed ("No input task connected").
    """
    start: Any = getattr(spec, "start", None)
    for name in getattr(start, "trigger_specs", None) or []:
        sub = spec.task_specs.get(name)
        if sub is None:
            continue
        if start.name not in sub._inputs:
            sub._inputs.append(start.name)
        if spec.end.name not in sub._outputs:
            sub.connect(spec.end)


def _settle_camunda_collection(task_spec: Any) -> None:
    """Set the input references a Camunda multi-instance gets when it first runs, ahead of time.

    SpiffWorkflow's Camunda flavour fills them in on the shared spec when the activity starts, so in
    a new OS process a running multi-instance would merge its children as if it had no input.
    Where the cardinality is an expression, `_settle_live_multi_instances` does it on load.
    """
    if task_spec.cardinality is None and task_spec.data_output is not None:
        task_spec.data_input = _TaskDataReference(task_spec.data_output.bpmn_id)
        if task_spec.output_item is not None:
            task_spec.input_item = _TaskDataReference(task_spec.output_item.bpmn_id)
    elif str(task_spec.cardinality).strip().isdigit() and task_spec.output_item is not None:
        task_spec.input_item = _TaskDataReference(task_spec.output_item.bpmn_id)


def _settle_live_multi_instances(workflow: BpmnWorkflow) -> None:
    """Redo, for running Camunda multi-instances, the spec fix-up their first run made elsewhere."""
    for task in _all_tasks(workflow, TaskState.STARTED | TaskState.WAITING | TaskState.READY):
        spec = task.task_spec
        if not isinstance(spec, _CAMUNDA_MI) or spec.cardinality is None or spec.data_input is not None:
            continue
        try:
            cardinality = workflow.script_engine.evaluate(task, spec.cardinality)
        except Exception:  # noqa: BLE001, S112 - loading must not fail: the activity's own run reports it
            continue
        item = _TaskDataReference(spec.output_item.bpmn_id) if spec.output_item is not None else None
        if not isinstance(cardinality, int):  # the collection was given as the "cardinality"
            spec.data_input, spec.cardinality = _TaskDataReference(spec.cardinality), None
        spec.input_item = item


@dataclass
class ParseResult:
    """What Spiff made of a set of model files."""

    bundles: dict[str, SpecBundle] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    decision_ids: set[str] = field(default_factory=set)


# SpiffWorkflow's start event parser reads message, signal, timer and conditional definitions only:
# an error or escalation start event of an event subprocess became a plain start, and the event
# subprocess ran at once. This parser reads those two as well (deploy refuses them outside event
# subprocesses). Its end event parser ignored signal definitions: a signal end event threw nothing.
from SpiffWorkflow.bpmn.parser import event_parsers as _event_parsers
from SpiffWorkflow.bpmn.specs.defaults import EndEvent as _EndEvent
from SpiffWorkflow.bpmn.specs.defaults import EventBasedGateway as _DefaultEventBasedGateway
from SpiffWorkflow.bpmn.specs.defaults import StartEvent as _StartEvent
from SpiffWorkflow.camunda.parser.event_parsers import CamundaEndEventParser as _CamundaEndParser
from SpiffWorkflow.camunda.parser.event_parsers import CamundaStartEventParser as _CamundaStartParser


class _StartEventParser(_CamundaStartParser):
    """Parse start events with error and escalation definitions too (event subprocesses)."""

    def create_task(self) -> Any:
        definition = self.get_event_definition([
            _event_parsers.MESSAGE_EVENT_XPATH, _event_parsers.SIGNAL_EVENT_XPATH, _event_parsers.TIMER_EVENT_XPATH,
            _event_parsers.CONDITIONAL_EVENT_XPATH, _event_parsers.ERROR_EVENT_XPATH,
            _event_parsers.ESCALATION_EVENT_XPATH])
        task = self._create_task(definition)
        self.spec.start.connect(task)
        return task


class _EndEventParser(_CamundaEndParser):
    """Parse end events with a signal definition too (SpiffWorkflow's own parser ignores it)."""

    def create_task(self) -> Any:
        definition = self.get_event_definition([
            _event_parsers.MESSAGE_EVENT_XPATH, _event_parsers.CANCEL_EVENT_XPATH, _event_parsers.ERROR_EVENT_XPATH,
            _event_parsers.ESCALATION_EVENT_XPATH, _event_parsers.TERMINATION_EVENT_XPATH,
            _event_parsers.SIGNAL_EVENT_XPATH])
        task = self._create_task(definition)
        task.connect(self.spec.end)
        return task


class _PolkuEndEvent(_EndEvent):
    """An end event; an error end event caught two or more levels up ends the levels in between.

    SpiffWorkflow let the process that called the erring one go on past its call activity (to its
    own end event) before the catching boundary event interrupted it.
    """

    def _run_hook(self, my_task: Any) -> Any:
        if not isinstance(self.event_definition, ErrorEventDefinition):
            return super()._run_hook(my_task)
        catcher = _error_catcher(my_task, self.event_definition)  # before the throw: catching, it stops waiting
        done = super()._run_hook(my_task)
        wf = my_task.workflow
        while catcher is not None and wf.parent_workflow is not None and wf.parent_workflow is not catcher:
            caller = wf.top_workflow.get_task_from_id(wf.parent_task_id)
            for task in list(caller.workflow.tasks.values()):
                if task is not caller and task.has_state(TaskState.NOT_FINISHED_MASK) and task.parent is not None:
                    task.cancel()
            caller.internal_data["polku_error_end"] = True  # its process ends with it (below)
            wf = caller.workflow
        return done


def _error_catcher(my_task: Any, definition: Any) -> Any:
    """Return the (sub)workflow whose event catches this error end event's error, or None."""
    event = BpmnEvent(definition, payload={}, target=my_task.workflow)
    waiting = list(my_task.workflow.top_workflow.event_manager.tasks.values())
    wf = my_task.workflow
    while wf is not None:
        if any(t.workflow is wf and t.task_spec.event_definition.catches(t, event) for t in waiting):
            return wf
        wf = wf.parent_workflow
    return None


def _end_scope_after_error(self: Any, my_task: Any) -> None:
    super(_SubWorkflowTask, self)._on_complete_hook(my_task)
    if my_task.internal_data.pop("polku_error_end", False):
        my_task.workflow._mark_complete(my_task)


_SubWorkflowTask._on_complete_hook = _end_scope_after_error  # type: ignore[method-assign]

from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition


def _conditional_has_fired(self: Any, my_task: Any) -> bool:
    """Evaluate a conditional event on its process's current variables, not its own branch's copy.

    SpiffWorkflow evaluated the waiting event's own data, taken when its branch reached it: a
    variable another branch set afterwards never made the condition true. When it fires, the
    event's branch goes on with those variables.
    """
    own = my_task.data
    merged = {**own, **deepcopy(_scope_variables(my_task.workflow, skip=my_task)),
              **deepcopy(_attached_scope(my_task))}
    my_task.data, fired = merged, False
    try:
        fired = bool(my_task.workflow.script_engine.evaluate(my_task, self.expression,
                                                             external_context=my_task.workflow.data_objects))
    finally:
        my_task.data = merged if fired else own
    my_task._set_internal_data(has_fired=fired)
    return fired


ConditionalEventDefinition.has_fired = _conditional_has_fired  # type: ignore[method-assign]


def _attached_scope(my_task: Any) -> dict[str, Any]:
    """Return the variables of the subprocess a boundary event is attached to (empty for others).

    A conditional boundary event on a subprocess watches the variables set inside it.
    """
    parent, top = my_task.parent, my_task.workflow.top_workflow
    merged: dict[str, Any] = {}
    for sibling in parent.children if parent is not None else []:
        sub = top.subprocesses.get(sibling.id)
        if sibling is not my_task and sub is not None:
            merged.update(_scope_variables(sub))
    return merged


def _refresh_conditionals(workflow: Any) -> bool:
    """Check every waiting conditional event again; tell whether one fired.

    SpiffWorkflow checks a conditional event only when its own process moves: one on a subprocess
    boundary, or waiting beside a subprocess, would never see the variables set inside.
    """
    fired = False
    for task in list(workflow.event_manager.tasks.values()):
        if isinstance(task.task_spec.event_definition, ConditionalEventDefinition) \
                and task.has_state(TaskState.WAITING):
            task.task_spec._update(task)
            fired = fired or not task.has_state(TaskState.WAITING)
    return fired
CamundaParser.OVERRIDE_PARSER_CLASSES[_full_tag("endEvent")] = (_EndEventParser, _PolkuEndEvent)
_config[_EndEvent](_PolkuEndEvent, _registry)

# Event subprocesses. SpiffWorkflow 3.2 runs one as a call activity hung under the process's Start
# task: it got the data the process *started* with, its variables never reached the rest of the
# process, and an interrupting one (isInterrupting, the default) interrupted nothing. BPMN says an
# event subprocess works on the variables of the process it sits in, and an interrupting one ends
# the other activities of that process when its start event fires.
from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser as _SubprocessSpecs
from SpiffWorkflow.bpmn.specs.defaults import CallActivity as _CallActivity
from SpiffWorkflow.camunda.parser.task_spec import SubWorkflowParser as _CamundaSubWorkflowParser

_LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


def _scope_variables(workflow: Any, skip: Any = None) -> dict[str, Any]:
    """Return the variables of one (sub)workflow scope: its last task's and its newest live tasks' data."""
    sources = [workflow.last_task] if workflow.last_task is not None else []
    sources += sorted((t for t in workflow.tasks.values() if t.has_state(_LIVE)), key=lambda t: t.last_state_change)
    merged: dict[str, Any] = {}
    for task in sources:
        if task is not None and task is not skip:
            merged.update(task.data)
    return merged


class _EventSubprocess(_CallActivity):
    """An event subprocess: what it sets reaches the rest of its process when it ends."""

    def _on_subworkflow_completed(self, subworkflow: Any, my_task: Any) -> None:
        super()._on_subworkflow_completed(subworkflow, my_task)
        done = subworkflow.last_task.data if subworkflow.last_task is not None else {}
        for task in list(my_task.workflow.tasks.values()):
            if task is not my_task and task.has_state(_LIVE):
                task.data.update(deepcopy(done))
                if task.parent is not None and not task.parent.has_state(_LIVE):  # a waiting task takes its parent's
                    task.parent.data.update(deepcopy(done))


class _PolkuStartEvent(_StartEvent):
    """A start event; in an event subprocess it takes its process's current variables when it fires,
    and an interrupting one cancels the other activities of that process."""

    interrupting = True

    def _run_hook(self, my_task: Any) -> Any:
        outer = _event_subprocess_task(my_task)
        if outer is not None:
            my_task.data = {**my_task.data, **deepcopy(_scope_variables(outer.workflow, skip=outer))}
            if self.interrupting:
                for task in list(outer.workflow.task_tree.children):
                    if task is not outer:
                        task.cancel()
        return super()._run_hook(my_task)


def _event_subprocess_task(my_task: Any) -> Any:
    """Return the event subprocess task whose workflow `my_task` runs in, or None."""
    parent_id = getattr(my_task.workflow, "parent_task_id", None)
    if parent_id is None:
        return None
    outer = my_task.workflow.top_workflow.get_task_from_id(parent_id)
    return outer if isinstance(outer.task_spec, _EventSubprocess) else None


class _SubprocessParser(_CamundaSubWorkflowParser):
    """Parse subprocesses; one with triggeredByEvent="true" becomes an `_EventSubprocess`."""

    def create_task(self) -> Any:
        if (self.node.get("triggeredByEvent") or "").lower() != "true":
            return super().create_task()
        subworkflow_spec = _SubprocessSpecs.get_subprocess_spec(self)
        return _EventSubprocess(self.spec, self.bpmn_id, subworkflow_spec=subworkflow_spec, **self.bpmn_attributes)


class _InterruptingStartEventParser(_StartEventParser):
    """Parse start events, reading isInterrupting (SpiffWorkflow ignores it)."""

    def create_task(self) -> Any:
        task = super().create_task()
        task.interrupting = (self.node.get("isInterrupting") or "true").lower() != "false"
        return task


CamundaParser.OVERRIDE_PARSER_CLASSES[_full_tag("startEvent")] = (_InterruptingStartEventParser, _PolkuStartEvent)
CamundaParser.OVERRIDE_PARSER_CLASSES[_full_tag("subProcess")] = (_SubprocessParser, _CallActivity)
_config[_CallActivity](_EventSubprocess, _registry)  # registers itself (migration diffs convert specs)
_config[_StartEvent](_PolkuStartEvent, _registry)


def _problem_from_validation(err: ValidationException, default_file: str,
                             nodes: dict[str, etree._Element] | None = None,
                             original_ids: dict[str, str] | None = None) -> Problem:
    """Turn a SpiffWorkflow ValidationException into a Problem naming the element in the file."""
    node = (nodes or {}).get(err.id) if err.id else None
    line = err.line_number if isinstance(err.line_number, int) else None
    if line is None and node is not None:
        line = node.sourceline
    element = (original_ids or {}).get(err.id, err.id) or None
    failure = err.__context__
    if isinstance(failure, Exception) and not isinstance(failure, SpiffWorkflowException) \
            and err.args[:1] == (repr(failure),):  # Spiff wrapped a Python error of its own parser
        message = _explain_parse_error(failure, node, element)
    else:
        message = _spiff_sentence(str(err).split("\n")[0].strip(), node, element)
    return Problem(os.path.basename(err.file_name or default_file), line, element, message)


def parse_models(documents: list[tuple[str, str, etree._ElementTree]]) -> ParseResult:
    """Parse (filename, kind, tree) documents into spec bundles, translating Spiff's errors.

    The documents are first rewritten by `engine.prepare` (ids Spiff reserves, sequence flows
    without an id, unquoted ISO 8601 timer values), so deploy and every later re-parse agree.
    A process runs when SpiffWorkflow would run it (`isExecutable` is "true" or missing), unless it
    is an empty pool without the attribute (`prepare.runs`).
    """
    result = ParseResult()
    prepared = prepare.prepare(documents)
    original_ids = prepared.original_ids
    parser = CamundaParser()
    nodes = {el.get("id"): el for _f, _k, tree in prepared.documents
             for el in tree.getroot().iter(etree.Element) if el.get("id")}
    result.problems.extend(_timer_literal_problems(prepared.timer_literals, original_ids))
    for filename, kind, tree in prepared.documents:
        try:
            if kind == "dmn":
                parser.add_dmn_xml(tree.getroot(), filename=filename)
            else:
                parser.add_bpmn_xml(tree, filename=filename)
        except ValidationException as err:
            result.problems.append(_problem_from_validation(err, filename, nodes, original_ids))
        except Exception as err:  # noqa: BLE001 - Spiff raises KeyError/TypeError on some malformed models
            result.problems.append(Problem(filename, None, None, _explain_parse_error(err, None)))
    result.decision_ids = set(parser.dmn_parsers.keys())
    for filename, kind, tree in prepared.documents:
        if kind != "bpmn":
            continue
        for proc in tree.getroot().iter("{http://www.omg.org/spec/BPMN/20100524/MODEL}process"):
            pid = proc.get("id")
            if not pid or not prepare.runs(proc):
                continue
            try:
                spec = parser.get_spec(pid)
                subs = parser.get_subprocess_specs(pid)
                _restore_ids([spec, *subs.values()], original_ids)
                result.bundles[pid] = SpecBundle(pid, spec, subs)
            except ValidationException as err:
                result.problems.append(_problem_from_validation(err, filename, nodes, original_ids))
            except Exception as err:  # noqa: BLE001 - every parse failure becomes a Problem
                result.problems.append(Problem(filename, proc.sourceline, pid, _explain_parse_error(err, proc)))
    return result


def _restore_ids(specs: list[Any], original_ids: dict[str, str]) -> None:
    """Give task specs parsed from renamed elements the id the designer wrote."""
    for spec in specs:
        for task_spec in spec.task_specs.values() if spec is not None else []:
            original = original_ids.get(getattr(task_spec, "bpmn_id", None) or "")
            if original is not None:
                task_spec.bpmn_id = original


def _timer_literal_problems(literals: list[prepare.TimerLiteral], original_ids: dict[str, str]) -> list[Problem]:
    """Check unquoted ISO 8601 timer values the way SpiffWorkflow will read them."""
    problems = []
    for literal in literals:
        text, kind = literal.text, literal.kind
        try:
            if kind == "timeDuration":
                TimerEventDefinition.parse_iso_duration(text)
                ok = text.upper().startswith("P")
            elif kind == "timeCycle":
                TimerEventDefinition.parse_iso_recurring_interval(text)
                ok = text.upper().startswith("R")
            else:
                ok = isinstance(TimerEventDefinition.parse_time_or_duration(text), datetime)
        except Exception:  # noqa: BLE001 - Spiff's parsers raise bare Exception/ValueError
            ok = False
        if not ok:
            wanted = {"timeDuration": "a duration such as PT5M or P14D",
                      "timeCycle": "a cycle such as R3/PT1H or R/2026-01-01T08:00:00Z/P1D"}.get(
                kind, "a date and time such as 2026-12-24T12:00:00Z")
            owner = literal.element.getparent().getparent()  # the event, not its timerEventDefinition
            while owner is not None and not owner.get("id"):
                owner = owner.getparent()
            element = owner.get("id") if owner is not None else None
            problems.append(Problem(literal.filename, literal.element.sourceline,
                                    original_ids.get(element or "", element),
                                    f"The timer value {text} is not valid for {kind}: write {wanted}."))
    return problems


# SpiffWorkflow's wording of some refusals -> a sentence for the designer
_SPIFF_SENTENCES = [
    (re.compile(r"There is no support implemented for this task type"),
     "'{label}' ({tag}) is an element type the engine does not support."),
    (re.compile(r"Multiple outgoing flows are not supported"),
     ("'{label}' ({tag}) has several outgoing sequence flows; the engine needs a gateway to split the "
      "flow: add a parallel or exclusive gateway after it.")),
    (re.compile(r"Process (\S+) is not executable"),
     ("Process '{0}' is marked isExecutable=\"false\" but is called by a call activity: mark it "
      "executable or call another process.")),
    (re.compile(r"No start event found"), "Process '{label}' has no start event."),
    (re.compile(r"Exactly one start event is required in a SubWorkflow Task; found (\d+)"),
     "'{label}' ({tag}) has {0} start events; the engine needs exactly one start event in a subprocess."),
    (re.compile(r"Data Store with name (.*) has no implementation"),
     "Data store '{0}' cannot be run: the engine has no implementation for data stores."),
    (re.compile(r"Non-default exclusive outgoing sequence flow without condition"),
     ("'{label}' ({tag}) has an outgoing sequence flow without a condition that is not its default flow: give "
      "the flow a condition or make it the gateway's default.")),
    (re.compile(r"A multiinstance task must specify a cardinality or a collection"),
     ("'{label}' ({tag}) is a multi-instance activity without a loopCardinality or a camunda:collection: say "
      "how many instances to run, or over which list.")),
    (re.compile(r"Cancel Events may only be used with transactions"),
     "'{label}' is a cancel event; cancel events may only be used in a transaction subprocess."),
]
_PYTHON_TEXT = re.compile(r"\w+(Error|Exception)\(|Traceback|object has no attribute|unexpected keyword|"
                          r"positional argument|object is not|<\w+ object at|b'<")


def _spiff_sentence(text: str, node: etree._Element | None, element: str | None = None) -> str:
    label = (node.get("name") or element or node.get("id")) if node is not None else "the element"
    tag = etree.QName(node).localname if node is not None else "element"
    for pattern, sentence in _SPIFF_SENTENCES:
        found = pattern.search(text)
        if found:
            return sentence.format(*found.groups(), label=label, tag=tag)
    if _PYTHON_TEXT.search(text):
        return f"'{label}' ({tag}) cannot be read by the engine: check its definition and the elements it refers to."
    return text.rstrip(".") + "."


def _explain_parse_error(err: Exception, node: etree._Element | None, element: str | None = None) -> str:
    """Say in words why SpiffWorkflow's parser failed on an element; never show Python text."""
    text = str(err)
    label = (node.get("name") or element or node.get("id")) if node is not None else None
    what = f"'{label}' ({etree.QName(node).localname})" if node is not None else "An element"
    if isinstance(err, KeyError) and "decisionRef" in text:
        return f"{what} does not name its DMN decision (camunda:decisionRef is missing)."
    if isinstance(err, NotImplementedError) and "Catch Event" in text:
        return (f"{what} has no event type the engine supports (compensation and link events are not "
                "supported).")
    if isinstance(err, AssertionError) and "Expected 1 result" in text:
        return (f"{what} refers to a message that is not defined in the file (or is defined more than "
                "once): add a bpmn:message with that id.")
    if isinstance(err, TypeError) and "raise_validation_exception" in text:
        return (f"{what} refers to a message, signal, error or escalation that is not defined in the "
                "file: add the definition or fix the reference.")
    if isinstance(err, KeyError):
        return f"{what} lacks an attribute or reference the engine needs; check its definition."
    return f"{what} cannot be read by the engine: check its definition and the elements it refers to."


# ---------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class ReadyTask:
    """A READY user task, as the engine's callers see it."""

    id: str
    element_id: str
    name: str
    lane: str | None
    data: dict[str, Any]
    process_id: str  # the process whose element it is: the main process or a called one (element ids repeat)


@dataclass(frozen=True)
class WaitingTimer:
    """A waiting timer with its next due time."""

    task_id: str
    element_id: str
    kind: str
    due_at: datetime


@dataclass(frozen=True)
class WaitingMessage:
    """A catch event waiting for a message."""

    task_id: str
    element_id: str
    name: str


def new_workflow(bundle: SpecBundle, data: dict[str, Any] | None = None) -> BpmnWorkflow:
    """Create a new workflow for a process, with its start data."""
    workflow = BpmnWorkflow(bundle.spec, bundle.subprocess_specs, script_engine=SCRIPT_ENGINE)
    if data:
        workflow.task_tree.data.update(data)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
    return workflow


def translate(err: Exception) -> ScriptError:
    """Turn a Spiff or sandbox failure into a ScriptError naming the element."""
    try:
        return _translate(err)
    except Exception:  # noqa: BLE001 - the translation of a failure must never fail itself
        return ScriptError(str(err).split("\n")[0] or type(err).__name__, element=None, line=None)


def _element_of(value: Any) -> str | None:
    """Return the BPMN id (or name) of a task, a task spec, or a spec name as Spiff may give it."""
    spec = getattr(value, "task_spec", value)
    if isinstance(spec, str):
        return spec or None
    return getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)


def _translate(err: Exception) -> ScriptError:
    task = getattr(err, "task", None)
    element = _element_of(task) if task is not None else _element_of(getattr(err, "task_spec", None))
    line = getattr(err, "line_number", None) or None
    inner = err.__cause__ or err.__context__
    message = str(err).split("\n")[0] if not isinstance(err, SpiffWorkflowException) or not err.args \
        else str(err.args[0])
    if isinstance(inner, sandbox.SandboxViolation):
        message = message.removeprefix(f"{type(inner).__name__}:")  # Spiff names the class: not for the office
        if str(inner) not in message:
            message = f"{message}: {inner}"
    notes = [n for n in getattr(err, "notes", []) if n and "Did you mean" in n]
    if notes:
        message += " " + " ".join(notes)
    return ScriptError(str(message), element=element, line=line if isinstance(line, int) else None)


def run_engine(workflow: BpmnWorkflow) -> list[str]:
    """Run engine steps until the workflow waits; return the element ids completed, in order.

    Raises:
        ScriptError: a script, condition or decision failed (the workflow object is then spoilt:
            the caller reloads the saved state).
    """
    completed: list[str] = []

    def did_complete(task: Any) -> None:
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if bpmn_id and task.state != TaskState.STARTED:  # an external task only started: its worker ends it
            completed.append(bpmn_id)
            if len(completed) > MAX_STEPS_PER_ACTION:  # a loop with no wait state would never return
                raise sandbox.SandboxViolation(
                    f"the case ran {MAX_STEPS_PER_ACTION} steps without waiting (last at '{bpmn_id}'): "
                    "an endless loop? Add a wait state, a loop maximum or a condition that ends it")

    try:
        collapse_missed_cycles(workflow)
        if _do_engine_steps(workflow, did_complete) or workflow.get_active_subprocesses():
            workflow.refresh_timers()  # (without timers or subprocesses, this and the steps find nothing new)
            _do_engine_steps(workflow, did_complete)
        for _round in range(_CONDITIONAL_ROUNDS):  # each round lets conditions see the last round's data
            if not _refresh_conditionals(workflow):
                break
            _do_engine_steps(workflow, did_complete)
        _check_nothing_left_behind(workflow, completed)
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err
    except SpiffWorkflowException as err:
        raise translate(err) from err
    return completed


_CONDITIONAL_ROUNDS = 50


def _do_engine_steps(workflow: BpmnWorkflow, did_complete: Any) -> bool:
    """Do what `workflow.do_engine_steps(did_complete_task=did_complete)` does, finding READY tasks faster.

    Tell whether its last step, refreshing the timers, had a timer to look at (else it changed nothing).

    SpiffWorkflow 3.2's rounds, in its order: each active subprocess (deepest first) until it
    runs nothing more, then the process; again while a round ran something or started a
    subprocess; then its timers. Its iterator cost a tenth of a millisecond per round on a small
    case, and an action has three rounds at least; `_ready_within` walks the same tasks in the
    same order, as deep as the iterator reaches.
    """
    while _engine_round(workflow, did_complete):
        pass
    timers = any(isinstance(task.task_spec.event_definition, (TimerEventDefinition, MultipleEventDefinition))
                 for task in workflow.event_manager.tasks.values())  # what refresh_timers looks at
    workflow.refresh_timers()
    return timers


def _engine_round(workflow: BpmnWorkflow, did_complete: Any) -> bool:
    def update(wf: Any) -> int:
        count = 0
        for task in _ready_within(wf):
            if not task.task_spec.manual:
                task.run()
                count += 1
                did_complete(task)
        return count

    active = workflow.get_active_subprocesses()
    for subprocess in sorted(active, key=lambda v: v.depth, reverse=True):
        while update(subprocess) > 0:
            pass
        if subprocess.parent_task_id is not None:
            task = workflow.get_task_from_id(subprocess.parent_task_id)
            task.task_spec._update(task)
    return update(workflow) > 0 or len(workflow.get_active_subprocesses()) > len(active)


_ITERATOR_DEPTH = 1000  # SpiffWorkflow's task iterator descends no deeper (its max_depth)


def _ready_within(wf: Any) -> list[Any]:
    """Return `wf.get_tasks(state=TaskState.READY)`: `_tree_tasks` with the iterator's depth limit.

    A loop that never waits grows the tree by one level per step; beyond the limit its next task is
    not found, and `_check_nothing_left_behind` reports the endless loop, as with the iterator.
    """
    subprocesses = wf.top_workflow.subprocesses
    found = []
    stack = [(wf.task_tree, 0)]
    while stack:
        task, depth = stack.pop()
        if task._state & TaskState.READY:
            found.append(task)
        if depth >= _ITERATOR_DEPTH:
            continue
        sub = subprocesses.get(task.id)
        if sub is not None or (task._children and task._state >= TaskState.FUTURE):
            tasks = task.workflow.tasks
            stack.extend([(tasks[child], depth + 1) for child in reversed(task._children)])
            if sub is not None:
                stack.append((sub.task_tree, depth + 1))
    return found


def _check_nothing_left_behind(workflow: Any, completed: list[str]) -> None:
    """Refuse to stop while an engine task is READY: SpiffWorkflow's depth-limited walk lost it.

    A loop that never waits grows the task tree until SpiffWorkflow's traversal stops finding the
    next task (about 1,000 levels): the case would sit there with nothing to move it on.
    """
    for wf in [workflow, *workflow.subprocesses.values()]:
        for task in wf.tasks.values():
            if task.state == TaskState.READY and not task.task_spec.manual:
                element = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
                raise sandbox.SandboxViolation(
                    f"the case ran {len(completed)} steps without waiting (stopped at '{element}'): an endless "
                    "loop? Add a wait state, a loop maximum or a condition that ends it")
MAX_STEPS_PER_ACTION = 10_000  # elements one action may run before it is taken as an endless loop


def fire_timers(workflow: BpmnWorkflow) -> list[str]:
    """Let every timer due on the engine clock fire, then run engine steps."""
    try:
        # Spiff fires a timer when due < now: one microsecond on, a timer due at T fires at T
        with clock(engine_now() + _TICK):
            collapse_missed_cycles(workflow)
            workflow.refresh_timers()
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err
    return run_engine(workflow)


def _all_tasks(workflow: BpmnWorkflow, state: int) -> list[Any]:
    tasks = _tree_tasks(workflow, state)
    for sub in workflow.subprocesses.values():
        tasks.extend(_tree_tasks(sub, state))
    return tasks


def _tree_tasks(wf: Any, state: int) -> list[Any]:
    """Return `wf.get_tasks(state=state)`: its tasks in that state, in the same depth-first order.

    SpiffWorkflow's BpmnTaskIterator costs a tenth of a millisecond per question on a small case
    (a generator step, a list rebuilt and a filter call per task) and the engine asks several
    questions per action. Same walk: preorder, a call activity's subprocess tree before its
    children, not below a task whose state is lower than the asked states can follow (predicted
    tasks never lead to definite ones); without the iterator's 1,000-level depth limit (compaction
    keeps trees shallow, and beyond it the iterator would only have missed tasks).
    """
    if state & TaskState.PREDICTED_MASK:
        floor = TaskState.MAYBE
    elif state & TaskState.DEFINITE_MASK:
        floor = TaskState.FUTURE
    else:
        floor = TaskState.COMPLETED
    subprocesses = wf.top_workflow.subprocesses
    found = []
    stack = [wf.task_tree]
    while stack:
        task = stack.pop()
        if task._state & state:
            found.append(task)
        sub = subprocesses.get(task.id)
        if sub is not None or (task._children and task._state >= floor):
            tasks = task.workflow.tasks
            stack.extend([tasks[child] for child in reversed(task._children)])
            if sub is not None:
                stack.append(sub.task_tree)
    return found


def ready_user_tasks(workflow: BpmnWorkflow) -> list[ReadyTask]:
    """List the READY manual (user) tasks of the workflow and its subprocesses."""
    return _ready_user_tasks(_all_tasks(workflow, TaskState.READY))


def _ready_user_tasks(tasks: list[Any]) -> list[ReadyTask]:
    return [ReadyTask(str(task.id), task.task_spec.bpmn_id, task.task_spec.bpmn_name or task.task_spec.bpmn_id,
                      task.task_spec.lane, task.data, _process_of(task))
            for task in tasks if task._state & TaskState.READY and task.task_spec.manual]


def _process_of(task: Any) -> str:
    """Return the id of the process a task's element belongs to.

    A called process's tasks run in a subworkflow whose spec is that process (named by calledElement).
    An embedded subprocess's (plain, event or transaction: the Camunda parser gives them call activity
    specs too) run in one named after the subprocess element, and its elements belong to the process
    around it: walk up past those to the nearest called process or the top. (A call activity whose
    id is the id of the process it calls reads as embedded: its tasks get the calling process.)
    """
    wf = task.workflow
    while wf.parent_task_id is not None:
        parent = wf.top_workflow.get_task_from_id(wf.parent_task_id)
        if wf.spec.name != parent.task_spec.bpmn_id:
            break  # a called process
        wf = parent.workflow
    return str(wf.spec.name)


def complete_user_task(workflow: BpmnWorkflow, task_id: str, data: dict[str, Any]) -> str:
    """Complete a READY user task with submitted data; return its element id."""
    task = workflow.get_task_from_id(_uuid(task_id))
    task.data.update(data)
    try:
        task.run()
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err
    return task.task_spec.bpmn_id


def task_state(workflow: BpmnWorkflow, task_id: str) -> str | None:
    """Return the Spiff state name of a task, or None when the task is gone."""
    try:
        task = workflow.get_task_from_id(_uuid(task_id))
    except Exception:  # noqa: BLE001 - Spiff raises TaskNotFoundException or returns None, by version
        return None
    if task is None:
        return None
    return _STATE_NAMES.get(task._state) or TaskState.get_name(task._state)


# the name of each single state, as TaskState.get_name gives it (it searches the class each time)
_STATE_NAMES = {value: TaskState.get_name(value) for value in (
    TaskState.MAYBE, TaskState.LIKELY, TaskState.FUTURE, TaskState.WAITING, TaskState.READY, TaskState.STARTED,
    TaskState.COMPLETED, TaskState.ERROR, TaskState.CANCELLED)}


def task_data(workflow: BpmnWorkflow, task_id: str) -> dict[str, Any]:
    """Return a task's data by its id (one lookup, no walk of the task tree); {} when the task is gone."""
    try:
        task = workflow.get_task_from_id(_uuid(task_id))
    except Exception:  # noqa: BLE001 - Spiff raises TaskNotFoundException or returns None, by version
        return {}
    return {} if task is None else task.data


def waiting_timers(workflow: BpmnWorkflow) -> list[WaitingTimer]:
    """List waiting timers with their due instants (UTC)."""
    timers = []
    for task, definition, element_id in _pending_events(workflow):
        if isinstance(definition, TimerEventDefinition):
            timer = _waiting_timer(task, definition, element_id)
            if timer is not None:
                timers.append(timer)
    return timers


def _waiting_timer(task: Any, definition: Any, element_id: str) -> WaitingTimer | None:
    # a gateway's timer stored before each had its own clock: its value is the shared one
    value = task.internal_data.get(_timer_value_key(task, element_id), task.internal_data.get("event_value"))
    due = _timer_due(definition, value)
    if due is None:
        return None
    if isinstance(definition, CycleTimerEventDefinition):
        kind = "cycle"
    else:
        kind = "duration" if isinstance(definition, DurationTimerEventDefinition) else "date"
    return WaitingTimer(str(task.id), element_id, kind, due)


def _timer_due(definition: Any, value: Any) -> datetime | None:
    """When a timer whose running value (SpiffWorkflow's `event_value`) is `value` is due, in UTC."""
    if value is None:
        return None
    if isinstance(definition, CycleTimerEventDefinition):
        if not isinstance(value, dict) or value.get("cycles") == 0:
            return None
        due: datetime = datetime.fromisoformat(value["next"])
    else:
        if str(value)[:1] == "P":  # not yet turned into an instant
            return None
        due = TimerEventDefinition.get_datetime(value)
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    return due.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Timers after an event-based gateway. SpiffWorkflow moves the catch events' definitions onto the
# gateway's task and keeps a timer's running value under one key of that task: the timers after one
# gateway all took the due time of whichever was looked at first (a one-hour reminder beside a
# two-day deadline fired after two days), and when several were due at one look, every one of their
# ways ran. Here each timer keeps its value under its catch event's id, and of the timers due at one
# look only the one due first fires: the gateway takes exactly one way, as BPMN says.

_GATEWAY_TIMER_KEY = "event_value:"


def _timer_value_key(task: Any, element_id: str) -> str:
    """The key of `task.internal_data` that holds the running value of the timer `element_id`."""
    return _GATEWAY_TIMER_KEY + element_id if isinstance(task.task_spec, EventBasedGateway) else "event_value"


class _GatewayEvents(MultipleEventDefinition):
    """The events an event-based gateway waits for (any one of them), each timer with its own clock."""

    def has_fired(self, my_task: Any) -> bool:
        data = my_task.internal_data
        if data.get("seen_events"):  # a message or signal was caught: that way is taken
            return True
        timers = self._timers(my_task)
        shared = data.pop("event_value", None)
        if shared is not None:  # stored before each timer had its own clock: every timer had this value
            for _index, _definition, key in timers:
                data.setdefault(key, deepcopy(shared))
        due_now = [(_timer_due(definition, data.get(key)) or datetime.min.replace(tzinfo=UTC), index, definition)
                   for index, definition, key in timers if _own_clock_fired(definition, my_task, key)]
        if not due_now:
            return False
        _due, _index, first = min(due_now, key=lambda item: (item[0], item[1]))
        data["seen_events"] = [BpmnEvent(first)]
        return True

    def _timers(self, my_task: Any) -> list[tuple[int, Any, str]]:
        """(index, definition, internal-data key) of each timer; the index is that of the gateway's way."""
        outputs = my_task.task_spec.outputs
        return [(index, definition, _GATEWAY_TIMER_KEY + outputs[index].bpmn_id)
                for index, definition in enumerate(self.event_definitions)
                if isinstance(definition, TimerEventDefinition) and index < len(outputs)]


def _own_clock_fired(definition: Any, my_task: Any, key: str) -> bool:
    """Ask a timer whether it fired, with its value under `key` put where SpiffWorkflow's timer code
    looks (`has_fired` above has taken any shared value away first)."""
    data = my_task.internal_data
    if key in data:
        data["event_value"] = data[key]
    try:
        return bool(definition.has_fired(my_task))
    finally:
        value = data.pop("event_value", None)
        if value is None:  # a cycle that ran out drops its value
            data.pop(key, None)
        else:
            data[key] = value


class _EventGateway(_DefaultEventBasedGateway):
    """SpiffWorkflow's event-based gateway with `_GatewayEvents`; the caught event's way found by identity.

    SpiffWorkflow finds the way by equality, and two timers with the same name are equal: the second
    one's way would never run.
    """

    def _run_hook(self, my_task: Any) -> bool:
        seen = my_task.internal_data.get("seen_events", [])
        definitions = self.event_definition.event_definitions
        matches = []
        for event in seen:
            index = next((i for i, d in enumerate(definitions) if d is event.event_definition), None)
            if index is None:
                index = definitions.index(event.event_definition)
            definitions[index].catch(my_task, event)
            definitions[index].update_task_data(my_task)
            matches.append(my_task.children[index].task_spec)
        my_task._sync_children(matches, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


class _EventGatewayParser(_event_parsers.EventBasedGatewayParser):
    def create_task(self) -> Any:
        return self._create_task(_GatewayEvents())


CamundaParser.OVERRIDE_PARSER_CLASSES[_full_tag("eventBasedGateway")] = (_EventGatewayParser, _EventGateway)
_config[_DefaultEventBasedGateway](_EventGateway, _registry)  # migration diffs convert specs
_config[MultipleEventDefinition](_GatewayEvents, _registry)


def _pending_events(workflow: BpmnWorkflow) -> Iterator[tuple[Any, Any, str]]:
    """Yield (task, event definition, element id) for every event a WAITING task waits for.

    An event-based gateway waits for all the events of the catch events after it (SpiffWorkflow
    moves their definitions onto the gateway): each is named by its catch event's id.
    """
    for task in list(workflow.event_manager.tasks.values()):
        if not task.has_state(TaskState.WAITING):
            continue
        definition = task.task_spec.event_definition
        if isinstance(definition, MultipleEventDefinition):
            outputs = task.task_spec.outputs if isinstance(task.task_spec, EventBasedGateway) else []
            for index, item in enumerate(definition.event_definitions):
                element = outputs[index].bpmn_id if index < len(outputs) else task.task_spec.bpmn_id
                yield task, item, element
        else:
            yield task, definition, task.task_spec.bpmn_id


def collapse_missed_cycles(workflow: BpmnWorkflow) -> None:
    """Leave at most one due occurrence per cycle timer, so missed cycles are not replayed.

    After a long gap (the machine was off) a cycle fires once for the gap, then goes on from now.
    """

    now = engine_now()
    for task in list(workflow.event_manager.tasks.values()):
        definition = task.task_spec.event_definition
        value = task.internal_data.get("event_value")  # (a gateway's timers fire once: nothing to collapse)
        if not (isinstance(definition, CycleTimerEventDefinition) and isinstance(value, dict) and value.get("cycles")):
            continue
        nxt = datetime.fromisoformat(value["next"])
        step = timedelta(seconds=value["duration"])
        if step.total_seconds() > 0 and nxt + step <= now:
            nxt += step * ((now - nxt) // step)
            value["next"] = nxt.isoformat()


def waiting_messages(workflow: BpmnWorkflow) -> list[WaitingMessage]:
    """List catch events waiting for a message, with the message name."""
    return _waiting_events(workflow, MessageEventDefinition)


def waiting_signals(workflow: BpmnWorkflow) -> list[WaitingMessage]:
    """List catch events, boundary events and event subprocesses waiting for a signal, by signal name."""
    return _waiting_events(workflow, SignalEventDefinition)


def _waiting_events(workflow: BpmnWorkflow, kind: Any) -> list[WaitingMessage]:
    found = [WaitingMessage(str(task.id), element_id, definition.name)
             for task, definition, element_id in _pending_events(workflow) if isinstance(definition, kind)]
    if not workflow.is_completed():
        found += _waiting_event_subprocesses(workflow, kind)
    return found


def _waiting_event_subprocesses(workflow: BpmnWorkflow, kind: Any) -> list[WaitingMessage]:
    """Event subprocesses started by a message or signal wait from the start without a task of their own."""
    found = []
    for name in getattr(workflow.spec.start, "trigger_specs", None) or []:
        spec = workflow.subprocess_specs.get(name)
        for task_spec in spec.task_specs.values() if spec is not None else []:
            definition = getattr(task_spec, "event_definition", None)
            if isinstance(definition, kind) and task_spec in spec.start.outputs:
                found.append(WaitingMessage("", task_spec.bpmn_id, definition.name))
    return found


def deliver_signal(workflow: BpmnWorkflow, name: str, payload: dict[str, Any]) -> int:
    """Deliver a signal by name to everything in the workflow waiting for it; return how many caught it."""
    event = BpmnEvent(SignalEventDefinition(name), payload=dict(payload))
    try:
        return workflow.event_manager.catch(event, internal=False)
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err


def start_signals(bundle: SpecBundle) -> list[str]:
    """Return the names of the signals a process's start events catch."""
    return [s.event_definition.name for s in bundle.spec.start.outputs
            if isinstance(getattr(s, "event_definition", None), SignalEventDefinition)]


def update_live_data(workflow: BpmnWorkflow, data: dict[str, Any]) -> None:
    """Merge data into every unfinished task, so the rest of the case sees it (e.g. a new expert)."""
    for task in _all_tasks(workflow, TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR):
        task.data.update(data)
        if task.parent is not None:  # a waiting task takes its parent's data when it becomes ready
            task.parent.data.update(data)


def deliver_message(workflow: BpmnWorkflow, name: str, payload: dict[str, Any],
                    correlations: dict[str, dict[str, Any]] | None = None) -> int:
    """Deliver a message by name; its payload is merged into the catching task's data.

    Without `correlations` (a message from outside) the keys come from the payload, by the
    correlation properties of the events waiting for it, as if the sender had computed them.
    """
    if correlations is None:
        computed = (sent_correlations(d, payload) for _t, d, _e in _pending_events(workflow)
                    if isinstance(d, MessageEventDefinition) and d.name == name)
        correlations = next((c for c in computed if c), None)
    definition = _CamundaMessage(name)
    event = BpmnEvent(definition, payload={"payload": payload, "result_var": None, "merge": True},
                      correlations=correlations)
    try:
        return workflow.event_manager.catch(event, internal=False)
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err


def start_by_message(workflow: BpmnWorkflow, name: str, payload: Any) -> bool:
    """Start a new workflow through its start event that catches message `name`, with the payload.

    The process's other start events are cancelled: an instance starts through one start event.
    Returns False (and starts nothing) when no start event of the process catches the message.
    """
    event = BpmnEvent(_CamundaMessage(name), payload={"payload": payload, "result_var": None, "merge": True})
    return _start_by_event(workflow, event)


def start_by_signal(workflow: BpmnWorkflow, name: str, payload: dict[str, Any]) -> bool:
    """Start a new workflow through its start event that catches signal `name` (see `start_by_message`)."""
    return _start_by_event(workflow, BpmnEvent(SignalEventDefinition(name), payload=dict(payload)))


def start_by_timer(workflow: BpmnWorkflow, element_id: str) -> bool:
    """Start a new workflow through its timer start event `element_id` as if that timer fired now.

    Polku's scheduler (`engine.schedules`) decides when a timer start event is due, so the event
    does not wait on SpiffWorkflow's own timer: it completes at once and the process runs on. The
    process's other start events are cancelled. Returns False when no such start event exists.
    """
    starts = [t for t in workflow.get_tasks(state=TaskState.READY) if isinstance(t.task_spec, BpmnStartTask)]
    chosen = [s for s in workflow.spec.start.outputs if getattr(s, "bpmn_id", None) == element_id
              and isinstance(getattr(s, "event_definition", None), TimerEventDefinition)]
    if not starts or not chosen:
        return False
    try:
        starts[0].run()
        for task in list(starts[0].children):
            if task.task_spec is chosen[0]:
                workflow.event_manager.remove_task(task)  # the timer is due: it does not wait
                task._drop_children(force=True)  # a cycle past its start made some already
                task._set_state(TaskState.READY)
                task.run()
                if not task.children:  # a cycle start event makes its children only when its cycle fires
                    for output in task.task_spec.outputs:
                        child = task._add_child(output, TaskState.FUTURE)
                        child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
                        child.task_spec._update(child)
            elif getattr(task.task_spec, "event_definition", None) is not None:
                task.cancel()
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err
    return True


def _start_by_event(workflow: BpmnWorkflow, event: Any) -> bool:
    starts = [t for t in workflow.get_tasks(state=TaskState.READY) if isinstance(t.task_spec, BpmnStartTask)]
    wanted: Any = event.event_definition
    wanted_type, wanted_name = type(wanted), wanted.name
    catching = [s for s in workflow.spec.start.outputs
                if type(getattr(s, "event_definition", None)) is wanted_type
                and s.event_definition.name == wanted_name]
    if not starts or not catching:
        return False
    try:
        starts[0].run()
        for task in list(starts[0].children):
            if task.task_spec not in catching and getattr(task.task_spec, "event_definition", None) is not None:
                task.cancel()
        workflow.do_engine_steps()  # the catching start event now waits for its event
        workflow.event_manager.catch(event, internal=False)
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err
    return True


def thrown_messages(workflow: BpmnWorkflow) -> list[tuple[str, Any]]:
    """Take the messages the workflow threw that nothing inside it caught."""
    return [(name, payload) for kind, name, payload, _c in thrown_events(workflow) if kind == "message"]


def waiting_correlations(workflow: BpmnWorkflow, name: str) -> list[dict[str, dict[str, Any]]]:
    """Return the correlation keys each catch event waiting for message `name` expects (from its data)."""
    return [message_correlations(definition, task.data) for task, definition, _e in _pending_events(workflow)
            if isinstance(definition, MessageEventDefinition) and definition.name == name]


def thrown_events(workflow: BpmnWorkflow) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """Take what the workflow threw that nothing inside it caught: (kind, name, payload, correlations).

    Kinds: "message" (payload as thrown, correlation keys from its payload), "signal" (no payload:
    a case's data never goes to others without a model saying so), "escalation" and "error" (code
    as the name, no payload).
    """
    found: list[tuple[str, str, Any, dict[str, Any]]] = []
    for event in workflow.get_events():
        definition = event.event_definition
        if isinstance(definition, MessageEventDefinition):
            payload = event.payload.get("payload") if isinstance(event.payload, dict) else event.payload
            found.append(("message", definition.name, payload, message_correlations(definition, payload)))
        elif isinstance(definition, SignalEventDefinition):
            found.append(("signal", definition.name, None, {}))
        elif isinstance(definition, EscalationEventDefinition):
            found.append(("escalation", definition.code or definition.name, None, {}))
        elif isinstance(definition, ErrorEventDefinition):
            found.append(("error", definition.code or definition.name, None, {}))
    return found


def stuck_reason(workflow: BpmnWorkflow) -> tuple[str, str | None] | None:
    """Say why an unfinished workflow can never go on, as (sentence, element id); None if it can.

    It can go on when a user task is ready, or it waits for a timer, a message, a signal, an
    external worker, or any other READY task the engine does not run itself.
    """
    return survey(workflow).stuck


def _stuck_reason(survey: Survey, live: list[Any], waits_for_event: bool) -> tuple[str, str | None] | None:
    if survey.completed or waits_for_event:
        return None
    if any(t._state & TaskState.READY for t in live) or survey.messages or survey.signals:
        return None  # a ready user task, or a ready task that waits for the outside
    if survey.external:
        return None  # an external task waits for its worker
    at = sorted({t.task_spec.bpmn_id for t in live if t._state & (TaskState.WAITING | TaskState.STARTED)
                 and getattr(t.task_spec, "bpmn_id", None) and not isinstance(t.task_spec, _CONTAINERS)})
    if at:
        sentence = (f"the case cannot go on: it waits at {', '.join(at)}, and nothing (no task, timer, "
                    "message, signal or worker) can move it on")
        return sentence, at[0]
    return "the case cannot go on: nothing is left to run and no end event was reached", None


@dataclass
class Survey:
    """What the runtime asks of a workflow after an action, from one walk of its live tasks.

    Each field is what the function of the same name returns (`ready_user_tasks`,
    `external_tasks`, `variables`, `waiting_timers`, `waiting_messages`, `waiting_signals`,
    `is_completed`, `stuck_reason`); asked one by one they walked the task tree four to six times.
    """

    ready: list[ReadyTask]
    external: list[OpenExternalTask]
    variables: dict[str, Any]
    timers: list[WaitingTimer]
    messages: list[WaitingMessage]
    signals: list[WaitingMessage]
    completed: bool
    stuck: tuple[str, str | None] | None = None


def survey(workflow: BpmnWorkflow) -> Survey:
    """Return what the runtime asks of a workflow after an action (see `Survey`)."""
    live = _all_tasks(workflow, _LIVE)  # READY, STARTED and WAITING tasks come in their own walks' order
    timers: list[WaitingTimer] = []
    messages: list[WaitingMessage] = []
    signals: list[WaitingMessage] = []
    waits_for_event = False
    for task, definition, element_id in _pending_events(workflow):
        if isinstance(definition, TimerEventDefinition):
            timer = _waiting_timer(task, definition, element_id)
            if timer is not None:
                timers.append(timer)
        elif isinstance(definition, MessageEventDefinition):
            messages.append(WaitingMessage(str(task.id), element_id, definition.name))
        elif isinstance(definition, SignalEventDefinition):
            signals.append(WaitingMessage(str(task.id), element_id, definition.name))
        else:
            continue
        waits_for_event = True
    completed = bool(workflow.is_completed())
    if not completed:
        messages += _waiting_event_subprocesses(workflow, MessageEventDefinition)
        signals += _waiting_event_subprocesses(workflow, SignalEventDefinition)
    found = Survey(_ready_user_tasks(live), _external_tasks(live), _variables(workflow, live), timers, messages,
                   signals, completed)
    found.stuck = _stuck_reason(found, live, waits_for_event)
    return found


def is_completed(workflow: BpmnWorkflow) -> bool:
    """Tell whether the instance has finished."""
    return bool(workflow.is_completed())


def variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """Return the instance's current variables: the data of its newest live and completed tasks.

    The sources are merged oldest first, so a branch's task that has waited since before the last
    completed task (e.g. a supervisor's task opened by a non-interrupting timer) cannot bring back
    values the case has changed since.
    """
    return _variables(workflow, _all_tasks(workflow, _LIVE))


def _variables(workflow: BpmnWorkflow, live: list[Any]) -> dict[str, Any]:
    found = ([workflow.last_task] if workflow.last_task is not None else []) + list(live)
    sources = sorted(found, key=lambda t: t.last_state_change)
    merged: dict[str, Any] = {}
    for task in sources:
        if task is not None:
            merged.update(task.data)
    return merged


def task_count(workflow: BpmnWorkflow) -> int:
    """Count the tasks held in memory (history included): what compaction keeps small."""
    return len(workflow.tasks) + sum(len(s.tasks) for s in workflow.subprocesses.values())


# ---------------------------------------------------------------------------------------------
# Compaction: completed history leaves the runtime state (it lives on in the audit trail).

_KEEP_SPECS = (BoundaryEventSplit, BoundaryEventJoin)


def _spliceable(task: Any, workflow: Any) -> bool:
    spec = task.task_spec
    if task.state != TaskState.COMPLETED or len(task._children) != 1 or task._parent is None:
        return False
    if task is workflow.last_task or task.id in workflow.top_workflow.subprocesses:
        return False
    if isinstance(spec, (_KEEP_SPECS, CatchingEvent)):
        return False
    if not getattr(spec, "bpmn_id", None):
        return False  # Spiff's own Root/Start/End specs anchor the tree
    if len(spec.outputs) > 1 and not isinstance(spec, ExclusiveGateway):
        return False
    if len(spec.inputs) > 1 and not isinstance(spec, ExclusiveGateway):
        return False  # joins look at their inputs' tasks
    child = workflow.tasks.get(task._children[0])
    return not (child is None or len(child.task_spec.inputs) > 1 and not isinstance(child.task_spec, ExclusiveGateway))


def compact(workflow: BpmnWorkflow) -> int:
    """Splice completed single-child tasks out of the task trees; return how many were removed."""
    removed = 0
    for wf in [workflow, *workflow.subprocesses.values()]:
        for task in list(wf.tasks.values()):
            if not _spliceable(task, wf):
                continue
            parent = wf.tasks[task._parent]
            child = wf.tasks[task._children[0]]
            parent._children = [child.id if c == task.id else c for c in parent._children]
            child._parent = parent.id
            del wf.tasks[task.id]
            removed += 1
    return removed


def due_from(value: Any, now: datetime) -> datetime | None:
    """Turn a due-date value (datetime, ISO date/datetime, ISO duration from `now`) into UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 16, 0, tzinfo=UTC)
    text = str(value).strip()
    if text.upper().startswith("P"):
        parsed = TimerEventDefinition.parse_iso_duration(text)
        return now + TimerEventDefinition.get_timedelta_from_start(parsed, now)
    return TimerEventDefinition.get_datetime(text)


# ---------------------------------------------------------------------------------------------
# Migration: move a running workflow onto the specs of another version of its process.

from SpiffWorkflow.bpmn.util.diff import diff_workflow as _diff_workflow
from SpiffWorkflow.bpmn.util.diff import migrate_workflow as _migrate_workflow

_LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


@dataclass
class MigrationCheck:
    """Why a workflow cannot move to a new spec: element ids of its tasks that the spec lacks."""

    removed_live: list[str] = field(default_factory=list)
    removed_done: list[str] = field(default_factory=list)
    removed_subprocesses: list[str] = field(default_factory=list)
    # waiting for an event (a message, a signal, a timer) at an element that the target makes another kind
    # of element: SpiffWorkflow keeps the task among its event waits, and every later step of the case fails
    changed_waits: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Tell whether nothing blocks the migration."""
        return not (self.removed_live or self.removed_done or self.removed_subprocesses or self.changed_waits)


def _element(task: Any) -> str:
    return getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name


def _removed_tasks(diff: Any, check: MigrationCheck) -> None:
    for task in diff.removed:
        if task.has_state(_LIVE):
            check.removed_live.append(_element(task))
        elif task.has_state(TaskState.COMPLETED | TaskState.CANCELLED) and getattr(task.task_spec, "bpmn_id", None):
            check.removed_done.append(_element(task))
    for task, new_spec in diff.alignment.items():
        if (task.has_state(_LIVE) and getattr(task.task_spec, "event_definition", None) is not None
                and type(new_spec) is not type(task.task_spec)):
            check.changed_waits.append(_element(task))


def check_migration(workflow: BpmnWorkflow, bundle: SpecBundle) -> MigrationCheck:
    """Compare a workflow with a target bundle: list its tasks whose elements the target lacks."""
    top, subs = _diff_workflow(_registry, workflow, bundle.spec, bundle.subprocess_specs)
    check = MigrationCheck()
    _removed_tasks(top, check)
    for sp_id, diff in subs.items():
        if diff is None:
            check.removed_subprocesses.append(workflow.subprocesses[sp_id].spec.name)
        else:
            _removed_tasks(diff, check)
    return check


def migrate(workflow: BpmnWorkflow, bundle: SpecBundle) -> None:
    """Move a workflow onto the target bundle's specs in place, keeping live tasks' data.

    Call `check_migration` first: a workflow whose tasks the target lacks cannot be saved after.
    """
    live = _all_tasks(workflow, TaskState.READY | TaskState.WAITING)
    kept = {t.id: dict(t.data) for t in live}
    # a waiting timer whose expression did not change keeps running from when it started
    timers = {t.id: (_timer_expression(t.task_spec), dict(t.internal_data)) for t in live
              if t.has_state(TaskState.WAITING) and _timer_expression(t.task_spec) is not None}
    gateways = {t.id: _gateway_clocks(t) for t in live
                if t.has_state(TaskState.WAITING) and isinstance(t.task_spec.event_definition, _GatewayEvents)}
    top, subs = _diff_workflow(_registry, workflow, bundle.spec, bundle.subprocess_specs)
    _migrate_workflow(top, workflow, bundle.spec)
    for sp_id, diff in subs.items():
        sub = workflow.subprocesses[sp_id]
        _migrate_workflow(diff, sub, bundle.subprocess_specs[sub.spec.name])
    workflow.subprocess_specs = bundle.subprocess_specs
    for task in _all_tasks(workflow, TaskState.READY | TaskState.WAITING | TaskState.FUTURE):
        if task.id in kept:
            task.data.update(kept[task.id])
        if task.id in timers and timers[task.id][0] == _timer_expression(task.task_spec):
            task.internal_data.update(timers[task.id][1])
        if task.id in gateways and isinstance(task.task_spec.event_definition, _GatewayEvents):
            before = gateways[task.id]  # each timer after the gateway whose expression did not change
            task.internal_data.pop("event_value", None)
            for key, (expression, _value) in _gateway_clocks(task).items():
                if key in before and before[key][0] == expression and before[key][1] is not None:
                    task.internal_data[key] = before[key][1]


def _gateway_clocks(task: Any) -> dict[str, tuple[str, Any]]:
    """The timers after a waiting event-based gateway: internal-data key -> (expression, running value).

    A value stored before each timer had its own clock is the shared one (see `_GatewayEvents`)."""
    data = task.internal_data
    return {key: (definition.expression, data.get(key, data.get("event_value")))
            for _index, definition, key in task.task_spec.event_definition._timers(task)}


def _timer_expression(spec: Any) -> str | None:
    definition = getattr(spec, "event_definition", None)
    return definition.expression if isinstance(definition, TimerEventDefinition) else None


# ---------------------------------------------------------------------------------------------
# External tasks (the Camunda 7 pattern): a service task, send task or business rule task with
# camunda:type="external" does not run in the engine. It stays STARTED until a worker that
# fetched it from Polku completes it (`complete_external_task`); nothing else moves it on.

from SpiffWorkflow.bpmn.parser.event_parsers import SendTaskParser as _SendTaskParser
from SpiffWorkflow.bpmn.parser.util import full_tag as _full_tag
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter as _TaskConverter
from SpiffWorkflow.bpmn.specs.defaults import SendTask as _SendTask
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask as _ServiceTask
from SpiffWorkflow.camunda.parser.task_spec import (
    CAMUNDA_MODEL_NS as _CAMUNDA_NS,
)
from SpiffWorkflow.camunda.parser.task_spec import (
    BusinessRuleTaskParser as _BusinessRuleTaskParser,
)
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser as _CamundaTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask as _BusinessRuleTask


class ExternalTaskSpec(_ServiceTask):
    """A task a worker outside the engine does: it waits in STARTED for `complete_external_task`."""

    def __init__(self, wf_spec: Any, bpmn_id: str, topic: str, priority: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.topic = topic
        self.priority = priority

    def _run_hook(self, my_task: Any) -> None:
        return None  # None leaves the task STARTED: the worker's completion finishes it


class _ExternalTaskConverter(_TaskConverter):
    def to_dict(self, spec: ExternalTaskSpec) -> dict:
        dct = self.get_default_attributes(spec)
        dct.update(topic=spec.topic, priority=spec.priority)
        return dct


_ExternalTaskConverter(ExternalTaskSpec, _registry)  # registers itself (migration diffs convert specs)


def _external_spec(parser: Any) -> ExternalTaskSpec | None:
    """Return an external task spec when the node says camunda:type="external", else None."""
    if parser.node.get(f"{{{_CAMUNDA_NS}}}type") != "external":
        return None
    topic = (parser.node.get(f"{{{_CAMUNDA_NS}}}topic") or "").strip()
    priority = parser.node.get(f"{{{_CAMUNDA_NS}}}taskPriority")
    return ExternalTaskSpec(parser.spec, parser.bpmn_id, topic=topic, priority=priority, **parser.bpmn_attributes)


class _ServiceTaskParser(_CamundaTaskParser):
    def create_task(self) -> Any:
        return _external_spec(self) or self.spec_class(self.spec, self.bpmn_id, **self.bpmn_attributes)


class _ExternalSendTaskParser(_CamundaSendTaskParser):
    def create_task(self) -> Any:
        return _external_spec(self) or super().create_task()


class _ExternalBusinessRuleTaskParser(_BusinessRuleTaskParser):
    def create_task(self) -> Any:
        return _external_spec(self) or super().create_task()

    @staticmethod
    def get_decision_ref(node: Any) -> str | None:
        """Return the DMN decision the task calls; an external one calls none (its worker decides)."""
        if node.get(f"{{{_CAMUNDA_NS}}}type") == "external":
            return None
        return _BusinessRuleTaskParser.get_decision_ref(node)


_spiff_decide = _BusinessRuleTask._run_hook


def _decide_plain(self: Any, my_task: Any) -> bool:
    """Run a business rule task's decision, keeping its result only if it is plain data.

    A decision's outputs are expressions: what they give becomes case data, so it is checked like a
    script's result (a set, NaN, a date object or text with a lone surrogate would break the case's
    storage later): an incident on the task instead.
    """
    before = deepcopy(my_task.data)
    done = _spiff_decide(self, my_task)
    # (SpiffWorkflow's merge compared these values already: comparing them cannot fail here)
    changed = {k: v for k, v in my_task.data.items() if k not in before or v != before[k]}
    try:
        values.check_plain(changed, what="decision result", max_bytes=limits.current().max_bytes)
    except DataInvalid as err:
        raise _WorkflowTaskException(str(err), task=my_task, exception=err) from None
    return done


_BusinessRuleTask._run_hook = _decide_plain  # type: ignore[method-assign]

# Every parser made here (CamundaParser instances read this class attribute) knows external tasks.
CamundaParser.OVERRIDE_PARSER_CLASSES.update({
    _full_tag("serviceTask"): (_ServiceTaskParser, _ServiceTask),
    _full_tag("sendTask"): (_ExternalSendTaskParser, _SendTask),
    _full_tag("businessRuleTask"): (_ExternalBusinessRuleTaskParser, _BusinessRuleTask),
})


@dataclass(frozen=True)
class OpenExternalTask:
    """A STARTED external task of a workflow, waiting for a worker."""

    task_id: str
    element_id: str
    topic: str
    priority: str | None
    data: dict[str, Any]


def external_tasks(workflow: BpmnWorkflow) -> list[OpenExternalTask]:
    """List the external tasks waiting for a worker, in the workflow and its subprocesses."""
    return _external_tasks(_all_tasks(workflow, TaskState.STARTED))


def _external_tasks(tasks: list[Any]) -> list[OpenExternalTask]:
    return [OpenExternalTask(str(t.id), t.task_spec.bpmn_id, t.task_spec.topic, t.task_spec.priority, t.data)
            for t in tasks if t._state & TaskState.STARTED and isinstance(t.task_spec, ExternalTaskSpec)]


def complete_external_task(workflow: BpmnWorkflow, task_id: str, data: dict[str, Any]) -> str:
    """Complete a waiting external task with the worker's variables; return its element id.

    Raises:
        ScriptError: the task is not a waiting external task of this workflow (its element named).
    """
    task = workflow.get_task_from_id(_uuid(task_id))
    if not isinstance(task.task_spec, ExternalTaskSpec) or task.state != TaskState.STARTED:
        raise ScriptError(f"external task {task_id} is not waiting for a worker", element=task.task_spec.bpmn_id)
    task.data.update(data)
    try:
        task.complete()
    except (WorkflowException, sandbox.SandboxViolation) as err:
        raise translate(err) from err
    return task.task_spec.bpmn_id
