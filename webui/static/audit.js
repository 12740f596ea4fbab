// Draw the audit diagrams with bpmn-js's viewer and mark the path taken, the waiting elements and run counts.
// Data comes from the <script type="application/json" id="audit-data"> block (no inline script: CSP).
(function () {
  "use strict";
  var block = document.getElementById("audit-data");
  if (!block || typeof window.BpmnJS !== "function") { return; }
  var data = JSON.parse(block.textContent);
  var counts = data.counts || {};
  var walked = new Set(data.walked || []);
  var active = new Set(data.active || []);
  var events = data.events || {};
  var top = Math.max.apply(null, [1].concat(Object.values(counts)));

  function showEvents(id) {
    var target = document.getElementById("element-events");
    var ids = events[id] || [];
    document.querySelectorAll("tr.selected-event").forEach(function (row) { row.classList.remove("selected-event"); });
    ids.forEach(function (eventId) {
      var row = document.getElementById("event-" + eventId);
      if (row) { row.classList.add("selected-event"); }
    });
    target.textContent = "";
    var heading = document.createElement("p");
    heading.textContent = id + ": " + ids.length;
    target.appendChild(heading);
    var list = document.createElement("ul");
    ids.forEach(function (eventId) {
      var row = document.getElementById("event-" + eventId);
      if (!row) { return; }
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "#event-" + eventId;
      link.textContent = Array.prototype.map.call(row.cells, function (c) { return c.textContent.trim(); })
        .filter(Boolean).slice(1, 4).join(" · ");
      item.appendChild(link);
      list.appendChild(item);
    });
    target.appendChild(list);
  }

  // Elements without events of their own (gateways, scripts, rules) count as walked when they lie
  // between walked elements on a path of such elements; the flows between walked elements are marked too.
  var SILENT = /^bpmn:(\w*Gateway|ScriptTask|BusinessRuleTask|ServiceTask|SendTask|Task|SubProcess|IntermediateThrowEvent|EndEvent)$/;
  var called = new Set(data.called || []);

  function reached(e) { return walked.has(e.id) || active.has(e.id); }

  function spread(nodes, from, step) {
    var found = new Set();
    for (var round = 0, changed = true; changed && round < 100; round += 1) {
      changed = false;
      nodes.forEach(function (node) {
        if (found.has(node.id)) { return; }
        if ((node[from] || []).some(function (f) { var n = f[step]; return n && (reached(n) || found.has(n.id)); })) {
          found.add(node.id);
          changed = true;
        }
      });
    }
    return found;
  }

  function fillGaps(registry) {
    registry.forEach(function (e) {
      if (e.type === "bpmn:CallActivity" && called.has(e.businessObject.calledElement)) { walked.add(e.id); }
    });
    var nodes = registry.filter(function (e) { return !e.waypoints && SILENT.test(e.type) && !reached(e); });
    var after = spread(nodes, "incoming", "source");
    var before = spread(nodes, "outgoing", "target");
    nodes.forEach(function (node) {
      if (after.has(node.id) && (before.has(node.id) || /EndEvent$/.test(node.type) && data.ended)) {
        walked.add(node.id);
      }
    });
    return registry.filter(function (e) {
      return e.type === "bpmn:SequenceFlow" && e.source && e.target && walked.has(e.source.id) && reached(e.target);
    });
  }

  function decorate(viewer) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    var overlays = viewer.get("overlays");
    registry.forEach(function (element) {
      var id = element.id;
      var plain = !(element.businessObject.eventDefinitions || []).length;
      if (!data.heat && walked.size && element.type === "bpmn:StartEvent" && plain &&
          element.parent && /^bpmn:(Process|Participant)$/.test(element.parent.type)) {
        walked.add(id);  // every process shown was entered at its start event (no event of its own)
      }
      if (walked.has(id)) { canvas.addMarker(id, data.heat ? "audit-heat-" + Math.ceil(5 * (counts[id] || 0) / top) : "audit-walked"); }
      if (active.has(id)) { canvas.addMarker(id, "audit-active"); }
      var n = counts[id];
      if (n && (n > 1 || data.heat)) {
        var badge = document.createElement("span");
        badge.className = "audit-count";
        badge.textContent = String(n);
        overlays.add(id, { position: { top: -10, right: 10 }, html: badge });
      }
    });
    if (!data.heat) {
      fillGaps(registry).forEach(function (flow) { canvas.addMarker(flow.id, "audit-walked-flow"); });
      registry.forEach(function (element) {
        if (walked.has(element.id) && !element.waypoints) { canvas.addMarker(element.id, "audit-walked"); }
      });
    }
    viewer.get("eventBus").on("element.click", function (event) { showEvents(event.element.id); });
  }

  document.querySelectorAll(".audit-canvas").forEach(function (container) {
    var xml = data.diagrams[Number(container.dataset.diagram)];
    var viewer = new window.BpmnJS({ container: container });
    viewer.importXML(xml).then(function () {
      viewer.get("canvas").zoom("fit-viewport");
      decorate(viewer);
      container.dataset.ready = "true";
    }).catch(function (err) {
      container.textContent = String(err && err.message ? err.message : err);
    });
  });
})();
