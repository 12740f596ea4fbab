"""The REST API through the Flask test client: auth, roles, every resource, problems, paging, ETags.

Each test drives real engine code on a real SQLite database; tokens are made with `engine.tokens`.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

from sqlalchemy import select

from engine import audit, runtime, tokens
from engine.db import utcnow
from engine.models import ApiToken

from .conftest import EXAMPLES, START

PROBLEM = "application/problem+json"


def started(caller, **extra) -> dict:
    body = {"process_id": "customer_service", "business_key": START["business_id"], "data": START, **extra}
    response = caller.post("/instances", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


# --- authentication --------------------------------------------------------------------------------

def test_anonymous_calls_get_401_problem_without_cookies(api, shipped):
    response = api(None).get("/instances")
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == "/api/v1/problems/unauthenticated" and body["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Set-Cookie" not in response.headers


def test_a_signed_in_browser_session_does_not_authenticate_the_api(client, login_as, shipped):
    login_as("admin")
    assert client.get("/tasks/").status_code == 200  # the cookie works for the UI
    response = client.get("/api/v1/instances")
    assert response.status_code == 401 and response.mimetype == PROBLEM


def test_unknown_revoked_and_expired_tokens_are_refused(api, bearer, sessions, shipped, clock):
    good = bearer("expert")
    assert api(good).get("/me").get_json() == {"username": "api-expert", "roles": ["expert"],
                                               "token_id": api(good).get("/me").get_json()["token_id"]}
    assert api("polku_not-a-token").get("/me").status_code == 401
    assert api("Basic abc").get("/me").status_code == 401
    with sessions.begin() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
        tokens.revoke_token(s, token_id, by="test")
    assert api(good).get("/me").status_code == 401
    short = bearer("expert", days=1)
    assert api(short).get("/me").status_code == 200
    clock.move(days=1, seconds=1)
    assert api(short).get("/me").status_code == 401


def test_post_needs_no_csrf_token_but_a_bearer(api, bearer, shipped):
    response = api(bearer("expert")).post("/instances", json={"process_id": "customer_service", "data": START,
                                                              "business_key": START["business_id"]})
    assert response.status_code == 201


def test_token_roles_are_the_owners_or_fewer_and_checked_on_every_call(api, bearer, sessions, shipped):
    import pytest

    from engine.errors import InvalidInput

    with sessions.begin() as s:
        from engine import users

        users.add_user(s, "kaisa", "api-test-password", ["expert"], display_name="Kaisa")
        with pytest.raises(InvalidInput):
            tokens.create_token(s, "kaisa", by="test", roles=["admin"])
    reader_only = bearer("auditor", "expert", username="both", token_roles=["auditor"])
    response = api(reader_only).post("/instances", json={"process_id": "customer_service", "data": START})
    assert response.status_code == 403 and response.get_json()["type"] == "/api/v1/problems/forbidden"
    assert api(reader_only).get("/kpis").status_code == 200


def test_rate_limit_per_token_answers_429_with_retry_after(app, api, bearer, shipped):
    app.extensions["polku"].settings = type(app.extensions["polku"].settings)(
        **{**app.extensions["polku"].settings.__dict__, "api_rate_per_minute": 3})
    first, second = bearer("expert"), bearer("supervisor")
    assert [api(first).get("/me").status_code for _ in range(3)] == [200, 200, 200]
    limited = api(first).get("/me")
    assert limited.status_code == 429 and limited.mimetype == PROBLEM
    assert int(limited.headers["Retry-After"]) >= 1
    assert api(second).get("/me").status_code == 200, "another token has its own window"


# --- OpenAPI and docs -----------------------------------------------------------------------------

def test_openapi_document_is_3_1_generated_and_public(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path in ("/api/v1/definitions", "/api/v1/deployments", "/api/v1/instances", "/api/v1/tasks",
                 "/api/v1/tasks/{task_id}/complete", "/api/v1/messages", "/api/v1/signals", "/api/v1/incidents",
                 "/api/v1/external-tasks/fetch-and-lock", "/api/v1/customers", "/api/v1/kpis",
                 "/api/v1/exports/events"):
        assert path in paths, path
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    error = paths["/api/v1/instances"]["post"]["responses"]["422"]["content"]
    assert list(error) == [PROBLEM]
    assert "StartInstance" in doc["components"]["schemas"]


def test_docs_page_serves_swagger_ui_from_node_modules(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.data
    assert client.get("/api/v1/docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/v1/docs/swagger-ui.css").mimetype == "text/css"
    assert client.get("/api/v1/docs/package.json").status_code == 404


# --- definitions ----------------------------------------------------------------------------------

def test_definitions_list_versions_xml_and_start_form(api, bearer, shipped):
    caller = api(bearer("designer"))
    items = caller.get("/definitions").get_json()["items"]
    assert {"customer_service", "registry_check"} <= {d["process_id"] for d in items}
    versions = caller.get("/definitions/customer_service/versions").get_json()["items"]
    assert [v["version"] for v in versions] == [1]
    xml = caller.get("/definitions/customer_service/versions/1/xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml" and b'id="customer_service"' in xml.data
    assert caller.get("/definitions/nope/versions").status_code == 404
    form = caller.get("/definitions/customer_service/start-form").get_json()
    assert set(form["properties"]) == set(START) and form["type"] == "object"


def test_deploy_multipart_and_problems_with_file_line_element(api, bearer, shipped):
    caller = api(bearer("designer"))
    text = (EXAMPLES / "registry_check.bpmn").read_text().replace('name="Checked"', 'name="Checked!"')
    ok = caller.post("/deployments", data={"files": (io.BytesIO(text.encode()), "registry_check.bpmn")},
                     content_type="multipart/form-data")
    assert ok.status_code == 201, ok.get_data(as_text=True)
    assert [v["version"] for v in ok.get_json()["created"]] == [2]
    broken = text.replace('sourceRef="review" targetRef="end"', 'sourceRef="review" targetRef="nowhere"')
    bad = caller.post("/deployments", data={"files": (io.BytesIO(broken.encode()), "registry_check.bpmn")},
                      content_type="multipart/form-data")
    assert bad.status_code == 422 and bad.mimetype == PROBLEM
    body = bad.get_json()
    assert body["type"] == "/api/v1/problems/invalid-model"
    assert body["problems"] and {"file", "line", "element", "message"} <= set(body["problems"][0])
    assert body["problems"][0]["file"] == "registry_check.bpmn"
    expert = api(bearer("expert"))
    assert expert.post("/deployments", data={"files": (io.BytesIO(text.encode()), "x.bpmn")},
                       content_type="multipart/form-data").status_code == 403


# --- instances ------------------------------------------------------------------------------------

def test_start_get_etag_variables_history_and_audit_actor(api, bearer, sessions, shipped):
    caller = api(bearer("expert"))
    instance = started(caller)
    assert instance["business_key"] == START["business_id"] and instance["status"] == "running"
    got = caller.get(f"/instances/{instance['id']}")
    assert got.status_code == 200 and got.headers["ETag"] == f'"{instance["revision"]}"'
    assert caller.get(f"/instances/{instance['id']}/variables").get_json()["variables"]["company_name"] == \
        START["company_name"]
    events = caller.get(f"/instances/{instance['id']}/history").get_json()["items"]
    assert events[0]["kind"] == "instance_started"
    token_id = caller.get("/me").get_json()["token_id"]
    assert events[0]["actor"] == f"api-expert (api token {token_id})"


def test_start_with_bad_form_data_is_422_with_field_errors(api, bearer, shipped):
    response = api(bearer("expert")).post("/instances", json={
        "process_id": "customer_service", "data": {**START, "contact_channel": "carrier pigeon"}})
    assert response.status_code == 422
    body = response.get_json()
    assert body["type"] == "/api/v1/problems/form-invalid" and "contact_channel" in body["errors"]
    schema_error = api(bearer("expert")).post("/instances", json={"process": "customer_service"})
    assert schema_error.status_code == 422 and schema_error.get_json()["type"] == "/api/v1/problems/validation"


def test_search_with_cursor_pages_and_least_privilege(api, bearer, shipped):
    supervisor = api(bearer("supervisor"))
    ids = [started(supervisor)["id"] for _ in range(3)]
    first = supervisor.get("/instances?limit=2&process_id=customer_service").get_json()
    assert [i["id"] for i in first["items"]] == ids[:2] and first["next_cursor"]
    second = supervisor.get(f"/instances?limit=2&cursor={first['next_cursor']}").get_json()
    assert [i["id"] for i in second["items"]] == ids[2:] and second["next_cursor"] is None
    assert supervisor.get("/instances?cursor=%%%").status_code == 400
    assert supervisor.get("/instances?started_from=2000-01-01T00:00:00Z").get_json()["items"][0]["id"] == ids[0]
    assert supervisor.get("/instances?started_to=2000-01-01T00:00:00Z").get_json()["items"] == []
    assert supervisor.get("/instances?started_to=2000-01-01T00:00:00").status_code == 422, "with a time zone"
    assert supervisor.get("/tasks?overdue=true").get_json()["items"] == []
    designer = api(bearer("designer"))
    assert designer.get("/instances").get_json()["items"] == []
    assert designer.get(f"/instances/{ids[0]}").status_code == 404


def test_cancel_with_reason_honours_if_match(api, bearer, shipped):
    supervisor = api(bearer("supervisor"))
    instance = started(supervisor)
    stale = supervisor.post(f"/instances/{instance['id']}/cancel", json={"reason": "duplicate"},
                            headers={"If-Match": f'"{instance["revision"] + 5}"'})
    assert stale.status_code == 412 and stale.get_json()["type"] == "/api/v1/problems/revision-mismatch"
    done = supervisor.post(f"/instances/{instance['id']}/cancel", json={"reason": "duplicate"},
                           headers={"If-Match": f'"{instance["revision"]}"'})
    assert done.status_code == 200 and done.get_json()["status"] == "cancelled"
    again = supervisor.post(f"/instances/{instance['id']}/cancel", json={"reason": "again"})
    assert again.status_code == 409
    assert api(bearer("expert")).post(f"/instances/{instance['id']}/cancel", json={}).status_code == 403


# --- tasks ----------------------------------------------------------------------------------------

def test_task_query_form_schema_claim_release_assign_complete(api, bearer, shipped):
    expert = api(bearer("expert"))
    other = api(bearer("expert", username="api-expert-2"))
    instance = started(expert)
    [task] = expert.get(f"/tasks?instance_id={instance['id']}").get_json()["items"]
    assert task["element_id"] == "assess_service_needs"
    assert [t["id"] for t in expert.get("/tasks?mine=true").get_json()["items"]] == [task["id"]]
    detail = expert.get(f"/tasks/{task['id']}")
    form = detail.get_json()["form"]
    assert form["properties"]["assessment_method"]["type"] == "string"
    assert "enum" in form["properties"]["assessment_method"]
    assert detail.headers["ETag"] == f'"{detail.get_json()["instance_revision"]}"'
    assert expert.post(f"/tasks/{task['id']}/claim").get_json()["assignee"] == "api-expert"
    taken = other.post(f"/tasks/{task['id']}/claim")
    assert taken.status_code == 409 and taken.get_json()["type"] == "/api/v1/problems/task-not-available"
    assert expert.post(f"/tasks/{task['id']}/release").get_json()["assignee"] is None
    assert expert.post(f"/tasks/{task['id']}/assign", json={"assignee": "api-expert-2"}).status_code == 403
    supervisor = api(bearer("supervisor"))
    assert supervisor.post(f"/tasks/{task['id']}/assign", json={"assignee": "api-expert"}).get_json()[
        "assignee"] == "api-expert"
    invalid = expert.post(f"/tasks/{task['id']}/complete", json={"data": {"headcount": "many"}})
    assert invalid.status_code == 422 and "headcount" in invalid.get_json()["errors"]
    stale = expert.post(f"/tasks/{task['id']}/complete", json={"data": {}}, headers={"If-Match": '"999"'})
    assert stale.status_code == 412
    data = {"assessment_date": "2026-03-02", "assessment_method": "company_visit", "company_situation": "growth",
            "headcount": 42, "segment": "local", "identified_needs": ["recruitment"],
            "process_agreed_with_customer": True, "responsible_expert": "api-expert"}
    assert expert.post(f"/tasks/{task['id']}/complete", json={"data": data},
                       headers={"If-Match": detail.headers["ETag"]}).status_code == 412, "claimed since"
    fresh = expert.get(f"/tasks/{task['id']}").headers["ETag"]
    done = expert.post(f"/tasks/{task['id']}/complete", json={"data": data}, headers={"If-Match": fresh})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert [t["element_id"] for t in done.get_json()["tasks"] if t["state"] == "ready"] == ["plan_recruitment"]
    assert expert.post(f"/tasks/{task['id']}/complete", json={"data": data}).status_code == 409
    assert expert.get("/tasks/not-a-task").status_code == 404


# --- messages, signals, incidents -----------------------------------------------------------------

def test_message_without_a_waiting_instance_is_404_and_signal_reaches_nobody(api, bearer, shipped):
    supervisor = api(bearer("supervisor"))
    started(supervisor)
    missing = supervisor.post("/messages", json={"name": "no_such_message", "business_key": START["business_id"]})
    assert missing.status_code == 404 and missing.mimetype == PROBLEM
    assert supervisor.post("/signals", json={"name": "nobody_waits"}).get_json() == {"delivered_to": [],
                                                                                    "started": []}
    assert api(bearer("expert")).post("/signals", json={"name": "x"}).status_code == 403


def test_external_task_failure_to_incident_then_retry_with_data(api, bearer, shipped):
    supervisor = api(bearer("supervisor"))
    instance = supervisor.post("/instances", json={"process_id": "registry_check",
                                                    "data": {"business_id": "0737546-2"}}).get_json()
    fetch = {"worker_id": "w1", "topics": [{"name": "registry-lookup", "lock_seconds": 60}]}
    [task] = supervisor.post("/external-tasks/fetch-and-lock", json=fetch).get_json()["items"]
    assert task["instance_id"] == instance["id"] and task["variables"]["business_id"] == "0737546-2"
    assert supervisor.post("/external-tasks/fetch-and-lock", json=fetch).get_json()["items"] == []
    extended = supervisor.post(f"/external-tasks/{task['id']}/extend-lock", json={"worker_id": "w1",
                                                                                  "lock_seconds": 120})
    assert extended.status_code == 200 and extended.get_json()["locked"] is True
    wrong = supervisor.post(f"/external-tasks/{task['id']}/complete", json={"worker_id": "w2"})
    assert wrong.status_code == 409 and wrong.get_json()["type"] == "/api/v1/problems/external-task-not-available"
    failed = supervisor.post(f"/external-tasks/{task['id']}/failure", json={"worker_id": "w1",
                                                                            "message": "registry down",
                                                                            "retries": 0})
    assert failed.status_code == 200
    [incident] = supervisor.get(f"/incidents?instance_id={instance['id']}").get_json()["items"]
    assert "registry down" in incident["message"]
    retried = supervisor.post(f"/incidents/{incident['id']}/retry", json={"data": {}})
    assert retried.status_code == 200 and retried.get_json()["status"] == "resolved"
    [again] = supervisor.post("/external-tasks/fetch-and-lock", json=fetch).get_json()["items"]
    done = supervisor.post(f"/external-tasks/{again['id']}/complete",
                           json={"worker_id": "w1", "variables": {"registry_status": "active"}})
    assert done.status_code == 200 and done.get_json()["state"] == "completed"
    case = supervisor.get(f"/instances/{instance['id']}").get_json()
    assert case["variables"]["registry_status"] == "active"
    assert [t["element_id"] for t in case["tasks"]] == ["review"]
    assert api(bearer("expert")).post("/external-tasks/fetch-and-lock", json=fetch).status_code == 403


# --- customers, KPIs, exports ---------------------------------------------------------------------

def test_customers_create_search_get_update_timeline(api, bearer, shipped):
    expert = api(bearer("expert"))
    created = expert.post("/customers", json={"business_id": "0737546-2", "name": "Konepaja Virtanen Oy",
                                              "headcount": 42})
    assert created.status_code == 201, created.get_data(as_text=True)
    customer = created.get_json()
    bad = expert.post("/customers", json={"business_id": "1234567-2", "name": "Bad check digit"})
    assert bad.status_code == 422 and "business_id" in bad.get_json()["errors"]
    found = expert.get("/customers?q=Konepaja").get_json()["items"]
    assert [c["id"] for c in found] == [customer["id"]]
    updated = expert.put(f"/customers/{customer['id']}", json={"business_id": "0737546-2",
                                                               "name": "Konepaja Virtanen Oy", "headcount": 50})
    assert updated.get_json()["headcount"] == 50
    started(expert)
    timeline = expert.get(f"/customers/{customer['id']}/timeline").get_json()["items"]
    assert timeline and timeline[0]["instance_id"]
    assert expert.get("/customers/99999").status_code == 404
    logged = expert.post(f"/customers/{customer['id']}/contacts", json={
        "contacted_on": "2026-03-02", "channel": "phone", "topic": "Recruitment needs", "next_contact_on": "2026-01-01"})
    assert logged.status_code == 422 and "next_contact_on" in logged.get_json()["errors"]
    logged = expert.post(f"/customers/{customer['id']}/contacts", json={
        "contacted_on": "2026-03-02", "channel": "phone", "topic": "Recruitment needs"})
    assert logged.status_code == 201, logged.get_data(as_text=True)
    assert [c["topic"] for c in expert.get(f"/customers/{customer['id']}/contacts").get_json()["items"]] == [
        "Recruitment needs"]


def test_the_customer_timeline_pages_by_cursor_newest_first_and_a_new_step_shifts_nothing(api, bearer, shipped):
    expert = api(bearer("expert"))
    customer = expert.post("/customers", json={"business_id": "0737546-2", "name": "Konepaja Virtanen Oy"}).get_json()
    at = utcnow().replace(microsecond=0)
    with shipped.begin() as s:  # seven cases started at one instant: their steps share a time, the id orders them
        for _ in range(7):
            runtime.start_instance(s, "customer_service", by="api-expert", data=START,
                                   business_key=START["business_id"], now=at)
    whole = expert.get(f"/customers/{customer['id']}/timeline?limit=200").get_json()
    assert whole["next_cursor"] is None and len(whole["items"]) >= 7
    keys = [(e["at"], e["id"]) for e in whole["items"]]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    first = expert.get(f"/customers/{customer['id']}/timeline?limit=3").get_json()
    assert [e["id"] for e in first["items"]] == [e["id"] for e in whole["items"][:3]] and first["next_cursor"]
    started(expert)  # a newer step meanwhile: the next page goes on from where the first one ended
    seen, cursor = [e["id"] for e in first["items"]], first["next_cursor"]
    while cursor:
        page = expert.get(f"/customers/{customer['id']}/timeline?limit=3&cursor={cursor}").get_json()
        assert len(page["items"]) <= 3
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [e["id"] for e in whole["items"]]
    newest = expert.get(f"/customers/{customer['id']}/timeline?limit=1").get_json()["items"]
    assert newest[0]["id"] not in seen and newest[0]["at"] >= whole["items"][0]["at"]
    for bad in ("%%%", "WzEsMl0", "WyJub3QgYSB0aW1lIiwgMV0", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgMV0",
                "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgdHJ1ZV0",
                "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgMTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMF0",
                "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwgMV0", "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTA1OjAwIiwgMV0",
                "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgLTVd"):
        # garbage, [1, 2], ["not a time", 1], a time without its zone, [time, true], an id of 31 digits,
        # times that leave the calendar in UTC (year 1 at +05:00, year 9999 at -05:00), a negative id
        assert expert.get(f"/customers/{customer['id']}/timeline?cursor={bad}").status_code == 400, bad
    assert expert.get(f"/customers/{customer['id']}/timeline?limit=201").status_code in (400, 422)


def test_kpis_and_streamed_exports(api, bearer, shipped):
    auditor = api(bearer("auditor"))
    started(api(bearer("expert")))
    figures = auditor.get("/kpis").get_json()
    assert figures["unassigned"]["open"] == 1
    as_json = auditor.get("/exports/events?format=json", buffered=False)
    assert as_json.is_streamed, "sent as it is read, not built whole first"
    assert as_json.status_code == 200 and "instance_started" in as_json.get_data(as_text=True)
    as_json.close()
    as_csv = auditor.get("/exports/events?format=csv&process_id=customer_service")
    assert as_csv.mimetype == "text/csv", (as_csv.status_code, as_csv.get_data(as_text=True)[:300])
    assert "instance_started" in as_csv.get_data(as_text=True)
    xes = auditor.get("/exports/events?format=xes")
    assert xes.mimetype == "application/xml" and b"<log" in xes.data
    assert api(bearer("expert", username="x-expert")).get("/kpis").status_code == 403


def test_reload_between_calls_changes_nothing(api, bearer, shipped):
    caller = api(bearer("expert"))
    instance = started(caller)
    runtime.forget_cache()
    [task] = caller.get(f"/tasks?instance_id={instance['id']}").get_json()["items"]
    runtime.forget_cache()
    assert caller.post(f"/tasks/{task['id']}/claim").status_code == 200


def test_token_creation_is_audited_and_secret_never_stored(sessions, bearer):
    secret = bearer("expert")
    with sessions.begin() as s:
        row = s.scalars(select(ApiToken)).one()
        assert secret not in (row.token_hash, row.prefix) and secret.startswith(row.prefix)
        assert row.expires_at - row.created_at == timedelta(days=30)
        events = [json.loads(e.data) for e in audit.iter_events(s) if e.stream == "users"]
        assert any(e.get("action") == "api_token_created" for e in events)
        assert tokens.authenticate(s, secret, now=utcnow()) is not None
