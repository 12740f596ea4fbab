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

  function decorate(viewer, index) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    var overlays = viewer.get("overlays");
    registry.forEach(function (element) {
      var id = element.id;
      if (!data.heat && walked.size && element.type === "bpmn:StartEvent" && !element.host &&
          element.parent && /^bpmn:(Process|Participant)$/.test(element.parent.type) && index === 0) {
        walked.add(id);  // every instance began at its process's start event (no event of its own)
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
    viewer.get("eventBus").on("element.click", function (event) { showEvents(event.element.id); });
  }

  document.querySelectorAll(".audit-canvas").forEach(function (container) {
    var xml = data.diagrams[Number(container.dataset.diagram)];
    var viewer = new window.BpmnJS({ container: container });
    viewer.importXML(xml).then(function () {
      viewer.get("canvas").zoom("fit-viewport");
      decorate(viewer, Number(container.dataset.diagram));
      container.dataset.ready = "true";
    }).catch(function (err) {
      container.textContent = String(err && err.message ? err.message : err);
    });
  });
})();
