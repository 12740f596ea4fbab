"""The shipped models in bpmn/: bpmnlint-clean, Polku's modelling conventions, complete diagrams.

bpmnlint and bpmn-js come from node_modules (`npm ci`); the SVG check drives Debian chromium.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "bpmn"
MODELS = sorted(MODEL_DIR.glob("*.bpmn"))
DECISIONS = sorted(MODEL_DIR.glob("*.dmn"))
BPMNLINT = ROOT / "node_modules" / ".bin" / "bpmnlint"
CHROMIUM = Path("/usr/bin/chromium")

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
DMN = "https://www.omg.org/spec/DMN/20191111/MODEL/"
DMNDI = "https://www.omg.org/spec/DMN/20191111/DMNDI/"
NS = {"bpmn": BPMN, "bpmndi": BPMNDI, "camunda": CAMUNDA, "dmn": DMN, "dmndi": DMNDI}

FLOW_NODES = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "scriptTask", "serviceTask", "businessRuleTask", "manualTask", "sendTask",
    "receiveTask", "callActivity", "subProcess", "transaction", "exclusiveGateway", "inclusiveGateway",
    "parallelGateway", "eventBasedGateway", "complexGateway",
}
ROLE_OF_LANE = {"Yrityspalvelujen asiantuntija": "expert", "Palveluesimies": "supervisor"}  # lane names
# bpmnlint:recommended warns about every inclusive gateway; the main process needs one ("one or
# several services run in parallel") and SpiffWorkflow runs it. Any other warning fails.
ACCEPTED_WARNINGS = {"no-inclusive-gateway"}
EXPECTED_PROCESSES = {
    "customer_service", "recruitment", "joint_purchase_training", "business_development",
    "change_security", "startup_services", "partner_referral", "aftercare", "annual_customer_plan",
}
BAD_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="urn:t">
  <bpmn:process id="bad" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:userTask id="unnamed" />
  </bpmn:process>
</bpmn:definitions>
"""


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def processes(tree: etree._ElementTree) -> list[etree._Element]:
    return tree.getroot().findall("bpmn:process", NS)


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """Run bpmnlint (with the repository's .bpmnlintrc) on `paths`; fail if it is not installed."""
    if not BPMNLINT.exists():
        pytest.fail(f"{BPMNLINT.relative_to(ROOT)} is missing: run `npm ci` in {ROOT}")
    return subprocess.run([str(BPMNLINT), *map(str, paths)], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def lint_findings(output: str) -> list[tuple[str, str, str]]:
    """Return (element, severity, rule) for every finding line of bpmnlint's report."""
    found = re.findall(r"^\s+(\S+)\s+(error|warning)\s+.*?\s(\S+)\s*$", output, flags=re.MULTILINE)
    return [(element, severity, rule) for element, severity, rule in found]


def model_ids() -> list[str]:
    return [p.name for p in MODELS]


def test_every_expected_process_ships_with_its_decisions():
    assert {p.stem for p in MODELS} == EXPECTED_PROCESSES
    assert {p.stem for p in DECISIONS} == {"service_selection", "aftercare_target"}


def test_bpmnlint_reports_no_errors_on_any_model():
    result = lint(*MODELS)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    findings = lint_findings(report)
    assert [f for f in findings if f[1] == "error"] == [], report
    assert {rule for _, severity, rule in findings if severity == "warning"} <= ACCEPTED_WARNINGS, report


def test_bpmnlint_fails_a_model_that_breaks_the_rules(tmp_path):
    bad = tmp_path / "bad.bpmn"
    bad.write_text(BAD_MODEL)
    result = lint(bad)
    assert result.returncode != 0
    rules = {rule for _, severity, rule in lint_findings(result.stdout) if severity == "error"}
    assert {"label-required", "no-bpmndi", "end-event-required"} <= rules, result.stdout


@pytest.mark.parametrize("path", MODELS, ids=model_ids())
def test_model_is_one_executable_process_named_after_its_file(path):
    tree = etree.parse(str(path))
    [process] = processes(tree)
    assert process.get("id") == path.stem
    assert process.get("isExecutable") == "true"
    for participant in tree.getroot().iterfind(".//bpmn:participant", NS):
        assert participant.get("processRef") == path.stem


@pytest.mark.parametrize("path", MODELS, ids=model_ids())
def test_every_user_task_has_a_form_documentation_and_the_role_of_its_lane(path):
    tree = etree.parse(str(path))
    [process] = processes(tree)
    lane_of = {ref.text.strip(): lane.get("name")
               for lane in process.iterfind(".//bpmn:lane", NS) for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    tasks = process.findall(".//bpmn:userTask", NS)
    assert tasks, "every model has user tasks"
    for task in tasks:
        tid = task.get("id")
        assert (task.get("name") or "").strip(), tid
        assert (task.findtext("bpmn:documentation", namespaces=NS) or "").strip(), tid
        fields = task.findall("bpmn:extensionElements/camunda:formData/camunda:formField", NS)
        assert fields, f"{tid} has no camunda:formData fields"
        top = task
        while top.getparent() is not process:
            top = top.getparent()
        group = task.get(f"{{{CAMUNDA}}}candidateGroups")
        assert group == ROLE_OF_LANE[lane_of[top.get("id")]], tid


@pytest.mark.parametrize("path", MODELS, ids=model_ids())
def test_every_element_is_drawn_in_the_diagram(path):
    tree = etree.parse(str(path))
    [process] = processes(tree)
    drawn_shapes = {s.get("bpmnElement") for s in tree.iterfind(".//bpmndi:BPMNShape", NS)}
    drawn_edges = {e.get("bpmnElement") for e in tree.iterfind(".//bpmndi:BPMNEdge", NS)}
    nodes = [el.get("id") for el in process.iter() if isinstance(el.tag, str) and local(el) in FLOW_NODES]
    nodes += [el.get("id") for el in tree.iterfind(".//bpmn:lane", NS)]
    nodes += [el.get("id") for el in tree.iterfind(".//bpmn:participant", NS)]
    flows = [el.get("id") for el in process.iterfind(".//bpmn:sequenceFlow", NS)]
    assert None not in flows, "every sequence flow needs an id"
    assert [n for n in nodes if n not in drawn_shapes] == []
    assert [f for f in flows if f not in drawn_edges] == []


@pytest.mark.parametrize("path", MODELS, ids=model_ids())
def test_every_forking_gateway_flow_has_a_condition_or_is_the_default(path):
    tree = etree.parse(str(path))
    [process] = processes(tree)
    flows = {f.get("id"): f for f in process.iterfind(".//bpmn:sequenceFlow", NS)}
    for gateway in process.iter(f"{{{BPMN}}}exclusiveGateway", f"{{{BPMN}}}inclusiveGateway"):
        outgoing = [flows[o.text.strip()] for o in gateway.iterfind("bpmn:outgoing", NS)]
        if len(outgoing) < 2:
            continue
        for flow in outgoing:
            has_condition = flow.find("bpmn:conditionExpression", NS) is not None
            assert has_condition or gateway.get("default") == flow.get("id"), flow.get("id")


def test_main_start_form_asks_for_business_id_channel_and_reason():
    tree = etree.parse(str(MODEL_DIR / "customer_service.bpmn"))
    [process] = processes(tree)
    [start] = [s for s in process.findall("bpmn:startEvent", NS) if s.find("bpmn:messageEventDefinition", NS) is None]
    fields = {f.get("id") for f in start.iterfind(".//camunda:formField", NS)}
    assert {"business_id", "contact_channel", "contact_reason"} <= fields


@pytest.mark.parametrize("path", DECISIONS, ids=[p.name for p in DECISIONS])
def test_decision_file_holds_one_drawn_decision_table(path):
    tree = etree.parse(str(path))
    [decision] = tree.getroot().findall("dmn:decision", NS)
    assert decision.get("id") == path.stem
    assert decision.find("dmn:decisionTable", NS) is not None
    drawn = {s.get("dmnElementRef") for s in tree.iterfind(".//dmndi:DMNShape", NS)}
    assert path.stem in drawn


@pytest.mark.browser
def test_exported_svg_diagrams_match_the_models():
    if not (ROOT / "node_modules" / "bpmn-js").exists():
        pytest.fail(f"bpmn-js is missing from node_modules: run `npm ci` in {ROOT}")
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run scripts/browser.sh")
    result = subprocess.run(["node", "scripts/export_svg.mjs", "--check"], check=False, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nrun: node scripts/export_svg.mjs"
