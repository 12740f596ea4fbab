"""Hostile input at the edges: control characters in model file names, JSON nested 100,000 deep,
invalid UTF-8 anywhere, CSV formulas, HTML in translated messages, unsafe download names."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from engine import customers, deploy, drafts, runtime
from engine.inbox import tasks as open_tasks
from engine.models import ModelFile

ORDER = (Path(__file__).parent.parent / "engine" / "bpmn" / "order.bpmn").read_text()
BPMN = Path(__file__).parents[2] / "bpmn"
DEEP = "[" * 100_000 + "]" * 100_000


def _json_post(client, url, body, **kwargs):
    return client.post(url, data=body, content_type="application/json",
                       headers={"X-CSRFToken": client.csrf_token()}, csrf=False, **kwargs)


@pytest.mark.parametrize("name", ["bad\r\nX-Injected: 1.bpmn", "line\nbreak.bpmn", "tab\there.bpmn",
                                  "bidi\u202egnp.bpmn", "nul\x00.bpmn"])
def test_model_file_names_with_control_characters_are_refused(client, login_as, sessions, name):
    login_as("designer")
    import json

    saved = _json_post(client, "/designer/drafts", json.dumps({"filename": name, "content": ORDER}))
    assert saved.status_code == 400
    assert "control characters" in saved.get_data(as_text=True) or "ohjausmerkkejä" in saved.get_data(as_text=True)
    uploaded = client.post("/designer/upload", data={"model": (io.BytesIO(ORDER.encode()), name)},
                           content_type="multipart/form-data")
    # a CR/LF cannot even cross multipart literally (browsers send %0D%0A): werkzeug drops that part
    assert uploaded.status_code == (302 if "\n" in name else 400)
    with sessions.begin() as s:
        assert drafts.list_drafts(s, "test-designer") == []


def test_a_stored_name_with_cr_lf_still_downloads_with_a_safe_header(client, login_as, sessions):
    with sessions.begin() as s:
        version = deploy.deploy_files(s, {"order.bpmn": ORDER.encode()}, by="dora").created[0]
        s.get(ModelFile, version.file_id).filename = 'bad"\r\nSet-Cookie: x=1;ä.bpmn'  # stored before the check
        version_id = version.id
    login_as("designer")
    response = client.get(f"/designer/versions/{version_id}/download")
    assert response.status_code == 200
    header = response.headers["Content-Disposition"]
    assert "\r" not in header and "\n" not in header
    assert not any("x=1" in cookie for cookie in response.headers.getlist("Set-Cookie"))
    assert header.startswith("attachment; filename=") and "filename*=UTF-8''bad%22Set-Cookie" in header
    assert "%C3%A4.bpmn" in header


@pytest.mark.parametrize("url", ["/designer/drafts", "/designer/validate"])
def test_json_nested_100000_deep_is_a_400(client, login_as, url):
    login_as("designer")
    response = _json_post(client, url, DEEP)
    assert response.status_code == 400
    assert "nested too deeply" in response.get_data(as_text=True) or "liian syvälle" in response.get_data(as_text=True)


def test_any_json_body_nested_too_deep_is_a_400(client, login_as):
    login_as("expert")
    assert _json_post(client, "/customers/new", DEEP).status_code == 400


@pytest.mark.parametrize("body", [b'{"filename": "a.bpmn", "content": "\xff"}',
                                  b'{"filename": "a.bpmn", "content": "\\udc80"}',
                                  b'{"filename": "\\ud800.bpmn", "content": "x"}'])
def test_json_that_is_not_utf8_text_is_a_400(client, login_as, sessions, body):
    login_as("designer")
    response = _json_post(client, "/designer/drafts", body)
    assert response.status_code == 400
    with sessions.begin() as s:
        assert drafts.list_drafts(s, "test-designer") == []


def test_percent_encoded_invalid_utf8_in_a_form_is_a_400_and_stores_nothing(client, login_as, sessions):
    login_as("expert")
    token = client.csrf_token()
    body = f"csrf_token={token}&name=Huono%FF%FEOy&business_id=0737546-2".encode()
    response = client.post("/customers/new", data=body, content_type="application/x-www-form-urlencoded",
                           csrf=False)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "UTF-8" in page
    with sessions.begin() as s:
        assert customers.find_by_business_id(s, "0737546-2") is None


def test_invalid_utf8_in_the_query_string_is_a_400(client, login_as):
    login_as("expert")
    response = client.get("/customers/?q=%C3%28")
    assert response.status_code == 400 and "UTF-8" in response.get_data(as_text=True)
    assert client.get("/customers/?q=%C3%A4").status_code == 200  # ä is fine
    # the halves of an ä in two values, or in a name and its value, are two invalid texts, not an ä
    for split in ("/customers/?q=%C3&r=%A4", "/customers/?q%C3=%A4", "/customers/?q=%C3"):
        assert client.get(split).status_code == 400, split


def test_invalid_utf8_in_an_upload_name_is_a_400(client, login_as, sessions):
    login_as("designer")
    token = client.csrf_token()
    boundary = "polkuboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"; filename=\"").encode() \
        + b"bad\xff.bpmn" + f"\"\r\nContent-Type: application/xml\r\n\r\n{ORDER}\r\n--{boundary}--\r\n".encode()
    response = client.post("/designer/upload", data=body, csrf=False,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    with sessions.begin() as s:
        assert drafts.list_drafts(s, "test-designer") == []


def test_csv_exports_neutralise_formulas_and_say_the_charset_once(client, login_as, sessions):
    with sessions.begin() as s:
        deploy.deploy_files(s, {"order.bpmn": ORDER.encode()}, by="=HYPERLINK(\"http://x\")")
        instance_id = runtime.start_instance(s, "order", by="+cmd|' /C calc'!A0",
                                             data={"customer": "@SUM(1+1)", "amount": 5}).id
    login_as("auditor")
    for url in (f"/audit/instances/{instance_id}/events.csv", "/audit/export.csv"):
        response = client.get(url)
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
        cells = [cell for row in rows for cell in row]
        assert "'+cmd|' /C calc'!A0" in cells
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    kpi = client.get("/audit/kpi/channels.csv")
    assert kpi.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_a_translated_message_carrying_input_is_escaped(client, login_as, sessions):
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        start = {"business_id": "0737546-2", "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
                 "contact_reason": "x"}
        instance = runtime.start_instance(s, "customer_service", by="test", data=start, business_key="0737546-2")
        task_id = open_tasks(s, instance_id=instance.id)[0].id
    login_as("expert")
    response = client.post(f"/tasks/{task_id}", data={
        "assessment_date": date.today().isoformat(), "assessment_method": "<img src=x onerror=alert(1)>",
        "company_situation": "growth", "headcount": "1", "segment": "local"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<img src=x onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_cli_history_csv_neutralises_formulas(tmp_path, capsys):
    from engine import cli
    from engine.config import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", secret_key="k")
    order = Path(__file__).parent.parent / "engine" / "bpmn" / "order.bpmn"
    assert cli.main(["--json", "deploy", str(order)], settings) == 0
    assert cli.main(["--json", "start", "order", "--by", "=1+1", "--data", '{"customer": "-2+3", "amount": 1}'],
                    settings) == 0
    capsys.readouterr()
    assert cli.main(["history", "1", "--format", "csv"], settings) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    actors = {row[3] for row in rows[1:]}
    assert any(a.startswith("'=1+1") for a in actors)
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_a_form_too_large_for_process_data_is_refused_at_the_form(client, login_as, sessions):
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        customer_id = customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": "0737546-2"}, by="t").id
        start = {"business_id": "0737546-2", "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
                 "contact_reason": "x"}
        instance = runtime.start_instance(s, "customer_service", by="test", data=start, business_key="0737546-2")
        task_id = open_tasks(s, instance_id=instance.id)[0].id
    login_as("expert")
    huge = "Pitkä teksti alkaa tästä " + "x" * 1_100_000
    response = client.post(f"/tasks/{task_id}", data={
        "assessment_date": date.today().isoformat(), "assessment_method": "company_visit",
        "company_situation": "growth", "headcount": "1", "segment": "local", "assessment_notes": huge})
    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "liian suuren" in page and "Pitkä teksti alkaa tästä xxx" in page  # the message, and the text kept
    started = client.post(f"/customers/{customer_id}/start", data={**start, "contact_reason": huge})
    assert started.status_code == 413 and "liian suuren" in started.get_data(as_text=True)
    with sessions.begin() as s:
        assert [t.id for t in open_tasks(s)] == [task_id]


# ², Arabic-Indic 3: isdigit() says yes, int() no; 31 digits: int() yes, SQLite's driver no (beyond 64 bits)
NUMBERS = ["%C2%B2", "%D9%A3", "9" * 5000, "9" * 31, "0", "-1", "1.5"]


@pytest.mark.parametrize("number", NUMBERS)
@pytest.mark.parametrize("role, url", [("expert", "/tasks/?page="), ("expert", "/customers/?page="),
                                       ("auditor", "/audit/?page="), ("auditor", "/audit/?version="),
                                       ("supervisor", "/worklists?page=")])
def test_a_number_in_the_query_that_is_not_one_is_ignored_not_a_500(client, login_as, role, url, number):
    login_as(role)
    reply = client.get(url + number)
    assert reply.status_code == 200, reply.get_data(as_text=True)[:300]


@pytest.mark.parametrize("role, url, field", [("expert", "/notifications/read", "notice_id"),
                                              ("admin", "/admin/mail", "mail_id"), ("expert", "/tokens/", "revoke")])
def test_an_id_beyond_64_bits_in_a_form_is_no_such_row_not_a_500(client, login_as, role, url, field):
    login_as(role)
    reply = client.post(url, data={field: "9" * 31})
    assert reply.status_code in (302, 400), reply.get_data(as_text=True)[:300]


@pytest.mark.parametrize("days", ["\u00b2", "9" * 5000])
def test_token_days_that_are_not_a_number_are_refused_with_a_message(client, login_as, days):
    login_as("expert")
    reply = client.post("/tokens/", data={"name": "integration", "days": days})
    assert reply.status_code == 422
    assert "Anna päivät kokonaislukuna." in reply.get_data(as_text=True)
