"""Thrown messages (engine.runtime), stated from what the runtime promises.

A message a case throws goes, with correlation keys, to the running cases waiting for it whose
own data gives the same key values; without, to the running cases of the same customer (business
key) waiting for it, never to cases of other customers and never when the thrower has no customer.
When no case waits, the latest process whose message start event catches it starts with the
payload, for the same customer, as a child of the thrower. When neither, a `customer_contact_logged`
message becomes a contact in the customer's log. Either way the throw is in the thrower's history
with its payload, where it went and what it started or recorded.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import audit, contacts, customers, inbox, runtime, users
from engine.deploy import deploy_files
from engine.errors import InvalidInput, NotFound
from engine.models import Instance

from .conftest import MODELS, T0

ACME, BETA = "0737546-2", "2617416-4"

CONTACT_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_contact_end" targetNamespace="http://polku.test/c">
  <bpmn:message id="m_contact" name="customer_contact_logged" />
  <bpmn:process id="contact_end" name="Ends with a contact" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
    <bpmn:endEvent id="end">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:messageEventDefinition messageRef="m_contact" camunda:expression="{'business_id': business_id,
          'company_name': 'Acme Oy', 'responsible_expert': 'anna', 'contacted_on': '2026-03-01',
          'assessment_method': 'visit', 'topic': 'Ei tarvetta nyt', 'notes': 'soita syksyllä',
          'next_contact_on': '2026-09-01'}" />
    </bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
""".encode()


def _start(sessions, process_id, data=None, key=None, now=T0):
    with sessions.begin() as s:
        return runtime.start_instance(s, process_id, by="anna", data=data or {}, business_key=key, now=now).id


def _thrown(sessions, iid):
    with sessions.begin() as s:
        return [(e.actor, e.at, e.version_id == runtime.get_instance(s, iid).version_id, json_data(e))
                for e in audit.history(s, iid) if e.kind == "message_thrown"]


def json_data(event):
    return audit.event_dict(event)["data"]


def _ready(sessions, iid):
    with sessions.begin() as s:
        return [t.element_id for t in inbox.tasks(s, instance_id=iid)]


