"""Deploy: validate a set of .bpmn/.dmn files and store new process versions.

Validation runs in stages and reports every problem as file, line, element and a sentence:
untrusted-XML checks and the OMG XSDs (`engine.xmlcheck`), references (call activities, DMN
decisions), SpiffWorkflow's parser (translated), completeness (flow nodes Spiff silently drops),
forms, and every expression compiled under the restricted evaluator. Nothing is stored unless
every file is clean. A process gets a new version only when its content, or the content of a
process or decision it uses, changed; running instances stay on their version.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, cast

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, make_transient_to_detached

from . import audit, forms, juel, lru, model_texts, prepare, sandbox, spiff, xmlcheck
from .db import column_length
from .errors import InvalidModel, Problem, VersionNotFound
from .models import Deployment, ExternalTask, ModelFile, ModelKind, ProcessVersion, Task
from .outreach_models import StartSchedule

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = forms.CAMUNDA
FLOW_NODES = {
    "task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask", "receiveTask",
    "manualTask", "callActivity", "subProcess", "transaction", "adHocSubProcess", "startEvent",
    "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
}
SUPERVISOR_LANES = ("supervisor", "esimies", "palveluesimies")


def _b(tag: str) -> str:
    return f"{{{BPMN}}}{tag}"


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


@dataclass
class Checked:
    """The outcome of validating a set of files: parsed documents, specs and problems."""

    documents: list[tuple[str, str, etree._ElementTree]] = field(default_factory=list)
    parsed: spiff.ParseResult | None = None
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Validation


def validate_files(files: dict[str, bytes], *, max_bytes: int = xmlcheck.MAX_BYTES,
                   context: dict[str, bytes] | None = None) -> Checked:
    """Validate model files (name -> bytes); `context` files are used to resolve references only."""
    checked = Checked()
    if not files:
        checked.problems.append(Problem("(upload)", None, None, "No files were given to deploy."))
        return checked
    for name, content in {**(context or {}), **files}.items():
        base = os.path.basename(name)
        if not base.lower().endswith((".bpmn", ".dmn", ".xml")):
            checked.problems.append(Problem(base, None, None, "Only .bpmn and .dmn files can be deployed."))
            continue
        tree, kind, problems = xmlcheck.check_file(base, content, max_bytes=max_bytes)
        checked.problems.extend(problems)
        if tree is not None and kind is not None and not problems:
            checked.documents.append((base, kind, tree))
    for base, _kind, tree in checked.documents:
        checked.problems.extend(_length_problems(base, tree))
    if checked.problems:
        return checked
    checked.problems.extend(_reference_problems(checked.documents))
    if checked.problems:
        return checked
    checked.parsed = spiff.parse_models(checked.documents)
    checked.problems.extend(checked.parsed.problems)
    for name, kind, tree in checked.documents:
        if kind == "bpmn":
            checked.problems.extend(_bpmn_problems(name, tree, checked.parsed))
        else:
            checked.problems.extend(_dmn_problems(name, tree))
    if not checked.parsed.bundles and not checked.problems and not any(k == "dmn" for _, k, _ in checked.documents):
        checked.problems.extend(_not_executable(checked.documents) or [Problem(
            next(iter(files)), None, None, "The files contain no executable process (isExecutable=\"true\").")])
    return checked


# What Polku keeps of a model in columns of a fixed length (the database refuses a longer text, PostgreSQL
# at once): ids (of tasks, timers, message waits, incidents, history entries) and names (of processes,
# tasks, lanes, messages, signals) 200 characters, an external task's topic 200, a candidate group (the
# task's inbox role) 40, a timer start event's date or cycle 300, a file's name 200.
ID_MAX, NAME_MAX, ROLE_MAX = (column_length(Task, c) for c in ("element_id", "name", "candidate_role"))
TOPIC_MAX, SCHEDULE_MAX = column_length(ExternalTask, "topic"), column_length(StartSchedule, "expression")
FILENAME_MAX = column_length(ModelFile, "filename")


def _length_problems(name: str, tree: etree._ElementTree) -> list[Problem]:
    """Name each id, name, topic, candidate group and timer start text longer than Polku can keep."""
    problems = []
    if len(name) > FILENAME_MAX:
        problems.append(Problem(name[:60] + "…", None, None, f"The file's name has {len(name):,} characters; "
                                f"at most {FILENAME_MAX} can be kept. Rename the file."))

    def too_long(el: etree._Element, what: str, text: str, limit: int) -> None:
        if len(text) > limit:
            problems.append(Problem(name, el.sourceline, (el.get("id") or "")[:60] or None,
                                    f"The {what} has {len(text):,} characters; Polku keeps at most {limit}."))

    for el in tree.getroot().iter(etree.Element):
        if "/MODEL" not in (etree.QName(el).namespace or ""):
            continue  # diagram interchange (shapes, edges): drawn, never stored
        too_long(el, "id", el.get("id") or "", ID_MAX)
        too_long(el, "name", el.get("name") or "", NAME_MAX)
        too_long(el, "camunda:topic", el.get(f"{{{CAMUNDA}}}topic") or "", TOPIC_MAX)
        for group in (el.get(f"{{{CAMUNDA}}}candidateGroups") or "").split(","):
            too_long(el, f"candidate group '{group.strip()[:40]}…'", group.strip(), ROLE_MAX)
        event = el.getparent().getparent() if _local(el) in ("timeDate", "timeCycle") else None
        if event is not None and _local(event) == "startEvent":
            too_long(el, f"timer start event's {_local(el)}", (el.text or "").strip(), SCHEDULE_MAX)
    return problems


def _not_executable(documents: list[tuple[str, str, etree._ElementTree]]) -> list[Problem]:
    """Name each process that is descriptive only (not marked executable)."""
    return [Problem(name, proc.sourceline, proc.get("id"),
                    f"Process '{proc.get('name') or proc.get('id')}' is marked isExecutable=\"false\": it "
                    "describes work but the engine cannot run it (set isExecutable=\"true\" to run it)."
                    if proc.get("isExecutable") == "false" else
                    f"Process '{proc.get('name') or proc.get('id')}' has no flow elements: there is nothing to run.")
            for name, kind, tree in documents if kind == "bpmn" for proc in tree.getroot().iter(_b("process"))]


def _reference_problems(documents: list[tuple[str, str, etree._ElementTree]]) -> list[Problem]:
    executable = {p.get("id"): prepare.runs(p)
                  for _, k, t in documents if k == "bpmn" for p in t.getroot().iter(_b("process"))}
    processes = set(executable)
    executable_attr = {p.get("id"): p.get("isExecutable") for _, k, t in documents if k == "bpmn" for p in t.getroot().iter(_b("process"))}
    decisions = {d.get("id") for _, k, t in documents if k == "dmn"
                 for d in t.getroot().iter() if _local(d) == "decision"}
    problems = []
    for name, kind, tree in documents:
        if kind != "bpmn":
            continue
        running = [p for p in tree.getroot().iter(_b("process")) if executable[p.get("id")]]
        for el in (el for proc in running for el in proc.iter(_b("callActivity"))):
            target = el.get("calledElement")
            if not target:
                problems.append(Problem(name, el.sourceline, el.get("id"), "This call activity does not say which process it calls (calledElement is empty)."))
            elif target not in processes:
                problems.append(Problem(name, el.sourceline, el.get("id"), f"This call activity calls process '{target}', which is neither in these files nor deployed."))
            elif not executable[target]:
                problems.append(Problem(name, el.sourceline, el.get("id"), f"This call activity calls process '{target}', which " + ("is marked isExecutable=\"false\": mark that process executable" if executable_attr[target] == "false" else "has no flow elements") + " or call another one."))
        for el in (el for proc in running for el in proc.iter(_b("businessRuleTask"))
                   if el.get(f"{{{CAMUNDA}}}type") != "external"):  # an external one is a worker's task
            ref = el.get(f"{{{CAMUNDA}}}decisionRef")
            if not ref:
                problems.append(Problem(name, el.sourceline, el.get("id"), "This business rule task does not name its DMN decision (camunda:decisionRef is missing)."))
            elif ref not in decisions:
                problems.append(Problem(name, el.sourceline, el.get("id"), f"This business rule task uses DMN decision '{ref}', which is neither in these files nor deployed."))
        used_stores = {ref.get("dataStoreRef") for proc in running for ref in proc.iter(_b("dataStoreReference"))}
        for store in (s for s in tree.getroot().iter(_b("dataStore")) if s.get("id") in used_stores):
            problems.append(Problem(name, store.sourceline, store.get("id"), f"Data store '{store.get('name') or store.get('id')}' cannot be run: the engine has no implementation for data stores. Keep the data in process variables instead."))
        for part in tree.getroot().iter(_b("participant")):
            ref = part.get("processRef")
            if ref and ref not in processes:
                problems.append(Problem(name, part.sourceline, part.get("id"), f"Pool '{part.get('name') or part.get('id')}' refers to process '{ref}', which is not defined in these files."))
        problems.extend(_definition_problems(name, tree, executable))
    return problems


# Event definitions SpiffWorkflow reads on each kind of event; any other one it silently ignores.
_EVENT_DEFINITIONS = {
    "startEvent": {"message", "signal", "timer", "conditional", "error", "escalation"},
    "endEvent": {"message", "cancel", "error", "escalation", "terminate", "signal"},
    "intermediateCatchEvent": {"message", "signal", "timer", "conditional"},
    "intermediateThrowEvent": {"message", "signal", "escalation"},
    "boundaryEvent": {"cancel", "error", "escalation", "message", "signal", "timer", "conditional"},
}
_EVENT_REFERENCES = {"message": "messageRef", "signal": "signalRef", "error": "errorRef", "escalation": "escalationRef"}


def _definition_problems(name: str, tree: etree._ElementTree, executable: dict[str, bool]) -> list[Problem]:
    """Refuse what the engine would misread or cannot run: dangling event references, compensation,
    link events, complex gateways and event types SpiffWorkflow ignores."""
    root = tree.getroot()
    defined = {kind: {el.get("id") for el in root.iter(_b(kind))} for kind in _EVENT_REFERENCES}
    problems = []
    for proc in root.iter(_b("process")):
        if not executable.get(proc.get("id") or ""):
            continue
        for el in proc.iter():
            local = _local(el)
            label = f"'{el.get('name') or el.get('id')}' ({local})"

            def refuse(message: str, node: etree._Element = el) -> None:
                problems.append(Problem(name, node.sourceline, xmlcheck.element_id(node), message))

            if local == "complexGateway":
                refuse(f"{label} is a complex gateway, which the engine does not support: use an inclusive or exclusive gateway.")
            if el.get("isForCompensation") == "true":
                refuse(f"{label} is a compensation handler (isForCompensation); compensation is not supported by the engine.")
            if local in ("sendTask", "receiveTask") and el.get("messageRef") and el.get("messageRef") not in defined["message"]:
                refuse(f"{label} refers to message '{el.get('messageRef')}', which is not defined in this file: add a bpmn:message with that id.")
            if local not in _EVENT_DEFINITIONS:
                continue
            for definition in el:
                kind = _local(definition).removesuffix("EventDefinition")
                if not _local(definition).endswith("EventDefinition"):
                    continue
                ref_attr = _EVENT_REFERENCES.get(kind)
                ref = definition.get(ref_attr) if ref_attr else None
                if kind == "compensate":
                    refuse(f"{label} is a compensation event; compensation is not supported by the engine.")
                elif kind == "link":
                    refuse(f"{label} is a link event; link events are not supported by the engine: connect the two parts with a sequence flow.")
                elif local == "startEvent" and kind in ("error", "escalation") and el.getparent().get("triggeredByEvent") != "true":
                    refuse(f"{label} is an {kind} start event outside an event subprocess; {kind} start events only start event subprocesses.")
                elif kind not in _EVENT_DEFINITIONS[local]:
                    where = " in an event subprocess" if local == "startEvent" and el.getparent() is not proc else ""
                    article = "an" if kind[0] in "aeiou" else "a"
                    refuse(f"{label} is {article} {kind} {local.replace('Event', ' event').lower()}{where}, which the engine does not support.")
                elif ref and ref not in defined[kind]:
                    refuse(f"{label} refers to {kind} '{ref}', which is not defined in this file: add a bpmn:{kind} with that id or fix the reference.", definition)
    return problems


def _bpmn_problems(name: str, tree: etree._ElementTree, parsed: spiff.ParseResult) -> list[Problem]:
    problems: list[Problem] = []
    kept: set[str] = set()
    for bundle in parsed.bundles.values():
        kept |= bundle.element_ids()
    checked_ids = set(parsed.bundles)  # every process that runs: deployed ones and those they call
    for bundle in parsed.bundles.values():
        checked_ids |= set(bundle.subprocess_specs)
    for proc in tree.getroot().iter(_b("process")):
        if proc.get("id") not in checked_ids:
            continue
        for el in proc.iter():
            local = _local(el)
            if local in FLOW_NODES and el.get("id") and el.get("id") not in kept:
                label = el.get("name") or el.get("id")
                problems.append(Problem(name, el.sourceline, el.get("id"),
                                        f"'{label}' ({local}) cannot be reached from a start event through sequence flows; the engine would drop it. Connect it or remove it."))
            problems.extend(_element_problems(name, el, local))
    return problems


_TASK_WORDS = {"serviceTask": "service task", "sendTask": "send task", "businessRuleTask": "business rule task"}


def implementation_problem(el: etree._Element, local: str) -> str | None:
    """Say why Polku cannot run how a service, send or business rule task is implemented (None: it can).

    Polku runs no Java: `camunda:class`, `delegateExpression`, `expression` and connectors are
    refused; a service task needs `camunda:type="external"` with a topic, which workers fetch.
    """
    label = f"{_TASK_WORDS[local]} '{el.get('name') or el.get('id')}'"
    if el.get(f"{{{CAMUNDA}}}type") == "external":
        if not (el.get(f"{{{CAMUNDA}}}topic") or "").strip():
            return f"The {label} is external but names no camunda:topic: name the topic its workers fetch."
        return None
    for attr in ("class", "delegateExpression", "expression"):
        if el.get(f"{{{CAMUNDA}}}{attr}"):
            return (f"The {label} is implemented by camunda:{attr}, which Polku cannot run (it runs no Java): "
                    'use camunda:type="external" with a camunda:topic and a worker.')
    if el.find(f"{_b('extensionElements')}/{{{CAMUNDA}}}connector") is not None:
        return (f"The {label} uses a camunda:connector, which Polku cannot run: "
                'use camunda:type="external" with a camunda:topic and a worker.')
    if el.get(f"{{{CAMUNDA}}}type"):
        return (f"The {label} has camunda:type=\"{el.get(f'{{{CAMUNDA}}}type')}\", which Polku cannot run: "
                'use camunda:type="external" with a camunda:topic.')
    if local == "serviceTask":
        return (f"The {label} has no implementation Polku can run: "
                'use camunda:type="external" with a camunda:topic.')
    return None  # a send task sends its message; a business rule task calls its decision


def _element_problems(name: str, el: etree._Element, local: str) -> list[Problem]:
    problems = []

    def problem(message: str, node: etree._Element | None = None) -> None:
        node = node if node is not None else el
        problems.append(Problem(name, node.sourceline, el.get("id") or xmlcheck.element_id(node), message))

    if local in ("userTask", "startEvent"):
        _fields, form_problems = forms.parse_form(el)
        for text in form_problems:
            problem(f"Form: {text}.")
    if local in ("serviceTask", "sendTask", "businessRuleTask") and (why := implementation_problem(el, local)):
        problem(why)
    for attr in ("assignee", "dueDate", "candidateUsers"):
        value = el.get(f"{{{CAMUNDA}}}{attr}")
        if value and juel.is_template(value):
            _check_expr(value, f"the camunda:{attr} expression", problem)
    if local == "sequenceFlow":
        for cond in el.iter(_b("conditionExpression")):
            if (cond.text or "").strip():
                _check_expr(cond.text, "the condition", problem, cond)
    for definition in el.findall(_b("messageEventDefinition")):  # the payload a message carries
        if (payload := (definition.get(f"{{{CAMUNDA}}}expression") or "").strip()):
            _check_expr(payload, "the message payload (camunda:expression)", problem, definition)
    for tag, what in (("loopCondition", "the loop condition"), ("completionCondition", "the completion condition"),
                      ("loopCardinality", "the loop cardinality"), ("condition", "the condition")):
        for child in el.findall(f"*/{_b(tag)}"):
            if (child.text or "").strip():
                _check_expr(child.text, what, problem, child)
    if local == "scriptTask":
        fmt = (el.get("scriptFormat") or "python").lower()
        if fmt not in ("python", "py"):
            problem(f"Script format '{fmt}' is not supported; scripts are written in Python.")
        for script in el.iter(_b("script")):
            try:
                sandbox.check_script(script.text or "")
            except sandbox.SandboxViolation as err:
                problem(f"The script cannot run: {err}", script)
    for tag in ("timeDate", "timeDuration", "timeCycle"):
        for timer in el.findall(f"{_b('timerEventDefinition')}/{_b(tag)}"):
            text = (timer.text or "").strip()
            if not text:
                problem(f"The timer has an empty {tag}.", timer)
            elif not prepare.ISO_LITERAL.match(text):  # literals are checked by spiff.parse_models
                _check_expr(text, "the timer expression", problem, timer)
    return problems


def _check_expr(text: str, what: str, problem: Any, node: etree._Element | None = None) -> None:
    """Compile an expression (a ${…} one read as JUEL) under the sandbox; report why it cannot run."""
    try:
        sandbox.check_expression(juel.translate(text.strip()))
    except juel.Unsupported as err:
        problem(f"{what[0].upper()}{what[1:]} '{text.strip()}' cannot be used: {err}.", node)
    except sandbox.SandboxViolation as err:
        hint = (" (expressions are written in Python, or in JUEL as ${…}; other languages such as XPath "
                "or FEEL are not run)") if "syntax error" in str(err) else ""
        problem(f"{what[0].upper()}{what[1:]} '{text.strip()}' cannot be used: {err}{hint}", node)


def _dmn_problems(name: str, tree: etree._ElementTree) -> list[Problem]:
    problems: list[Problem] = []
    for el in tree.getroot().iter():
        local = _local(el)
        if local not in ("inputExpression", "inputEntry", "outputEntry"):
            continue
        text_el = next((c for c in el if _local(c) == "text"), None)
        text = (text_el.text or "").strip() if text_el is not None else ""
        if not text or text == "-":
            continue
        candidates = [text]
        if local == "inputEntry":
            text = re.sub(r"\?", "dmninputexpr", text)
            candidates = [text] if "dmninputexpr" in text else [text, f"dmninputexpr {text}"]
        errors = []
        for candidate in candidates:
            try:
                sandbox.check_expression(candidate)
                break
            except sandbox.SandboxViolation as err:
                errors.append(err)
        else:
            element = xmlcheck.element_id(el)
            problems.append(Problem(name, el.sourceline, element,
                                    f"The DMN cell '{text}' cannot be used: {errors[-1]}"))
    return problems


# ---------------------------------------------------------------------------------------------
# Hashing, catalogue, storing


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def _lane_of(proc: etree._Element) -> dict[str, str]:
    lanes = {}
    for lane in proc.iter(_b("lane")):
        for ref in lane.findall(_b("flowNodeRef")):
            lanes[(ref.text or "").strip()] = lane.get("name") or lane.get("id")
    return lanes


def role_for(lane: str | None, candidate_groups: str | None) -> str:
    """Return the inbox role of a user task from its candidate groups or its lane name."""
    if candidate_groups:
        return candidate_groups.split(",")[0].strip()
    if lane and any(word in lane.lower() for word in SUPERVISOR_LANES):
        return "supervisor"
    return "expert"


def _documentation(el: etree._Element) -> str | None:
    doc = el.find(_b("documentation"))
    return (doc.text or "").strip() if doc is not None and doc.text else None


def build_catalogue(proc: etree._Element) -> dict[str, dict[str, Any]]:
    """Describe every flow node of a process: name, type, lane, role, documentation, form."""
    lanes = _lane_of(proc)
    entries: dict[str, dict[str, Any]] = {}
    for el in proc.iter():
        local = _local(el)
        if local not in FLOW_NODES or not el.get("id"):
            continue
        entry: dict[str, Any] = {"type": local, "name": el.get("name") or el.get("id"), "lane": lanes.get(el.get("id"))}
        if local in ("userTask", "startEvent"):
            fields, _ = forms.parse_form(el)
            entry["form"] = [f.as_dict() for f in fields]
            entry["documentation"] = _documentation(el)
        if local == "userTask":
            entry["role"] = role_for(entry["lane"], el.get(f"{{{CAMUNDA}}}candidateGroups"))
            entry["assignee"] = el.get(f"{{{CAMUNDA}}}assignee")
            entry["due_date"] = el.get(f"{{{CAMUNDA}}}dueDate")
        if local == "startEvent":
            entry["plain"] = not any(_local(c).endswith("EventDefinition") for c in el)
            entry["top"] = el.getparent() is proc
        if local == "boundaryEvent" and _is_task_action(el):
            entry.update(_task_action(proc, el))
        entries[el.get("id")] = entry
    return entries


def _is_task_action(el: etree._Element) -> bool:
    """Tell whether a boundary event carries the camunda property taskAction=true (engine.actions)."""
    return any(p.get("name") == "taskAction" and (p.get("value") or "").strip().lower() == "true"
               for p in el.findall(f"{_b('extensionElements')}/{{{CAMUNDA}}}properties/{{{CAMUNDA}}}property"))


def _task_action(proc: etree._Element, el: etree._Element) -> dict[str, Any]:
    """Describe a task action: the task it sits on, its message, whether it interrupts, its form."""
    definition = el.find(_b("messageEventDefinition"))
    ref = definition.get("messageRef") if definition is not None else None
    root = proc.getroottree().getroot()
    message = next((m.get("name") or m.get("id") for m in root.iter(_b("message")) if m.get("id") == ref), None)
    fields, _ = forms.parse_form(el)
    return {"task_action": message is not None, "attached_to": el.get("attachedToRef"), "message": message,
            "interrupting": (el.get("cancelActivity") or "true").lower() != "false",
            "form": [f.as_dict() for f in fields], "documentation": _documentation(el)}


@dataclass
class DeployResult:
    """What a deployment stored: new versions and the processes left unchanged."""

    deployment_id: int | None
    created: list[ProcessVersion]
    unchanged: list[ProcessVersion]


def _references(name: str, content: bytes) -> tuple[set[str], set[str]] | None:
    """Return (ids defined, ids referred to) by one file, or None when it cannot be read."""
    tree, problems = xmlcheck.parse_untrusted(name, content)
    if tree is None or problems:
        return None
    defined: set[str] = set()
    wanted: set[str] = set()
    for el in tree.getroot().iter():
        local = _local(el)
        if local in ("process", "decision") and el.get("id"):
            defined.add(el.get("id"))
        elif local == "callActivity" and el.get("calledElement"):
            wanted.add(el.get("calledElement"))
        elif local == "businessRuleTask" and el.get(f"{{{CAMUNDA}}}decisionRef"):
            wanted.add(el.get(f"{{{CAMUNDA}}}decisionRef"))
    return defined, wanted


def _context_files(session: Session, files: dict[str, bytes]) -> dict[str, bytes]:
    """Find deployed files that define what these files refer to but lack, transitively."""
    defined: set[str] = set()
    wanted: set[str] = set()
    for name, content in files.items():
        refs = _references(name, content)
        if refs is None:
            return {}  # validation reports it
        defined |= refs[0]
        wanted |= refs[1]
    context: dict[str, bytes] = {}
    while missing := sorted(wanted - defined):
        for target in missing:
            defined.add(target)  # looked up once, found or not
            version = latest_version(session, target, required=False)
            file = session.get(ModelFile, version.file_id) if version is not None else None
            if file is None or file.filename in files or file.filename in context:
                continue
            context[file.filename] = file.content.encode()
            refs = _references(file.filename, context[file.filename])
            if refs is not None:
                defined |= refs[0]
                wanted |= refs[1]
    return context


def check_files(session: Session, files: dict[str, bytes], *, max_bytes: int = xmlcheck.MAX_BYTES) -> Checked:
    """Validate files as `deploy_files` would, with the deployed files they refer to as context."""
    return validate_files(files, max_bytes=max_bytes, context=_context_files(session, files))


def deploy_files(session: Session, files: dict[str, bytes], *, by: str,
                 max_bytes: int = xmlcheck.MAX_BYTES, note: str | None = None) -> DeployResult:
    """Validate and deploy files as one unit; only changed processes get new versions.

    Raises:
        InvalidModel: with every problem found; nothing is stored then.
    """
    context = _context_files(session, files)
    checked = validate_files(files, max_bytes=max_bytes, context=context)
    if checked.problems:
        raise InvalidModel(checked.problems)
    assert checked.parsed is not None
    hashes = _content_hashes(checked)
    plan = []
    for key, (kind, digest, filename, el) in sorted(hashes.items()):
        latest = latest_version(session, key, required=False)
        plan.append((key, kind, digest, filename, el, latest))
    changed = [p for p in plan if p[5] is None or p[5].content_hash != p[2]]
    unchanged = [p[5] for p in plan if p not in changed and p[5] is not None]
    if not changed:
        return DeployResult(None, [], unchanged)
    deployment = Deployment(created_by=by, note=note)
    session.add(deployment)
    session.flush()
    stored: dict[str, ModelFile] = {}
    trees = {name: tree for name, _kind, tree in checked.documents}
    for name, content in {**context, **files}.items():
        base = os.path.basename(name)
        tree = trees[base]
        if (tree.docinfo.encoding or "UTF-8").upper() in ("UTF-8", "UTF8", "US-ASCII"):
            text = content.decode("utf-8-sig")
        else:  # store as Unicode text without the foreign encoding declaration
            text = etree.tostring(tree, encoding="unicode")
        row = ModelFile(deployment_id=deployment.id, filename=base, content=text,
                        sha256=hashlib.sha256(text.encode()).hexdigest())
        session.add(row)
        stored[base] = row
    session.flush()
    created = []
    for key, kind, digest, filename, el, latest in changed:
        catalogue: dict[str, Any] = {}
        if kind == ModelKind.PROCESS:
            catalogue = _version_catalogue(checked, key)
        version = ProcessVersion(process_id=key, kind=kind, name=el.get("name") or key,
                                 version=(latest.version + 1) if latest else 1, content_hash=digest,
                                 deployment_id=deployment.id, file_id=stored[filename].id,
                                 created_by=by, catalogue=catalogue)
        session.add(version)
        session.flush()
        created.append(version)
        audit.append(session, audit.EventKind.DEPLOYED, actor=by, stream="models", version_id=version.id,
                     data={"process_id": key, "kind": str(kind), "version": version.version,
                           "deployment_id": deployment.id, "file": filename, "hash": digest})
    return DeployResult(deployment.id, created, unchanged)


def _content_hashes(checked: Checked) -> dict[str, tuple[ModelKind, str, str, etree._Element]]:
    """Hash each process and decision; a process's hash covers what it calls and decides with."""
    own: dict[str, tuple[ModelKind, str, str, etree._Element]] = {}
    deps: dict[str, set[str]] = {}
    for filename, kind, tree in checked.documents:
        root = tree.getroot()
        if kind == "dmn":
            for el in root.iter():
                if _local(el) == "decision" and el.get("id"):
                    own[el.get("id")] = (ModelKind.DECISION, hashlib.sha256(_c14n(el)).hexdigest(), filename, el)
            continue
        for proc in root.iter(_b("process")):
            pid = proc.get("id")
            if not pid:
                continue
            own[pid] = (ModelKind.PROCESS, hashlib.sha256(_c14n(proc)).hexdigest(), filename, proc)
            deps[pid] = {e.get("calledElement") for e in proc.iter(_b("callActivity"))} | \
                        {e.get(f"{{{CAMUNDA}}}decisionRef") for e in proc.iter(_b("businessRuleTask"))}

    def closure(key: str, seen: set[str]) -> str:
        _kind, digest, _f, _e = own[key]
        parts = [digest]
        for dep in sorted(d for d in deps.get(key, set()) if d and d in own and d not in seen):
            parts.append(closure(dep, seen | {key}))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    executable = set(checked.parsed.bundles) if checked.parsed else set()
    result = {}
    for key, (kind, _digest, filename, el) in own.items():
        if kind == ModelKind.PROCESS and key not in executable:
            continue
        result[key] = (kind, closure(key, set()), filename, el)
    return result


