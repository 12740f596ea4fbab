"""Sign-in and access (webui/auth.py), stated from what the module promises.

The decorator refuses to be misused; a signed-in visitor of the sign-in page goes on; signing in
keeps the stash and language of the visitor and starts a fresh session in the user's language;
signing out ends the server-side session and keeps the language; throttled attempts answer 429
with whole seconds to wait and stay in the audit trail; every response carries the security
headers (and static files may be cached).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import signin, users
from engine.models import AuditEvent, User, UserSession
from webui import create_app
from webui.auth import login_required, safe_next


@pytest.fixture
def aino(sessions):
    with sessions.begin() as s:
        users.add_user(s, "aino", "oikea-salasana", ["expert"], display_name="Aino A", locale="en")
    return "aino"


def _sign_in(client, username="aino", password="oikea-salasana", **extra):
    return client.post("/login", data={"username": username, "password": password, **extra})


def test_the_decorator_refuses_a_bare_use_and_unknown_roles():
    with pytest.raises(TypeError, match=r"^write @login_required\(\) or @login_required\('role', \.\.\.\)$"):
        login_required(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown roles \['boss'\]"):
        login_required("expert", "boss")
    assert callable(login_required("expert")) and callable(login_required())
    assert login_required("expert", "admin")(lambda: "x").polku_roles == ("expert", "admin")


@pytest.mark.parametrize("target", ["/ok\\no", "//x", "http:/x", "/\\x"])
def test_next_refuses_backslashes_and_other_hosts(target):
    assert safe_next(target) is None


def test_next_accepts_a_path_with_a_colon_in_its_query():
    assert safe_next("/customers/?q=a:b") == "/customers/?q=a:b"


def test_a_signed_in_visitor_of_the_sign_in_page_goes_on(client, aino):
    _sign_in(client)
    response = client.get("/login?next=/customers/")
    assert (response.status_code, response.headers["Location"]) == (302, "/customers/")
    response = client.get("/login?next=https://evil.example/")
    assert (response.status_code, response.headers["Location"]) == (302, "/")
    assert client.get("/login").headers["Location"] == "/"


def test_the_sign_in_page_keeps_next_in_its_form(client):
    page = client.get("/login?next=/customers/").get_data(as_text=True)
    assert '<input type="hidden" name="next" value="/customers/">' in page
    assert '<input type="hidden" name="next" value="//evil">' not in client.get(
        "/login?next=//evil").get_data(as_text=True)


def test_signing_in_lands_home_and_shows_pages_in_the_users_language(client, aino):
    response = _sign_in(client)
    assert (response.status_code, response.headers["Location"]) == (302, "/")
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page


def test_signing_in_starts_one_server_session_with_the_browser_and_address(client, aino, sessions):
    client.post("/login", data={"username": "aino", "password": "oikea-salasana"},
                headers={"User-Agent": "TestBrowser/1"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    with sessions.begin() as s:
        rows = list(s.scalars(select(UserSession)))
        assert [(r.user_agent, r.address, r.ended_at) for r in rows] == [("TestBrowser/1", "10.1.2.3", None)]
        assert rows[0].expires_at - rows[0].created_at == client.application.config["PERMANENT_SESSION_LIFETIME"]


def test_signing_out_ends_the_server_session_and_keeps_the_language(client, aino, sessions):
    _sign_in(client)
    response = client.post("/logout")
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    with sessions.begin() as s:
        assert [r.ended_reason for r in s.scalars(select(UserSession))] == [signin.EndReason.SIGNED_OUT]
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page and '<p class="flash flash-info">You have signed out.</p>' in page


def test_signing_out_without_a_sign_in_is_harmless(client):
    response = client.post("/logout")
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    assert '<html lang="fi">' in client.get("/login").get_data(as_text=True)


def test_a_language_chosen_before_signing_in_is_replaced_by_the_users(client, sessions):
    with sessions.begin() as s:
        users.add_user(s, "eero", "oikea-salasana", ["expert"], locale="fi")
    client.post("/language", data={"lang": "en"})
    assert '<html lang="en">' in client.get("/login").get_data(as_text=True)
    _sign_in(client, "eero")
    assert '<html lang="fi">' in client.get("/").get_data(as_text=True)


def test_a_throttled_attempt_answers_429_with_whole_seconds_and_is_audited(client, clock, aino, sessions):
    for _ in range(5):
        _sign_in(client, password="väärä")
    now = clock.move(seconds=0.4)  # the clock stands still otherwise: 14.6 s left, shown as 15
    response = _sign_in(client, next="/customers/")
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "Yritä uudelleen 15 sekunnin kuluttua." in page
    assert 'value="aino"' in page and '<input type="hidden" name="next" value="/customers/">' in page
    with sessions.begin() as s:
        kinds = [(e.kind, json.loads(e.data).get("wait_seconds"), e.at)
                 for e in s.scalars(select(AuditEvent).where(AuditEvent.stream == "signin").order_by(AuditEvent.id))]
    assert kinds[5:] == [("signin_throttled", 15, now)]
    assert [(k, w) for k, w, _at in kinds[:5]] == [("signin_failed", None)] * 5


def test_the_wrong_password_page_keeps_the_typed_username_and_next(client, aino):
    page = _sign_in(client, "Aino ", "väärä", next="/customers/").get_data(as_text=True)
    assert 'value="aino"' in page and 'name="next" value="/customers/"' in page


def test_every_response_carries_the_security_headers(client):
    headers = client.get("/login").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Content-Security-Policy"] == (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'")
    assert headers["Cache-Control"] == "no-store"


def test_static_files_may_be_cached(client):
    response = client.get("/static/polku.css")
    response.close()
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_wrong_role_gets_403_and_a_visitors_post_is_sent_to_sign_in(client, login_as):
    response = client.post("/customers/new", data={"name": "X"})
    assert (response.status_code, response.headers["Location"]) == (302, "/login?next=/customers/new")
    login_as("designer")
    assert client.get("/customers/").status_code == 403
    assert client.get("/admin/users").status_code == 403


@pytest.mark.parametrize("role, shown", [("expert", False), ("supervisor", True), ("admin", True)])
def test_pages_offer_what_the_users_roles_allow(client, login_as, role, shown):
    login_as(role)
    page = client.get("/tasks/").get_data(as_text=True)
    assert ('· <a href="/supervisor/">Esimiesnäkymä</a></p>' in page) is shown  # the link beside "My aftercare"


def test_a_form_posted_after_expiry_is_kept_and_restored_with_notes_to_the_user(client, clock, aino):
    _sign_in(client)
    token = client.csrf_token()
    clock.move(hours=2)
    client.post("/customers/new", data={"name": "Kadonnut Oy", "business_id": "0737546-2", "csrf_token": token})
    page = client.get("/login?next=/customers/new").get_data(as_text=True)
    assert ('<p class="flash flash-info">Your sign-in had expired. Sign in again: what you typed has been kept.</p>'
            in page)
    _sign_in(client, next="/customers/new")
    page = client.get("/customers/new").get_data(as_text=True)
    assert 'value="Kadonnut Oy"' in page
    assert ('<p class="flash flash-info">What you typed before signing in again has been restored. Check it and '
            'save.</p>' in page)


def _sign_in_row(sessions):
    with sessions.begin() as s:
        return s.scalars(select(UserSession)).one()


def test_a_page_read_a_minute_after_the_last_use_notes_the_use(client, clock, aino, sessions):
    _sign_in(client)
    signed_in = clock.now
    clock.move(seconds=59)
    assert client.get("/").status_code == 200
    assert _sign_in_row(sessions).last_seen_at == signed_in  # at most once a minute
    now = clock.move(seconds=1)
    assert client.get("/").status_code == 200
    assert _sign_in_row(sessions).last_seen_at == now


def test_a_sign_in_past_its_lifetime_ends_on_a_page_read_though_just_used(app, client, clock, aino, sessions):
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=5)
    _sign_in(client)
    clock.move(minutes=4, seconds=30)
    assert client.get("/").status_code == 200  # used 40 seconds before the end below
    ended_at = clock.move(seconds=40)
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    row = _sign_in_row(sessions)
    assert (row.ended_at, str(row.ended_reason)) == (ended_at, "expired")


def test_restored_values_are_given_once_and_leave_the_cookie(client, clock, aino):
    _sign_in(client)
    token = client.csrf_token()
    clock.move(hours=2)
    client.post("/customers/new", data={"name": "Kadonnut Oy", "business_id": "0737546-2", "csrf_token": token})
    _sign_in(client, next="/customers/new")
    with client.session_transaction() as cookie:
        assert "form_stash" in cookie
    assert 'value="Kadonnut Oy"' in client.get("/customers/new").get_data(as_text=True)
    with client.session_transaction() as cookie:
        assert "form_stash" not in cookie
    assert 'value="Kadonnut Oy"' not in client.get("/customers/new").get_data(as_text=True)


def test_an_unknown_sign_in_token_is_a_visitor_and_is_dropped(client):
    with client.session_transaction() as cookie:
        cookie["sid"] = "no-such-sign-in"
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    with client.session_transaction() as cookie:
        assert "sid" not in cookie


def test_a_user_made_inactive_behind_a_live_sign_in_is_let_in_no_more(client, aino, sessions):
    _sign_in(client)
    assert client.get("/").status_code == 200
    with sessions.begin() as s:  # not through users.set_profile (which ends the sign-ins): only the flag
        s.get(User, users.get_user(s, "aino").id).active = False
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_sign_in_cookie_outlives_the_browser_and_leaves_when_the_sign_in_ends(client, clock, aino):
    response = _sign_in(client)
    assert "Expires=" in response.headers["Set-Cookie"]
    clock.move(hours=13)  # past the sign-in's lifetime
    client.get("/")
    with client.session_transaction() as cookie:
        assert "sid" not in cookie


def test_behind_two_trusted_proxies_the_address_two_hops_back_is_the_visitors(app, settings, aino, sessions):
    proxied = create_app(replace(settings, trusted_proxies=2), TESTING=True)
    proxied.test_client_class = app.test_client_class
    try:
        client = proxied.test_client()
        client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7")
        assert _sign_in(client).status_code == 302
        assert _sign_in_row(sessions).address == "203.0.113.5"  # not the first proxy, 198.51.100.7
    finally:
        proxied.extensions["polku"].engine.dispose()


def test_behind_two_trusted_proxies_the_scheme_two_hops_back_counts(app, settings, aino):
    proxied = create_app(replace(settings, trusted_proxies=2), TESTING=True)
    proxied.test_client_class = app.test_client_class
    try:
        client = proxied.test_client()
        # the visitor came in by HTTPS; the second proxy was reached by plain HTTP
        client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7",
                                   HTTP_X_FORWARDED_PROTO="https, http")
        token = client.csrf_token()
        # over HTTPS the CSRF check wants a same-site referrer: without one the sign-in is refused
        refused = client.post("/login", data={"username": "aino", "password": "oikea-salasana", "csrf_token": token})
        assert refused.status_code == 400
        signed_in = client.post("/login", data={"username": "aino", "password": "oikea-salasana", "csrf_token": token},
                                headers={"Referer": "https://localhost/login"})
        assert signed_in.status_code == 302
    finally:
        proxied.extensions["polku"].engine.dispose()
