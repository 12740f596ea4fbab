"""What deploy rewrites, accepts and refuses in models from other tools, and that the rewritten
models run the same in one process, reloaded between steps, and through the CLI step by step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from engine import audit, deploy, juel, prepare, runtime, sandbox, spiff, timers, xmlcheck
from engine.errors import InvalidModel

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/'
        '20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">\n')


def model(body: str, *, pid: str = "p", attrs: str = ' isExecutable="true"', extra: str = "", after: str = "") -> str:
    return f'{HEAD}{extra}<bpmn:process id="{pid}"{attrs}>\n{body}\n</bpmn:process>\n{after}</bpmn:definitions>\n'


def problems_of(*texts: str) -> list:
    files = {f"m{i}.bpmn": t.encode() for i, t in enumerate(texts)}
    return deploy.validate_files(files).problems


# A model as Camunda Modeler users write it: ids Start/End, flows without ids, a ${…} condition and
# assignee, an unquoted timer literal, and no isExecutable attribute at all.
CAMUNDA_STYLE = model("""
  <bpmn:startEvent id="Start" />
  <bpmn:sequenceFlow sourceRef="Start" targetRef="review" />
  <bpmn:userTask id="review" name="Review" camunda:assignee="${owner.name}" />
  <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="gw" />
  <bpmn:exclusiveGateway id="gw" default="f_small" />
  <bpmn:sequenceFlow id="f_big" sourceRef="gw" targetRef="wait">
    <bpmn:conditionExpression>${amount &gt; 1000 &amp;&amp; !rejected}</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="f_small" sourceRef="gw" targetRef="End" />
  <bpmn:intermediateCatchEvent id="wait" name="Five minutes">
    <bpmn:timerEventDefinition><bpmn:timeDuration>PT5M</bpmn:timeDuration></bpmn:timerEventDefinition>
  </bpmn:intermediateCatchEvent>
  <bpmn:sequenceFlow sourceRef="wait" targetRef="End" />
  <bpmn:endEvent id="End" />""", pid="camunda_style", attrs="")


def _path(session, iid: int) -> list[str]:
    """Return the element ids the history names, in order: steps the engine ran and tasks completed."""
    found = []
    for ev in (audit.event_dict(ev) for ev in audit.history(session, iid)):
        if ev["kind"] == "path_taken":
            found.extend(ev["data"]["elements"])
        elif ev["kind"] == "task_completed":
            found.append(ev["element_id"])
    return found


def _all_text(session, iid: int) -> str:
    return json.dumps([audit.event_dict(ev) for ev in audit.history(session, iid)])


@pytest.mark.parametrize("amount, rejected, waits, path", [
    (5000, False, True, ["Start", "review", "gw"]),  # then the timer
    (5000, True, False, ["Start", "review", "gw", "End"]),
    (10, False, False, ["Start", "review", "gw", "End"]),
])
def test_camunda_style_model_runs(sessions, step, amount, rejected, waits, path):
    with sessions.begin() as s:
        result = deploy.deploy_files(s, {"c.bpmn": CAMUNDA_STYLE.encode()}, by="d")
        assert [v.process_id for v in result.created] == ["camunda_style"]
    step()
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "camunda_style", by="a", now=T0,
                                     data={"amount": amount, "rejected": rejected, "owner": {"name": "anna"}}).id
    step()
    with sessions.begin() as s:
        [task] = runtime.instance_summary(s, iid)["tasks"]
        assert (task["element_id"], task["assignee"]) == ("review", "anna")
        runtime.complete_task(s, task["id"], {}, by="anna", now=T0)
    step()
    if waits:
        with sessions.begin() as s:
            summary = runtime.instance_summary(s, iid)
            assert summary["status"] == "running"
            assert summary["timers"] == [{"element_id": "wait", "kind": "duration",
                                          "due_at": (T0 + timedelta(minutes=5)).isoformat()}]
        assert timers.fire_due_timers(sessions, now=T0 + timedelta(minutes=4)) == 0
        step()
        assert timers.fire_due_timers(sessions, now=T0 + timedelta(minutes=5)) == 1
        step()
    with sessions.begin() as s:
        assert runtime.instance_summary(s, iid)["status"] == "completed"
        assert _path(s, iid)[:len(path)] == path
        assert "_node" not in _all_text(s, iid) and "flow_" not in _all_text(s, iid)  # users see their ids


def test_camunda_style_model_runs_through_the_cli_each_step_a_new_process(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    polku = Path(sys.executable).parent / "polku"
    (tmp_path / "c.bpmn").write_text(CAMUNDA_STYLE)

    def run(*argv: str):
        out = subprocess.run([str(polku), "--json", *argv], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    assert run("deploy", str(tmp_path / "c.bpmn"))["created"][0]["process_id"] == "camunda_style"
    data = json.dumps({"amount": 2000, "rejected": False, "owner": {"name": "anna"}})
    inst = run("start", "camunda_style", "--data", data, "--by", "a")
    [task] = run("tasks", "--instance", str(inst["id"]))
    assert (task["element_id"], task["assignee"]) == ("review", "anna")
    run("complete", task["id"], "--by", "anna")
    assert [t["element_id"] for t in run("instance", str(inst["id"]))["timers"]] == ["wait"]
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    run("fire-timers", "--now", later)
    assert run("instance", str(inst["id"]))["status"] == "completed"
    history = run("history", str(inst["id"]))
    path = [e for ev in history if ev["kind"] == "path_taken" for e in ev["data"]["elements"]]
    assert path[:2] == ["Start", "gw"] and "_node" not in json.dumps(history)


# ---------------------------------------------------------------------------------------------
# Pre-processing is deterministic: deploy and every later re-parse see the same ids


def test_generated_ids_are_the_same_on_every_parse():
    tree = xmlcheck.parse_untrusted("c.bpmn", CAMUNDA_STYLE.encode())[0]
    first = prepare.prepare([("c.bpmn", "bpmn", tree)])
    second = prepare.prepare([("c.bpmn", "bpmn", tree)])
    ids = [[el.get("id") for el in p.documents[0][2].iter(etree.Element)] for p in (first, second)]
    assert ids[0] == ids[1]
    assert "flow_Start_to_review" in ids[0] and "flow_wait_to_End" in ids[0]
    assert first.original_ids == {"Start_node": "Start", "End_node": "End"}
    assert tree.getroot().find(".//{*}startEvent").get("id") == "Start"  # the stored file is untouched


def test_generated_flow_id_never_takes_an_id_in_use():
    text = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow sourceRef="s" targetRef="e" />
      <bpmn:endEvent id="e" /><bpmn:dataObject id="flow_s_to_e" />""")
    tree = xmlcheck.parse_untrusted("m.bpmn", text.encode())[0]
    ids = [el.get("id") for el in prepare.prepare([("m.bpmn", "bpmn", tree)]).documents[0][2].iter(etree.Element)]
    assert "flow_s_to_e_2" in ids and ids.count("flow_s_to_e") == 1


