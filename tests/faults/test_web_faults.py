"""A failed write never loses what the expert typed: the disk fills up (a real tmpfs) or the
database becomes read-only while a task form is submitted through the Flask test client.

The answer is 503 with the form re-rendered from what was posted and a "not saved, try again"
message in the user's language; nothing is half-written; once the disk has room again the same
submission goes through exactly once and the audit chain is intact.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy import event

from engine import audit, customers, deploy, runtime
from engine.inbox import tasks as open_tasks
from engine.models import Task

from .conftest import fill_disk

BPMN = Path(__file__).parents[2] / "bpmn"
BUSINESS_ID = "0737546-2"
START = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "phone_service",
         "contact_reason": "Kasvusuunnitelma"}
NOTES = "Pitkä muistiinpano, jota ei saa hukata <b>"


def _case(sessions) -> tuple[int, str]:
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="test")
        customers.create_customer(s, {"name": "Pirkan Puu Oy", "business_id": BUSINESS_ID}, by="test")
        instance = runtime.start_instance(s, "customer_service", by="test", data=START, business_key=BUSINESS_ID)
        return instance.id, open_tasks(s, instance_id=instance.id)[0].id


def _assessment(token: str) -> dict:
    return {"assessment_date": date.today().isoformat(), "assessment_method": "company_visit",
            "company_situation": "growth", "headcount": "42", "segment": "local",
            "identified_needs": ["other_partner_service"], "contact_person": "Matti", "contact_phone": "040 1",
            "assessment_notes": NOTES, "process_agreed_with_customer": "true",
            "responsible_expert": "test-expert", "csrf_token": token}


def _completed(sessions, instance_id: int) -> int:
    with sessions.begin() as s:
        return sum(1 for e in audit.history(s, instance_id) if e.kind == "task_completed")


def test_full_disk_while_completing_a_task_keeps_everything_typed(client, login_as, sessions, tiny_disk):
    instance_id, task_id = _case(sessions)
    login_as("expert")
    token = client.csrf_token()
    assert client.get(f"/tasks/{task_id}").status_code == 200
    free = fill_disk(tiny_disk)
    try:
        response = client.post(f"/tasks/{task_id}", data=_assessment(token))
    finally:
        free()
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "Ei tallennettu" in page and "kokeile hetken kuluttua uudelleen" in page
    assert "Pitkä muistiinpano, jota ei saa hukata &lt;b&gt;</textarea>" in page  # typed, and escaped
    assert 'value="042"' not in page and 'value="42"' in page and 'value="Matti"' in page
    assert 'value="other_partner_service" checked' in page
    assert "flash-success" not in page  # no "completed" message for what was not saved
    with sessions.begin() as s:  # nothing half-written
        assert s.get(Task, task_id).state == "ready"
    assert _completed(sessions, instance_id) == 0
    again = client.post(f"/tasks/{task_id}", data=_assessment(token))  # room again: the same post works
    assert again.status_code == 302
    assert _completed(sessions, instance_id) == 1
    with sessions.begin() as s:
        assert s.get(Task, task_id).state == "completed"
        assert audit.verify(s).ok


def test_not_saved_message_in_english(client, login_as, sessions, tiny_disk):
    _instance_id, task_id = _case(sessions)
    login_as("expert")
    client.post("/language", data={"lang": "en"})
    token = client.csrf_token()
    free = fill_disk(tiny_disk)
    try:
        response = client.post(f"/tasks/{task_id}", data=_assessment(token))
    finally:
        free()
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Not saved: the database could not store this just now" in page and "try again" in page
    assert "Pitkä muistiinpano, jota ei saa hukata &lt;b&gt;</textarea>" in page


def test_read_only_database_gives_503_with_the_typed_values_to_send_again(app, client, login_as, sessions):
    _instance_id, task_id = _case(sessions)
    login_as("expert")
    token = client.csrf_token()
    engine = app.extensions["polku"].engine

    def read_only(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA query_only=ON")

    event.listen(engine, "connect", read_only)
    engine.dispose()
    try:
        response = client.post(f"/tasks/{task_id}", data=_assessment(token))
    finally:
        event.remove(engine, "connect", read_only)
        engine.dispose()
    page = response.get_data(as_text=True)
    assert response.status_code == 503, page[:500]
    assert "Traceback" not in page
    # the completion reads before it takes the write lock: the refusal comes at the write, after the
    # form was rendered with what was typed (as with a full disk)
    assert f'<form method="post" action="/tasks/{task_id}"' in page
    assert "Ei tallennettu" in page and "Pitkä muistiinpano, jota ei saa hukata &lt;b&gt;</textarea>" in page
    with sessions.begin() as s:
        assert s.get(Task, task_id).state == "ready"
    resend = client.post(f"/tasks/{task_id}", data=_assessment(token))
    assert resend.status_code == 302


def test_sign_in_with_a_full_disk_is_a_503_not_a_500(client, login_as, sessions, tiny_disk):
    login_as("expert")
    client.post("/logout")
    free = fill_disk(tiny_disk)
    try:
        wrong = client.post("/login", data={"username": "test-expert", "password": "wrong-password"})
        right = client.post("/login", data={"username": "test-expert", "password": "test-password"})
    finally:
        free()
    for response in (wrong, right):
        page = response.get_data(as_text=True)
        assert response.status_code == 503, page[:300]
        assert "tietokanta ei ole käytettävissä" in page and 'value="test-expert"' in page
    assert client.get("/tasks/").status_code == 302  # the failed sign-in did not sign in
    assert client.post("/login", data={"username": "test-expert", "password": "test-password"}).status_code == 302


def test_audit_events_of_the_failed_write_are_not_kept(client, login_as, sessions, tiny_disk):
    instance_id, task_id = _case(sessions)
    login_as("expert")
    token = client.csrf_token()
    with sessions.begin() as s:
        before = [json.loads(e.data) for e in audit.history(s, instance_id)]
    free = fill_disk(tiny_disk)
    try:
        assert client.post(f"/tasks/{task_id}/claim", data={"csrf_token": token}).status_code == 503
    finally:
        free()
    with sessions.begin() as s:
        assert [json.loads(e.data) for e in audit.history(s, instance_id)] == before
        assert s.get(Task, task_id).assignee is None
