"""Sign-in, sign-out, throttling, CSRF, safe redirects, idle expiry with the form stash, headers.

Sessions that end (revocation, lifetimes) are in `test_sessions.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import users
from webui.auth import safe_next
from webui.throttle import Backoff, LoginThrottle


@pytest.fixture
def aino(sessions):
    with sessions.begin() as s:
        users.add_user(s, "aino", "oikea-salasana", ["expert"], display_name="Aino Asiantuntija")
    return "aino"


def test_anonymous_visitor_is_sent_to_login_with_next(client):
    response = client.get("/customers/?q=oy")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/customers/?q%3Doy"


def test_login_lands_on_next_and_shows_the_user(client, aino):
    response = client.post("/login", data={"username": "Aino", "password": "oikea-salasana",
                                           "next": "/customers/"})
    assert (response.status_code, response.headers["Location"]) == (302, "/customers/")
    assert "Aino Asiantuntija" in client.get("/").get_data(as_text=True)


def test_wrong_password_shows_an_error_and_no_login(client, aino):
    response = client.post("/login", data={"username": "aino", "password": "väärä"})
    assert response.status_code == 200
    assert "Väärä käyttäjätunnus tai salasana." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logout_forgets_the_login(client, login_as):
    login_as("expert")
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_logout_by_get_is_not_possible(client, login_as):
    login_as("expert")
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("target, safe", [
    ("/customers/1", "/customers/1"),
    ("/customers/?q=a", "/customers/?q=a"),
    ("https://evil.example/", None),
    ("//evil.example/", None),
    ("/\\evil.example", None),
    ("javascript:alert(1)", None),
    ("", None),
])
def test_next_is_kept_only_for_paths_on_this_site(target, safe):
    assert safe_next(target) == safe


def test_login_ignores_an_offsite_next(client, aino):
    response = client.post("/login", data={"username": "aino", "password": "oikea-salasana",
                                           "next": "//evil.example/"})
    assert response.headers["Location"] == "/"


def test_five_failures_make_the_account_wait(client, aino):
    for _ in range(5):
        assert client.post("/login", data={"username": "aino", "password": "väärä"}).status_code == 200
    response = client.post("/login", data={"username": "aino", "password": "oikea-salasana"})
    assert response.status_code == 429
    assert "Liian monta epäonnistunutta kirjautumisyritystä" in response.get_data(as_text=True)


def test_lock_is_per_username(client, aino, sessions):
    with sessions.begin() as s:
        users.add_user(s, "eero", "eeron-salasana", ["expert"])
    for _ in range(5):
        client.post("/login", data={"username": "aino", "password": "väärä"})
    assert client.post("/login", data={"username": "eero", "password": "eeron-salasana"}).status_code == 302


def test_success_before_the_limit_clears_the_count(client, aino):
    for _ in range(4):
        client.post("/login", data={"username": "aino", "password": "väärä"})
    assert client.post("/login", data={"username": "aino", "password": "oikea-salasana"}).status_code == 302
    client.post("/logout")
    for _ in range(4):
        client.post("/login", data={"username": "aino", "password": "väärä"})
    assert client.post("/login", data={"username": "aino", "password": "oikea-salasana"}).status_code == 302


def test_backoff_doubles_up_to_its_ceiling():
    backoff = Backoff(free=3, first_wait=10, max_wait=60)
    waits = [backoff.wait_after(n).total_seconds() for n in range(8)]
    assert waits == [0, 0, 0, 10, 20, 40, 60, 60]


def test_throttle_waits_per_account_and_per_address_and_forgets_old_failures(session):
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    throttle = LoginThrottle(account=Backoff(2, 10, 100), address=Backoff(3, 10, 100), window_seconds=600)
    throttle.fail(session, "aino", "10.0.0.1", now)
    throttle.fail(session, "aino", "10.0.0.1", now)
    assert throttle.wait(session, "aino", "10.0.0.2", now) == timedelta(seconds=10)  # the account, anywhere
    assert throttle.wait(session, "eero", "10.0.0.1", now) == timedelta(0)  # the address has one more free
    throttle.fail(session, "eero", "10.0.0.1", now)
    assert throttle.wait(session, "eero", "10.0.0.1", now) == timedelta(seconds=10)  # now the address waits
    assert throttle.wait(session, "aino", "10.0.0.2", now + timedelta(seconds=10)) == timedelta(0)
    throttle.succeed(session, "aino")
    assert throttle.wait(session, "aino", "10.0.0.2", now) == timedelta(0)
    assert throttle.wait(session, "eero", "10.0.0.1", now) == timedelta(seconds=10)  # success keeps the address's
    assert throttle.wait(session, "eero", "10.0.0.1", now + timedelta(seconds=601)) == timedelta(0)


def test_failures_are_shared_by_every_server_process(settings, aino, db_engine):
    from webui import create_app

    first, second = create_app(settings), create_app(settings)  # two processes, one database
    clients = [first.test_client(), second.test_client()]
    for n in range(5):
        token = clients[n % 2].get("/login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
        clients[n % 2].post("/login", data={"username": "aino", "password": "väärä", "csrf_token": token})
    token = clients[0].get("/login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    response = clients[0].post("/login", data={"username": "aino", "password": "oikea-salasana", "csrf_token": token})
    assert response.status_code == 429


def test_post_without_csrf_token_is_refused(client, login_as):
    login_as("expert")
    response = client.post("/customers/new", data={"name": "X Oy", "business_id": "0737546-2"}, csrf=False)
    assert response.status_code == 400
    assert "Lomake oli vanhentunut" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, aino):
    response = client.post("/login", data={"username": "aino", "password": "oikea-salasana"}, csrf=False)
    assert response.status_code == 400


def test_role_change_takes_effect_on_the_next_request(client, login_as, sessions):
    username = login_as("expert")
    assert client.get("/customers/").status_code == 200
    with sessions.begin() as s:
        users.set_roles(s, username, ["designer"])
    assert client.get("/customers/").status_code == 302  # the sign-in ended: in again with the new roles
    login_as(username)
    assert client.get("/customers/").status_code == 403


def test_deactivated_user_is_signed_out(client, login_as, sessions):
    username = login_as("expert")
    with sessions.begin() as s:
        users.set_profile(s, username, active=False)
    assert client.get("/customers/").status_code == 302


def test_idle_login_expires(client, clock, login_as):
    login_as("expert")
    clock.move(hours=2)
    response = client.get("/customers/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_form_posted_after_expiry_is_restored_after_signing_in_again(client, clock, login_as):
    username = login_as("expert")
    token = client.csrf_token()
    clock.move(hours=2)
    typed = {"name": "Kadonnut Oy", "business_id": "0737546-2", "contact_person": "Liisa", "csrf_token": token}
    response = client.post("/customers/new", data=typed)
    assert (response.status_code, response.headers["Location"]) == (302, "/login?next=/customers/new")
    response = client.post("/login", data={"username": username, "password": "test-password",
                                           "next": "/customers/new"})
    assert response.headers["Location"] == "/customers/new"
    page = client.get("/customers/new").get_data(as_text=True)
    assert 'value="Kadonnut Oy"' in page and 'value="Liisa"' in page
    assert "kirjoittamasi tiedot on palautettu" in page
    assert 'value="Kadonnut Oy"' not in client.get("/customers/new").get_data(as_text=True)  # only once


def test_stashed_form_is_not_given_to_another_user(client, clock, login_as):
    login_as("expert")
    token = client.csrf_token()
    clock.move(hours=2)
    client.post("/customers/new", data={"name": "Salainen Oy", "csrf_token": token})
    login_as("supervisor")
    assert "Salainen Oy" not in client.get("/customers/new").get_data(as_text=True)


def test_pages_carry_security_headers_and_cookie_flags(client, aino):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    cookie = client.post("/login", data={"username": "aino", "password": "oikea-salasana"}).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "; Secure" in cookie


def test_cookie_is_secure_unless_insecure_cookies_are_asked_for(settings, db_engine):
    from dataclasses import replace

    from webui import create_app

    for env, insecure, secure in (("development", False, True), ("production", False, True),
                                  ("development", True, False)):
        app = create_app(replace(settings, env=env, insecure_cookies=insecure))
        assert app.config["SESSION_COOKIE_SECURE"] is secure
        app.extensions["polku"].engine.dispose()
