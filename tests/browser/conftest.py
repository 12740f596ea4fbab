"""Browser-test harness: Debian's chromium driven by Playwright against the app on a live port.

Each test gets a fresh SQLite database with the shipped models deployed (`live_db`), the app
served from it in a thread (`base_url`), a chromium (`browser`) and `sign_in(username)`. The
chromium comes from Debian (`scripts/browser.sh`, run by `make test`); never `playwright install`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from engine import deploy, runtime
from engine.config import Settings
from engine.db import make_engine, make_sessions, upgrade
from webui import create_app

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "salasana-123"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `browser`."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def live_db(tmp_path) -> Iterator[tuple[str, sessionmaker]]:
    """Return (URL, session factory) of a fresh database with the shipped models deployed."""
    url = f"sqlite:///{tmp_path}/live.db"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessions(engine)
    runtime.forget_cache()
    with sessions.begin() as s:
        files = {p.name: p.read_bytes() for p in (ROOT / "bpmn").iterdir() if p.suffix in (".bpmn", ".dmn")}
        deploy.deploy_files(s, files, by="setup")
    yield url, sessions
    runtime.forget_cache()
    engine.dispose()


@pytest.fixture
def base_url(live_db) -> Iterator[str]:
    """Serve the app on a free local port in a thread; return its address."""
    from werkzeug.serving import make_server

    app = create_app(Settings(database_url=live_db[0], secret_key="browser-test", embedded_worker=False,
                              insecure_cookies=True))  # plain http on 127.0.0.1
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    app.extensions["polku"].engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Return Debian's chromium driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: run scripts/browser.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def sign_in(browser, base_url) -> Callable[..., Any]:
    """Return a function that opens a page signed in as `username` (optionally shooting the login page)."""

    def _sign_in(username: str, shot: Path | None = None, width: int = 1280, height: int = 900) -> Any:
        page = browser.new_page(viewport={"width": width, "height": height}, locale="fi-FI")
        page.goto(f"{base_url}/login")
        if shot:
            page.screenshot(path=str(shot), full_page=True)
        page.fill("#f-username", username)
        page.fill("#f-password", PASSWORD)
        page.click("button.button[type=submit]")
        page.wait_for_url(f"{base_url}/")
        return page

    return _sign_in
