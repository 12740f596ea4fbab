// Export every BPMN model in bpmn/ to docs/diagrams/<process id>.svg with bpmn-js.
//
// Run from the repository root after `npm ci`:  node scripts/export_svg.mjs [--check]
// bpmn-js (node_modules) renders each diagram inside Debian's chromium, driven by
// playwright-core; no browser is downloaded. Each file is named after its process id,
// so bpmn/aftercare.bpmn becomes docs/diagrams/aftercare.svg. An import warning from
// bpmn-js (unknown element, missing DI) fails the export. With --check nothing is
// written: the exit code says whether the committed SVGs are up to date.

import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODELS = path.join(ROOT, 'bpmn');
const OUT = path.join(ROOT, 'docs', 'diagrams');
const VIEWER = path.join(ROOT, 'node_modules', 'bpmn-js', 'dist', 'bpmn-viewer.production.min.js');
const CHROMIUM = process.env.POLKU_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

/** Render one BPMN XML string to SVG in the page; throw on import warnings. */
async function renderSvg(page, xml, file) {
  const result = await page.evaluate(async (diagram) => {
    const container = document.getElementById('canvas');
    container.innerHTML = '';
    const viewer = new window.BpmnJS({ container });
    try {
      const { warnings } = await viewer.importXML(diagram);
      const { svg } = await viewer.saveSVG();
      return { svg, warnings: warnings.map((w) => w.message) };
    } finally {
      viewer.destroy();
    }
  }, xml);
  if (result.warnings.length) {
    throw new Error(`${file}: bpmn-js import warnings:\n  ${result.warnings.join('\n  ')}`);
  }
  return stableIds(result.svg.endsWith('\n') ? result.svg : `${result.svg}\n`);
}

/** Number bpmn-js's random arrow-marker ids in order, so an unchanged model exports the same SVG. */
function stableIds(svg) {
  const ids = new Map();
  return svg.replace(/marker-[a-z0-9]{8,}/g, (id) => {
    if (!ids.has(id)) {
      ids.set(id, `marker-${ids.size + 1}`);
    }
    return ids.get(id);
  });
}

async function main() {
  const check = process.argv.includes('--check');
  if (!existsSync(VIEWER)) {
    throw new Error('bpmn-js is missing: run `npm ci` first');
  }
  const files = (await readdir(MODELS)).filter((f) => f.endsWith('.bpmn')).sort();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  let stale = 0;
  try {
    const page = await browser.newPage();
    await page.setContent('<!DOCTYPE html><html><body><div id="canvas" style="width:1600px;height:1000px"></div></body></html>');
    await page.addScriptTag({ path: VIEWER });
    await mkdir(OUT, { recursive: true });
    for (const file of files) {
      const xml = await readFile(path.join(MODELS, file), 'utf8');
      const svg = await renderSvg(page, xml, file);
      const target = path.join(OUT, file.replace(/\.bpmn$/, '.svg'));
      const current = existsSync(target) ? await readFile(target, 'utf8') : null;
      if (check) {
        if (current !== svg) {
          console.log(`stale: ${path.relative(ROOT, target)}`);
          stale += 1;
        }
      } else {
        await writeFile(target, svg);
        console.log(`wrote ${path.relative(ROOT, target)}`);
      }
    }
  } finally {
    await browser.close();
  }
  if (stale) {
    console.log(`${stale} diagram(s) out of date: run node scripts/export_svg.mjs`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err.message || err);
  process.exitCode = 1;
});
