"""The auditor's pages: search, one instance's history, the chain check, exports, KPIs, and read-only access."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from engine import audit, deploy, inbox, runtime
from engine.cli import main as polku_cli
from engine.models import AuditEvent, Customer, Instance, Variable

MODELS = Path(__file__).parent.parent / "engine" / "bpmn"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def loops(sessions):
    """Deploy loop.bpmn and run two instances: one done after two rounds, one waiting; return their ids."""
    runtime.forget_cache()
    with sessions.begin() as s:
        deploy.deploy_files(s, {"loop.bpmn": (MODELS / "loop.bpmn").read_bytes()}, by="designer")
        done = runtime.start_instance(s, "loop", by="anna", business_key="0737546-2", now=T0,
                                      data={"responsible_expert": "eeva"}).id
        waiting = runtime.start_instance(s, "loop", by="anna", business_key="1572860-0",
                                         now=T0 + timedelta(days=5)).id
    for n in range(2):
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=done)
            runtime.complete_task(s, task.id, {"more": n == 0}, by="anna", now=T0 + timedelta(hours=n + 1))
    yield done, waiting
    runtime.forget_cache()


def test_search_lists_instances_and_filters_by_status_and_expert(client, login_as, loops):
    done, waiting = loops
    login_as("auditor")
    page = client.get("/audit/").get_data(as_text=True)
    assert f'/audit/instances/{done}"' in page and f'/audit/instances/{waiting}"' in page
    page = client.get("/audit/?status=running").get_data(as_text=True)
    assert f'/audit/instances/{waiting}"' in page and f'/audit/instances/{done}"' not in page
    page = client.get("/audit/?expert=eeva&started_to=2026-03-03").get_data(as_text=True)
    assert f'/audit/instances/{done}"' in page and f'/audit/instances/{waiting}"' not in page


def test_search_past_the_count_cap_says_more_than_and_pages_on(client, login_as, loops, monkeypatch):
    from engine import history
    from webui import audit as audit_pages

    done, waiting = loops
    monkeypatch.setattr(history, "COUNT_CAP", 1)
    monkeypatch.setattr(audit_pages, "PER_PAGE", 1)
    login_as("auditor")
    first = client.get("/audit/").get_data(as_text=True)
    assert "Yli 1 instanssia: rajaa hakua, niin määrä lasketaan." in first and "Sivu 1 / yli 1" in first
    assert f'/audit/instances/{waiting}"' in first and re.search(r'href="/audit/\?page=2[^"]*" rel="next"', first)
    second = client.get("/audit/?page=2").get_data(as_text=True)
    assert "2 instanssia." in second and "Sivu 2 / 2" in second and 'rel="next"' not in second
    assert f'/audit/instances/{done}"' in second
    narrowed = client.get("/audit/?status=running").get_data(as_text=True)
    assert "1 instanssi." in narrowed and "Yli" not in narrowed


def test_a_version_deployed_between_two_pages_names_the_process_on_the_next(client, login_as, loops, sessions):
    login_as("auditor")
    assert '<option value="loop">Loop</option>' in client.get("/audit/").get_data(as_text=True)
    renamed = (MODELS / "loop.bpmn").read_text().replace('name="Loop"', 'name="Kierros"')
    with sessions.begin() as s:
        deploy.deploy_files(s, {"loop.bpmn": renamed.encode()}, by="designer")
    page = client.get("/audit/").get_data(as_text=True)
    assert '<option value="loop">Kierros</option>' in page and ">Loop<" not in page


def test_instance_page_shows_header_changes_chain_and_element_data(client, login_as, loops):
    done, _waiting = loops
    login_as("auditor")
    page = client.get(f"/audit/instances/{done}").get_data(as_text=True)
    assert "0737546-2" in page and "eeva" in page
    assert "<code>count</code>: 1 → 2" in page  # the loop's counter, old → new
    assert "<td>2.3.2026 11.00</td>" in page  # the first completion, 09:00 UTC, in Helsinki time
    assert 'class="chain chain-ok"' in page
    data = json.loads(re.search(r'<script type="application/json" id="audit-data">(.*?)</script>', page, re.DOTALL)
                      .group(1))
    assert data["counts"]["work"] == 2 and "end" in data["walked"]
    assert 'id="work"' in data["diagrams"][0]
    assert 'src="/vendor/bpmn-js/dist/bpmn-navigated-viewer.production.min.js"' in page
    assert "<script>" not in page  # CSP: no inline script


def test_unknown_instance_is_404(client, login_as):
    login_as("auditor")
    assert client.get("/audit/instances/999").status_code == 404


def test_version_page_shows_heatmap_table(client, login_as, loops, sessions):
    done, _waiting = loops
    with sessions.begin() as s:
        version_id = s.get(Instance, done).version_id
    login_as("auditor")
    page = client.get(f"/audit/versions/{version_id}").get_data(as_text=True)
    assert re.search(r"<td>work</td><td>2</td>", page)


def test_edited_event_is_named_by_the_chain_page_the_instance_page_and_the_cli(client, login_as, loops, sessions,
                                                                             settings, capsys):
    done, _waiting = loops
    login_as("auditor")
    assert 'class="chain chain-ok"' in client.get("/audit/chain").get_data(as_text=True)
    with sessions.begin() as s:
        event_id = s.scalar(select(AuditEvent.id).where(
            AuditEvent.instance_id == done, AuditEvent.kind == "task_completed").limit(1))
        s.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = :id"), {"id": event_id})
    page = client.get("/audit/chain").get_data(as_text=True)
    assert 'class="chain chain-broken"' in page
    assert f"instance:{done}" in page and f"(id {event_id})" in page
    page = client.get(f"/audit/instances/{done}").get_data(as_text=True)
    assert f"(id {event_id})" in page
    capsys.readouterr()
    assert polku_cli(["verify-audit"], settings=settings) != 0
    assert f"id {event_id}" in capsys.readouterr().err


def _lines(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_exports_stream_events_of_one_instance_and_of_a_filtered_set(client, login_as, loops):
    done, waiting = loops
    login_as("auditor")
    response = client.get(f"/audit/instances/{done}/events.csv")
    assert response.is_streamed and response.mimetype == "text/csv"
    assert {r["instance_id"] for r in _lines(response)} == {str(done)}
    response.close()
    events = client.get("/audit/export.json?status=running").get_json()
    assert {e["instance_id"] for e in events} == {waiting}
    xes = client.get("/audit/export.xes").get_data(as_text=True)
    assert xes.count("<trace>") == 1  # only the finished instance has completed tasks
    assert xes.count('value="complete"') == 2
    assert client.get(f"/audit/instances/{done}/events.pdf").status_code == 404


def test_auditor_gets_no_mutating_route(app, client, login_as, loops, sessions):
    login_as("auditor")
    with sessions.begin() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    posts = [r for r in app.url_map.iter_rules() if "POST" in r.methods and r.endpoint not in
             {"auth.login", "auth.logout", "home.language"} and not r.endpoint.startswith("api.")]  # bearer only
    assert posts
    for rule in posts:
        url = rule.build({k: "1" for k in rule.arguments}, append_unknown=False)[1]
        response = client.post(url, data={})
        assert response.status_code in (403, 302, 404), rule.endpoint
        assert not response.headers.get("Location", "").startswith(url), rule.endpoint
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
    audit_rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("audit.")]
    assert all(r.methods <= {"GET", "HEAD", "OPTIONS"} for r in audit_rules)


# --- the aftercare dashboard over a seeded data set -----------------------------------------------------

SEED = [
    # started, ended_on, contacted_on, target, channel, rating, positive, needs, expert, follow-up due, child
    ("2026-03-02", "2026-03-01", "2026-03-05", 14, "phone", 5, True, ["training"], "eeva", True, True),
    ("2026-03-03", "2026-03-01", "2026-03-21", 14, "visit", 3, False, [], "eeva", False, False),
    ("2026-03-04", "2026-03-02", "2026-03-12", 7, "phone", 4, True, [], "olli", True, False),
    ("2026-03-05", "2026-03-03", None, 7, None, None, None, None, "olli", False, False),  # not yet contacted
    ("2026-04-20", "2026-04-19", "2026-04-22", 7, "email", 2, False, [], "eeva", False, False),  # out of period
]


@pytest.fixture
def seeded(sessions, loops):
    """Seed aftercare variables and completions on instances of the loop model."""
    with sessions.begin() as s:
        version_id = s.scalar(select(Instance.version_id))
        s.add(Customer(business_id="0000001-9", name="Ilman Oy"))
        for n, (started, ended, contacted, target, channel, rating, positive, needs, expert, follow, child) in \
                enumerate(SEED):
            inst = Instance(version_id=version_id, process_id="loop", business_key=f"000000{n}-0", state="{}",
                            started_at=T0, started_by="seed")
            s.add(inst)
            s.flush()
            values = {"aftercare_started_at": f"{started}T09:00:00+02:00", "startup_ended_on": ended,
                      "aftercare_target_days": target, "responsible_expert": expert, "segment": "growth",
                      "service_line": ["startup"], "aftercare_contacted_on": contacted, "aftercare_channel": channel,
                      "service_rating": rating, "experience_positive": positive, "new_service_needs": needs}
            if follow:
                values["follow_up_due"] = "2027-03-05T09:00:00+02:00"
            s.add_all(Variable(instance_id=inst.id, name=k, value=v) for k, v in values.items() if v is not None)
            if contacted:
                audit.append(s, "task_completed", actor=expert, instance_id=inst.id, element_id="aftercare_contact",
                             data={"name": "Ota jälkihoitoyhteys asiakkaaseen", "submitted": {}})
            if child:
                s.add(Instance(version_id=version_id, process_id="loop", state="{}", started_by="seed",
                               parent_instance_id=inst.id))
        first_follow = s.scalar(select(Variable.instance_id).where(Variable.name == "follow_up_due"))
        audit.append(s, "task_completed", actor="eeva", instance_id=first_follow, element_id="hold_follow_up_day",
                     data={"name": "Hold the follow-up day", "submitted": {}})


def _figure(page: str, key: str) -> str:
    return re.search(rf'<dd id="kpi-{key}">(.*?)</dd>', page, re.DOTALL).group(1).split()[0]


def test_kpi_dashboard_matches_figures_counted_by_hand(client, login_as, seeded):
    login_as("supervisor")
    page = client.get("/audit/kpi?start=2026-03-01&end=2026-03-31").get_data(as_text=True)
    # March: four finished services, three contacted
    assert _figure(page, "finished") == "4" and _figure(page, "done") == "3"
    assert "75 %" in page
    # days from the service end: 4, 20, 10 -> median 10, p90 (nearest rank: 3rd of 3) 20
    assert _figure(page, "median") == "10" and _figure(page, "p90") == "20"
    # within target: 4 <= 14 yes, 20 <= 14 no, 10 <= 7 no -> 1 of 3
    assert _figure(page, "within") == "1" and "33,3 %" in page
    # ratings 5, 3, 4 -> 4; positive 2 of 3 = 66,7 % (below the 69 % target)
    assert _figure(page, "rating") == "4" and _figure(page, "positive") == "2" and "66,7 %" in page
    assert _figure(page, "needs") == "1" and _figure(page, "new-processes") == "1"
    assert re.search(r'id="kpi-follow-up">2 / 1<', page)
    assert _figure(page, "without-expert") == "1"  # the seeded customer


def test_kpi_filters_by_expert_and_charts_download_as_csv(client, login_as, seeded):
    login_as("auditor")
    page = client.get("/audit/kpi?start=2026-03-01&end=2026-03-31&expert=olli").get_data(as_text=True)
    assert _figure(page, "finished") == "2" and _figure(page, "done") == "1"
    assert "<svg" in page and 'class="bar"' in page
    rows = _lines(client.get("/audit/kpi/channels.csv?start=2026-03-01&end=2026-03-31"))
    assert rows == [{"label": "phone", "value": "2"}, {"label": "visit", "value": "1"}]
    assert client.get("/audit/kpi/nothing.csv").status_code == 404


def test_expert_may_not_see_the_audit_pages(client, login_as):
    login_as("expert")
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/kpi").status_code == 403


def test_vendor_serves_only_the_allow_list(client, login_as):
    login_as("auditor")
    response = client.get("/vendor/bpmn-js/dist/bpmn-navigated-viewer.production.min.js")
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    assert client.get("/vendor/bpmn-js/package.json").status_code == 404
    assert client.get("/vendor/../pyproject.toml").status_code == 404
