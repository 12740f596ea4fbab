"""Give the conformance models their BPMNDI diagram data, so they open in a modeler.

The models are written by hand as process XML; this lays them out on a grid (columns by the longest
path from a start, boundary events on their task's lower edge, subprocesses collapsed with a
drill-down plane of their own, pools stacked) and rewrites each file's `bpmndi:BPMNDiagram`
elements. Run it after editing a model:

    .venv/bin/python -m tests.conformance.diagram tests/conformance/models/*.bpmn
"""

from __future__ import annotations

import sys
from pathlib import Path

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"

CELL_W, CELL_H = 160, 120
CONTAINERS = {"subProcess", "transaction", "adHocSubProcess"}
SKIP = {"sequenceFlow", "boundaryEvent", "laneSet", "extensionElements", "documentation", "ioSpecification",
        "dataObject", "dataObjectReference", "property", "incoming", "outgoing", "textAnnotation", "association"}


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _size(kind: str) -> tuple[int, int]:
    if kind.endswith("Event"):
        return 36, 36
    if kind.endswith("Gateway"):
        return 50, 50
    return 100, 80


def _layout(container: etree._Element, origin: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    """Place the direct flow nodes of a process or subprocess; return id -> (x, y, w, h)."""
    nodes = [el for el in container if isinstance(el.tag, str) and _local(el) not in SKIP]
    ids = [n.get("id") for n in nodes]
    kinds = {n.get("id"): _local(n) for n in nodes}
    edges: dict[str, list[str]] = {i: [] for i in ids}
    has_in: set[str] = set()
    for flow in container.iter(f"{{{BPMN}}}sequenceFlow"):
        if flow.getparent() is not container:
            continue
        src, dst = flow.get("sourceRef"), flow.get("targetRef")
        for boundary in container.findall(f"{{{BPMN}}}boundaryEvent"):
            if boundary.get("id") == src:
                src = boundary.get("attachedToRef")
        if src in edges and dst in edges:
            edges[src].append(dst)
            has_in.add(dst)
    layer: dict[str, int] = {}

    def visit(node: str, depth: int, trail: set[str]) -> None:
        if layer.get(node, -1) >= depth or node in trail:
            return
        layer[node] = depth
        for nxt in edges[node]:
            visit(nxt, depth + 1, trail | {node})

    for node in ids:
        if node not in has_in:
            visit(node, 0, set())
    rows: dict[int, int] = {}
    placed: dict[str, tuple[int, int, int, int]] = {}
    main = [i for i in ids if i in layer]
    for node in main:
        col = layer[node]
        row = rows.get(col, 0)
        rows[col] = row + 1
        w, h = _size(kinds[node])
        x = origin[0] + col * CELL_W + (100 - w) // 2
        y = origin[1] + row * CELL_H + (80 - h) // 2
        placed[node] = (x, y, w, h)
    return placed


def _bounds(parent: etree._Element, x: int, y: int, w: int, h: int) -> None:
    etree.SubElement(parent, f"{{{DC}}}Bounds", x=str(x), y=str(y), width=str(w), height=str(h))


def _shape(plane: etree._Element, element_id: str, box: tuple[int, int, int, int], **extra: str) -> None:
    shape = etree.SubElement(plane, f"{{{BPMNDI}}}BPMNShape", id=f"{element_id}_di", bpmnElement=element_id, **extra)
    _bounds(shape, *box)


def _edge(plane: etree._Element, element_id: str, points: list[tuple[int, int]]) -> None:
    edge = etree.SubElement(plane, f"{{{BPMNDI}}}BPMNEdge", id=f"{element_id}_di", bpmnElement=element_id)
    for px, py in points:
        etree.SubElement(edge, f"{{{DI}}}waypoint", x=str(px), y=str(py))


def _route(a: tuple[int, int, int, int], b: tuple[int, int, int, int], from_bottom: bool = False) -> list[tuple[int, int]]:
    if from_bottom:
        start = (a[0] + a[2] // 2, a[1] + a[3])
        end = (b[0], b[1] + b[3] // 2)
        return [start, (start[0], end[1]), end]
    start = (a[0] + a[2], a[1] + a[3] // 2)
    end = (b[0], b[1] + b[3] // 2)
    if start[1] == end[1]:
        return [start, end]
    mid = (start[0] + end[0]) // 2
    return [start, (mid, start[1]), (mid, end[1]), end]


def _draw(container: etree._Element, plane: etree._Element, diagrams: list[etree._Element],
          origin: tuple[int, int], new_diagram) -> dict[str, tuple[int, int, int, int]]:
    """Draw a container's nodes, boundary events and flows on a plane; recurse into subprocesses."""
    placed = _layout(container, origin)
    lowest = max((b[1] + b[3] for b in placed.values()), default=origin[1])
    # nodes the layering did not reach (event subprocesses) go on a row of their own below
    spare_x = origin[0]
    for el in container:
        if not isinstance(el.tag, str) or _local(el) in SKIP or el.get("id") in placed:
            continue
        w, h = _size(_local(el))
        placed[el.get("id")] = (spare_x, lowest + 60, w, h)
        spare_x += CELL_W
    for el in container:
        if not isinstance(el.tag, str) or el.get("id") not in placed:
            continue
        kind = _local(el)
        extra = {}
        if kind in CONTAINERS:
            extra["isExpanded"] = "false"
        elif kind == "exclusiveGateway":
            extra["isMarkerVisible"] = "true"
        _shape(plane, el.get("id"), placed[el.get("id")], **extra)
        if kind in CONTAINERS:
            sub_plane = new_diagram(el.get("id"))
            _draw(el, sub_plane, diagrams, (180, 80), new_diagram)
    boundaries: dict[str, int] = {}
    for b in container.findall(f"{{{BPMN}}}boundaryEvent"):
        host = placed.get(b.get("attachedToRef"))
        if host is None:
            continue
        k = boundaries.get(b.get("attachedToRef"), 0)
        boundaries[b.get("attachedToRef")] = k + 1
        placed[b.get("id")] = (host[0] + 8 + 40 * k, host[1] + host[3] - 18, 36, 36)
        _shape(plane, b.get("id"), placed[b.get("id")])
    for flow in container.findall(f"{{{BPMN}}}sequenceFlow"):
        a, b = placed.get(flow.get("sourceRef")), placed.get(flow.get("targetRef"))
        if a is None or b is None:
            continue
        is_boundary = flow.get("sourceRef") in {x.get("id") for x in container.findall(f"{{{BPMN}}}boundaryEvent")}
        _edge(plane, flow.get("id"), _route(a, b, from_bottom=is_boundary))
    return placed


def add_diagram(path: Path) -> None:
    """Rewrite the BPMNDI of one model file."""
    tree = etree.parse(str(path), etree.XMLParser(remove_blank_text=True))
    root = tree.getroot()
    for old in root.findall(f"{{{BPMNDI}}}BPMNDiagram"):
        root.remove(old)
    diagrams: list[etree._Element] = []

    def new_diagram(element_id: str) -> etree._Element:
        diagram = etree.SubElement(root, f"{{{BPMNDI}}}BPMNDiagram", id=f"BPMNDiagram_{element_id}")
        diagrams.append(diagram)
        return etree.SubElement(diagram, f"{{{BPMNDI}}}BPMNPlane", id=f"BPMNPlane_{element_id}",
                                bpmnElement=element_id)

    processes = {p.get("id"): p for p in root.findall(f"{{{BPMN}}}process")}
    collaboration = root.find(f"{{{BPMN}}}collaboration")
    if collaboration is not None:
        plane = new_diagram(collaboration.get("id"))
        y = 60
        everything: dict[str, tuple[int, int, int, int]] = {}
        for participant in collaboration.findall(f"{{{BPMN}}}participant"):
            process = processes[participant.get("processRef")]
            shape = etree.SubElement(plane, f"{{{BPMNDI}}}BPMNShape", id=f"{participant.get('id')}_di",
                                     bpmnElement=participant.get("id"), isHorizontal="true")
            placed = _draw(process, plane, diagrams, (190, y + 40), new_diagram)
            everything.update(placed)
            width = max(b[0] + b[2] for b in placed.values()) - 100
            height = max(b[1] + b[3] for b in placed.values()) - y + 60
            _bounds(shape, 130, y, max(width, 400), height)
            y += height + 40
        for flow in collaboration.findall(f"{{{BPMN}}}messageFlow"):
            a, b = everything[flow.get("sourceRef")], everything[flow.get("targetRef")]
            start = (a[0] + a[2] // 2, a[1] + a[3] if a[1] < b[1] else a[1])
            end = (b[0] + b[2] // 2, b[1] if a[1] < b[1] else b[1] + b[3])
            _edge(plane, flow.get("id"), [start, (start[0], (start[1] + end[1]) // 2),
                                          (end[0], (start[1] + end[1]) // 2), end])
    else:
        for process in processes.values():
            _draw(process, new_diagram(process.get("id")), diagrams, (180, 80), new_diagram)
    etree.indent(tree, space="  ")
    tree.write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        add_diagram(Path(name))
