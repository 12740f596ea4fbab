"""The customer timeline's cursor on PostgreSQL: events that share a time (microseconds and all) are
ordered by id, and following `next_cursor` page by page gives every event once, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine import apiquery, customers, runtime

from .conftest import deploy_models

T0 = datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC)


def test_timeline_cursor_pages_through_events_that_share_a_time(sessions):
    deploy_models(sessions, "provider_line.bpmn")
    with sessions.begin() as s:
        customer = customers.create_customer(s, {"name": "PG Aikajana Oy", "business_id": "0737546-2"}, by="pg")
        for n in range(5):  # two starts at each instant but the last
            runtime.start_instance(s, "provider_line", by="pg", business_key="0737546-2",
                                   now=T0 + timedelta(microseconds=n // 2))
    with sessions.begin() as s:
        whole = customers.customer_timeline(s, customer, limit=100)
        assert len(whole) == 5
        seen, cursor = [], None
        while True:
            page = apiquery.timeline(s, None, customer, cursor=cursor, limit=2)
            seen += [e.id for e in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == [e.id for e in whole]
    assert [(e.at, e.id) for e in whole] == sorted(((e.at, e.id) for e in whole), reverse=True)
