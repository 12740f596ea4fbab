"""Real Chromium against a live server: a designer opens the shipped process in the modeler, renames
a task in the properties panel, validates (clean), deploys version 2 after seeing the change, and
previews migrating the running instance. Every MIWG reference diagram opens in the modeler.

The harness (live server, chromium, sign-in) is in conftest.py; the modeler bundle comes from
`scripts/build_assets.sh` (run by `make test`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import deploy, drafts, runtime, users
from engine.models import Instance

ROOT = Path(__file__).parents[2]
PASSWORD = "salasana-123"  # what conftest's sign_in types
MIWG = Path("/work/shared/samples/miwg")
BUNDLE = ROOT / "webui" / "static" / "build" / "designer.js"


@pytest.fixture
def office(live_db):
    """Return the session factory of the live database with a designer and a running case."""
    if not BUNDLE.exists():
        pytest.fail("the designer bundle is not built: run scripts/build_assets.sh (make test does)")
    sessions = live_db[1]
    with sessions.begin() as s:
        users.add_user(s, "dora", PASSWORD, ["designer"], display_name="Dora Designer")
        runtime.start_instance(s, "customer_service", by="setup", business_key="0737546-2",
                               data={"business_id": "0737546-2", "company_name": "Pirkan Puu Oy",
                                     "contact_channel": "phone_service", "contact_reason": "Kasvu ja rekrytointi."})
    return sessions


@pytest.fixture
def page(sign_in, office):
    """Return a page of Debian's chromium, signed in as the designer; fail on any page error."""
    tab = sign_in("dora", width=1400, height=1000)
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
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
    assert page.locator("#untranslated li").all_inner_texts() == [  # the renamed task has no English yet
        "en: “Arvioi palvelutarpeet asiakkaan kanssa” (userTask assess_service_needs: name)"]

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
        .replace('name="Arvioi palvelutarve asiakkaan kanssa"', "")
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
