"""The providers registry on PostgreSQL: the provider field's lookup never sends an id the 32-bit
column cannot hold (a field error, not a database error), and the report reads the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine import providers, runtime
from engine.errors import FormInvalid
from engine.models import Task, TaskStatus

from .conftest import deploy_models

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_provider_field_and_report_on_postgresql(sessions):
    deploy_models(sessions, "provider_line.bpmn")
    with sessions.begin() as s:
        pid = providers.create_provider(s, {"name": "PG Koulutus Oy", "business_id": "7654321-2", "kind": "training"},
                                        by="pg").id
        iid = runtime.start_instance(s, "provider_line", by="pg", business_key="0737546-2", now=T0).id
        task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))
    for wrong in ("2147483648", "99999999999", "0"):
        with sessions.begin() as s, pytest.raises(FormInvalid):
            runtime.complete_task(s, task, {"line_ended_on": "2026-03-01", "line_provider": wrong}, by="pg", now=T0)
    with sessions.begin() as s:
        runtime.complete_task(s, task, {"line_ended_on": "2026-03-01", "line_provider": str(pid)}, by="pg", now=T0)
    runtime.forget_cache()
    with sessions.begin() as s:
        report = providers.provider_report(s, pid)
        assert [(d.instance_id, d.ended_on) for d in report.deliveries] == [(iid, "2026-03-01")]
        assert providers.summary_counts(s)[pid] == (1, 0)