@pytest.mark.parametrize("reserved", ["Start", "End", "Root", "StartEventSplit", "StartEventJoin", "p.EndJoin",
                                      "t.BoundaryEventSplit", "t.BoundaryEventJoin"])
def test_ids_spiff_reserves_are_kept_for_the_user(reserved):
    text = model(f"""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="{reserved}" />
      <bpmn:userTask id="{reserved}" name="Work" /><bpmn:sequenceFlow id="f2" sourceRef="{reserved}" targetRef="e" />
      <bpmn:endEvent id="e" />""")
    checked = deploy.validate_files({"m.bpmn": text.encode()})
    assert checked.problems == []
    workflow = spiff.new_workflow(checked.parsed.bundles["p"])
    spiff.run_engine(workflow)
    assert [t.element_id for t in spiff.ready_user_tasks(workflow)] == [reserved]


# ---------------------------------------------------------------------------------------------
# Executable or not; every process that can be called is checked


CALLER = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="call" />
  <bpmn:callActivity id="call" calledElement="callee" /><bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="e" />
  <bpmn:endEvent id="e" />""", pid="caller")


def _callee(attrs: str) -> str:
    return model("""<bpmn:startEvent id="cs" /><bpmn:sequenceFlow id="cf1" sourceRef="cs" targetRef="ce" />
  <bpmn:endEvent id="ce" />
  <bpmn:userTask id="lost" name="Forgotten step" />""", pid="callee", attrs=attrs)


@pytest.mark.parametrize("attrs", ["", ' isExecutable="true"'])
def test_unconnected_task_in_a_called_process_is_named(attrs):
    [p] = problems_of(CALLER, _callee(attrs))
    assert (p.file, p.element, p.line) == ("m1.bpmn", "lost", 6)
    assert p.message == ("'Forgotten step' (userTask) cannot be reached from a start event through sequence "
                         "flows; the engine would drop it. Connect it or remove it.")


def test_calling_a_process_marked_not_executable_is_refused():
    [p] = problems_of(CALLER, _callee(' isExecutable="false"'))
    assert (p.file, p.element) == ("m0.bpmn", "call")
    assert "marked isExecutable=\"false\"" in p.message


def test_pool_without_is_executable_runs_by_spiffworkflow_rule(sessions):
    with sessions.begin() as s:
        created = deploy.deploy_files(s, {"c.bpmn": CAMUNDA_STYLE.encode()}, by="d").created
        assert [v.process_id for v in created] == ["camunda_style"]


def test_descriptive_pool_is_named_when_nothing_can_run():
    [p] = problems_of(model('<bpmn:task id="t" />', attrs=' isExecutable="false"'))
    assert p.element == "p" and "isExecutable=\"false\"" in p.message and "cannot run it" in p.message


def test_descriptive_pool_beside_a_running_one_is_not_read():
    other = model('<bpmn:businessRuleTask id="r" /><bpmn:dataStoreReference id="ref" dataStoreRef="ds" />',
                  pid="other", attrs=' isExecutable="false"')
    both = other.replace("</bpmn:definitions>", CAMUNDA_STYLE[CAMUNDA_STYLE.index('<bpmn:process'):]
                         .replace("</bpmn:definitions>\n", ""), 1) + "</bpmn:definitions>\n"
    both = both.replace('<bpmn:process id="other"', '<bpmn:dataStore id="ds" name="Ledger" />\n<bpmn:process id="other"')
    checked = deploy.validate_files({"m.bpmn": both.encode()})
    assert checked.problems == [] and set(checked.parsed.bundles) == {"camunda_style"}


# ---------------------------------------------------------------------------------------------
# Timer literals


@pytest.mark.parametrize("tag, value", [
    ("timeDuration", "PT5M"), ("timeDuration", "P14D"), ("timeCycle", "R3/PT1H"),
    ("timeCycle", "R/2026-01-01T00:00:00Z/P1D"), ("timeDate", "2026-12-24T12:00:00Z"),
    ("timeDuration", "'PT5M'"), ("timeDate", "due"), ("timeDuration", "${wait}"),
])
def test_timer_values_written_as_modelers_write_them_are_accepted(tag, value):
    text = model(f"""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
      <bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition><bpmn:{tag}>{value}</bpmn:{tag}>
      </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" /><bpmn:endEvent id="e" />""")
    assert problems_of(text) == []


