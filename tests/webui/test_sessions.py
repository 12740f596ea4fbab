"""Server-side sign-in sessions, throttling per account and per address, proxies, production guards.

A copied cookie is replayed from a second client: it must stop working the moment the sign-in
ends (sign-out, new password, changed roles, deactivation, an admin's button), when it has been
idle too long and when its absolute lifetime is over. Time is moved with the `clock` fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import users
from engine.errors import NotAllowed
from engine.models import AuditEvent, StashedForm, UserSession
from webui import create_app

COOKIE = "polku_session"
PASSWORD = "oikea-salasana"


@pytest.fixture
def aino(sessions):
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija")
    return "aino"


@pytest.fixture
def app_with(app, settings):
    """Return a factory of apps on the same database with some settings changed (closed at the end)."""
    made = []

    def make(**changes):
        other = create_app(replace(settings, **changes), TESTING=True)
        other.test_client_class = app.test_client_class  # the CSRF-aware client
        made.append(other)
        return other

    yield make
    for other in made:
        other.extensions["polku"].engine.dispose()


def _copy_of(app, client):
    """Return a second client carrying a copy of `client`'s session cookie (as a thief would)."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return thief


def _signed_in(response) -> bool:
    return response.status_code == 200


def _sign_in(client, username="aino", password=PASSWORD, **kwargs):
    return client.post("/login", data={"username": username, "password": password}, **kwargs)


