"""User administration: list, add, change roles and profile, reset passwords, no self lock-out."""

from __future__ import annotations

import pytest

from engine import users


@pytest.fixture
def admin(login_as):
    return login_as("admin")


@pytest.fixture
def aino(sessions):
    with sessions.begin() as s:
        users.add_user(s, "aino", "salasana-123", ["expert"], display_name="Aino Asiantuntija")
    return "aino"


def test_user_list_shows_users_and_roles(client, admin, aino):
    page = client.get("/admin/users").get_data(as_text=True)
    assert "Aino Asiantuntija" in page and "Asiantuntija" in page and "Ylläpitäjä" in page


def test_added_user_can_sign_in(client, admin, sessions):
    response = client.post("/admin/users/new", data={"username": "Eero", "display_name": "Eero E",
                                                     "password": "eeron-salasana", "roles": ["expert", "supervisor"],
                                                     "locale": "en"})
    assert response.headers["Location"] == "/admin/users"
    with sessions.begin() as s:
        user = users.get_user(s, "eero")
        assert (user.role_set, user.locale) == ({"expert", "supervisor"}, "en")
    client.post("/logout")
    assert client.post("/login", data={"username": "eero", "password": "eeron-salasana"}).status_code == 302


def test_bad_new_user_rerenders_with_a_translated_message(client, admin):
    response = client.post("/admin/users/new", data={"username": "x", "password": "salasana-123",
                                                     "display_name": "Xavier", "roles": ["expert"]})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Käyttäjätunnuksessa on 2–80 merkkiä" in page and 'value="Xavier"' in page
    assert 'value="expert" checked' in page


def test_taken_username_is_refused(client, admin, aino):
    response = client.post("/admin/users/new", data={"username": "aino", "password": "salasana-123"})
    assert response.status_code == 422
    assert "Käyttäjätunnus on jo käytössä." in response.get_data(as_text=True)


def test_edit_roles_and_deactivate(client, admin, aino, sessions):
    response = client.post("/admin/users/aino", data={"display_name": "Aino A", "roles": ["supervisor"],
                                                      "locale": "fi"})
    assert response.headers["Location"] == "/admin/users/aino"
    with sessions.begin() as s:
        user = users.get_user(s, "aino")
        assert (user.role_set, user.display_name, user.active) == ({"supervisor"}, "Aino A", False)


def test_admin_cannot_remove_own_admin_role(client, admin, sessions):
    response = client.post(f"/admin/users/{admin}", data={"roles": ["expert"], "active": "1", "locale": "fi"})
    assert response.status_code == 422
    assert "Et voi poistaa omaa ylläpitäjän rooliasi" in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert users.get_user(s, admin).role_set == {"admin"}


def test_reset_password(client, admin, aino):
    mismatch = client.post("/admin/users/aino/password", data={"password": "uusi-salasana", "password_again": "toinen"})
    assert mismatch.status_code == 422 and "Salasanat eivät täsmää." in mismatch.get_data(as_text=True)
    short = client.post("/admin/users/aino/password", data={"password": "lyhyt", "password_again": "lyhyt"})
    assert short.status_code == 422 and "vähintään 8 merkkiä" in short.get_data(as_text=True)
    ok = client.post("/admin/users/aino/password", data={"password": "uusi-salasana", "password_again": "uusi-salasana"})
    assert ok.status_code == 302
    client.post("/logout")
    assert client.post("/login", data={"username": "aino", "password": "uusi-salasana"}).status_code == 302


def test_missing_user_is_404(client, admin):
    assert client.get("/admin/users/nobody").status_code == 404
