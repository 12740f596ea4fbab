// The process designer in the browser: bpmn-js Modeler with the Camunda properties panel,
// dmn-js for decision tables, save as draft, validate (engine + bpmnlint) with markers.
//
// Bundled by scripts/build_assets.sh (esbuild) into webui/static/build/designer.js and .css.
// The page passes its data in <script type="application/json" id="designer-data"> (the CSP
// allows only same-origin script files, no inline JavaScript).

import BpmnModeler from 'bpmn-js/lib/Modeler';
import DmnModeler from 'dmn-js/lib/Modeler';
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule
} from 'bpmn-js-properties-panel';
import CamundaBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-platform';
import camundaModdle from 'camunda-bpmn-moddle/resources/camunda.json';

import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import 'bpmn-js/dist/assets/bpmn-font/css/bpmn-embedded.css';
import '@bpmn-io/properties-panel/dist/assets/properties-panel.css';
import 'dmn-js/dist/assets/dmn-js-shared.css';
import 'dmn-js/dist/assets/dmn-js-drd.css';
import 'dmn-js/dist/assets/dmn-js-decision-table.css';
import 'dmn-js/dist/assets/dmn-js-decision-table-controls.css';
import 'dmn-js/dist/assets/dmn-js-literal-expression.css';
import 'dmn-js/dist/assets/dmn-font/css/dmn-embedded.css';
import './designer.css';

const $ = (id) => document.getElementById(id);

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').getAttribute('content');
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken(), 'Accept': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin'
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.message || response.statusText);
  }
  return data;
}

function say(text, kind) {
  const box = $('designer-status');
  box.textContent = text;
  box.className = 'designer-status' + (kind ? ' designer-status-' + kind : '');
}

function createModeler(data) {
  if (data.kind === 'dmn') {
    return new DmnModeler({ container: '#canvas', common: { keyboard: { bindTo: window } } });
  }
  return new BpmnModeler({
    container: '#canvas',
    propertiesPanel: { parent: '#properties' },
    additionalModules: [
      BpmnPropertiesPanelModule, BpmnPropertiesProviderModule,
      CamundaPlatformPropertiesProviderModule, CamundaBehaviorsModule
    ],
    moddleExtensions: { camunda: camundaModdle }
  });
}

/** Show problems as a list and, for BPMN, as markers on the diagram; clicking selects the element. */
function showProblems(modeler, data, problems) {
  const list = $('problems');
  list.innerHTML = '';
  const viewer = data.kind === 'dmn' ? null : modeler;
  const registry = viewer && viewer.get('elementRegistry');
  const canvas = viewer && viewer.get('canvas');
  if (viewer) {
    registry.getAll().forEach((el) => {
      canvas.removeMarker(el.id, 'polku-problem');
      canvas.removeMarker(el.id, 'polku-warning');
    });
  }
  problems.forEach((problem) => {
    const item = document.createElement('li');
    item.className = 'problem problem-' + problem.source + ' problem-' + problem.severity;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link-button';
    button.dataset.element = problem.element || '';
    const where = problem.element ? problem.element + ': ' : '';
    const line = problem.line ? ' (' + data.labels.line + ' ' + problem.line + ')' : '';
    button.textContent = where + problem.message + line;
    const source = document.createElement('span');
    source.className = 'problem-source';
    source.textContent = problem.source + (problem.severity === 'warning' ? ' · ' + data.labels.warning : '');
    item.append(button, ' ', source);
    list.append(item);
    const element = viewer && problem.element && registry.get(problem.element);
    if (element) {
      canvas.addMarker(element.id, problem.severity === 'warning' ? 'polku-warning' : 'polku-problem');
      button.addEventListener('click', () => {
        viewer.get('selection').select(element);
        canvas.scrollToElement(element);
      });
    }
  });
  $('problems-heading').hidden = false;
}

/** List the model's texts that the models catalogue does not translate yet (the model stays Finnish). */
function showUntranslated(untranslated) {
  const list = $('untranslated');
  list.innerHTML = '';
  untranslated.forEach((entry) => {
    const item = document.createElement('li');
    item.textContent = entry.locale + ': “' + entry.text + '” (' + entry.where + ')';
    list.append(item);
  });
  $('untranslated-section').hidden = untranslated.length === 0;
}

async function currentXml(modeler) {
  const { xml } = await modeler.saveXML({ format: true });
  return xml;
}

async function main() {
  const dataNode = $('designer-data');
  if (!dataNode) {
    return;
  }
  const data = JSON.parse(dataNode.textContent);
  const modeler = createModeler(data);
  window.polkuModeler = modeler;  // the browser tests read the import outcome here
  try {
    const result = await modeler.importXML(data.xml);
    window.polkuImport = { ok: true, warnings: (result.warnings || []).map((w) => String(w.message || w)) };
    if (data.kind !== 'dmn') {
      modeler.get('canvas').zoom('fit-viewport');
    }
    say(data.labels.loaded);
  } catch (err) {
    window.polkuImport = { ok: false, warnings: [String(err.message || err)] };
    say(data.labels.import_failed + ' ' + err.message, 'error');
  }
  document.body.dataset.modelerReady = 'true';

  $('save-draft').addEventListener('click', async () => {
    try {
      const saved = await postJson(data.urls.save, {
        filename: $('filename').value, content: await currentXml(modeler), base_version_id: data.base_version_id
      });
      data.urls.validate_draft = saved.url;
      const deploy = $('deploy-link');
      deploy.href = saved.deploy_url;
      deploy.hidden = false;
      if (saved.url && window.location.pathname !== saved.url) {
        window.history.replaceState(null, '', saved.url);
      }
      say(data.labels.saved, 'ok');
    } catch (err) {
      say(data.labels.save_failed + ' ' + err.message, 'error');
    }
  });

  $('validate').addEventListener('click', async () => {
    try {
      const result = await postJson(data.urls.validate, {
        filename: $('filename').value, content: await currentXml(modeler)
      });
      showProblems(modeler, data, result.problems);
      showUntranslated(result.untranslated || []);
      const errors = result.problems.filter((p) => p.severity !== 'warning').length;
      say(errors ? data.labels.problems : data.labels.clean, errors ? 'error' : 'ok');
    } catch (err) {
      say(data.labels.validate_failed + ' ' + err.message, 'error');
    }
  });
}

main();