@pytest.mark.parametrize("tag, value, wanted", [
    ("timeDuration", "PT5X", "a duration such as PT5M or P14D"),
    ("timeDate", "PT5M", "a date and time such as 2026-12-24T12:00:00Z"),
    ("timeDate", "2026-13-45T00:00:00Z", "a date and time such as 2026-12-24T12:00:00Z"),
    ("timeCycle", "PT1H", "a cycle such as R3/PT1H or R/2026-01-01T08:00:00Z/P1D"),
])
def test_invalid_timer_literal_is_refused_with_what_to_write(tag, value, wanted):
    text = model(f"""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
      <bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition><bpmn:{tag}>{value}</bpmn:{tag}>
      </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" /><bpmn:endEvent id="e" />""")
    [p] = problems_of(text)
    assert (p.element, p.line) == ("t", 5)
    assert p.message == f"The timer value {value} is not valid for {tag}: write {wanted}."


def test_cycle_literal_fires_each_hour_three_times(sessions, step):
    text = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="work" />
      <bpmn:userTask id="work" /><bpmn:boundaryEvent id="tick" attachedToRef="work" cancelActivity="false">
      <bpmn:timerEventDefinition><bpmn:timeCycle>R3/PT1H</bpmn:timeCycle></bpmn:timerEventDefinition>
      </bpmn:boundaryEvent><bpmn:sequenceFlow id="f3" sourceRef="tick" targetRef="note" />
      <bpmn:scriptTask id="note"><bpmn:script>fired = True</bpmn:script></bpmn:scriptTask>
      <bpmn:sequenceFlow id="f4" sourceRef="note" targetRef="e2" /><bpmn:endEvent id="e2" />
      <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="e" /><bpmn:endEvent id="e" />""", pid="cycle")
    with sessions.begin() as s:
        deploy.deploy_files(s, {"m.bpmn": text.encode()}, by="d")
        iid = runtime.start_instance(s, "cycle", by="a", now=T0).id
    step()
    fired = [timers.fire_due_timers(sessions, now=T0 + timedelta(hours=h, seconds=1)) for h in range(1, 6)]
    step()
    assert fired == [1, 1, 1, 0, 0]
    with sessions.begin() as s:
        assert runtime.instance_summary(s, iid)["status"] == "running"
        assert _path(s, iid)[:1] == ["s"]


# ---------------------------------------------------------------------------------------------
# JUEL conditions


def _gateway(condition: str) -> str:
    return model(f"""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="gw" />
      <bpmn:exclusiveGateway id="gw" default="f_no" />
      <bpmn:sequenceFlow id="f_yes" sourceRef="gw" targetRef="yes">
        <bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>
      <bpmn:sequenceFlow id="f_no" sourceRef="gw" targetRef="no" />
      <bpmn:endEvent id="yes" /><bpmn:endEvent id="no" />""")


@pytest.mark.parametrize("condition, data, taken", [
    ("${approved}", {"approved": True}, "yes"),
    ("${!approved}", {"approved": True}, "no"),
    ("${amount &gt; 1000 &amp;&amp; !rejected}", {"amount": 1500, "rejected": False}, "yes"),
    ("${amount gt 1000 and not rejected}", {"amount": 1500, "rejected": True}, "no"),
    ("${clarified == 'yes' || clarified eq \"maybe\"}", {"clarified": "maybe"}, "yes"),
    ("${empty notes}", {"notes": []}, "yes"),
    ("${not empty notes}", {"notes": ""}, "no"),
    ("${customer.city ne null &amp;&amp; customer.city eq 'Turku'}", {"customer": {"city": "Turku"}}, "yes"),
    ("${amount le 10 ? small : big}", {"amount": 5, "small": False, "big": True}, "no"),
    ("amount &gt; 1000", {"amount": 1500}, "yes"),
])
def test_juel_conditions_run_under_the_sandbox(condition, data, taken):
    checked = deploy.validate_files({"m.bpmn": _gateway(condition).encode()})
    assert checked.problems == []
    workflow = spiff.new_workflow(checked.parsed.bundles["p"], data)
    assert spiff.run_engine(workflow)[-1] == taken


@pytest.mark.parametrize("condition, part", [
    ("${execution.getVariable('approved')}", "'execution.…' uses Camunda's execution object"),
    ("${approvals.size() &gt; 2}", "'approvals.size(…)' is a method or function call"),
    ("#{bean.approved}", "deferred #{…} expression"),
    ("${fn:length(x) &gt; 1}", "'fn:…' is a function call"),
    ("${a instanceof b}", "the operator 'instanceof' is not supported"),
    ("${a} and ${b}", "text after the closing '}'"),
])
def test_unsupported_juel_is_refused_naming_the_part(condition, part):
    [p] = problems_of(_gateway(condition))
    assert p.element == "f_yes" and part in p.message and p.message.startswith("The condition '")


def test_assignee_template_with_unsupported_juel_is_refused():
    text = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
      <bpmn:userTask id="t" camunda:assignee="${task.getOwner()}" />
      <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" /><bpmn:endEvent id="e" />""")
    [p] = problems_of(text)
    assert p.element == "t" and "camunda:assignee" in p.message and "method or function call" in p.message


