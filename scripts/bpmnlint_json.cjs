// Lint one BPMN file with bpmnlint's recommended rules and print the reports as JSON.
//
// Run from the repository root after `npm ci`:  node scripts/bpmnlint_json.cjs diagram.bpmn
// Prints [{"id": element id, "message": text, "rule": rule name, "category": "error"|"warn"}].
// The designer (webui/designer.py) calls it on a temporary file for every validation.

const fs = require('node:fs');
const { Linter } = require('bpmnlint');
const NodeResolver = require('bpmnlint/lib/resolver/node-resolver');
const { BpmnModdle } = require('bpmn-moddle');

async function main(file) {
  const moddle = new BpmnModdle();
  const { rootElement } = await moddle.fromXML(fs.readFileSync(file, 'utf8'));
  const linter = new Linter({
    config: { extends: 'bpmnlint:recommended' },
    resolver: new NodeResolver()
  });
  const results = await linter.lint(rootElement);
  const found = [];
  for (const [rule, reports] of Object.entries(results)) {
    for (const report of reports) {
      found.push({ id: report.id || null, message: report.message, rule, category: report.category });
    }
  }
  process.stdout.write(JSON.stringify(found));
}

main(process.argv[2]).catch((err) => {
  process.stdout.write(JSON.stringify([{ id: null, message: String(err.message || err), rule: 'import', category: 'error' }]));
});
