"""Deploy validation names file, line and element; versions change only with content."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import deploy as deploy_mod
from engine import runtime
from engine.errors import InvalidModel

MODELS = Path(__file__).parent / "bpmn"
ORDER = (MODELS / "order.bpmn").read_text()


def _problems(sessions, text: str, name: str = "x.bpmn"):
    with sessions.begin() as s, pytest.raises(InvalidModel) as err:
        deploy_mod.deploy_files(s, {name: text.encode()}, by="d")
    with sessions.begin() as s:
        assert deploy_mod.list_versions(s) == []
    return err.value.problems


def test_redeploying_unchanged_files_creates_no_version(sessions, deploy):
    assert deploy("order.bpmn") == [("order", 1)]
    assert deploy("order.bpmn") == []


def test_changed_process_gets_new_version_and_running_instance_stays(sessions, deploy):
    deploy("order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="a", data={"customer": "Acme", "amount": 5}).id
    changed = ORDER.replace('name="Review order"', 'name="Review the order"')
    with sessions.begin() as s:
        result = deploy_mod.deploy_files(s, {"order.bpmn": changed.encode()}, by="d")
        assert [(v.process_id, v.version) for v in result.created] == [("order", 2)]
    with sessions.begin() as s:
        assert runtime.instance_summary(s, iid)["version"] == 1
        assert runtime.instance_summary(s, iid)["tasks"][0]["name"] == "Review order"
        new = runtime.start_instance(s, "order", by="a", data={"customer": "Acme", "amount": 5}).id
        assert runtime.instance_summary(s, new)["tasks"][0]["name"] == "Review the order"


def test_unreachable_task_is_named(sessions):
    text = ORDER.replace("</bpmn:process>", '<bpmn:task id="orphan" name="Forgotten step" /></bpmn:process>')
    [p] = _problems(sessions, text)
    assert p.element == "orphan" and p.line and "cannot be reached" in p.message


def test_sequence_flow_without_id_is_accepted(sessions):
    text = ORDER.replace('<bpmn:sequenceFlow id="f5" sourceRef', '<bpmn:sequenceFlow sourceRef')
    assert deploy_mod.validate_files({"x.bpmn": text.encode()}).problems == []


def test_unsafe_condition_is_refused_at_deploy(sessions):
    text = ORDER.replace("amount is not None and amount &gt; 1000", "__import__('os').system('id')")
    problems = _problems(sessions, text)
    assert any(p.element == "f_large" and "condition" in p.message for p in problems)


def test_invalid_unquoted_timer_literal_gets_a_clear_message(sessions):
    text = (MODELS / "reminder.bpmn").read_text().replace("'P14D'", "P14X")
    [p] = _problems(sessions, text)
    assert p.message == "The timer value P14X is not valid for timeDuration: write a duration such as PT5M or P14D."
    assert p.element == "late" and p.line == 16


def test_dangling_call_activity_and_decision_refs(sessions):
    text = ORDER.replace('<bpmn:task', '<bpmn:task').replace(
        "</bpmn:process>",
        '<bpmn:callActivity id="call_x" calledElement="nowhere" /><bpmn:businessRuleTask id="rule_x" '
        'camunda:decisionRef="no_table" /></bpmn:process>')
    problems = _problems(sessions, text)
    assert {p.element for p in problems} >= {"call_x", "rule_x"}
    assert any("nowhere" in p.message for p in problems)


@pytest.mark.parametrize("payload, phrase", [
    ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>', "DOCTYPE"),
    ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>', "DOCTYPE"),
    ("<bpmn:definitions", "well-formed"),
    ("", "empty"),
])
def test_hostile_or_broken_xml_is_refused(sessions, payload, phrase):
    problems = _problems(sessions, payload)
    assert any(phrase.lower() in p.message.lower() for p in problems), problems


def test_bad_form_constraint_is_reported(sessions):
    text = ORDER.replace('name="maxlength" config="20"', 'name="maxlength" config="twenty"')
    problems = _problems(sessions, text)
    assert any("note" in p.message and p.element == "review" for p in problems)


def test_a_file_deploys_alone_with_what_it_calls_resolved_transitively(sessions):
    shipped = Path(__file__).parents[2] / "bpmn"
    files = {p.name: p.read_bytes() for p in shipped.iterdir() if p.suffix in (".bpmn", ".dmn")}
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, files, by="d")
    changed = files["customer_service.bpmn"].replace(b'name="Yritysasiakkaan palveluprosessi"', b'name="Customer service"')
    assert changed != files["customer_service.bpmn"]
    with sessions.begin() as s:
        result = deploy_mod.deploy_files(s, {"customer_service.bpmn": changed}, by="d")
        assert [(v.process_id, v.version) for v in result.created] == [("customer_service", 2)]


LONG_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_long" targetNamespace="http://polku.test/long">
  <bpmn:message id="m" name="{message}" />
  <bpmn:process id="long_p" name="{process}" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="lane" name="{lane}"><bpmn:flowNodeRef>work</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition id="t"><bpmn:timeCycle>{cycle}</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:startEvent>
    <bpmn:userTask id="{task}" name="Work" camunda:candidateGroups="{group}">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:serviceTask id="ext" camunda:type="external" camunda:topic="{topic}">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:serviceTask>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m" /></bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="{task}" />
    <bpmn:sequenceFlow id="f2" sourceRef="{task}" targetRef="ext" />
    <bpmn:sequenceFlow id="f3" sourceRef="ext" targetRef="wait" />
    <bpmn:sequenceFlow id="f4" sourceRef="wait" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
FITS = {"message": "m" * 200, "process": "p" * 200, "lane": "l" * 200, "cycle": "R/2026-01-01T00:00:00Z/P1D",
        "task": "w" * 200, "group": "g" * 40, "topic": "t" * 200}


def test_ids_and_names_that_fit_their_columns_deploy():
    xml = LONG_MODEL.format(**{**FITS, "cycle": "R/2026-01-01T00:00:00Z/PT" + "0" * 271 + "1H"})  # 300 characters
    assert deploy_mod.validate_files({"f" * 195 + ".bpmn": xml.encode()}).problems == []


@pytest.mark.parametrize("key, length, words", [
    ("message", 201, "The name has 201 characters; Polku keeps at most 200."),
    ("process", 250, "The name has 250 characters"),
    ("lane", 201, "The name has 201 characters"),
    ("task", 201, "The id has 201 characters"),
    ("group", 41, "The candidate group 'gggg"),
    ("topic", 201, "The camunda:topic has 201 characters"),
    ("cycle", 301, "The timer start event's timeCycle has 301 characters; Polku keeps at most 300."),
])
def test_a_text_longer_than_polku_keeps_is_named_at_deploy_with_its_line(key, length, words):
    value = "R/2026-01-01T00:00:00Z/PT" + "0" * (length - 27) + "1H" if key == "cycle" else key[0] * length
    xml = LONG_MODEL.format(**{**FITS, key: value})
    [problem] = deploy_mod.validate_files({"long.bpmn": xml.encode()}).problems
    assert problem.file == "long.bpmn" and problem.line is not None and words in problem.message


def test_a_file_name_longer_than_polku_keeps_is_named():
    [problem] = deploy_mod.validate_files({"f" * 196 + ".bpmn": LONG_MODEL.format(**FITS).encode()}).problems
    assert "The file's name has 201 characters; at most 200 can be kept." in problem.message