# ---------------------------------------------------------------------------------------------
# Parser errors become sentences


def _flow(node: str, extra: str = "") -> str:
    return model(f"""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />
      {node}<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e" /><bpmn:endEvent id="e" />""", extra=extra)


@pytest.mark.parametrize("text, element, phrase", [
    (_flow('<bpmn:task id="x" /><bpmn:boundaryEvent id="b" attachedToRef="x"><bpmn:compensateEventDefinition />'
           '</bpmn:boundaryEvent>'), "b", "is a compensation event; compensation is not supported"),
    (_flow('<bpmn:intermediateCatchEvent id="x"><bpmn:messageEventDefinition messageRef="nope" />'
           '</bpmn:intermediateCatchEvent>'), "x", "refers to message 'nope', which is not defined"),
    (_flow('<bpmn:endEvent id="x"><bpmn:errorEventDefinition errorRef="nope" /></bpmn:endEvent>'), "x",
     "refers to error 'nope'"),
    (_flow('<bpmn:intermediateThrowEvent id="x"><bpmn:signalEventDefinition signalRef="nope" />'
           '</bpmn:intermediateThrowEvent>'), "x", "refers to signal 'nope'"),
    (_flow('<bpmn:intermediateThrowEvent id="x"><bpmn:escalationEventDefinition escalationRef="nope" />'
           '</bpmn:intermediateThrowEvent>'), "x", "refers to escalation 'nope'"),
    (_flow('<bpmn:businessRuleTask id="x" />'), "x", "camunda:decisionRef is missing"),
    (_flow('<bpmn:complexGateway id="x" />'), "x", "complex gateway"),
    (_flow('<bpmn:intermediateThrowEvent id="x"><bpmn:linkEventDefinition name="L" /></bpmn:intermediateThrowEvent>'),
     "x", "link events are not supported"),
    (_flow('<bpmn:task id="x"><bpmn:standardLoopCharacteristics /></bpmn:task>'), "x",
     "A loopMaximum or loopCondition must be specified"),
    (_flow('<bpmn:subProcess id="x"><bpmn:task id="inner" /></bpmn:subProcess>'), "x",
     "has 0 start events; the engine needs exactly one start event in a subprocess"),
    (_flow('<bpmn:task id="x" /><bpmn:sequenceFlow id="f3" sourceRef="x" targetRef="e" />'), "x",
     "has several outgoing sequence flows"),
    (model('<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />'
           '<bpmn:endEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration>'
           '</bpmn:timerEventDefinition></bpmn:endEvent>'), "x",
     "'x' (endEvent) is a timer end event, which the engine does not support"),
])
def test_parser_problems_are_sentences_naming_the_element(text, element, phrase):
    problems = problems_of(text)
    assert any(p.element == element and p.line and phrase in p.message for p in problems), problems