def _version_catalogue(checked: Checked, process_id: str) -> dict[str, Any]:
    assert checked.parsed is not None
    bundle = checked.parsed.bundles[process_id]
    wanted = {process_id, *bundle.subprocess_specs}
    processes: dict[str, dict[str, Any]] = {}
    start: dict[str, Any] = {"element_id": None, "form": []}
    for _name, kind, tree in checked.documents:
        if kind != "bpmn":
            continue
        for proc in tree.getroot().iter(_b("process")):
            if proc.get("id") in wanted:
                processes[proc.get("id")] = build_catalogue(proc)
            if proc.get("id") == process_id:
                for eid, entry in processes[process_id].items():
                    if entry["type"] == "startEvent" and entry.get("top") and entry.get("plain"):
                        start = {"element_id": eid, "form": entry.get("form", [])}
                        break
    catalogue = {"processes": processes, "start": start, "start_messages": _start_messages(checked, process_id)}
    names = {proc.get("name") or "" for _n, kind, tree in checked.documents if kind == "bpmn"
             for proc in tree.getroot().iter(_b("process")) if proc.get("id") in wanted}
    # the translations of this version's texts stay with it: a case shows the texts of its own version
    catalogue["translations"] = model_texts.stored_translations(model_texts.process_texts(catalogue) | names)
    return catalogue


