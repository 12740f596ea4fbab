"""Audit exports: CSV and JSON of the events, an XES event log that pm4py reads and mines."""

from __future__ import annotations

import csv
import io
import json
import types
from datetime import UTC, datetime, timedelta

import pytest

from engine import exports, history, inbox, runtime

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _loop(sessions, rounds: int, by: str = "anna") -> int:
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "loop", by=by, business_key="0737546-2", now=T0).id
    for n in range(rounds):
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=iid)
            runtime.complete_task(s, task.id, {"more": n < rounds - 1}, by=by, now=T0 + timedelta(hours=n + 1))
    return iid


def test_exports_are_generators_not_whole_files(sessions, deploy):
    deploy("loop.bpmn")
    _loop(sessions, 1)
    with sessions.begin() as s:
        for make in (exports.events_csv, exports.events_json, exports.events_xes):
            assert isinstance(make(s, None), types.GeneratorType)


def test_csv_has_one_row_per_event_of_the_chosen_instances(sessions, deploy):
    deploy("loop.bpmn")
    first, second = _loop(sessions, 2), _loop(sessions, 1)
    with sessions.begin() as s:
        rows = list(csv.DictReader(io.StringIO("".join(exports.events_csv(s, [second])))))
        assert {r["instance_id"] for r in rows} == {str(second)}
        assert rows[0]["kind"] == "instance_started" and rows[-1]["kind"] == "instance_completed"
        all_rows = list(csv.DictReader(io.StringIO("".join(exports.events_csv(s, [first, second])))))
        assert len(all_rows) > len(rows)


def test_json_export_is_one_array_of_events_with_data(sessions, deploy):
    deploy("loop.bpmn")
    iid = _loop(sessions, 2)
    with sessions.begin() as s:
        events = json.loads("".join(exports.events_json(s, [iid])))
    completed = [e for e in events if e["kind"] == "task_completed"]
    assert [e["data"]["submitted"]["more"] for e in completed] == [True, False]


@pytest.mark.filterwarnings("ignore:.*r4pm.*:UserWarning")  # pm4py's advice about a faster optional parser
def test_xes_imports_into_pm4py_and_mines_the_main_activities(sessions, deploy, tmp_path):
    import pm4py

    deploy("loop.bpmn")
    for rounds in (1, 2, 3):
        _loop(sessions, rounds, by=f"user{rounds}")
    with sessions.begin() as s:
        path = tmp_path / "log.xes"
        path.write_text("".join(exports.events_xes(s, None)), encoding="utf-8")
    log = pm4py.read_xes(str(path), return_legacy_log_object=False)
    assert len(log["case:concept:name"].unique()) == 3
    assert len(log) == 6
    assert set(log["org:resource"]) == {"user1", "user2", "user3"}
    assert set(log["lifecycle:transition"]) == {"complete"}
    dfg, starts, ends = pm4py.discover_dfg(log)
    assert ("Work", "Work") in dfg and "Work" in starts and "Work" in ends


def test_a_filter_query_selects_the_exported_instances_without_listing_their_ids(sessions, deploy):
    deploy("loop.bpmn")
    done, _waiting = _loop(sessions, 1), _loop(sessions, 0)
    with sessions.begin() as s:
        query = history.matching_query(history.InstanceFilter(status="completed"))
        rows = list(csv.DictReader(io.StringIO("".join(exports.events_csv(s, query)))))
        xes = "".join(exports.events_xes(s, query))
    assert {r["instance_id"] for r in rows} == {str(done)}
    assert xes.count("<trace>") == 1 and f"instance-{done}" in xes