def test_spiff_exceptions_are_explained_without_python_text():
    """Spiff's own failures, met when Polku's checks are bypassed, still read as sentences."""
    text = _flow('<bpmn:intermediateCatchEvent id="x"><bpmn:messageEventDefinition messageRef="nope" />'
                 '</bpmn:intermediateCatchEvent>')
    boundary = _flow('<bpmn:task id="x" /><bpmn:boundaryEvent id="b" attachedToRef="x">'
                     '<bpmn:compensateEventDefinition /></bpmn:boundaryEvent>')
    error = _flow('<bpmn:endEvent id="x"><bpmn:errorEventDefinition errorRef="nope" /></bpmn:endEvent>')
    messages = {}
    for name, source in (("message", text), ("compensation", boundary), ("error", error)):
        tree = xmlcheck.parse_untrusted("m.bpmn", source.encode())[0]
        [p] = spiff.parse_models([("m.bpmn", "bpmn", tree)]).problems
        messages[name] = (p.element, p.message)
    assert messages["message"] == ("x", ("'x' (intermediateCatchEvent) refers to a message that is not defined "
                                         "in the file (or is defined more than once): add a bpmn:message with "
                                         "that id."))
    assert messages["compensation"] == ("b", ("'b' (boundaryEvent) has no event type the engine supports "
                                              "(compensation and link events are not supported)."))
    assert messages["error"] == ("x", ("'x' (endEvent) refers to a message, signal, error or escalation that is "
                                       "not defined in the file: add the definition or fix the reference."))


