"""Scenario: the customer's responsible expert changes on the customer record (R2).

`customers.change_responsible_expert` moves every open process of the customer to the new expert:
the customer record changes, each running customer service process receives the change message
(its open tasks follow, the "inform the customer" task opens), and the users audit stream records
who, when, old and new. Runs straight and reloading between steps.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import audit, customers, inbox, runtime, users
from engine.errors import FormInvalid, NotAllowed
from engine.models import AuditEvent

from .test_service_process import (
    BUSINESS_ID,
    EXPERT,
    NEW_EXPERT,
    SUPERVISOR,
    Case,
    assessment,
    day,
    iso,
    midnight,
)

LEFT = "leaving.expert"


def _office(sessions) -> int:
    with sessions.begin() as s:
        users.add_user(s, LEFT, "salasana-123456", ["expert"])  # EXPERT and NEW_EXPERT: conftest
        users.add_user(s, SUPERVISOR, "salasana-123456", ["supervisor"])
        users.set_profile(s, LEFT, active=False)
        customer = customers.create_customer(s, {"name": "Konepaja Virtanen Oy", "business_id": BUSINESS_ID,
                                                 "responsible_expert": EXPERT}, by=SUPERVISOR)
        return customer.id


def test_changing_the_customers_expert_moves_every_open_process(deployed, step):
    customer_id = _office(deployed)
    first, second = Case(deployed, step), Case(deployed, step)
    first.start()
    first.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    first.do("plan_recruitment", {"recruitment_positions": 2, "recruitment_channels": ["job_posting"],
                                  "recruitment_planned_end": iso(day(60))}, now=day(2))
    second.start(now=day(3))
    second.do("assess_service_needs", assessment(["recruitment"]), now=day(4))
    assert first.open()["deliver_recruitment"]["assignee"] == EXPERT

    with deployed.begin() as s:
        moved = customers.change_responsible_expert(s, customer_id, NEW_EXPERT, by=SUPERVISOR,
                                                    roles={"supervisor"}, now=day(10))
    step()

    assert moved == [first.iid, second.iid]
    assert first.open() == {
        "deliver_recruitment": {"role": "expert", "assignee": NEW_EXPERT, "due_at": midnight(60)},
        "inform_customer_of_new_contact": {"role": "expert", "assignee": NEW_EXPERT, "due_at": day(17)}}
    assert second.open()["plan_recruitment"]["assignee"] == NEW_EXPERT
    assert second.open()["inform_customer_of_new_contact"]["assignee"] == NEW_EXPERT
    with deployed.begin() as s:
        assert customers.get_customer(s, customer_id).responsible_expert == NEW_EXPERT
        rows = s.scalars(select(AuditEvent).where(AuditEvent.kind == "customer_changed"))
        [event] = [e for e in map(audit.event_dict, rows) if e["data"]["action"] == "responsible_expert_changed"]
        assert (event["actor"], event["at"], event["data"]["old"], event["data"]["new"]) == (
            SUPERVISOR, day(10).isoformat(), EXPERT, NEW_EXPERT)
    first.do("inform_customer_of_new_contact", {"customer_informed_on": iso(day(11)),
                                                "new_contact_channel": "phone"}, by=NEW_EXPERT, now=day(11))
    assert first.summary()["variables"]["responsible_expert"] == NEW_EXPERT


def test_an_expert_changes_only_their_own_customers_and_only_to_an_active_expert(deployed, step):
    customer_id = _office(deployed)
    with deployed.begin() as s:
        with pytest.raises(NotAllowed):
            customers.change_responsible_expert(s, customer_id, NEW_EXPERT, by=NEW_EXPERT, roles={"expert"})
        with pytest.raises(FormInvalid) as err:
            customers.change_responsible_expert(s, customer_id, LEFT, by=EXPERT, roles={"expert"})
        assert err.value.errors == {"responsible_expert": "Choose an expert from the list."}
        with pytest.raises(FormInvalid):
            customers.change_responsible_expert(s, customer_id, "nobody", by=EXPERT, roles={"expert"})
        assert customers.change_responsible_expert(s, customer_id, NEW_EXPERT, by=EXPERT, roles={"expert"}) == []
        assert customers.get_customer(s, customer_id).responsible_expert == NEW_EXPERT


def test_the_assessment_takes_only_an_active_expert_as_responsible_expert(deployed, step):
    _office(deployed)
    case = Case(deployed, step)
    case.start()
    for wrong in ("eeva.expret", LEFT, SUPERVISOR):  # a typo, an expert who left, not an expert
        with pytest.raises(FormInvalid) as err, deployed.begin() as s:
            [task] = [t for t in inbox.tasks(s, instance_id=case.iid)]
            runtime.complete_task(s, task.id, assessment(["recruitment"], responsible_expert=wrong), by=EXPERT,
                                  now=day(1))
        assert err.value.errors == {"responsible_expert": "choose an active user with the expert role"}
        step()
    case.do("assess_service_needs", assessment(["recruitment"], responsible_expert=EXPERT.upper()), now=day(1))
    assert case.open()["plan_recruitment"]["assignee"] == EXPERT
