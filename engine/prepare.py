"""Rewrite BPMN documents before SpiffWorkflow parses them: the same way at deploy and at run time.

`engine.spiff.parse_models` calls `prepare` on copies of the parsed trees (the stored files are
never changed), so an instance re-parsed in a new OS process meets exactly the specs deploy
checked. The rewrites, each deterministic:

- an element id that SpiffWorkflow uses for its own task specs (`Start`, `End`, `Root`,
  `StartEventSplit`, `StartEventJoin`, `<id>.EndJoin`, `<id>.BoundaryEventSplit`,
  `<id>.BoundaryEventJoin`) gets a new id with every reference to it; `original_ids` maps it
  back, and `engine.spiff` gives the parsed task specs their original BPMN id again;
- a sequence flow without an id (valid BPMN, but SpiffWorkflow ignores it) gets one made of its
  source, target and position;
- a process marked isExecutable="false" (a pool that only describes work), or an empty one without
  the attribute, is left out, and so is a data store that no running process refers to (SpiffWorkflow refuses any data
  store it has no implementation for, even in a pool that only describes work);
- an ISO 8601 timer literal written as Camunda Modeler writes it (`PT5M`, `R3/PT1H`,
  `2026-12-24T12:00:00Z`) is put in quotes: SpiffWorkflow reads timer values as expressions.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
RESERVED_IDS = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
RESERVED_SUFFIXES = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin")
# what Camunda Modeler writes (a typo such as P14X counts too, so it is refused rather than read as a name)
ISO_LITERAL = re.compile(r"^(R\d*/)?(P(?=[A-Z.,]*\d)[0-9A-Z.,]+|\d{4}-\d{2}-\d{2}(T[0-9:.+\-Z]*)?)(/[0-9A-Z:.,+\-]+)?$")
_REFERENCE_ATTRIBUTES = ("sourceRef", "targetRef", "attachedToRef", "default", "activityRef", "bpmnElement")
_REFERENCE_TEXTS = frozenset({"incoming", "outgoing", "flowNodeRef", "sourceRef", "targetRef"})
_NOT_FLOW_NODES = frozenset({"process", "sequenceFlow", "dataObject", "dataObjectReference", "dataStoreReference",
                             "lane", "laneSet", "property", "ioSpecification", "dataInput", "dataOutput"})


@dataclass
class TimerLiteral:
    """An unquoted ISO 8601 timer value that was put in quotes."""

    filename: str
    element: etree._Element  # the timeDate/timeDuration/timeCycle element of the copy
    kind: str  # timeDate, timeDuration or timeCycle
    text: str


@dataclass
class Prepared:
    """Documents ready for SpiffWorkflow, and what was rewritten in them."""

    documents: list[tuple[str, str, etree._ElementTree]] = field(default_factory=list)
    original_ids: dict[str, str] = field(default_factory=dict)  # new id -> id in the file
    timer_literals: list[TimerLiteral] = field(default_factory=list)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def is_reserved(element_id: str) -> bool:
    """Tell whether SpiffWorkflow uses this id for a task spec of its own."""
    return element_id in RESERVED_IDS or element_id.endswith(RESERVED_SUFFIXES)


def prepare(documents: list[tuple[str, str, etree._ElementTree]]) -> Prepared:
    """Return copies of (filename, kind, tree) documents rewritten for SpiffWorkflow."""
    prepared = Prepared()
    for filename, kind, tree in documents:
        if kind != "bpmn":
            prepared.documents.append((filename, kind, tree))
            continue
        copied = copy.deepcopy(tree)
        ids = {el.get("id") for el in copied.iter(etree.Element) if el.get("id")}
        _name_flows(copied, ids)
        _drop_descriptive_processes(copied)
        _drop_idle_data_stores(copied)
        prepared.original_ids.update(_rename_reserved(copied, ids))
        prepared.timer_literals.extend(_quote_timer_literals(filename, copied))
        prepared.documents.append((filename, kind, copied))
    return prepared


def _unused(base: str, ids: set[str]) -> str:
    candidate, n = base, 1
    while candidate in ids:
        n += 1
        candidate = f"{base}_{n}"
    ids.add(candidate)
    return candidate


def _name_flows(tree: etree._ElementTree, ids: set[str]) -> None:
    """Give each sequence flow without an id one made of its source, target and position."""
    for flow in tree.getroot().iter(f"{{{BPMN}}}sequenceFlow"):
        if not flow.get("id"):
            flow.set("id", _unused(f"flow_{flow.get('sourceRef')}_to_{flow.get('targetRef')}", ids))


def runs(process: etree._Element) -> bool:
    """Tell whether a process runs: SpiffWorkflow's rule (isExecutable is "true" or missing), except
    that a process without the attribute and without any flow node (an empty pool) has nothing to run."""
    if process.get("isExecutable") is not None:
        return process.get("isExecutable") == "true"
    return any(_is_flow_node(_local(el)) for el in process)


def _is_flow_node(local: str) -> bool:
    return local.endswith(("Task", "Event", "Gateway", "SubProcess")) or \
        local in ("task", "subProcess", "callActivity", "transaction")


def _drop_descriptive_processes(tree: etree._ElementTree) -> None:
    """Remove processes that do not run: they never run, and SpiffWorkflow reads some of their
    content anyway (a business rule task without a decision there fails the whole file)."""
    for proc in list(tree.getroot().iter(f"{{{BPMN}}}process")):
        if not runs(proc):
            proc.getparent().remove(proc)


def _drop_idle_data_stores(tree: etree._ElementTree) -> None:
    """Remove data stores no running process uses (SpiffWorkflow refuses every data store it sees)."""
    used = {ref.get("dataStoreRef") for proc in tree.getroot().iter(f"{{{BPMN}}}process") if runs(proc)
            for ref in proc.iter(f"{{{BPMN}}}dataStoreReference")}
    for store in list(tree.getroot().iter(f"{{{BPMN}}}dataStore")):
        if store.get("id") not in used:
            store.getparent().remove(store)


def _rename_reserved(tree: etree._ElementTree, ids: set[str]) -> dict[str, str]:
    """Rename flow nodes whose id SpiffWorkflow reserves; return new id -> original id."""
    renamed: dict[str, str] = {}
    for process in tree.getroot().iter(f"{{{BPMN}}}process"):
        for el in process.iter(etree.Element):
            old = el.get("id")
            if old and is_reserved(old) and _local(el) not in _NOT_FLOW_NODES and old not in renamed.values():
                new = _unused(f"{old.replace('.', '_')}_node", ids)
                renamed[new] = old
    if not renamed:
        return renamed
    new_of = {old: new for new, old in renamed.items()}
    for el in tree.iter(etree.Element):
        if el.get("id") in new_of and _local(el) not in _NOT_FLOW_NODES:
            el.set("id", new_of[el.get("id")])
        for attr in _REFERENCE_ATTRIBUTES:
            if el.get(attr) in new_of:
                el.set(attr, new_of[el.get(attr)])
        if _local(el) in _REFERENCE_TEXTS and (el.text or "").strip() in new_of:
            el.text = new_of[(el.text or "").strip()]
    return renamed


def _quote_timer_literals(filename: str, tree: etree._ElementTree) -> list[TimerLiteral]:
    found = []
    for definition in tree.getroot().iter(f"{{{BPMN}}}timerEventDefinition"):
        for el in definition:
            text = (el.text or "").strip()
            if _local(el) in ("timeDate", "timeDuration", "timeCycle") and ISO_LITERAL.match(text):
                el.text = f"'{text}'"
                found.append(TimerLiteral(filename, el, _local(el), text))
    return found