def test_invalid_model_is_refused_as_a_whole(sessions):
    with sessions.begin() as s, pytest.raises(InvalidModel) as err:
        deploy.deploy_files(s, {"m.bpmn": _flow('<bpmn:complexGateway id="x" />').encode()}, by="d")
    assert [p.element for p in err.value.problems] == ["x"]


# ---------------------------------------------------------------------------------------------
# Fuzz: whatever a designer uploads, deploy answers in sentences, never with Python's own text

ROOT = Path(__file__).parents[2]
MIWG = Path("/work/shared/samples/miwg")
CORPUS = sorted([*ROOT.glob("tests/**/*.bpmn"), *ROOT.glob("tests/**/*.dmn"), *ROOT.glob("tests/**/*.xml"),
                 *ROOT.glob("bpmn/*.bpmn"), *ROOT.glob("bpmn/*.dmn"), *MIWG.glob("*.bpmn")])
PYTHON_TEXT = ("Error(", "Exception(", "Traceback", "object has no attribute", "unexpected keyword",
               "positional argument", "NoneType", "<Element", "b'<", "KeyError", "TypeError", "AssertionError",
               "NotImplemented", "is not JSON serializable", "__")
B = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


def _each(tree, *locals_):
    return [el for el in tree.iter(etree.Element) if etree.QName(el).localname in locals_]


def _drop(tree, *locals_):
    for el in _each(tree, *locals_):
        el.getparent().remove(el)


def _set(tree, locals_, attr, value):
    for el in _each(tree, *locals_):
        el.set(attr, value)


def _text(tree, locals_, value):
    for el in _each(tree, *locals_):
        el.text = value


def _rename_first(tree, local, new):
    found = _each(tree, local)
    if found:
        old = found[0].get("id")
        for el in tree.iter(etree.Element):
            for key, val in el.attrib.items():
                if val == old:
                    el.set(key, new)
            if el.text == old:
                el.text = new


def _add_child(tree, locals_, xml):
    """Add an element where the schema wants it: last, but before a script or rendering."""
    for el in _each(tree, *locals_):
        later = [i for i, c in enumerate(el) if etree.QName(c).localname in ("script", "rendering")]
        el.insert(later[0] if later else len(el), etree.fromstring(xml))


MUTATIONS = {
    "definitions removed": lambda t: _drop(t, "message", "signal", "error", "escalation"),
    "references dangle": lambda t: [_set(t, (f"{kind}EventDefinition",), f"{kind}Ref", "nope")
                                    for kind in ("message", "signal", "error", "escalation")],
    "no start events": lambda t: _drop(t, "startEvent"),
    "compensation everywhere": lambda t: _add_child(
        t, ("boundaryEvent", "intermediateThrowEvent", "startEvent"), f'<compensateEventDefinition xmlns="{B[1:-1]}"/>'),
    "reserved ids": lambda t: [_rename_first(t, "startEvent", "Start"), _rename_first(t, "endEvent", "End"),
                               _rename_first(t, "userTask", "Root")],
    "flows without ids": lambda t: [el.attrib.pop("id") for el in _each(t, "sequenceFlow")],
    "references removed": lambda t: [el.attrib.pop(a) for el in t.iter(etree.Element) for a in list(el.attrib)
                                     if a in ("calledElement", "{http://camunda.org/schema/1.0/bpmn}decisionRef")],
    "bad conditions": lambda t: _text(t, ("conditionExpression",), "${execution.getVariable('x') &&}"),
    "xpath conditions": lambda t: _text(t, ("conditionExpression", "loopCondition"), "bpmn:getDataObject('x') = 1"),
    "bad timers": lambda t: [_text(t, ("timeDuration",), "PT5X"), _text(t, ("timeDate",), "2026-02-30"),
                             _text(t, ("timeCycle",), "R/nonsense(")],
    "empty loops": lambda t: _add_child(t, ("userTask", "task", "scriptTask"),
                                        f'<standardLoopCharacteristics xmlns="{B[1:-1]}"/>'),
    "empty multi-instance": lambda t: _add_child(t, ("userTask", "task"),
                                                 f'<multiInstanceLoopCharacteristics xmlns="{B[1:-1]}"/>'),
    "flows cut": lambda t: _drop(t, "sequenceFlow"),
    "not executable": lambda t: _set(t, ("process",), "isExecutable", "false"),
}


