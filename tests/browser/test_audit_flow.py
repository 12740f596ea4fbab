"""Real Chromium: an auditor opens a case that reached its aftercare and sees the path taken on the diagrams
(bpmn-js viewer served from node_modules), the waiting task marked, and an element's events on click.

The harness (live server, chromium, sign-in) is in conftest.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import runtime, users
from engine.db import utcnow
from engine.inbox import tasks as open_tasks
from engine.models import Instance

BUSINESS_ID = "0737546-2"
PASSWORD = "salasana-123"  # what conftest's sign_in types


def _answer(field, when) -> object:
    if field.provider_kinds is not None:  # a registry provider: none, the office delivered the service
        return None
    if field.id.endswith("_email"):
        return "aino@te.fi"
    if field.type == "date":
        return when.date().isoformat()
    if field.type == "enum":
        first = "other_partner_service" if field.id == "identified_needs" else field.options[0][0]
        needed = field.required or field.id == "identified_needs"  # without a need the assessment ends the case
        return ([first] if needed else []) if field.multiple else field.default or first
    return {"long": 12, "boolean": True}.get(field.type, "aino" if field.id == "responsible_expert" else "Sovittu.")


@pytest.fixture
def case(live_db) -> tuple[int, int]:
    """Return the ids of a customer_service case whose line ended and of that line's aftercare, at its contact."""
    sessions = live_db[1]
    past = utcnow() - timedelta(days=40)
    with sessions.begin() as s:
        users.add_user(s, "aino", PASSWORD, ["expert"], display_name="Aino Asiantuntija")
        users.add_user(s, "tarja", PASSWORD, ["auditor"], display_name="Tarja Tarkastaja")
        start = {"business_id": BUSINESS_ID, "company_name": "Pirkan Puu Oy", "contact_channel": "web_service",
                 "contact_reason": "Koulutustarve"}
        iid = runtime.start_instance(s, "customer_service", by="aino", data=start, business_key=BUSINESS_ID,
                                     now=past).id
        current = iid
        for _ in range(6):
            rows = open_tasks(s, instance_id=current)
            if not rows:  # the service line ended: its aftercare runs as the case's child instance
                current = s.scalar(select(Instance.id).where(Instance.parent_instance_id == iid))
                rows = open_tasks(s, instance_id=current)
            row = rows[0]
            if row.element_id == "aftercare_contact":
                break
            values = {f.id: _answer(f, past) for f in runtime.task_details(s, row.id)["form"]}
            runtime.complete_task(s, row.id, values, by="aino", now=past)
        else:
            raise AssertionError("the case did not reach its aftercare contact")
    return iid, current


def test_auditor_sees_the_path_taken_and_the_waiting_task_on_the_diagram(sign_in, base_url, case, tmp_path):
    page = sign_in("tarja")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    iid, aftercare = case
    page.goto(f"{base_url}/audit/instances/{iid}")
    page.wait_for_selector(".audit-canvas[data-ready=true] >> nth=1")  # the case and its called service line
    walked = page.eval_on_selector_all(".djs-element.audit-walked", "els => els.map(e => e.dataset.elementId)")
    assert "assess_service_needs" in walked
    assert page.locator('.djs-element.audit-walked[data-element-id="assess_service_needs"] rect').count() >= 1
    assert page.locator(".djs-connection.audit-walked-flow").count() >= 3  # the flows between walked elements
    page.click('.djs-element[data-element-id="assess_service_needs"]')
    assert page.locator("tr.selected-event").count() >= 2  # created and completed
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    page.goto(f"{base_url}/audit/instances/{aftercare}")  # the ended line's own aftercare, waiting for its contact
    page.wait_for_selector(".audit-canvas[data-ready=true]")
    active = page.eval_on_selector_all(".djs-element.audit-active", "els => els.map(e => e.dataset.elementId)")
    assert "aftercare_contact" in active
    assert errors == []


def test_auditor_sees_the_heatmap_of_a_version(sign_in, base_url, case):
    page = sign_in("tarja")
    page.goto(f"{base_url}/audit/")
    service_case = f"table.instances tr:has(a[href='/audit/instances/{case[0]}'])"  # not its aftercare's row
    page.click(f"{service_case} a[href^='/audit/versions/']")
    page.wait_for_selector(".audit-canvas[data-ready=true]")
    heated = page.eval_on_selector_all("[class*=audit-heat-]", "els => els.map(e => e.dataset.elementId)")
    assert "assess_service_needs" in heated
    assert page.locator(".djs-overlay .audit-count").count() >= 1