def test_copied_cookie_works_until_sign_out_and_never_after(app, client, aino):
    assert _sign_in(client).status_code == 302
    thief = _copy_of(app, client)
    assert _signed_in(thief.get("/customers/"))
    client.post("/logout")
    response = thief.get("/customers/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("change", [
    {"path": "/admin/users/aino/password", "data": {"password": "uusi-salasana", "password_again": "uusi-salasana"}},
    {"path": "/admin/users/aino", "data": {"display_name": "Aino", "roles": ["supervisor"], "active": "1",
                                           "locale": "fi"}},
    {"path": "/admin/users/aino", "data": {"display_name": "Aino", "roles": ["expert"], "locale": "fi"}},
    {"path": "/admin/users/aino/sessions/end", "data": {}},
], ids=["password-reset", "role-change", "deactivation", "admin-ends-sessions"])
def test_copied_cookie_fails_after_an_admin_changes_the_account(app, aino, change):
    aino_client = app.test_client()
    assert _sign_in(aino_client).status_code == 302
    thief = _copy_of(app, aino_client)
    assert _signed_in(thief.get("/customers/"))
    admin = app.test_client()
    _sign_in_admin(app, admin)
    assert admin.post(change["path"], data=change["data"]).status_code == 302
    for who in (thief, aino_client):
        response = who.get("/customers/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def _sign_in_admin(app, admin):
    with app.extensions["polku"].sessions.begin() as s:
        if "boss" not in {u.username for u in users.list_users(s)}:
            users.add_user(s, "boss", "ylläpitäjä-123", ["admin"])
    assert _sign_in(admin, "boss", "ylläpitäjä-123").status_code == 302


def test_copied_cookie_fails_after_the_user_changes_their_password_elsewhere(app, client, aino, sessions):
    assert _sign_in(client).status_code == 302
    thief = _copy_of(app, client)
    with sessions.begin() as s:
        users.set_password(s, "aino", "uusi-salasana", by="aino")
    assert thief.get("/customers/").status_code == 302
    assert _sign_in(client, password="uusi-salasana").status_code == 302
    assert _signed_in(client.get("/customers/"))


def test_sign_in_idles_out_after_the_idle_lifetime(client, clock, aino):
    _sign_in(client)
    clock.move(minutes=29)
    assert _signed_in(client.get("/customers/"))
    clock.move(minutes=29)  # 58 minutes after signing in, 29 after the last request
    assert _signed_in(client.get("/customers/"))
    clock.move(minutes=31)
    response = client.get("/customers/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert response.status_code == client.get("/customers/").status_code  # it stays ended


def test_sign_in_ends_after_its_absolute_lifetime_however_busy(client, clock, aino, sessions):
    _sign_in(client)
    for _ in range(35):  # a request every 20 minutes for 11 h 40 min
        clock.move(minutes=20)
        assert _signed_in(client.get("/customers/"))
    clock.move(minutes=20)  # 12 h
    assert client.get("/customers/").status_code == 302
    with sessions.begin() as s:
        assert [r.ended_reason for r in s.scalars(select(UserSession))] == ["expired"]


def test_the_cookie_is_set_at_sign_in_to_end_with_it_and_not_sent_again_with_every_page(app, client, aino):
    signed = _sign_in(client)
    [cookie] = [c for c in signed.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "=")]
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    lifetime = app.config["PERMANENT_SESSION_LIFETIME"]
    assert abs(expires - datetime.now(UTC) - lifetime) < timedelta(minutes=1)
    assert _signed_in(client.get("/tasks/"))  # the first page after sign-in: the flash read, the form token made
    for path in ("/tasks/", "/tasks/?tab=group", "/"):
        page = client.get(path)
        assert _signed_in(page) and not [c for c in page.headers.getlist("Set-Cookie") if c.startswith(COOKIE)], path


def test_lifetimes_are_settings(app_with, clock, aino):
    app = app_with(idle_minutes=5, session_hours=1)
    app.config["POLKU_CLOCK"] = clock
    client = app.test_client()
    _sign_in(client)
    clock.move(minutes=4)
    assert _signed_in(client.get("/customers/"))
    clock.move(minutes=6)
    assert client.get("/customers/").status_code == 302


def test_admin_sees_live_sessions_and_ends_them(app, client, aino, sessions):
    aino_client = app.test_client()
    _sign_in(aino_client, headers={"User-Agent": "Firefox/128 testing"})
    _sign_in_admin(app, client)
    page = client.get("/admin/users/aino").get_data(as_text=True)
    assert "Firefox/128 testing" in page and "Päätä kaikki istunnot" in page
    response = client.post("/admin/users/aino/sessions/end", follow_redirects=True)
    assert "Käyttäjän aino istunnot päätetty: 1." in response.get_data(as_text=True)
    assert "Firefox/128 testing" not in client.get("/admin/users/aino").get_data(as_text=True)
    assert aino_client.get("/customers/").status_code == 302


def test_only_an_admin_can_end_sessions(app, client, aino, login_as):
    login_as("expert")
    assert client.post("/admin/users/aino/sessions/end").status_code == 403


def test_a_password_typed_when_the_sign_in_expired_is_not_stashed(client, clock, login_as, sessions):
    login_as("admin")
    token = client.csrf_token()
    clock.move(hours=1)
    typed = {"username": "uusi", "display_name": "Uusi Käyttäjä", "password": "salainen-123",
             "roles": ["expert"], "csrf_token": token}
    assert client.post("/admin/users/new", data=typed).status_code == 302
    with sessions.begin() as s:
        stashed = s.scalars(select(StashedForm)).one().values
    assert stashed["display_name"] == ["Uusi Käyttäjä"]
    assert "password" not in stashed and "csrf_token" not in stashed
    assert "salainen-123" not in json.dumps(stashed)


# Throttling: per account with a growing wait, per address separately, X-Forwarded-For only from trusted proxies.


def _from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_five_wrong_passwords_from_one_address_do_not_lock_the_account_out_elsewhere(app, clock, aino):
    attacker, aino_client = _from(app, "198.51.100.7"), _from(app, "10.1.2.3")
    for _ in range(5):
        assert _sign_in(attacker, password="väärä").status_code == 200
    waiting = _sign_in(aino_client)
    assert waiting.status_code == 429 and "15 sekunnin kuluttua" in waiting.get_data(as_text=True)
    clock.move(seconds=15)
    assert _sign_in(aino_client).status_code == 302


def test_the_wait_grows_with_every_failure_and_has_a_ceiling(app, clock, aino):
    attacker = _from(app, "198.51.100.7")
    for _ in range(5):
        assert _sign_in(attacker, password="väärä").status_code == 200
    waits = []
    for _ in range(8):
        refused = _sign_in(attacker, password="väärä")  # too early: not counted, password not checked
        assert refused.status_code == 429
        waits.append(int(refused.get_data(as_text=True).split("Yritä uudelleen ")[1].split(" ")[0]))
        clock.move(seconds=waits[-1])
        assert _sign_in(attacker, password="väärä").status_code == 200  # one more failure
    assert waits == [15, 30, 60, 120, 240, 480, 900, 900]


def test_spraying_many_accounts_from_one_address_is_throttled(app, clock, aino, sessions):
    sprayer = _from(app, "198.51.100.7")
    for n in range(10):
        assert _sign_in(sprayer, f"user{n}", "salasana1").status_code == 200
    assert _sign_in(sprayer, "user10", "salasana1").status_code == 429
    assert _sign_in(sprayer).status_code == 429  # even a right password: the address waits
    assert _sign_in(_from(app, "10.1.2.3")).status_code == 302  # everyone else goes on
    with sessions.begin() as s:
        kinds = [e.kind for e in s.scalars(select(AuditEvent).where(AuditEvent.stream == "signin"))]
    assert kinds == ["signin_failed"] * 10 + ["signin_throttled"] * 2


def test_failures_and_throttled_attempts_are_audited(app, aino, sessions):
    attacker = _from(app, "198.51.100.7")
    for _ in range(6):
        _sign_in(attacker, password="väärä")
    with sessions.begin() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.stream == "signin").order_by(AuditEvent.seq)))
    assert [e.kind for e in events] == ["signin_failed"] * 5 + ["signin_throttled"]
    assert json.loads(events[0].data) == {"username": "aino", "address": "198.51.100.7"}
    assert json.loads(events[-1].data)["wait_seconds"] == 15
    assert all("väärä" not in e.data for e in events)