def _assert_sentences(problems, where):
    for p in problems:
        assert len(p.message) > 15 and not any(bad in p.message for bad in PYTHON_TEXT), (where, p)


def test_the_corpus_is_here():
    assert len([p for p in CORPUS if p.parent == MIWG]) == 21 and len(CORPUS) > 60


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(p.parents[1])) for p in CORPUS])
def test_deploying_any_file_answers_in_sentences(path):
    _assert_sentences(deploy.validate_files({path.name: path.read_bytes()}).problems, path.name)


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_deploying_broken_variants_answers_in_sentences(mutation):
    for path in (p for p in CORPUS if p.suffix == ".bpmn"):
        tree = xmlcheck.parse_untrusted(path.name, path.read_bytes(), max_bytes=1 << 30)[0]
        if tree is None:
            continue
        MUTATIONS[mutation](tree)
        content = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
        _assert_sentences(deploy.validate_files({path.name: content}).problems, f"{path.name}: {mutation}")


# ---------------------------------------------------------------------------------------------
# The JUEL translation itself


@pytest.mark.parametrize("text, python", [
    ("${approved}", "approved"),
    ("${ amount > 1000 && !rejected }", "((amount > 1000) and (not rejected))"),
    ("${!approved == true}", "((not approved) == True)"),
    ("${a || b && c}", "(a or (b and c))"),
    ("${x div 2 mod 3 + 1 * -y}", "(((x / 2) % 3) + (1 * (-y)))"),
    ("${empty x.y}", "(x['y'] in (None, '', [], {}))"),
    ("${a[0].b ge 1}", "(a[0]['b'] >= 1)"),
    ("${n le 1 ? 'one' : \"many\"}", "('one' if (n <= 1) else 'many')"),
    ("${note == 'a && b || !c'}", "(note == 'a && b || !c')"),
    ("${note eq 'it\\'s'}", "(note == \"it's\")"),
    ("${x ne null}", "(x != None)"),
    ("amount > 1000 and not rejected", "amount > 1000 and not rejected"),
])
def test_juel_is_translated_with_its_own_precedence(text, python):
    assert juel.translate(text) == python


def test_juel_translation_evaluates_like_juel():
    names = {"approved": False, "note": "it's", "items": [], "n": 3}
    cases = {"${!approved == true}": True, "${note eq 'it\\'s' && empty items}": True,
             "${n gt 2 ? 'big' : 'small'}": "big", "${not empty note}": True}
    for text, expected in cases.items():
        assert sandbox.evaluate(juel.translate(text), dict(names)) == expected, text


@pytest.mark.parametrize("text", ["${execution.getVariable('x')}", "${x.size()}", "${f(1)}", "${fn:f(1)}",
                                  "#{bean}", "${a} text", "${a", "${a +}", "${a @ b}", "${class}",
                                  "${a instanceof b}", "${a ? b}", "${$x}"])
def test_unsupported_juel_raises_unsupported(text):
    with pytest.raises(juel.Unsupported):
        juel.translate(text)


# ---------------------------------------------------------------------------------------------
# Error and escalation start events of event subprocesses are read (SpiffWorkflow's parser skips them)