def _start_messages(checked: Checked, process_id: str) -> list[str]:
    """Return the names of messages that start the process (top-level message start events)."""
    names = []
    for _name, kind, tree in checked.documents:
        if kind != "bpmn":
            continue
        messages = {m.get("id"): m.get("name") or m.get("id") for m in tree.getroot().iter(_b("message"))}
        for proc in tree.getroot().iter(_b("process")):
            if proc.get("id") != process_id:
                continue
            for start in proc.findall(_b("startEvent")):
                for definition in start.findall(_b("messageEventDefinition")):
                    if definition.get("messageRef") in messages:
                        names.append(messages[definition.get("messageRef")])
    return names


# ---------------------------------------------------------------------------------------------
# Looking versions up and turning them into specs


def latest_version(session: Session, process_id: str, *, required: bool = True) -> ProcessVersion | None:
    """Return the newest version of a process or decision.

    Raises:
        VersionNotFound: when `required` and there is none.
    """
    query = select(ProcessVersion).where(ProcessVersion.process_id == process_id) \
        .order_by(ProcessVersion.version.desc()).limit(1)
    found = session.scalars(query).first()
    if found is None and required:
        raise VersionNotFound(f"no process '{process_id}' is deployed")
    return found


def get_version(session: Session, process_id: str, version: int | None = None) -> ProcessVersion:
    """Return a given (or the latest) version of a process.

    Raises:
        VersionNotFound: no such process or version.
    """
    if version is None:
        found = latest_version(session, process_id)
        assert found is not None
        return found
    query = select(ProcessVersion).where(ProcessVersion.process_id == process_id, ProcessVersion.version == version)
    result = session.scalars(query).first()
    if result is None:
        raise VersionNotFound(f"process '{process_id}' has no version {version}")
    return result


