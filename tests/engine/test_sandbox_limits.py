"""Hostile expressions and scripts, each in a deployed model: an incident naming the element and the
limit, within 2 s of the time limit, in the calling thread, another thread and the timer worker."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import func, select

from engine import audit, limits, runtime, timers
from engine import deploy as deploy_mod
from engine.config import Settings
from engine.errors import DataInvalid
from engine.models import Incident, Timer

from .conftest import T0

TIMEOUT = limits.current().timeout  # the default, 1 s
BOUND = TIMEOUT + 2.0  # an incident must exist within 2 s of the limit

# (name, where: "condition" | "script", source, words the incident message must contain)
HOSTILE = [
    ("cpu in a generator", "condition",
     "any(len(set(r)) < 0 for r in [range(999999)] for i in range(3000))", "time limit|size limit"),
    ("max over big ranges in a loop", "condition",
     "[max(range(10**6)) for i in range(10**5)] == []", "time limit|size limit"),
    ("sorted of big lists", "script",
     "big = list(range(10**6))\nfor i in range(10**4):\n    s = sorted(big, reverse=True)", "time limit|size limit"),
    ("set of a big range in a loop", "script",
     "n = 0\nwhile True:\n    n += len(set(range(10**6)))", "time limit"),
    ("endless loop", "script", "while True:\n    pass", "step limit"),
    ("printf width via nested mapping key", "condition", "'%((a))50000000s' % {'(a)': ''}", "size limit"),
    ("printf star width", "condition", "'%*d' % (10**9, 4)", "size limit"),
    ("f-string width times a loop", "condition", "[f'{i:>999999}' for i in range(100)] == []", "size limit"),
    ("int.to_bytes", "condition", "len((1).to_bytes(10**9, 'big')) > 0", "size limit"),
    ("str.translate", "condition", "len(('a' * 10**6).translate({97: 'b' * 1000})) > 0", "size limit"),
    ("list.extend doubling", "script", "x = [0] * 1000\nfor i in range(40):\n    x.extend(x)", "size limit"),
    ("starred displays", "script",
     "x = list(range(10**6))\ny = [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]", "size limit"),
    ("str of a shared container", "condition", "len(str([list(range(10**5))] * 1000)) > 0", "limit"),
    ("repr of nested containers", "condition", "len(repr([[list(range(10**5))] * 1000] * 1000)) > 0", "limit"),
    ("sum of lists", "condition", "len(sum(([0] * 10**5 for i in range(1000)), [])) > 0", "size limit"),
    ("huge power", "condition", "2 ** (2 ** 40) > 0", "size limit"),
    ("string multiplication", "condition", "len('x' * 10**8) > 0", "size limit"),
    ("list multiplication", "script", "x = [0] * 10**9", "size limit"),
    ("huge range", "condition", "len(list(range(10**9))) > 0", "size limit"),
    ("comprehension blow-up", "condition", "len([[0] * 10**6 for i in range(1000)]) > 0", "limit"),
    ("dict comprehension blow-up", "script", "x = {i: 'x' * 10**5 for i in range(10**4)}", "size limit"),
    ("memory", "script", "big = [0] * 10**6\nrows = [list(big) for i in range(200)]", "limit"),  # or time
    ("deep recursion", "script", "def f(n):\n    return f(n + 1)\nx = f(0)", "recursion limit"),
    ("self-application", "condition", "(lambda f: f(f))(lambda f: f(f))", "recursion limit"),
    ("doubling string concatenation", "script", "s = 'a'\nwhile True:\n    s = s + s", "size limit"),
    ("timer duration that never ends", "timer", "[n for n in range(10**5) for m in range(10**5)][0]", "limit"),
    ("timer duration of a huge text", "timer", "'P' + 'x' * 10**9", "size limit"),
]


def _model(pid: str, where: str, source: str, *, timer: bool = False) -> bytes:
    """Return a BPMN process that runs `source` as a gateway condition or a script task."""
    first = "wait" if timer else "hostile"
    wait = ('<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition id="ted">'
            "<bpmn:timeDuration>'P1D'</bpmn:timeDuration></bpmn:timerEventDefinition>"
            '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="fw" sourceRef="wait" targetRef="hostile" />'
            if timer else "")
    if where == "condition":
        body = ('<bpmn:exclusiveGateway id="hostile" default="f_no" />'
                '<bpmn:sequenceFlow id="f_yes" sourceRef="hostile" targetRef="yes">'
                f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(source)}'
                "</bpmn:conditionExpression></bpmn:sequenceFlow>"
                '<bpmn:sequenceFlow id="f_no" sourceRef="hostile" targetRef="no" />'
                '<bpmn:endEvent id="yes" /><bpmn:endEvent id="no" />')
    elif where == "timer":  # the expression is the timer's duration
        body = ('<bpmn:intermediateCatchEvent id="hostile"><bpmn:timerEventDefinition id="hostile_timer">'
                f"<bpmn:timeDuration>{escape(source)}</bpmn:timeDuration></bpmn:timerEventDefinition>"
                '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="end" />'
                '<bpmn:endEvent id="end" />')
    else:
        body = (f'<bpmn:scriptTask id="hostile" scriptFormat="python"><bpmn:script>{escape(source)}'
                '</bpmn:script></bpmn:scriptTask><bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="end" />'
                '<bpmn:endEvent id="end" />')
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="Defs_{pid}" '
            f'targetNamespace="http://polku.test/{pid}"><bpmn:process id="p_{pid}" isExecutable="true">'
            f'<bpmn:startEvent id="start" /><bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="{first}" />'
            f"{wait}{body}</bpmn:process></bpmn:definitions>").encode()


def _deploy(sessions, pid: str, where: str, source: str, **kwargs) -> None:
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {f"{pid}.bpmn": _model(pid, where, source, **kwargs)}, by="designer")


def _start(sessions, pid: str) -> tuple[int, float]:
    """Start an instance; return its id and how long the start took."""
    started = time.monotonic()
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, f"p_{pid}", by="anna", data={}, now=T0, validate_form=False).id
    return instance_id, time.monotonic() - started


def _incidents(sessions, instance_id: int) -> list[tuple[str | None, str]]:
    with sessions.begin() as s:
        return [(i.element_id, i.message) for i in runtime.open_incidents(s, instance_id)]


@pytest.mark.parametrize(("name", "where", "source", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_code_becomes_an_incident_naming_the_element_and_the_limit(sessions, name, where, source, words):
    _deploy(sessions, "hostile", where, source)
    instance_id, took = _start(sessions, "hostile")
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile"
    # "a|b": whichever bound a fast or a slow machine reaches first (work done vs items built)
    assert any(w in message for w in words.split("|")), message
    assert took < BOUND, f"{name}: {took:.2f} s"


def test_the_table_covers_at_least_twenty_payloads_and_every_limit():
    assert len(HOSTILE) >= 20
    named = " ".join(words for *_, words in HOSTILE)
    for limit in ("time limit", "step limit", "size limit", "recursion limit"):
        assert limit in named


def test_memory_ceiling_stops_a_script_that_keeps_what_it_builds(sessions):
    before = limits.current()
    limits.configure(None, timeout=20.0)  # on a busy machine the time limit could come first
    try:
        source = "big = [0] * 10**6\nrows = []\nfor i in range(100):\n    rows.append(list(big))"
        _deploy(sessions, "hungry", "script", source)
        instance_id, _ = _start(sessions, "hungry")
    finally:
        limits.configure(None, timeout=before.timeout)
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and "memory limit of 256 MB" in message, message


def test_hostile_condition_in_another_thread_becomes_an_incident(sessions):
    """Web requests run in threads: the limits must not rely on signals of the main thread."""
    _deploy(sessions, "threaded", "condition", HOSTILE[0][2])
    result: dict[str, object] = {}

    def start() -> None:
        try:
            result["started"] = _start(sessions, "threaded")
        except Exception as err:  # noqa: BLE001 - reported below
            result["error"] = err

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(timeout=BOUND + 5)
    assert not thread.is_alive() and "error" not in result, result
    instance_id, took = result["started"]
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and "time limit" in message and took < BOUND


@pytest.mark.parametrize(("name", "where", "source", "words"),
                         [HOSTILE[0], HOSTILE[4], HOSTILE[5], HOSTILE[21]],
                         ids=["time", "steps", "size", "memory"])
def test_poison_timer_becomes_one_incident_and_is_not_fired_again(sessions, name, where, source, words):
    _deploy(sessions, "poison", where, source, timer=True)
    instance_id, _ = _start(sessions, "poison")
    assert _incidents(sessions, instance_id) == []
    due = T0 + timedelta(days=2)
    started = time.monotonic()
    timers.fire_due_timers(sessions, now=due, worker_id="w1")
    assert time.monotonic() - started < BOUND
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and any(w in message for w in words.split("|"))
    for later in (due, due + timedelta(minutes=10), due + timedelta(days=1)):  # later sweeps: nothing to do
        assert timers.fire_due_timers(sessions, now=later, worker_id="w2") == 0
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 1
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.instance_id == instance_id)) == 1


def test_the_worker_loop_survives_a_poison_timer_and_fires_the_next_one(sessions):
    _deploy(sessions, "poison", "condition", HOSTILE[0][2], timer=True)
    _deploy(sessions, "fine", "condition", "1 > 0", timer=True)
    poisoned, _ = _start(sessions, "poison")
    fine, _ = _start(sessions, "fine")
    worker = timers.Worker(sessions, poll_seconds=0.05, worker_id="w")
    thread = threading.Thread(target=worker.run, kwargs={"once": True})  # real time: both are overdue
    thread.start()
    thread.join(timeout=2 * BOUND + 5)
    assert not thread.is_alive()
    assert len(_incidents(sessions, poisoned)) == 1
    with sessions.begin() as s:
        assert str(runtime.get_instance(s, fine).status) == "completed"


# --- settings reach every process ---------------------------------------------------------------

def test_settings_apply_to_later_evaluations():
    before = limits.current()
    try:
        configured = limits.configure(Settings(script_steps=123, script_timeout=0.5, script_max_bytes=1000))
        assert (configured.steps, configured.timeout, configured.max_bytes) == (123, 0.5, 1000)
        assert Settings.from_env({"POLKU_SCRIPT_TIMEOUT": "2.5", "POLKU_SCRIPT_MAX_BYTES": "99",
                                  "POLKU_SCRIPT_MEMORY": "1000000", "POLKU_SCRIPT_OUTPUT": "5"}).script_output == 5
    finally:
        limits.configure(None, **{f: getattr(before, f) for f in ("steps", "timeout", "max_bytes", "memory",
                                                                   "output")})


def test_web_app_factory_applies_the_script_limits(tmp_path):
    from webui import create_app

    before = limits.current()
    try:
        create_app(Settings(database_url=f"sqlite:///{tmp_path}/w.db", script_steps=77, script_timeout=0.3))
        assert (limits.current().steps, limits.current().timeout) == (77, 0.3)
    finally:
        limits.configure(None, steps=before.steps, timeout=before.timeout)


def test_a_lower_time_limit_is_honoured(sessions):
    before = limits.current()
    limits.configure(None, timeout=0.3)
    try:
        _deploy(sessions, "quick", "condition", HOSTILE[0][2])
        instance_id, took = _start(sessions, "quick")
        [(_, message)] = _incidents(sessions, instance_id)
        assert "time limit of 0.3 s" in message and took < 0.3 + 2.0
    finally:
        limits.configure(None, timeout=before.timeout)


# --- data that cannot break a case --------------------------------------------------------------

@pytest.mark.parametrize(("source", "variable", "words"), [
    ("x = {1, 2}", "x", "set"),
    ("g = (i for i in [1, 2])", "g", "generator"),
    ("f = lambda: 1", "f", "function"),
    ("k = len", "k", "function"),
    ("r = range(3)", "r", "range object"),
    ("d = now()", "d", "isoformat"),
    ("t = (1, 2)", "t", "tuple"),
    ("order = {'items': [1, {2}]}", "order.items[1]", "set"),
    ("x = {'typename': 'datetime', 'value': '2026'}", "x.typename", "reserved key"),
    ("x = {1: 'a'}", "x", "not text"),
    ("x = float('nan')", "x", "JSON cannot hold"),
    ("big = 9223372036854775807 + 1", "big", "beyond 64 bits"),
])
def test_script_result_that_is_not_plain_becomes_an_incident_naming_the_variable(sessions, source, variable, words):
    _deploy(sessions, "unplain", "script", source)
    instance_id, _ = _start(sessions, "unplain")
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile"
    assert f"script result: {variable} " in message and words in message, message


def test_helper_functions_a_script_defines_are_not_case_data(sessions):
    _deploy(sessions, "helper", "script", "def net(p):\n    return round(p / 1.24, 2)\nprice = net(12.4)")
    instance_id, _ = _start(sessions, "helper")
    assert _incidents(sessions, instance_id) == []
    with sessions.begin() as s:
        data = runtime.instance_variables(s, instance_id)
    assert data["price"] == 10.0 and "net" not in data


@pytest.mark.parametrize("condition", [
    "items.append(1) or True", "d.update({'x': 1}) or True", "d.setdefault('y', []).append(2) or True",
    "items.clear() or True", "[items.append(i) for i in range(3)] != []",
])
def test_conditions_cannot_change_case_data(sessions, condition):
    _deploy(sessions, "mutate", "condition", condition)
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "p_mutate", by="anna", data={"items": [0], "d": {"k": 1}},
                                             now=T0, validate_form=False).id
    runtime.forget_cache()
    with sessions.begin() as s:
        data = runtime.instance_variables(s, instance_id)
        assert runtime.open_incidents(s, instance_id) == []
    assert data["items"] == [0] and data["d"] == {"k": 1}


def test_del_removes_a_variable_and_print_goes_to_the_history(sessions):
    _deploy(sessions, "printer", "script", "print('total', a + 1)\ndel b\nfor i in range(3):\n    print(i)")
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "p_printer", by="anna", data={"a": 1, "b": 2}, now=T0,
                                             validate_form=False).id
    runtime.forget_cache()
    with sessions.begin() as s:
        data = runtime.instance_variables(s, instance_id)
        events = [audit.event_dict(e) for e in audit.history(s, instance_id) if e.kind == "script_output"]
    assert "b" not in data and data["a"] == 1
    assert len(events) == 1 and events[0]["element_id"] == "hostile"
    assert events[0]["data"]["output"] == "total 2\n0\n1\n2\n"


def test_print_output_is_cut_at_the_output_limit(sessions):
    _deploy(sessions, "chatty", "script", "for i in range(5000):\n    print('line', i)")
    instance_id, _ = _start(sessions, "chatty")
    with sessions.begin() as s:
        [event] = [audit.event_dict(e) for e in audit.history(s, instance_id) if e.kind == "script_output"]
    output = event["data"]["output"]
    assert output.endswith("(output cut at 10,000 characters)") and len(output) < 10_100


def test_retry_data_and_message_payloads_must_be_plain(sessions):
    _deploy(sessions, "failing", "script", "x = 1 / zero")
    instance_id, _ = _start(sessions, "failing")
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, instance_id)
        with pytest.raises(DataInvalid, match=r"retry data: zero\.typename uses the reserved key"):
            runtime.retry_incident(s, incident.id, by="admin", data={"zero": {"typename": "datetime"}})
        with pytest.raises(DataInvalid, match="retry data: zero is a set"):
            runtime.retry_incident(s, incident.id, by="admin", data={"zero": {1}})
        with pytest.raises(DataInvalid, match="message payload: p is a tuple"):
            runtime.deliver_message(s, "anything", by="api", data={"p": (1, 2)}, instance_id=instance_id)
        incident = runtime.retry_incident(s, incident.id, by="admin", data={"zero": 2})
        assert str(incident.status) == "resolved"


def test_the_cli_applies_the_script_settings_in_every_new_process(tmp_path):
    """POLKU_SCRIPT_STEPS and POLKU_SCRIPT_TIMEOUT reach `polku` commands (each a new OS process)."""
    model = tmp_path / "steps.bpmn"
    model.write_bytes(_model("steps", "script", "n = 0\nwhile True:\n    n += 1"))
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/c.db", "POLKU_SCRIPT_STEPS": "50",
           "POLKU_SCRIPT_TIMEOUT": "0.5"}
    polku = [str(Path(sys.executable).parent / "polku"), "--json"]
    for argv in (["deploy", str(model)], ["start", "p_steps", "--by", "anna"]):
        subprocess.run([*polku, *argv], env=env, capture_output=True, text=True, check=True)
    listed = subprocess.run([*polku, "incidents"], env=env, capture_output=True, text=True, check=True)
    [incident] = json.loads(listed.stdout)
    assert incident["element_id"] == "hostile" and "stopped after 50 steps" in incident["message"]


def test_restrictedpython_pin_allows_only_the_major_version_in_use():
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    low, high = re.search(r'"RestrictedPython>=(\d+)\.[\d.]*,<(\d+)"', pyproject).groups()
    installed = int(importlib.metadata.version("RestrictedPython").split(".")[0])
    assert int(high) == int(low) + 1 == installed + 1


@pytest.mark.parametrize("value", ["'garbage'", "None", "[1, 2]", "{'a': 1}"])
def test_a_timer_value_that_cannot_be_used_is_one_incident_not_a_retry_loop(sessions, value):
    _deploy(sessions, "badtimer", "timer", value, timer=True)
    instance_id, _ = _start(sessions, "badtimer")
    timers.fire_due_timers(sessions, now=T0 + timedelta(days=2), worker_id="w1")
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and "the timer's value cannot be used" in message
    later = T0 + timedelta(days=2, minutes=10)  # past the 5-minute hold a failing firing used to get
    assert timers.fire_due_timers(sessions, now=later, worker_id="w2") == 0
    assert len(_incidents(sessions, instance_id)) == 1


def _decision(cell: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="hostile_rules_defs" name="Hostile"
    namespace="urn:polku:test">
  <decision id="hostile_rules" name="Hostile rules">
    <decisionTable id="hostile_table" hitPolicy="FIRST">
      <input id="in1"><inputExpression id="in1_expr" typeRef="integer"><text>amount</text></inputExpression></input>
      <output id="out1" name="verdict" typeRef="string" />
      <rule id="r1"><inputEntry id="r1_in"><text>{escape(cell)}</text></inputEntry>
        <outputEntry id="r1_out"><text>"yes"</text></outputEntry></rule>
      <rule id="r2"><inputEntry id="r2_in"><text>-</text></inputEntry>
        <outputEntry id="r2_out"><text>"no"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>""".encode()


