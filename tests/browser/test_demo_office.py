"""Real Chromium on the demo office (`polku seed-demo`): the pages a newcomer opens first show real
work and figures. The README's inbox, customer, supervisor, KPI and heatmap screenshots come from
here (`POLKU_SCREENSHOTS=1` writes them to docs/screenshots/, else a temporary folder).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import case, func, select

from engine import demo, kpi, providers, runtime, users
from engine.db import utcnow
from engine.models import Customer, Instance, InstanceStatus, Task, TaskStatus

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
        aftercare = s.scalar(select(Instance.version_id).where(Instance.process_id == "aftercare").limit(1))
        overdue = len(kpi.overdue_aftercare(s))
        provider = max(providers.list_providers(s), key=lambda p: (len(providers.deliveries(s, p.id)), -p.id)).id
        contacts = [(len(runtime.instance_variables(s, t.instance_id).get("aftercare_attempts") or []), t)
                    for t in s.scalars(select(Task).where(Task.element_id == "aftercare_contact",
                                                          Task.state == TaskStatus.READY).order_by(Task.id))]
        attempts, retried = max(contacts, key=lambda pair: (pair[0], pair[1].assignee == "asiantuntija"))
    return {"customer": busiest, "version": version, "aftercare": aftercare, "overdue": overdue, "provider": provider,
            "retried": (retried.id, retried.assignee, attempts)}


def _figure(page: Any, selector: str) -> int:
    """Return the first whole number shown in an element."""
    return int(re.search(r"\d+", page.inner_text(selector).replace("\xa0", "")).group())


def _heat(page: Any, element: str) -> int:
    """Return how often an element ran, from the data the heatmap page draws."""
    return int(json.loads(page.inner_text("#audit-data"))["counts"].get(element, 0))


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
    page.goto(f"{base_url}/tasks/aftercare")
    assert page.locator("table.tasks tbody tr").count() >= 1
    page.goto(f"{base_url}/customers/{demo_office['customer']}")
    assert page.locator("section.processes").count() == 1
    page.screenshot(path=str(shots / "customer.png"), full_page=True)

    task_id, assignee, attempts = demo_office["retried"]  # an open aftercare contact after failed attempts
    assert attempts >= 1
    page = demo_sign_in(assignee)
    page.goto(f"{base_url}/tasks/{task_id}")
    assert page.locator("#action-customer_not_reached ol.action-runs li").count() == attempts
    page.screenshot(path=str(shots / "aftercare-contact.png"))  # the top: the attempts recorded so far

    page = demo_sign_in("esimies")
    page.goto(f"{base_url}/supervisor/")
    assert "Myöhässä" in page.inner_text("table.tasks")
    assert page.inner_text("#on-time strong").strip() != "–", "aftercare contacts made this month"
    page.screenshot(path=str(shots / "supervisor.png"), full_page=True)
    start = (utcnow().date().replace(day=1).replace(year=utcnow().year - 1)).isoformat()
    page.goto(f"{base_url}/audit/kpi?start={start}")
    assert _figure(page, "#kpi-finished") >= 20 and _figure(page, "#kpi-done") >= 10
    assert _figure(page, "#kpi-not-reached") >= 1 and _figure(page, "#kpi-late") >= 1, "not reached apart, late"
    assert _figure(page, "#kpi-rating") >= 1 and _figure(page, "#kpi-follow-up") >= 1
    assert page.locator("svg.survey-chart text.bar-value").count() == 4, "the national survey's quarters"
    page.screenshot(path=str(shots / "kpi.png"), full_page=True)
    page.goto(f"{base_url}/providers/{demo_office['provider']}")
    assert int(page.inner_text("#provider-figures [data-figure=delivered]")) >= 1

    page = demo_sign_in("tarkastaja")
    page.goto(f"{base_url}/audit/versions/{demo_office['aftercare']}")
    assert _heat(page, "aftercare_contact") >= 10 and _heat(page, "customer_not_reached") >= 1
    page.goto(f"{base_url}/audit/versions/{demo_office['version']}")
    assert _heat(page, "assess_service_needs") >= 40
    page.screenshot(path=str(shots / "heatmap.png"))  # the top: the service process diagram