def catalogue_processes(version: ProcessVersion, process_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Return the version's catalogue processes an element is looked up in: only `process_id`'s when given
    and in the version (a called process may reuse its caller's element ids), else all of them (task rows
    written before rows named their process)."""
    processes: dict[str, dict[str, Any]] = version.catalogue.get("processes", {})
    if process_id is not None and process_id in processes:
        return {process_id: processes[process_id]}
    return processes


def catalogue_entry(version: ProcessVersion, element_id: str, process_id: str | None = None) -> dict[str, Any]:
    """Return an element's catalogue entry (name, type, lane, role, form, …), {} if the version has none:
    that of `process_id` when given and it has the element, else the first process of the version that has it."""
    for elements in (catalogue_processes(version, process_id), version.catalogue.get("processes", {})):
        for entries in elements.values():
            if element_id in entries:
                return cast(dict[str, Any], entries[element_id])
    return {}


def list_versions(session: Session) -> list[dict[str, Any]]:
    """List processes with their versions, newest first."""
    pv = ProcessVersion  # the columns only: no version's catalogue JSON is decoded (pages call this per request)
    query = select(pv.id, pv.process_id, pv.kind, pv.name, pv.version, pv.created_by, pv.created_at) \
        .order_by(pv.process_id, pv.version.desc())
    return [{"id": v.id, "process_id": v.process_id, "kind": str(v.kind), "name": v.name, "version": v.version,
             "deployed_by": v.created_by, "deployed_at": v.created_at.isoformat()} for v in session.execute(query)]


_LAST_VERSION = select(func.max(ProcessVersion.id))
_NEWEST = select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("version")) \
    .where(ProcessVersion.kind == ModelKind.PROCESS).group_by(ProcessVersion.process_id).subquery()
_NEWEST_NAMES = select(ProcessVersion.id, ProcessVersion.process_id, ProcessVersion.name).join(
    _NEWEST, (ProcessVersion.process_id == _NEWEST.c.process_id) & (ProcessVersion.version == _NEWEST.c.version)) \
    .order_by(ProcessVersion.process_id)


def last_version_id() -> Any:
    """Return the highest version id as a scalar subquery (pages read it with the sign-in's row)."""
    return _LAST_VERSION.scalar_subquery()


def newest_process_versions(session: Session, last_version: int | None = None) -> list[tuple[int, str, str]]:
    """Return (version id, process id, name) of the newest version of each deployed process.

    Pages call this on every request: the answer is kept per database until a version is added
    (versions are only ever added, so the highest version id tells; that lookup is the primary key's).
    `last_version`: that id when the caller read it already in this transaction (`last_version_id`).
    """
    key = (database_key(session), (session.scalar(_LAST_VERSION) if last_version is None else last_version) or 0)
    found = _newest.get(key)
    if found is None:
        found = tuple((row.id, row.process_id, row.name) for row in session.execute(_NEWEST_NAMES))
        _newest[key] = found
    return list(found)


_newest: lru.BoundedCache[tuple[str, int], tuple[tuple[int, str, str], ...]] = lru.BoundedCache(
    "newest versions", max_entries=16, byte_share=0.005, sizeof=lambda rows: 200 + 150 * len(rows))


# Versions never change: each is read once per process (LRU, bounded: engine.lru / POLKU_CACHE_MB).
_versions: lru.BoundedCache[tuple[str, int], ProcessVersion] = lru.BoundedCache(
    "versions", max_entries=5000, byte_share=0.05, sizeof=lambda v: 2000 + 3 * len(str(v.catalogue or "")))


def database_key(session: Session) -> str:
    """Return which database a session works on (process-wide caches are kept per database)."""
    bind = session.get_bind()
    return str(bind.engine.url)


def version_by_id(session: Session, version_id: int) -> ProcessVersion:
    """Return a process version by id; versions never change, so each is read once per process."""
    key = (database_key(session), version_id)
    found = _versions.get(key)
    if found is None:
        row = session.get(ProcessVersion, version_id)
        if row is None:
            raise VersionNotFound(f"no process version {version_id}")
        # keep a detached copy that no session owns, so no rollback can expire it
        found = ProcessVersion(**{c.key: getattr(row, c.key) for c in sa_inspect(ProcessVersion).column_attrs})
        make_transient_to_detached(found)
        _versions[key] = found
    return found


def bundle_for(session: Session, version: ProcessVersion) -> spiff.SpecBundle:
    """Return the (cached) SpiffWorkflow specs of a process version."""
    return _bundle_cached(version.deployment_id, version.process_id,
                          _deployment_files(session, version.deployment_id))


_READS_OFFICE = re.compile(r"\boffice\s*(\[|\.get\b)")


def reads_office_settings(session: Session, version: ProcessVersion) -> bool:
    """Tell whether a version's model file reads the office settings (`office[...]`, `office.get(...)`).

    Only such processes get the engine's snapshot of the settings as variable `office` at their start
    (their call activities see it too); other cases and their external workers never carry it.
    """
    key = (database_key(session), version.file_id)
    found = _reads_office.get(key)
    if found is None:
        content = session.scalar(select(ModelFile.content).where(ModelFile.id == version.file_id)) or ""
        found = bool(_READS_OFFICE.search(content))
        _reads_office[key] = found
    return found


_reads_office: lru.BoundedCache[tuple[str, int], bool] = lru.BoundedCache(
    "reads office settings", max_entries=1000, byte_share=0.01, sizeof=lambda _found: 100)


# Deployed files never change, so a deployment's files are read once per database and process.
_files_by_deployment: lru.BoundedCache[tuple[str, int], tuple[tuple[str, str], ...]] = lru.BoundedCache(
    "deployment files", max_entries=1000, byte_share=0.1, sizeof=lambda files: sum(len(c) for _f, c in files) + 500)


def _deployment_files(session: Session, deployment_id: int) -> tuple[tuple[str, str], ...]:
    key = (database_key(session), deployment_id)
    found: tuple[tuple[str, str], ...] | None = _files_by_deployment.get(key)
    if found is None:
        rows = session.scalars(select(ModelFile).where(ModelFile.deployment_id == deployment_id)
                               .order_by(ModelFile.id))
        found = tuple((r.filename, r.content) for r in rows)
        _files_by_deployment[key] = found
    return found


# Parsed specs, by (deployment, process, files); a parsed spec holds roughly 20x its XML in memory.
_bundles: lru.BoundedCache[tuple[int, str, tuple[tuple[str, str], ...]],
                           tuple[tuple[tuple[str, str], ...], spiff.SpecBundle]] = lru.BoundedCache(
    "parsed specs", max_entries=256, byte_share=0.15, sizeof=lambda entry: 20 * sum(len(c) for _f, c in entry[0]))


def _bundle_cached(deployment_id: int, process_id: str, files: tuple[tuple[str, str], ...]) -> spiff.SpecBundle:
    key = (deployment_id, process_id, files)
    found = _bundles.get(key)
    if found is None:
        found = (files, _parse_bundle(deployment_id, process_id, files))
        _bundles[key] = found
    return found[1]


_bundle_cached.cache_clear = _bundles.clear  # type: ignore[attr-defined]  # as functools.lru_cache had it


def _parse_bundle(deployment_id: int, process_id: str, files: tuple[tuple[str, str], ...]) -> spiff.SpecBundle:
    documents = []
    for filename, content in files:
        tree, _problems = xmlcheck.parse_untrusted(filename, content.encode(), max_bytes=1 << 62)
        if tree is not None:
            documents.append((filename, xmlcheck.model_kind(tree), tree))
    parsed = spiff.parse_models(documents)
    if process_id not in parsed.bundles:
        raise VersionNotFound(f"process '{process_id}' cannot be built from deployment {deployment_id}")
    return parsed.bundles[process_id]