DECIDING = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Defs_deciding" targetNamespace="http://polku.test/deciding">
  <bpmn:process id="deciding" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="hostile" />
    <bpmn:businessRuleTask id="hostile" camunda:decisionRef="hostile_rules" />
    <bpmn:sequenceFlow id="f1" sourceRef="hostile" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>"""


@pytest.mark.parametrize(("cell", "words"), [
    ("any(len(set(r)) < 0 for r in [range(999999)] for i in range(3000))", "time limit"),
    ("len('x' * 10**9) > 0", "size limit"),
])
def test_hostile_dmn_cell_becomes_an_incident_on_the_business_rule_task(sessions, cell, words):
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"deciding.bpmn": DECIDING, "hostile_rules.dmn": _decision(cell)}, by="designer")
    started = time.monotonic()
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "deciding", by="anna", data={"amount": 5}, now=T0,
                                             validate_form=False).id
    took = time.monotonic() - started
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and any(w in message for w in words.split("|")), message
    assert took < BOUND


@pytest.mark.parametrize(("output", "words"), [
    ("float('nan')", "verdict is nan, which JSON cannot hold"),
    ("{1, 2}", "verdict is a set"),
    ("now()", "verdict is a datetime"),
    ("'\\ud800'", "verdict holds '\\ud800', half of a character"),
])
def test_a_decision_result_that_is_not_plain_becomes_an_incident_on_the_business_rule_task(sessions, output,
                                                                                          words):
    rules = _decision("-").replace(b'<text>"yes"</text>', f"<text>{escape(output)}</text>".encode())
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"deciding.bpmn": DECIDING, "hostile_rules.dmn": rules}, by="designer")
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "deciding", by="anna", data={"amount": 5}, now=T0,
                                             validate_form=False).id
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and f"decision result: {words}" in message, message
    runtime.forget_cache()
    with sessions.begin() as s:  # the case is kept as it was before the decision, readable
        assert runtime.instance_variables(s, instance_id) == {"amount": 5}
        assert runtime.get_instance(s, instance_id).status == "running"


def test_a_decision_result_that_is_not_plain_is_an_incident_through_the_cli_too(tmp_path):
    """Each `polku` command a new OS process: the check does not depend on anything a test process holds."""
    (tmp_path / "deciding.bpmn").write_bytes(DECIDING)
    (tmp_path / "hostile_rules.dmn").write_bytes(
        _decision("-").replace(b'<text>"yes"</text>', b"<text>float('nan')</text>"))
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}
    polku = [str(Path(sys.executable).parent / "polku"), "--json"]
    for argv in (["deploy", str(tmp_path / "deciding.bpmn"), str(tmp_path / "hostile_rules.dmn")],
                 ["start", "deciding", "--data", '{"amount": 5}', "--by", "anna"]):
        subprocess.run([*polku, *argv], env=env, capture_output=True, text=True, check=True)
    listed = subprocess.run([*polku, "incidents"], env=env, capture_output=True, text=True, check=True)
    [incident] = json.loads(listed.stdout)
    assert incident["element_id"] == "hostile" and "decision result: verdict is nan" in incident["message"]


def test_a_plain_decision_result_is_case_data(sessions):
    rules = _decision("-").replace(b'<text>"yes"</text>', b"<text>{'score': 0.5, 'tags': ['a']}</text>")
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"deciding.bpmn": DECIDING, "hostile_rules.dmn": rules}, by="designer")
    with sessions.begin() as s:
        instance_id = runtime.start_instance(s, "deciding", by="anna", data={"amount": 5}, now=T0,
                                             validate_form=False).id
    runtime.forget_cache()
    with sessions.begin() as s:
        assert runtime.open_incidents(s, instance_id) == []
        assert runtime.instance_variables(s, instance_id) == {"amount": 5,
                                                              "verdict": {"score": 0.5, "tags": ["a"]}}


def _thrower(expression: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Defs_thrower" targetNamespace="http://polku.test/thrower">
  <bpmn:message id="m_out" name="outgoing" />
  <bpmn:process id="thrower" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="hostile" />
    <bpmn:intermediateThrowEvent id="hostile">
      <bpmn:messageEventDefinition messageRef="m_out" camunda:expression="{escape(expression, {'"': '&quot;'})}" />
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="hostile" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>""".encode()


@pytest.mark.parametrize(("expression", "words"), [
    ("{'ids': {1, 2}}", "message payload of 'outgoing': ids is a set"),
    ("{'typename': 'datetime', 'value': 'x'}", "reserved key"),
    ("(1, 2)", "payload is a tuple"),
])
def test_a_thrown_message_with_a_payload_that_is_not_plain_is_an_incident_on_the_throw(sessions, expression, words):
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"thrower.bpmn": _thrower(expression)}, by="designer")
        instance_id = runtime.start_instance(s, "thrower", by="anna", data={}, now=T0, validate_form=False).id
    [(element, message)] = _incidents(sessions, instance_id)
    assert element == "hostile" and any(w in message for w in words.split("|")), message


def test_a_thrown_message_with_a_plain_payload_still_goes_out(sessions):
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"thrower.bpmn": _thrower("{'amount': 2}")}, by="designer")
        instance_id = runtime.start_instance(s, "thrower", by="anna", data={}, now=T0, validate_form=False).id
        assert runtime.open_incidents(s, instance_id) == []
        assert str(runtime.get_instance(s, instance_id).status) == "completed"