def _via_proxy(app, forwarded_for: str):
    client = _from(app, "127.0.0.1")  # every request arrives from the proxy
    client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def test_behind_a_trusted_proxy_the_forwarded_address_counts(app_with, aino):
    proxied_app = app_with(trusted_proxies=1)
    sprayer = _via_proxy(proxied_app, "198.51.100.7")
    for n in range(10):
        _sign_in(sprayer, f"user{n}", "salasana1")
    assert _sign_in(sprayer, "user10", "salasana1").status_code == 429
    assert _sign_in(_via_proxy(proxied_app, "203.0.113.9")).status_code == 302


def test_forwarded_for_is_ignored_without_trusted_proxies(app, aino):
    for n in range(10):  # a different made-up X-Forwarded-For every time, one real address
        _sign_in(_via_proxy(app, f"203.0.113.{n}"), f"user{n}", "salasana1")
    assert _sign_in(_via_proxy(app, "203.0.113.99")).status_code == 429


# Production guards.


def test_production_refuses_to_start_while_a_demo_account_is_active(settings, sessions):
    production = replace(settings, env="production", secret_key="x" * 40)
    with sessions.begin() as s:
        users.seed_demo_users(s)
    with pytest.raises(NotAllowed, match="demo accounts.*admin"):
        create_app(production)
    with sessions.begin() as s:
        users.deactivate_demo_users(s)
    app = create_app(production)
    app.extensions["polku"].engine.dispose()


def test_production_refuses_insecure_cookies(settings, db_engine):
    with pytest.raises(NotAllowed, match="POLKU_INSECURE_COOKIES"):
        create_app(replace(settings, env="production", insecure_cookies=True))


def test_polku_sessions_end_in_another_process_ends_the_web_sign_in(app, client, aino, settings):
    assert _sign_in(client).status_code == 302
    thief = _copy_of(app, client)
    polku_bin = Path(sys.executable).parent / "polku"
    env = {**os.environ, "POLKU_DATABASE_URL": settings.database_url}
    done = subprocess.run([str(polku_bin), "sessions", "end", "aino", "--by", "ops"], env=env, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout) == {"username": "aino", "ended": 1}
    for who in (client, thief):
        assert who.get("/customers/").status_code == 302


def test_a_post_to_a_path_no_page_has_is_not_stashed_when_the_sign_in_expired(client, clock, login_as, sessions):
    login_as("expert")
    token = client.csrf_token()
    clock.move(hours=1)
    response = client.post("/tasks/" + "x" * 600, data={"csrf_token": token, "note": "typed"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    with sessions.begin() as s:
        assert s.scalars(select(StashedForm)).all() == []


def test_the_cookie_signer_is_kept_until_the_keys_change_and_a_retired_key_reads_only_as_a_fallback(app, client, aino):
    sessions_ = app.session_interface
    assert sessions_.get_signing_serializer(app) is sessions_.get_signing_serializer(app)  # made once, not per request
    assert _sign_in(client).status_code == 302
    assert _signed_in(client.get("/customers/"))
    old_key = app.secret_key
    app.secret_key = "uusi-avain-" + "x" * 30
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]  # key rotation: cookies signed with the old one still read
    assert _signed_in(client.get("/customers/"))
    app.config["SECRET_KEY_FALLBACKS"] = []  # the old key retired: its cookies are nobody's
    response = client.get("/customers/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
