"""Shared fixtures: settings on a temporary SQLite file, a migrated database, sessions, the web app.

Web tests: `client` posts carry the page's CSRF token automatically (read from the
`<meta name="csrf-token">` of a real page); pass `csrf=False` to send a POST without one.
`login_as("expert")` creates and signs in a user holding that role; `login_as("someone")` signs
in an existing user. `statements_of(engine)` records the SQL an engine runs within a `with` block,
the statements on the DB-API cursor (`engine.fastsql`) too. Do not hold the `session` fixture open while the client writes: SQLite
has one writer, so a web test prepares or checks data in short `with sessions.begin() as s:`
blocks instead.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine import fastsql, runtime, users
from engine.config import Settings
from engine.db import make_engine, make_sessions, upgrade, utcnow
from webui import create_app

TEST_PASSWORD = "test-password"
# scrypt with n=1024 instead of the product's n=32768 (~0.2 s a hash on the CI machine, paid for every
# test user created and every sign-in); the product method is tested by the tests marked `product_hashing`
TEST_PASSWORD_METHOD = "scrypt:1024:8:1"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture(autouse=True)
def cheap_password_hashing(request, monkeypatch) -> None:
    """Hash the passwords set in a test with a cheap scrypt, unless the test is marked `product_hashing`."""
    if request.node.get_closest_marker("product_hashing") is None:
        monkeypatch.setattr(users, "PASSWORD_METHOD", TEST_PASSWORD_METHOD)


StatementsOf = Callable[..., AbstractContextManager[list[str]]]


@pytest.fixture
def statements_of() -> StatementsOf:
    """Return `statements_of(engine, check=None)`: a `with` block that gives the list of the statements
    `engine` runs in it (whitespace folded), those SQLAlchemy runs and those run on the DB-API cursor
    (`engine.fastsql`), which pass no SQLAlchemy event. `check(statement)` sees each before it runs:
    it may raise, as a failing database would.
    """

    @contextmanager
    def record(engine: Engine, check: Callable[[str], None] | None = None) -> Iterator[list[str]]:
        seen: list[str] = []

        def note(statement: str) -> None:
            if check is not None:
                check(statement)
            seen.append(" ".join(statement.split()))

        on_cursor = fastsql._run

        def run_on_cursor(conn, plan, params, **kwargs):  # type: ignore[no-untyped-def]
            if conn.engine.pool is engine.pool:  # the engine, or one with its options (engine.db.reader)
                note(plan.sql)
            return on_cursor(conn, plan, params, **kwargs)

        def on_event(_conn, _cursor, statement, *_rest):  # type: ignore[no-untyped-def]
            note(statement)

        fastsql._run = run_on_cursor  # type: ignore[assignment]
        event.listen(engine, "before_cursor_execute", on_event)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", on_event)
            fastsql._run = on_cursor  # type: ignore[assignment]

    return record


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Return settings pointing at a fresh SQLite file."""
    return Settings(database_url=f"sqlite:///{tmp_path}/t.db", secret_key="test-secret-key")


@pytest.fixture
def db_engine(settings) -> Iterator[Engine]:
    """Return an engine on the migrated test database."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db_engine) -> sessionmaker:
    """Return the session factory (`with sessions.begin() as s:`)."""
    return make_sessions(db_engine)


@pytest.fixture
def session(sessions) -> Iterator[Session]:
    """Return a session inside a transaction that commits when the test ends."""
    with sessions.begin() as s:
        yield s


class PolkuClient(FlaskClient):
    """Test client that adds the CSRF token to every POST unless told `csrf=False`."""

    def csrf_token(self) -> str:
        """Return the CSRF token a page of this client's session carries."""
        page = self.get("/login", follow_redirects=True).get_data(as_text=True)
        match = CSRF_META.search(page)
        assert match, "no csrf-token meta tag on the page"
        return match.group(1)

    def post(self, *args, csrf: bool = True, **kwargs):  # type: ignore[override]
        """POST as a browser would, with the form's CSRF token."""
        data = kwargs.get("data")
        if csrf and (data is None or isinstance(data, dict)) and "csrf_token" not in (data or {}):
            kwargs["data"] = {**(data or {}), "csrf_token": self.csrf_token()}
        return super().post(*args, **kwargs)


@pytest.fixture
def app(settings, db_engine) -> Iterator[Flask]:
    """Return the web app on the test database."""
    app = create_app(settings, TESTING=True)
    app.test_client_class = PolkuClient
    yield app
    app.extensions["polku"].engine.dispose()


@pytest.fixture
def client(app) -> PolkuClient:
    """Return a test client (cookies kept between requests)."""
    return app.test_client()


class Clock:
    """A clock the test moves: `clock.move(minutes=31)`; the web app reads it as `POLKU_CLOCK`."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> datetime:
        """Move the clock forward by a timedelta's keyword arguments; return the new time."""
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    """Return the web app's clock (sign-in sessions and throttling), starting at the real time."""
    app.config["POLKU_CLOCK"] = moved = Clock(utcnow())
    return moved


@pytest.fixture
def login_as(client, sessions) -> Callable[..., str]:
    """Sign the client in as a role (creating user `test-<role>`) or as an existing username."""

    def _login(who: str, password: str = TEST_PASSWORD) -> str:
        username = f"test-{who}" if who in users.ROLES else who
        if who in users.ROLES:
            with sessions.begin() as s:
                if username not in {u.username for u in users.list_users(s)}:
                    users.add_user(s, username, password, [who], display_name=f"Test {who}")
        response = client.post("/login", data={"username": username, "password": password})
        assert response.status_code == 302, f"login as {username} failed"
        return username

    return _login


@pytest.fixture(params=["straight", "reload"])
def reload_mode(request) -> str:
    """Run a scenario twice: with the in-process cache, and reloading from the database each step."""
    return request.param


@pytest.fixture
def step(reload_mode):
    """Call between scenario steps: in reload mode, forget everything held in memory."""

    def _step():
        if reload_mode == "reload":
            runtime.forget_cache()

    return _step


class SmtpInbox:
    """A real SMTP server on the loopback (aiosmtpd), keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[SmtpInbox]:
    """Run a real SMTP server on a free loopback port for one test."""
    from aiosmtpd.controller import Controller

    handler = SmtpInbox()
    with socket.socket() as probe:  # a free port on the loopback
        probe.bind(("127.0.0.1", 0))
        handler.port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()
