"""Web: the supervisor view and the KPI page agree on "on time" (kpi.AftercareCase) for an aftercare of
the shipped model whose recruitment line ended on day 30 and was closed on day 44. The pages read the
request's clock (`POLKU_CLOCK`), moved here like `now=` in the engine tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import deploy, inbox, runtime

BPMN = Path(__file__).parents[2] / "bpmn"
HELSINKI = ZoneInfo("Europe/Helsinki")
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def day(n: int, hour: int = 10) -> datetime:
    local = (T0 + timedelta(days=n)).astimezone(HELSINKI).date()
    return datetime(local.year, local.month, local.day, hour, tzinfo=HELSINKI)


@pytest.fixture
def aftercare(sessions):
    """One recruitment aftercare started on day 44 for a line that ended on day 30; return its contact task id."""
    with sessions.begin() as s:
        deploy.deploy_files(s, {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")},
                            by="test")
        iid = runtime.start_instance(
            s, "aftercare", by="customer_service", business_key="0737546-2", now=day(44), validate_form=False,
            start_message="service_line_ended",
            data={"service_line": "recruitment", "service_ended_on": day(30).date().isoformat(),
                  "responsible_expert": "eeva", "business_id": "0737546-2", "company_name": "Konepaja Oy",
                  "segment": "local"}).id
        [task] = [t for t in inbox.tasks(s, instance_id=iid) if t.element_id == "aftercare_contact"]
        return task.id


def _contact(sessions, task_id: str, on: int) -> None:
    with sessions.begin() as s:
        runtime.complete_task(s, task_id, {
            "aftercare_contacted_on": day(on).date().isoformat(), "aftercare_channel": "phone",
            "service_met_need": "yes", "feedback_went_well": "Hyvin.", "needs_reassessment": "Ei uusia tarpeita.",
            "named_contact_confirmed": True}, by="eeva", now=day(on))


def _pages(client) -> tuple[str, str]:
    supervisor = client.get("/supervisor/").get_data(as_text=True)
    kpis = client.get("/audit/kpi").get_data(as_text=True)
    return re.search(r'id="on-time">(.*?)</li>', supervisor, re.DOTALL)[1], kpis


def _figure(page: str, key: str) -> str:
    return re.search(rf'<dd id="kpi-{key}">(.*?)</dd>', page, re.DOTALL)[1].split()[0]


@pytest.mark.parametrize(("contacted", "within", "late"), [(44, 1, 0), (45, 0, 1)])
def test_contact_on_the_target_day_is_on_time_and_a_day_later_late_on_both_pages(
        client, login_as, clock, sessions, aftercare, contacted, within, late):
    clock.now = day(45, 12)
    login_as("supervisor")
    client.post("/language", data={"lang": "en"})
    _contact(sessions, aftercare, contacted)
    on_time, kpis = _pages(client)
    assert f"{within} of 1 contacts made within the target, {late} after it" in on_time
    assert "0 customers not reached" in on_time
    assert (_figure(kpis, "done"), _figure(kpis, "within"), _figure(kpis, "late")) == ("1", str(within), str(late))


def test_an_open_contact_is_overdue_on_both_pages_the_day_after_the_target(client, login_as, clock, aftercare):
    clock.now = day(44, 22)
    login_as("supervisor")
    page = client.get("/supervisor/").get_data(as_text=True)
    assert re.search(r'id="overdue-aftercare">.*?<strong>0</strong>', page, re.DOTALL)
    assert _figure(client.get("/audit/kpi").get_data(as_text=True), "overdue") == "0"
    clock.now = day(45, 0)
    login_as("test-supervisor")  # two hours later: a new sign-in (the idle session ended)
    page = client.get("/supervisor/").get_data(as_text=True)
    assert re.search(r'id="overdue-aftercare">.*?<strong>1</strong>', page, re.DOTALL)
    assert f"/tasks/{aftercare}" in page.split('id="overdue-heading"')[1]
    assert _figure(client.get("/audit/kpi").get_data(as_text=True), "overdue") == "1"
