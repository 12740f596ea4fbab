"""Real Chromium against a live server: a designer opens the shipped process in the modeler, renames
a task in the properties panel, validates (clean), deploys version 2 after seeing the change, and
previews migrating the running instance. Every MIWG reference diagram opens in the modeler.

Needs Debian's chromium (`scripts/browser.sh`) and the bundle (`scripts/build_assets.sh`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import deploy, drafts, runtime, users
from engine.config import Settings
from engine.db import make_engine, make_sessions, upgrade
from engine.models import Instance
from webui import create_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "salasana-123"
MIWG = Path("/work/shared/samples/miwg")
BUNDLE = ROOT / "webui" / "static" / "build" / "designer.js"

sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (run scripts/browser.sh)", allow_module_level=True)
if not BUNDLE.exists():
    pytest.skip("the designer bundle is not built (run scripts/build_assets.sh)", allow_module_level=True)


@pytest.fixture
def office(tmp_path):
    """Return the session factory of a database with the shipped models, a designer and a running case."""
    engine = make_engine(f"sqlite:///{tmp_path}/live.db")
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in (ROOT / "bpmn").iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="setup")
        users.add_user(s, "dora", PASSWORD, ["designer"], display_name="Dora Designer")
        runtime.start_instance(s, "customer_service", by="setup", business_key="0737546-2",
                               data={"business_id": "0737546-2", "company_name": "Pirkan Puu Oy",
                                     "contact_channel": "phone_service", "contact_reason": "Kasvu ja rekrytointi."})
    yield sessions
    engine.dispose()


@pytest.fixture
def base_url(tmp_path, office) -> Iterator[str]:
    """Serve the app on a free local port in a thread; return its address."""
    from werkzeug.serving import make_server

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/live.db", secret_key="browser-test",
                              embedded_worker=False))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    app.extensions["polku"].engine.dispose()


@pytest.fixture
def page(base_url):
    """Return a page of Debian's chromium, signed in as the designer; fail on any page error."""
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        tab = chromium.new_page(viewport={"width": 1400, "height": 1000}, locale="fi-FI")
        errors: list[str] = []
        tab.on("pageerror", lambda err: errors.append(str(err)))
        tab.goto(f"{base_url}/login")
        tab.fill("#f-username", "dora")
        tab.fill("#f-password", PASSWORD)
        tab.click("button.button[type=submit]")
        tab.wait_for_url(f"{base_url}/")
        yield tab
        chromium.close()
        assert not errors, errors


def _opened(page) -> dict:
    page.wait_for_selector("body[data-modeler-ready=true]")
    return page.evaluate("window.polkuImport")


def test_designer_renames_a_task_validates_deploys_and_previews_migration(page, base_url, office):
    page.goto(f"{base_url}/designer/")
    page.click("#process-customer_service >> text=Avaa mallintimessa")
    assert _opened(page)["ok"]
    page.evaluate("""() => {
        const m = window.polkuModeler;
        m.get('selection').select(m.get('elementRegistry').get('assess_service_needs'));
    }""")
    page.click(".bio-properties-panel-group-header:has-text('General')")
    name = page.locator("#bio-properties-panel-name")
    name.fill("Arvioi palvelutarpeet asiakkaan kanssa")
    page.wait_for_function("""() => window.polkuModeler.get('elementRegistry').get('assess_service_needs')
        .businessObject.name === 'Arvioi palvelutarpeet asiakkaan kanssa'""")

    page.click("#validate")
    page.wait_for_selector("#designer-status.designer-status-ok:has-text('Ongelmia ei löytynyt')")
    assert page.locator("#problems li.problem-error").count() == 0

    page.click("#save-draft")
    page.wait_for_selector("#designer-status:has-text('Luonnos tallennettu')")
    page.click("#deploy-link")
    row = page.locator("#change-assess_service_needs")
    assert "Arvioi palvelutarpeet asiakkaan kanssa" in row.inner_text()
    assert page.locator("tr[id^=change-]").count() == 1
    page.click("#confirm-deploy")
    page.wait_for_selector("#version-2")
    assert page.locator("#version-1 .running").inner_text() == "1"

    page.click("#version-1 .migrate-link")
    candidate = page.locator("tr[id^=candidate-]")
    assert candidate.count() == 1 and "clean" in candidate.get_attribute("class")
    page.click("#migrate-button")
    page.wait_for_selector(".flash-success")
    with office.begin() as s:
        [instance] = s.query(Instance).all()
        assert deploy.version_by_id(s, instance.version_id).version == 2


@pytest.mark.parametrize("path", sorted(MIWG.glob("*.bpmn")), ids=lambda p: p.name)
def test_reference_diagram_opens_in_the_modeler(page, base_url, office, path):
    with office.begin() as s:
        draft_id = drafts.save_draft(s, "dora", path.name, path.read_text()).id
    page.goto(f"{base_url}/designer/drafts/{draft_id}")
    outcome = _opened(page)
    assert outcome["ok"], outcome
    assert page.evaluate("window.polkuModeler.get('elementRegistry').getAll().length") > 1
    assert page.locator("#canvas .djs-element").count() > 1


def test_clicking_a_problem_selects_its_element_in_the_diagram(page, base_url, office):
    text = (ROOT / "bpmn" / "customer_service.bpmn").read_text() \
        .replace('name="Assess service needs with the customer"', "")
    with office.begin() as s:
        draft_id = drafts.save_draft(s, "dora", "customer_service.bpmn", text).id
    page.goto(f"{base_url}/designer/drafts/{draft_id}")
    assert _opened(page)["ok"]
    page.click("#validate")
    problem = page.locator("#problems li.problem-error button[data-element=assess_service_needs]").first
    problem.wait_for()
    assert page.locator(".djs-element.polku-problem[data-element-id=assess_service_needs]").count() == 1
    problem.click()
    selected = page.evaluate("window.polkuModeler.get('selection').get().map((e) => e.id)")
    assert selected == ["assess_service_needs"]


def test_decision_table_opens_in_the_dmn_editor(page, base_url, office):
    with office.begin() as s:
        version_id = deploy.latest_version(s, "service_selection").id
    page.goto(f"{base_url}/designer/versions/{version_id}/edit")
    assert _opened(page)["ok"]
    page.wait_for_selector("#canvas .tjs-table, #canvas .dmn-drd-container")