@pytest.mark.parametrize("kind", ["error", "escalation"])
def test_event_subprocess_waits_for_its_error_or_escalation(sessions, step, kind):
    text = model(f"""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="work" />
      <bpmn:userTask id="work" /><bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="boom" />
      <bpmn:endEvent id="boom"><bpmn:{kind}EventDefinition {kind}Ref="sig" /></bpmn:endEvent>
      <bpmn:subProcess id="handler" triggeredByEvent="true">
        <bpmn:startEvent id="caught"><bpmn:{kind}EventDefinition {kind}Ref="sig" /></bpmn:startEvent>
        <bpmn:sequenceFlow id="f3" sourceRef="caught" targetRef="fix" /><bpmn:userTask id="fix" />
        <bpmn:sequenceFlow id="f4" sourceRef="fix" targetRef="fixed" /><bpmn:endEvent id="fixed" />
      </bpmn:subProcess>""", pid="ev", extra=f'<bpmn:{kind} id="sig" name="Boom" {kind}Code="B1" />\n')
    with sessions.begin() as s:
        deploy.deploy_files(s, {"m.bpmn": text.encode()}, by="d")
        iid = runtime.start_instance(s, "ev", by="a", now=T0).id
    step()
    with sessions.begin() as s:
        [task] = [t for t in runtime.instance_summary(s, iid)["tasks"] if t["state"] == "ready"]
        assert task["element_id"] == "work"  # the event subprocess does not start with the process
        runtime.complete_task(s, task["id"], {}, by="a", now=T0)
    step()
    with sessions.begin() as s:
        ready = [t["element_id"] for t in runtime.instance_summary(s, iid)["tasks"] if t["state"] == "ready"]
        assert ready == ["fix"] and "caught" in _path(s, iid)


def test_error_start_event_outside_an_event_subprocess_is_refused():
    text = model("""<bpmn:startEvent id="s"><bpmn:errorEventDefinition errorRef="err" /></bpmn:startEvent>
      <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="e" /><bpmn:endEvent id="e" />""",
                 extra='<bpmn:error id="err" name="Boom" errorCode="B1" />\n')
    [p] = problems_of(text)
    assert p.element == "s" and "error start events only start event subprocesses" in p.message


def test_signal_end_event_throws_its_signal(sessions, step):
    waiter = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="wait" />
      <bpmn:intermediateCatchEvent id="wait"><bpmn:signalEventDefinition signalRef="sig" /></bpmn:intermediateCatchEvent>
      <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="e" /><bpmn:endEvent id="e" />""", pid="waiter",
                   extra='<bpmn:signal id="sig" name="Done" />\n')
    thrower = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="work" />
      <bpmn:userTask id="work" /><bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="done" />
      <bpmn:endEvent id="done"><bpmn:signalEventDefinition signalRef="sig" /></bpmn:endEvent>""", pid="thrower",
                    extra='<bpmn:signal id="sig" name="Done" />\n')
    with sessions.begin() as s:
        deploy.deploy_files(s, {"w.bpmn": waiter.encode(), "t.bpmn": thrower.encode()}, by="d")
        waiting = runtime.start_instance(s, "waiter", by="a", now=T0).id
        throwing = runtime.start_instance(s, "thrower", by="a", now=T0).id
    step()
    with sessions.begin() as s:
        [task] = runtime.instance_summary(s, throwing)["tasks"]
        runtime.complete_task(s, task["id"], {}, by="a", now=T0)
    step()
    with sessions.begin() as s:
        assert runtime.instance_summary(s, throwing)["status"] == "completed"
        assert runtime.instance_summary(s, waiting)["status"] == "completed"


def test_message_payload_expression_is_checked():
    text = model("""<bpmn:startEvent id="s" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x" />
      <bpmn:endEvent id="x"><bpmn:messageEventDefinition messageRef="m" camunda:expression="${a.b()}" />
      </bpmn:endEvent>""", extra='<bpmn:message id="m" name="Go" />\n')
    [p] = problems_of(text)
    assert p.element == "x" and p.message.startswith("The message payload (camunda:expression) '${a.b()}'")


def test_empty_pool_without_is_executable_is_left_out():
    customer = '<bpmn:process id="customer_pool" />\n'
    both = CAMUNDA_STYLE.replace("</bpmn:definitions>", customer + "</bpmn:definitions>")
    checked = deploy.validate_files({"m.bpmn": both.encode()})
    assert checked.problems == [] and set(checked.parsed.bundles) == {"camunda_style"}
    [p] = problems_of(model("", pid="empty", attrs=""))
    assert p.element == "empty" and p.message == "Process 'empty' has no flow elements: there is nothing to run."
