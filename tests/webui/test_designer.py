"""Designer pages: process list, modeler, drafts, upload, validation, deploy review, migration."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from engine import deploy, drafts, runtime
from engine.models import Instance

ORDER = (Path(__file__).parent.parent / "engine" / "bpmn" / "order.bpmn").read_text()
RENAMED = ORDER.replace('name="Review order"', 'name="Check the order"')


def _deploy(sessions, text=ORDER, by="dora"):
    with sessions.begin() as s:
        return deploy.deploy_files(s, {"order.bpmn": text.encode()}, by=by).created[0].id


def _start(sessions):
    with sessions.begin() as s:
        return runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 5}).id


def _draft(sessions, owner, text=RENAMED, name="order.bpmn"):
    with sessions.begin() as s:
        return drafts.save_draft(s, owner, name, text).id


def _modeler_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="designer-data">(.*?)</script>', page, re.DOTALL)
    assert match
    return json.loads(match.group(1))


@pytest.mark.parametrize("role", ["designer", "admin"])
def test_process_list_shows_versions_deployer_and_running_instances(client, login_as, sessions, role):
    _deploy(sessions)
    _start(sessions)
    login_as(role)
    page = client.get("/designer/").get_data(as_text=True)
    row = page.split('id="process-order"')[1].split("</tr>")[0]
    assert "Order" in row and "v1" in row and "dora" in row and "v1: 1" in row


@pytest.mark.parametrize("role", ["expert", "supervisor", "auditor"])
def test_other_roles_cannot_enter(client, login_as, role):
    login_as(role)
    assert client.get("/designer/").status_code == 403


def test_version_opens_in_the_modeler_with_its_xml_and_no_inline_script(client, login_as, sessions):
    vid = _deploy(sessions)
    login_as("designer")
    response = client.get(f"/designer/versions/{vid}/edit")
    page = response.get_data(as_text=True)
    data = _modeler_data(page)
    assert data["xml"] == ORDER and data["kind"] == "bpmn" and data["base_version_id"] == vid
    assert "build/designer.js" in page
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*(src=|application/json))", page)


def test_download_sends_the_stored_file(client, login_as, sessions):
    vid = _deploy(sessions)
    login_as("designer")
    response = client.get(f"/designer/versions/{vid}/download")
    assert response.get_data(as_text=True) == ORDER
    assert response.headers["Content-Disposition"] == "attachment; filename=order.bpmn; filename*=UTF-8''order.bpmn"


def test_version_page_lists_versions_and_offers_migration(client, login_as, sessions):
    v1 = _deploy(sessions)
    _start(sessions)
    v2 = _deploy(sessions, RENAMED)
    login_as("designer")
    page = client.get(f"/designer/versions/{v2}").get_data(as_text=True)
    assert 'id="version-2"' in page and 'id="version-1"' in page
    assert f"/designer/processes/order/migrate?source={v1}&amp;target={v2}" in page


def test_saving_a_draft_from_the_modeler_answers_json(client, login_as, sessions):
    user = login_as("designer")
    response = client.post("/designer/drafts", json={"filename": "order.bpmn", "content": RENAMED},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    body = response.get_json()
    assert response.status_code == 200 and body["deploy_url"].endswith("/deploy")
    with sessions.begin() as s:
        [saved] = drafts.list_drafts(s, user)
        assert saved.content == RENAMED
    assert _modeler_data(client.get(body["url"]).get_data(as_text=True))["xml"] == RENAMED


def test_drafts_are_private_to_their_designer(client, login_as, sessions):
    other = _draft(sessions, "someone-else")
    login_as("designer")
    assert client.get(f"/designer/drafts/{other}").status_code == 404
    assert client.post(f"/designer/drafts/{other}/delete").status_code == 404
    assert "order.bpmn" not in client.get("/designer/").get_data(as_text=True).split("drafts-heading")[1]


def test_upload_becomes_a_draft(client, login_as, sessions):
    user = login_as("designer")
    response = client.post("/designer/upload", data={"model": (io.BytesIO(ORDER.encode()), "order.bpmn")},
                           content_type="multipart/form-data")
    assert response.status_code == 302 and "/designer/drafts/" in response.headers["Location"]
    with sessions.begin() as s:
        assert [d.filename for d in drafts.list_drafts(s, user)] == ["order.bpmn"]


def test_upload_over_the_limit_is_refused(app, client, login_as, sessions):
    from dataclasses import replace

    polku = app.extensions["polku"]
    polku.settings = replace(polku.settings, max_upload_bytes=100)
    user = login_as("designer")
    response = client.post("/designer/upload", data={"model": (io.BytesIO(ORDER.encode()), "order.bpmn")},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    with sessions.begin() as s:
        assert drafts.list_drafts(s, user) == []


def test_validate_reports_engine_and_bpmnlint_problems_by_element(client, login_as):
    login_as("designer")
    broken = ORDER.replace("price = round(amount * 1.24 / divisor, 2)", "import os").replace('name="Review order"', "")
    response = client.post("/designer/validate", json={"filename": "order.bpmn", "content": broken},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    problems = response.get_json()["problems"]
    engine = [p for p in problems if p["source"] == "engine"]
    lint = [p for p in problems if p["source"] == "bpmnlint"]
    assert [p["element"] for p in engine] == ["compute"]
    assert {"review"} <= {p["element"] for p in lint if "label-required" in p["message"]}


def test_validate_refuses_untrusted_xml_with_a_clear_problem(client, login_as):
    login_as("designer")
    evil = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    response = client.post("/designer/validate", json={"filename": "evil.bpmn", "content": evil},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    problems = response.get_json()["problems"]
    assert problems and all(p["source"] == "engine" for p in problems)


def test_review_shows_changes_then_deploy_creates_the_next_version(client, login_as, sessions):
    _deploy(sessions)
    user = login_as("designer")
    did = _draft(sessions, user)
    page = client.get(f"/designer/drafts/{did}/deploy").get_data(as_text=True)
    row = page.split('id="change-review"')[1].split("</tr>")[0]
    assert "Review order" in row and "Check the order" in row
    response = client.post(f"/designer/drafts/{did}/deploy")
    assert response.status_code == 302
    with sessions.begin() as s:
        latest = deploy.latest_version(s, "order")
        assert (latest.version, latest.created_by) == (2, user)
        assert drafts.list_drafts(s, user) == []


def test_deploying_a_broken_draft_shows_the_problems_and_stores_nothing(client, login_as, sessions):
    user = login_as("designer")
    did = _draft(sessions, user, ORDER.replace("price = round(amount * 1.24 / divisor, 2)", "import os"))
    response = client.post(f"/designer/drafts/{did}/deploy")
    assert response.status_code == 422 and "compute" in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert deploy.latest_version(s, "order", required=False) is None


def test_migration_preview_and_batch(client, login_as, sessions):
    v1 = _deploy(sessions)
    first, second = _start(sessions), _start(sessions)
    v2 = _deploy(sessions, RENAMED)
    login_as("designer")
    page = client.get("/designer/processes/order/migrate").get_data(as_text=True)
    assert f'id="candidate-{first}" class="clean"' in page and f'id="candidate-{second}" class="clean"' in page
    response = client.post("/designer/processes/order/migrate",
                           data={"source": v1, "target": v2, "instance": [str(first)]})
    assert response.status_code == 302
    with sessions.begin() as s:
        assert s.get(Instance, first).version_id == v2
        assert s.get(Instance, second).version_id == v1


def test_migration_without_other_versions_says_so(client, login_as, sessions):
    _deploy(sessions)
    login_as("designer")
    assert "No other version has running instances" in _english(client, "/designer/processes/order/migrate")


def _english(client, url):
    client.post("/language", data={"lang": "en"})
    return client.get(url).get_data(as_text=True)


def test_shipped_process_alone_validates_and_deploys_with_what_it_calls(client, login_as, sessions):
    root = Path(__file__).parents[2] / "bpmn"
    with sessions.begin() as s:
        deploy.deploy_files(s, {p.name: p.read_bytes() for p in root.iterdir() if p.suffix in (".bpmn", ".dmn")},
                            by="setup")
    text = (root / "customer_service.bpmn").read_text()
    user = login_as("designer")
    response = client.post("/designer/validate", json={"filename": "customer_service.bpmn", "content": text},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    assert [p for p in response.get_json()["problems"] if p["severity"] == "error"] == []
    changed = text.replace('name="Arvioi palvelutarve asiakkaan kanssa"', 'name="Arvioi tarpeet"')
    did = _draft(sessions, user, changed, "customer_service.bpmn")
    assert client.post(f"/designer/drafts/{did}/deploy").status_code == 302
    with sessions.begin() as s:
        assert deploy.latest_version(s, "customer_service").version == 2
        assert deploy.latest_version(s, "aftercare").version == 1


def test_dmn_version_opens_in_the_decision_editor(client, login_as, sessions):
    root = Path(__file__).parents[2] / "bpmn"
    with sessions.begin() as s:
        deploy.deploy_files(s, {"service_selection.dmn": (root / "service_selection.dmn").read_bytes()}, by="setup")
        vid = deploy.latest_version(s, "service_selection").id
    login_as("designer")
    page = client.get(f"/designer/versions/{vid}/edit").get_data(as_text=True)
    assert _modeler_data(page)["kind"] == "dmn" and 'id="properties"' not in page