def test_a_message_goes_to_the_same_customers_waiting_case_and_an_unawaited_one_starts_a_case(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn", "c_msg_start.bpmn")
    acme_waits, beta_waits = _start(sessions, "c_receiver", key=ACME), _start(sessions, "c_receiver", key=BETA)
    later = T0 + timedelta(hours=2)
    sender = _start(sessions, "c_sender", {"amount": 3}, key=BETA, now=later)
    assert _ready(sessions, acme_waits) == [] and _ready(sessions, beta_waits) == ["handle"]
    with sessions.begin() as s:
        [child] = s.scalars(select(Instance).where(Instance.process_id == "c_msg_start")).all()
        assert (child.business_key, child.parent_instance_id, child.started_by, child.started_at) == \
            (BETA, sender, "anna", later)
        assert runtime.instance_variables(s, child.id)["order"] == {"amount": 6}
        assert runtime.instance_variables(s, beta_waits)["amount"] == 3  # the send task's payload: the data
    with sessions.begin() as s:
        [received] = [e for e in audit.history(s, beta_waits) if e.kind == "message_received"]
        assert (received.actor, received.at) == ("anna", later)  # the thrower's actor and clock
    [ready, new] = _thrown(sessions, sender)
    assert ready[:3] == ("anna", later, True)
    assert (ready[3]["name"], ready[3]["delivered_to"], ready[3]["started"]) == ("order_ready", [beta_waits], [])
    assert "contact_id" not in ready[3]
    assert new == ("anna", later, True, {"name": "new_case", "payload": {"amount": 6}, "delivered_to": [],
                                         "started": [child.id]})
    assert _ready(sessions, child.id) == ["handle"]


def test_a_case_without_a_customer_reaches_no_waiting_case_but_still_starts_one(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn", "c_msg_start.bpmn")
    waiting = _start(sessions, "c_receiver", key=ACME)
    sender = _start(sessions, "c_sender", {"amount": 1})
    assert _ready(sessions, waiting) == []
    [ready, new] = _thrown(sessions, sender)
    assert (ready[3]["delivered_to"], ready[3]["started"]) == ([], [])
    [child] = new[3]["started"]
    with sessions.begin() as s:
        assert runtime.get_instance(s, child).business_key is None


def test_a_finished_case_of_the_customer_or_one_waiting_for_another_message_gets_nothing(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn", "c_msg_start.bpmn", "c_correlation.bpmn")
    cancelled, waiting = _start(sessions, "c_receiver", key=BETA), _start(sessions, "c_receiver", key=BETA)
    other = _start(sessions, "c_corr_shop", {"order_id": "A-1"}, key=BETA)  # waits for `shipped`
    with sessions.begin() as s:
        runtime.cancel_instance(s, cancelled, by="esimies", now=T0)
    sender = _start(sessions, "c_sender", {"amount": 1}, key=BETA)
    assert _thrown(sessions, sender)[0][3]["delivered_to"] == [waiting]
    with sessions.begin() as s:
        assert [e for e in audit.history(s, other) if e.kind == "message_received"] == []


def test_two_waiting_cases_of_the_customer_both_get_it_in_order(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn", "c_msg_start.bpmn")
    first, second = _start(sessions, "c_receiver", key=BETA), _start(sessions, "c_receiver", key=BETA)
    sender = _start(sessions, "c_sender", {"amount": 1}, key=BETA)
    assert _thrown(sessions, sender)[0][3]["delivered_to"] == [first, second]
    assert _ready(sessions, first) == _ready(sessions, second) == ["handle"]


def test_correlation_keys_pick_the_case_whatever_its_customer(sessions, deploy):
    deploy("c_correlation.bpmn")
    shop_a = _start(sessions, "c_corr_shop", {"order_id": "A-1"}, key=ACME)
    shop_b = _start(sessions, "c_corr_shop", {"order_id": "B-2"}, key=ACME)
    store = _start(sessions, "c_corr_store", {"order_id": "B-2", "parcel": "P9"}, key=BETA)
    [thrown] = _thrown(sessions, store)
    assert thrown[3] == {"name": "shipped", "payload": {"order_id": "B-2", "parcel": "P9"},
                         "delivered_to": [shop_b], "started": []}
    assert _ready(sessions, shop_a) == [] and _ready(sessions, shop_b) == ["tell_customer"]
    nobody = _start(sessions, "c_corr_store", {"order_id": "Z-9", "parcel": "P1"}, key=ACME)
    assert _thrown(sessions, nobody)[0][3] == {"name": "shipped", "payload": {"order_id": "Z-9", "parcel": "P1"},
                                               "delivered_to": [], "started": []}


def test_an_unawaited_contact_message_is_logged_on_the_customer(sessions):
    with sessions.begin() as s:
        users.add_user(s, "anna", "salasana-123", ["expert"])  # the named responsible expert
        deploy_files(s, {"contact_end.bpmn": CONTACT_BPMN}, by="designer")
    later = T0 + timedelta(days=1)
    iid = _start(sessions, "contact_end", {"business_id": ACME}, key=ACME, now=later)
    with sessions.begin() as s:
        customer = customers.find_by_business_id(s, ACME)
        assert (customer.name, customer.responsible_expert) == ("Acme Oy", "anna")
        [contact] = contacts.customer_contacts(s, customer.id)
        assert (contact.instance_id, str(contact.contacted_on), contact.topic, contact.notes,
                str(contact.next_contact_on)) == (iid, "2026-03-01", "Ei tarvetta nyt", "soita syksyllä", "2026-09-01")
        assert (contact.created_by, contact.created_at) == ("anna", later)  # the thrower's actor and clock
        assert runtime.get_instance(s, iid).status == "completed"
    [thrown] = _thrown(sessions, iid)
    assert (thrown[3]["delivered_to"], thrown[3]["started"], thrown[3]["contact_id"]) == ([], [], contact.id)


def test_a_contact_message_that_makes_no_valid_contact_records_none(sessions):
    with sessions.begin() as s:
        deploy_files(s, {"contact_end.bpmn": CONTACT_BPMN}, by="designer")
    iid = _start(sessions, "contact_end", {"business_id": "not-an-id"})
    [thrown] = _thrown(sessions, iid)
    assert thrown[3]["contact_id"] is None
    with sessions.begin() as s:
        assert customers.find_by_business_id(s, "not-an-id") is None



def _started_by(message):
    """c_msg_start started by `message` instead of `new_case`."""
    model = (MODELS / "c_msg_start.bpmn").read_text(encoding="utf-8").replace('name="new_case"', f'name="{message}"')
    return {"c_msg_start.bpmn": model.encode()}


def _children(sessions):
    with sessions.begin() as s:
        return [(i.id, i.parent_instance_id) for i in s.scalars(select(Instance).where(
            Instance.process_id == "c_msg_start").order_by(Instance.id))]


def test_a_waiting_case_takes_the_message_before_a_process_it_would_start(sessions, deploy):
    deploy("c_send.bpmn", "c_receiver.bpmn")
    with sessions.begin() as s:
        deploy_files(s, _started_by("order_ready"), by="designer")
    waiting = _start(sessions, "c_receiver", key=BETA)
    sender = _start(sessions, "c_sender", {"amount": 1}, key=BETA)
    assert (_thrown(sessions, sender)[0][3]["delivered_to"], _children(sessions)) == ([waiting], [])
    # nobody of ACME waits: the process starts
    other = _start(sessions, "c_sender", {"amount": 1}, key=ACME)
    [(child, parent)] = _children(sessions)
    assert parent == other and _thrown(sessions, other)[0][3]["started"] == [child]


def test_a_contact_message_that_starts_a_process_is_not_logged_as_a_contact(sessions):
    with sessions.begin() as s:
        deploy_files(s, {"contact_end.bpmn": CONTACT_BPMN, **_started_by(contacts.CASE_CONTACT_MESSAGE)},
                     by="designer")
    iid = _start(sessions, "contact_end", {"business_id": ACME}, key=ACME)
    [(child, _parent)] = _children(sessions)
    [thrown] = _thrown(sessions, iid)
    assert (thrown[3]["started"], "contact_id" in thrown[3]) == ([child], False)
    with sessions.begin() as s:
        assert customers.find_by_business_id(s, ACME) is None


def test_a_message_sent_from_outside_reaches_only_the_cases_its_keys_correlate_with(sessions, deploy):
    deploy("c_correlation.bpmn")
    shop_a = _start(sessions, "c_corr_shop", {"order_id": "A-1"}, key=ACME)
    shop_b = _start(sessions, "c_corr_shop", {"order_id": "B-2"}, key=ACME)
    later = T0 + timedelta(hours=3)
    with sessions.begin() as s, pytest.raises(NotFound, match="has the message's correlation keys"):
        runtime.deliver_message(s, "shipped", by="bank", data={"order_id": "Z-9"}, now=later)
    with sessions.begin() as s:
        assert runtime.deliver_message(s, "shipped", by="bank", data={"order_id": "B-2", "parcel": "P9"},
                                       now=later) == [shop_b]
    assert _ready(sessions, shop_a) == [] and _ready(sessions, shop_b) == ["tell_customer"]
    with sessions.begin() as s:
        [received] = [e for e in audit.history(s, shop_b) if e.kind == "message_received"]
        assert (received.actor, received.at, received.version_id) == (
            "bank", later, runtime.get_instance(s, shop_b).version_id)
        assert runtime.instance_variables(s, shop_b)["parcel"] == "P9"
        with pytest.raises(InvalidInput, match=r"^message payload: parcel is a set"):
            runtime.deliver_message(s, "shipped", by="bank", data={"order_id": "A-1", "parcel": {1}}, now=later)
    with sessions.begin() as s:  # the case the keys skipped is as it was, and still takes its own message
        assert runtime.deliver_message(s, "shipped", by="bank", data={"order_id": "A-1"}, now=later) == [shop_a]


@pytest.mark.parametrize("expression, kind", [("{order_id}", "a set"), ("float('nan')", "is nan"),
                                              ("2 ** 70", "beyond 64 bits")])
def test_a_correlation_value_json_cannot_hold_is_an_incident_of_the_throw_and_a_refusal_from_outside(
        sessions, expression, kind):
    xml = (MODELS / "c_correlation.bpmn").read_bytes().replace(
        b"<bpmn:messagePath>order_id</bpmn:messagePath>", f"<bpmn:messagePath>{expression}</bpmn:messagePath>".encode())
    with sessions.begin() as s:
        deploy_files(s, {"c_correlation.bpmn": xml}, by="designer")
    shop = _start(sessions, "c_corr_shop", {"order_id": "A-1"}, key=ACME)
    store = _start(sessions, "c_corr_store", {"order_id": "A-1", "parcel": "P9"}, key=BETA)
    with sessions.begin() as s:
        [incident] = runtime.open_incidents(s, store)
        assert "order_id_prop" in incident.message and kind in incident.message and incident.element_id == "ship"
        assert runtime.get_instance(s, store).status == "running"
        with pytest.raises(InvalidInput, match=f"order_id_prop.*{kind}"):
            runtime.deliver_message(s, "shipped", by="bank", data={"order_id": "A-1"}, now=T0)
    assert _ready(sessions, shop) == []
