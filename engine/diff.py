"""What changed between two versions of a model: elements added, removed and changed, by id.

Both files are parsed as untrusted XML (`engine.xmlcheck`) and compared element by element
with lxml: every element with an id outside the diagram layout (BPMN DI / DMN DI) is described
by its type, name, form fields, condition, timer, documentation and remaining attributes. The
designer sees the result before confirming a deployment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from . import forms, xmlcheck

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = forms.CAMUNDA
_LAYOUT_WORDS = ("/DI", "/DD", "DMNDI", "BPMNDI")
_TIMERS = ("timeDate", "timeDuration", "timeCycle")


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass
class Change:
    """One element that differs: its id, type, name and what changed."""

    element_id: str
    type: str
    name: str
    kind: ChangeKind
    details: list[str] = field(default_factory=list)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _is_layout(el: etree._Element) -> bool:
    ns = etree.QName(el).namespace or ""
    return any(word in ns for word in _LAYOUT_WORDS)


def _text(el: etree._Element | None) -> str:
    return " ".join((el.text or "").split()) if el is not None else ""


def _form(el: etree._Element) -> dict[str, dict[str, Any]]:
    fields, _problems = forms.parse_form(el)
    return {f.id: f.as_dict() for f in fields}


def describe(el: etree._Element) -> dict[str, Any]:
    """Describe an element by what a designer changes: name, form, condition, timer, text, attributes."""
    own = {k: v for k, v in el.attrib.items() if k not in ("id", "name")}
    info: dict[str, Any] = {"name": el.get("name") or "", "attributes": own}
    condition = el.find(f"{{{BPMN}}}conditionExpression")
    info["condition"] = _text(condition)
    timer = el.find(f"{{{BPMN}}}timerEventDefinition")
    info["timer"] = " ".join(f"{t}={_text(timer.find(f'{{{BPMN}}}{t}'))}" for t in _TIMERS
                             if timer is not None and timer.find(f"{{{BPMN}}}{t}") is not None)
    info["documentation"] = _text(el.find(f"{{{BPMN}}}documentation"))
    info["form"] = _form(el) if _local(el) in ("userTask", "startEvent") else {}
    info["script"] = _text(el.find(f"{{{BPMN}}}script"))
    if _local(el) == "lane":
        info["members"] = sorted(_text(r) for r in el.findall(f"{{{BPMN}}}flowNodeRef"))
    return info


def _elements(content: bytes, filename: str) -> dict[str, etree._Element]:
    tree, problems = xmlcheck.parse_untrusted(filename, content)
    if tree is None or problems:
        return {}
    found = {}
    for el in tree.getroot().iter():
        if isinstance(el.tag, str) and el.get("id") and not _is_layout(el) and el.getparent() is not None:
            found[el.get("id")] = el
    return found


def _details(old: dict[str, Any], new: dict[str, Any], old_type: str, new_type: str) -> list[str]:
    details = []
    if old_type != new_type:
        details.append(f"type: {old_type} → {new_type}")
    if old["name"] != new["name"]:
        details.append(f"name: '{old['name']}' → '{new['name']}'")
    if old["form"] != new["form"]:
        gone = [f for f in old["form"] if f not in new["form"]]
        came = [f for f in new["form"] if f not in old["form"]]
        edited = [f for f in old["form"] if f in new["form"] and old["form"][f] != new["form"][f]]
        parts = [f"{label} {', '.join(ids)}" for label, ids in
                 (("removed", gone), ("added", came), ("changed", edited)) if ids]
        details.append("form: " + "; ".join(parts))
    for key, label in (("condition", "condition"), ("timer", "timer"), ("documentation", "documentation"),
                       ("script", "script")):
        if old[key] != new[key]:
            details.append(f"{label}: '{old[key]}' → '{new[key]}'")
    if old.get("members") != new.get("members"):
        details.append("lane members changed")
    for attr in sorted(set(old["attributes"]) | set(new["attributes"])):
        before, after = old["attributes"].get(attr), new["attributes"].get(attr)
        if before != after:
            details.append(f"{etree.QName(attr).localname}: '{before or ''}' → '{after or ''}'")
    return details


def diff_models(old: bytes | None, new: bytes, filename: str = "model.bpmn") -> list[Change]:
    """Compare two versions of one model file; `old` None means everything is new."""
    before = _elements(old, filename) if old is not None else {}
    after = _elements(new, filename)
    changes = []
    for eid, el in after.items():
        if eid not in before:
            changes.append(Change(eid, _local(el), el.get("name") or "", ChangeKind.ADDED))
            continue
        details = _details(describe(before[eid]), describe(el), _local(before[eid]), _local(el))
        if details:
            changes.append(Change(eid, _local(el), el.get("name") or "", ChangeKind.CHANGED, details))
    for eid, el in before.items():
        if eid not in after:
            changes.append(Change(eid, _local(el), el.get("name") or "", ChangeKind.REMOVED))
    order = {ChangeKind.ADDED: 0, ChangeKind.CHANGED: 1, ChangeKind.REMOVED: 2}
    return sorted(changes, key=lambda c: (order[c.kind], c.element_id))
