"""Real Chromium on the demo office (`polku seed-demo`): the pages a newcomer opens first show real
work and figures. The README's inbox, customer, supervisor, KPI and heatmap screenshots come from
here (`POLKU_SCREENSHOTS=1` writes them to docs/screenshots/, else a temporary folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import case, func, select

from engine import demo, kpi, users
from engine.db import utcnow
from engine.models import Customer, Instance, InstanceStatus

ROOT = Path(__file__).parents[2]


@pytest.fixture
def demo_office(live_db) -> dict[str, Any]:
    """Seed the demo users and office into the live database; return ids the pages need."""
    sessions = live_db[1]
    with sessions.begin() as s:
        users.seed_demo_users(s)
        demo.seed_office(s, now=utcnow())
    with sessions.begin() as s:
        completed = func.sum(case((Instance.status == InstanceStatus.COMPLETED, 1), else_=0))
        busiest = s.execute(select(Customer.id).join(
            Instance, Instance.business_key == Customer.business_id).where(
            Customer.responsible_expert == "asiantuntija").group_by(Customer.id).order_by(
            completed.desc(), func.count(Instance.id).desc(), Customer.id).limit(1)).one()[0]
        version = s.scalar(select(Instance.version_id).where(Instance.process_id == demo.PROCESS).limit(1))
        overdue = len(kpi.overdue_aftercare(s))
    return {"customer": busiest, "version": version, "overdue": overdue}


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = ROOT / "docs" / "screenshots" if os.environ.get("POLKU_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo_sign_in(browser, base_url) -> Callable[[str], Any]:
    """Return a function opening a page signed in as a demo user with its published password."""

    def _sign_in(username: str) -> Any:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fi-FI")
        page.goto(f"{base_url}/login")
        page.fill("#f-username", username)
        page.fill("#f-password", f"{username}-demo")
        page.click("button.button[type=submit]")
        page.wait_for_url(f"{base_url}/")
        return page

    return _sign_in


def test_the_demo_office_shows_work_and_figures_from_the_first_minute(demo_sign_in, base_url, demo_office, shots):
    assert demo_office["overdue"] > 0
    page = demo_sign_in("asiantuntija")
    page.goto(f"{base_url}/tasks/")
    assert page.locator("table.tasks tbody tr").count() >= 3
    page.screenshot(path=str(shots / "inbox.png"), full_page=True)
    page.goto(f"{base_url}/customers/{demo_office['customer']}")
    assert page.locator("section.processes").count() == 1
    page.screenshot(path=str(shots / "customer.png"), full_page=True)

    page = demo_sign_in("esimies")
    page.goto(f"{base_url}/supervisor/")
    assert "Myöhässä" in page.inner_text("table.tasks")
    page.screenshot(path=str(shots / "supervisor.png"), full_page=True)
    start = (utcnow().date().replace(day=1).replace(year=utcnow().year - 1)).isoformat()
    page.goto(f"{base_url}/audit/kpi?start={start}")
    page.screenshot(path=str(shots / "kpi.png"), full_page=True)

    page = demo_sign_in("tarkastaja")
    page.goto(f"{base_url}/audit/versions/{demo_office['version']}")
    page.screenshot(path=str(shots / "heatmap.png"))  # the top: the service process diagram
