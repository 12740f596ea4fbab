"""On PostgreSQL: a new instance keeps the office settings as `office`, the one on-time definition
counts a contact on the last target day and one a day later, the survey series is recorded, imported
(nothing saved when a line is wrong) and read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import kpi, office, runtime, survey
from engine.errors import FormInvalid
from engine.models import Task, TaskStatus

from .conftest import deploy_models

T0 = datetime(2026, 1, 20, 8, 0, tzinfo=UTC)


def test_office_snapshot_on_time_and_survey_on_postgresql(sessions):
    deploy_models(sessions, "aftercare_fixture.bpmn")
    with sessions.begin() as s:
        office.set_value(s, "aftercare_target_days_training", 9, by="pg", now=T0)
    ids = []
    for business_id in ("0737546-2", "1572860-0"):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(
                s, "aftercare", by="pg", business_key=business_id, now=T0, start_message="service_line_ended",
                data={"service_line": "training", "service_ended_on": "2026-01-10", "responsible_expert": "eeva",
                      "business_id": business_id}).id)
    runtime.forget_cache()
    for iid, contacted in zip(ids, ("2026-01-19", "2026-01-20"), strict=True):
        with sessions.begin() as s:
            assert runtime.instance_variables(s, iid)["office"]["aftercare_target_days_training"] == 9
            task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))
            runtime.complete_task(s, task, {"aftercare_contacted_on": contacted}, by="eeva", now=T0)
    with sessions.begin() as s:
        figures = kpi.aftercare_on_time(s, T0 - timedelta(days=10), T0 + timedelta(days=1))
        assert (figures.done, figures.on_time, figures.late) == (2, 1, 1)
        report = kpi.aftercare_report(s, kpi.AftercareFilter(service_line="training"), now=T0)
        assert (report.finished, report.done, report.within_target, report.late) == (2, 2, 1, 1)
    with sessions.begin() as s:
        survey.record(s, "2025-H2", "68,5", "301", by="pg", now=T0)
    with sessions.begin() as s, pytest.raises(FormInvalid):
        survey.import_csv(s, "period;positive_percent\n2024;70\n2024;71\n", by="pg", now=T0)
    with sessions.begin() as s:
        survey.import_csv(s, "period;positive_percent\n2024;70\n", by="pg", now=T0)
    with sessions.begin() as s:
        assert [(r.period, r.positive_percent, r.answers) for r in survey.series(s)] == [
            ("2024", 70.0, None), ("2025-H2", 68.5, 301)]
