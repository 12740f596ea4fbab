"""Message routing across customers: the business key decides which waiting case a message reaches.

Two customers' cases wait for the same message (tests/engine/bpmn/c_receiver.bpmn). A message
thrown by one customer's case (c_send.bpmn's send task) or delivered from outside with a business
key reaches that customer's waiting case only; the other customer's case keeps waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import audit, inbox, runtime
from engine.errors import NotFound

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ACME, BETA = "0737546-2", "2617416-4"


def _receivers(sessions) -> dict[str, int]:
    with sessions.begin() as s:
        return {key: runtime.start_instance(s, "c_receiver", by="t", business_key=key, now=T0).id
                for key in (ACME, BETA)}


def _waiting(sessions, iid: int) -> bool:
    runtime.forget_cache()
    with sessions.begin() as s:
        return [t.element_id for t in inbox.tasks(s, instance_id=iid)] == []


def test_a_thrown_message_reaches_the_same_customers_case_only(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn")
    receivers = _receivers(sessions)
    with sessions.begin() as s:
        sender = runtime.start_instance(s, "c_sender", by="t", data={"amount": 1}, business_key=BETA, now=T0).id
    assert _waiting(sessions, receivers[ACME])
    with sessions.begin() as s:
        assert [t.element_id for t in inbox.tasks(s, instance_id=receivers[BETA])] == ["handle"]
        [thrown] = [audit.event_dict(e)["data"] for e in audit.history(s, sender) if e.kind == "message_thrown"
                    and audit.event_dict(e)["data"]["name"] == "order_ready"]
        assert thrown["delivered_to"] == [receivers[BETA]]


def test_a_delivered_message_is_filtered_by_business_key(sessions, deploy):
    deploy("c_receiver.bpmn")
    receivers = _receivers(sessions)
    with sessions.begin() as s, pytest.raises(NotFound):  # nobody of that customer waits
        runtime.deliver_message(s, "order_ready", by="bank", business_key="9999999-9", now=T0)
    assert _waiting(sessions, receivers[ACME]) and _waiting(sessions, receivers[BETA])
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "order_ready", by="bank", business_key=ACME, now=T0) == [receivers[ACME]]
    assert not _waiting(sessions, receivers[ACME])
    assert _waiting(sessions, receivers[BETA])
    with sessions.begin() as s, pytest.raises(NotFound):  # delivered once: the ACME case no longer waits
        runtime.deliver_message(s, "order_ready", by="bank", business_key=ACME, now=T0)
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "order_ready", by="bank", business_key=BETA, now=T0) == [receivers[BETA]]
