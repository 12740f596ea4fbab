"""The auditor's queries: instance search, one instance's element data, version diagrams and heatmaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import history, inbox, runtime
from engine.errors import NotFound

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _run_loop(sessions, rounds: int, *, key: str = "0737546-2", start: datetime = T0, expert: str | None = None,
              minutes: int = 30) -> int:
    """Start a loop instance and complete its task `rounds` times, each `minutes` after it opened."""
    with sessions.begin() as s:
        data = {"responsible_expert": expert} if expert else {}
        iid = runtime.start_instance(s, "loop", by="anna", business_key=key, now=start, data=data).id
    at = start
    for n in range(rounds):
        at += timedelta(minutes=minutes)
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=iid)
            runtime.complete_task(s, task.id, {"more": n < rounds - 1}, by="anna", now=at)
    return iid


def test_search_filters_by_status_customer_expert_and_start_date(sessions, deploy):
    deploy("loop.bpmn")
    done = _run_loop(sessions, 1, key="0737546-2", expert="eeva")
    running = _run_loop(sessions, 0, key="1572860-0", start=T0 + timedelta(days=3))
    with sessions.begin() as s:
        def ids(**kw):
            return [i.id for i, _v, _e in history.search_instances(s, history.InstanceFilter(**kw)).rows]

        assert ids(status="completed") == [done]
        assert ids(status="running") == [running]
        assert ids(customer="1572860-0") == [running]
        assert ids(expert="eeva") == [done]
        assert ids(started_from=T0 + timedelta(days=1)) == [running]
        assert ids(process_id="loop", version=1) == [running, done]
        assert ids(version=2) == []


def test_search_pages_newest_first_with_the_total(sessions, deploy):
    deploy("loop.bpmn")
    made = [_run_loop(sessions, 0, start=T0 + timedelta(hours=n)) for n in range(5)]
    with sessions.begin() as s:
        page = history.search_instances(s, history.InstanceFilter(), page=2, per_page=2)
        assert (page.total, page.pages) == (5, 3)
        assert [i.id for i, _v, _e in page.rows] == [made[2], made[1]]


def test_search_counts_up_to_the_cap_or_the_page_asked_for_then_says_more(sessions, deploy, monkeypatch):
    deploy("loop.bpmn")
    made = [_run_loop(sessions, 0, start=T0 + timedelta(hours=n)) for n in range(5)]
    monkeypatch.setattr(history, "COUNT_CAP", 3)
    with sessions.begin() as s:
        def search(page, **kw):
            found = history.search_instances(s, history.InstanceFilter(**kw), page=page, per_page=2)
            return found.total, found.more, found.pages, [i.id for i, _v, _e in found.rows]

        assert search(1) == (3, True, 2, [made[4], made[3]])  # counted to the cap: more than 3
        assert search(2) == (4, True, 2, [made[2], made[1]])  # to the end of page 2: more than 4
        assert search(3) == (5, False, 3, [made[0]])  # the end reached: exact
        assert search(1, started_from=T0 + timedelta(hours=2)) == (3, False, 2, [made[4], made[3]])  # exactly 3


def test_element_data_counts_the_loop_and_marks_the_waiting_task(sessions, deploy):
    deploy("loop.bpmn")
    iid = _run_loop(sessions, 3)
    with sessions.begin() as s:
        data = history.element_data(s, iid)
        assert data["counts"]["work"] == 3
        assert {"work", "bump", "again", "end"} <= set(data["walked"])
        assert data["active"] == []
    waiting = _run_loop(sessions, 0)
    with sessions.begin() as s:
        assert history.element_data(s, waiting)["active"] == ["work"]


def test_heatmap_counts_runs_and_takes_the_median_duration(sessions, deploy):
    deploy("loop.bpmn")
    _run_loop(sessions, 3, minutes=10)
    _run_loop(sessions, 1, minutes=40)
    with sessions.begin() as s:
        version_id = runtime.get_instance(s, 1).version_id
        heat = history.heatmap(s, version_id)
        assert heat["work"]["count"] == 4
        assert heat["work"]["median_seconds"] == 600.0  # 10, 10, 10, 40 minutes
        assert heat["end"]["count"] >= 1


def test_version_diagrams_return_the_deployed_xml(sessions, deploy):
    deploy("loop.bpmn")
    iid = _run_loop(sessions, 0)
    with sessions.begin() as s:
        header = history.instance_header(s, iid)
        [diagram] = history.version_diagrams(s, header["version"].id)
        assert diagram["process_id"] == "loop" and 'id="work"' in diagram["xml"]
        with pytest.raises(NotFound):
            history.version_diagrams(s, 999)
        with pytest.raises(NotFound):
            history.instance_header(s, 999)


def test_search_finds_instances_with_open_incidents(sessions, deploy):
    deploy("order.bpmn", "loop.bpmn")
    calm = _run_loop(sessions, 0)
    with sessions.begin() as s:
        broken = runtime.start_instance(s, "order", by="anna", data={"customer": "Acme Oy", "amount": 500},
                                        business_key="0737546-2", now=T0).id
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=broken)
        runtime.complete_task(s, task.id, {"channel": "phone", "approved_by_expert": True}, by="anna", now=T0)
    with sessions.begin() as s:
        found = history.search_instances(s, history.InstanceFilter(status="incident")).rows
        assert [i.id for i, _v, _e in found] == [broken]
        assert history.instance_header(s, broken)["status"] == "incident"
        assert history.instance_header(s, calm)["status"] == "running"
        assert "incident_raised" in [e["kind"] for e in history.timeline(s, broken)]
