"""Engine errors become friendly pages (or JSON) with one status each; error responses roll back."""

from __future__ import annotations

import pytest
from flask import abort

from engine import errors, users
from webui.db import get_session, write_session

RAISED = {
    "not-found": (errors.CustomerNotFound("No customer 5."), 404),
    "task-gone": (errors.TaskNotAvailable("The task is already completed."), 409),
    "conflict": (errors.Conflict("Changed by someone else."), 409),
    "form": (errors.FormInvalid({"name": "Enter the company name."}), 422),
    "input": (errors.InvalidInput("Unknown role."), 400),
    "not-allowed": (errors.NotAllowed("Not in production."), 403),
    "model": (errors.InvalidModel([errors.Problem("p.bpmn", 3, "Task_1", "No outgoing flow.")]), 422),
}


@pytest.fixture
def raising_app(app):
    """Add routes that raise each engine error, and routes that write then answer."""

    def raise_named(name):
        raise RAISED[name][0]

    def write_then(status):
        users.add_user(write_session(), "written", "salasana-123", [])  # a GET that writes says so first
        if status == 500:
            raise RuntimeError("boom")
        return "done", status

    app.add_url_rule("/test/raise/<name>", view_func=raise_named)
    def write_unannounced():
        users.add_user(get_session(), "written", "salasana-123", [])
        return "done"

    app.add_url_rule("/test/write/<int:status>", view_func=write_then)
    app.add_url_rule("/test/write-unannounced", view_func=write_unannounced)
    return app


@pytest.mark.parametrize("name", sorted(RAISED))
def test_engine_error_maps_to_its_status_on_a_friendly_page(raising_app, client, name):
    response = client.get(f"/test/raise/{name}")
    assert response.status_code == RAISED[name][1]
    page = response.get_data(as_text=True)
    assert f"Virhe {RAISED[name][1]}" in page and "Siirry etusivulle" in page


def test_translated_engine_message_is_shown(raising_app, client):
    assert "Tuntematon rooli." in client.get("/test/raise/input").get_data(as_text=True)


def test_model_problems_are_listed(raising_app, client):
    assert "p.bpmn:3 [Task_1]: No outgoing flow." in client.get("/test/raise/model").get_data(as_text=True)


def test_json_clients_get_json_errors(raising_app, client):
    response = client.get("/test/raise/form", headers={"Accept": "application/json"})
    assert response.status_code == 422
    assert response.json["errors"] == {"name": "Enter the company name."}


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Sivua ei löydy" in response.get_data(as_text=True)


def _written(sessions):
    with sessions.begin() as s:
        return "written" in {u.username for u in users.list_users(s)}


def test_successful_response_commits(raising_app, client, sessions):
    assert client.get("/test/write/200").status_code == 200
    assert _written(sessions)


def test_error_response_rolls_back(raising_app, client, sessions):
    assert client.get("/test/write/422").status_code == 422
    assert not _written(sessions)


def test_a_get_that_writes_without_write_session_is_refused_and_writes_nothing(raising_app, client, sessions):
    raising_app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    assert client.get("/test/write-unannounced").status_code == 500
    assert not _written(sessions)


def test_unexpected_exception_rolls_back_and_shows_a_friendly_500(raising_app, client, sessions):
    raising_app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    response = client.get("/test/write/500")
    assert response.status_code == 500
    assert "Jokin meni vikaan" in response.get_data(as_text=True)
    assert not _written(sessions)


def test_abort_403_uses_the_same_page(app, client):
    app.add_url_rule("/test/forbidden", view_func=lambda: abort(403))
    assert "Sinulla ei ole pääsyä" in client.get("/test/forbidden").get_data(as_text=True)


def test_a_failed_write_after_a_reread_still_shows_the_friendly_500_with_the_users_menu(app, client, login_as):
    """The page reads the signed-in user again; the failed flush must not turn it into a bare 500."""
    from engine.models import Customer

    def failing_write():
        session = write_session(reread=True)  # every row read so far expired: the user too
        session.add(Customer(business_id=None, name="No business ID"))
        session.flush()  # NOT NULL: the flush fails and the session must be rolled back
        return "never"

    app.add_url_rule("/test/failing-write", view_func=failing_write, methods=["POST"])
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False, WTF_CSRF_ENABLED=False)
    login_as("expert")
    response = client.post("/test/failing-write")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "Jokin meni vikaan" in page and "Test expert" in page
