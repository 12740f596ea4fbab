"""Customers: business ID check digit, field validation, duplicates, search, responsibility."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import customers, users
from engine.errors import CustomerNotFound, FormInvalid, InvalidInput
from engine.models import Deployment, Instance, ModelFile, ProcessVersion


@pytest.mark.parametrize("given, stored", [
    ("0737546-2", "0737546-2"),
    ("1572860-0", "1572860-0"),   # remainder 0 -> check digit 0
    (" 2617416-4 ", "2617416-4"),
    ("737546-2", "0737546-2"),    # an old 6-digit ID is padded with a leading 0
])
def test_valid_business_ids_are_normalised(given, stored):
    assert customers.validate_business_id(given) == stored


@pytest.mark.parametrize("given", [
    "0737546-3",    # wrong check digit
    "0737546-0",
    "1234567-2",    # the check digit of 1234567 is 1
    "07375462",     # no dash
    "12345-6",
    "12345678-9",
    "abcdefg-h",
    "",
])
def test_invalid_business_ids_are_refused(given):
    with pytest.raises(InvalidInput):
        customers.validate_business_id(given)


def test_remainder_one_ids_are_refused_for_every_check_digit():
    body = next(f"{n:07d}" for n in range(1000000, 1001000)
                if sum(int(d) * w for d, w in zip(f"{n:07d}", customers.CHECK_WEIGHTS)) % 11 == 1)
    for check in range(10):
        with pytest.raises(InvalidInput):
            customers.validate_business_id(f"{body}-{check}")


def _data(**overrides):
    data = {"name": "Pirkan Puu Oy", "business_id": "0737546-2", "industry": "16100 Sahatavara",
            "founded_year": "1998", "headcount": "42", "turnover_band": "2m_10m", "situation": "growth",
            "segment": "domestic", "responsible_expert": "", "contact_person": "Matti M", "phone": "+358 40 123 4567"}
    return {**data, **overrides}


def test_create_customer_stores_typed_fields(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    customer = customers.create_customer(session, _data(responsible_expert="Aino"), by="aino")
    assert customer.id is not None
    assert (customer.founded_year, customer.headcount, customer.responsible_expert) == (1998, 42, "aino")
    assert customers.get_customer(session, customer.id) is customer


def test_create_customer_reports_every_wrong_field_with_the_values_typed(session):
    bad = _data(name="", business_id="0737546-3", founded_year="1700", headcount="many",
                situation="booming", segment="x", responsible_expert="nobody", phone="call me",
                industry="software")
    with pytest.raises(FormInvalid) as caught:
        customers.create_customer(session, bad, by="aino")
    assert set(caught.value.errors) == {"name", "business_id", "founded_year", "headcount", "situation",
                                        "segment", "responsible_expert", "phone", "industry"}
    assert caught.value.values["business_id"] == "0737546-3"
    assert caught.value.values["headcount"] == "many"


def test_founded_year_in_the_future_is_refused(session):
    with pytest.raises(FormInvalid) as caught:
        customers.create_customer(session, _data(founded_year=str(date.today().year + 1)), by="aino")
    assert set(caught.value.errors) == {"founded_year"}


def test_empty_optional_fields_become_none(session):
    data = {"name": "Pieni Oy", "business_id": "0737546-2"}
    customer = customers.create_customer(session, data, by="aino")
    assert customer.headcount is None and customer.segment is None and customer.phone is None


def test_duplicate_business_id_is_a_field_error(session):
    customers.create_customer(session, _data(), by="aino")
    with pytest.raises(FormInvalid) as caught:
        customers.create_customer(session, _data(name="Toinen Oy", business_id="737546-2"), by="aino")
    assert set(caught.value.errors) == {"business_id"}


def test_responsible_expert_must_hold_the_expert_role(session):
    users.add_user(session, "sanna", "salasana-123", ["supervisor"])
    with pytest.raises(FormInvalid) as caught:
        customers.create_customer(session, _data(responsible_expert="sanna"), by="aino")
    assert set(caught.value.errors) == {"responsible_expert"}


def test_update_customer_changes_fields_and_keeps_its_own_business_id(session):
    customer = customers.create_customer(session, _data(), by="aino")
    customers.update_customer(session, customer.id, _data(name="Pirkan Puu ja Sahaus Oy", headcount="50"), by="aino")
    assert (customer.name, customer.headcount, customer.business_id) == ("Pirkan Puu ja Sahaus Oy", 50, "0737546-2")


def test_update_customer_may_keep_an_expert_who_left(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    customer = customers.create_customer(session, _data(responsible_expert="aino"), by="aino")
    users.set_roles(session, "aino", ["supervisor"])
    customers.update_customer(session, customer.id, _data(responsible_expert="aino", headcount="43"), by="x")
    assert customer.headcount == 43


def test_update_to_another_customers_business_id_is_refused(session):
    customers.create_customer(session, _data(), by="aino")
    other = customers.create_customer(session, _data(name="Toinen Oy", business_id="2617416-4"), by="aino")
    with pytest.raises(FormInvalid) as caught:
        customers.update_customer(session, other.id, _data(name="Toinen Oy"), by="aino")
    assert set(caught.value.errors) == {"business_id"}


def _instance(session, business_key):
    version = session.scalar(select(ProcessVersion).where(ProcessVersion.process_id == "service"))
    if version is None:
        version = _version(session)
    instance = Instance(version_id=version.id, process_id="service", business_key=business_key, state="{}",
                        started_by="t")
    session.add(instance)
    session.flush()
    return instance


def _version(session):
    deployment = Deployment(created_by="t")
    session.add(deployment)
    session.flush()
    file = ModelFile(deployment_id=deployment.id, filename="p.bpmn", content="", sha256="0" * 64)
    session.add(file)
    session.flush()
    version = ProcessVersion(process_id="service", name="Service", version=1, content_hash="0" * 64,
                             deployment_id=deployment.id, file_id=file.id, created_by="t")
    session.add(version)
    session.flush()
    return version


def test_business_id_cannot_change_while_processes_refer_to_it(session):
    customer = customers.create_customer(session, _data(), by="aino")
    _instance(session, "0737546-2")
    with pytest.raises(FormInvalid) as caught:
        customers.update_customer(session, customer.id, _data(business_id="2617416-4"), by="aino")
    assert set(caught.value.errors) == {"business_id"}


def test_customer_processes_are_found_by_business_key(session):
    customer = customers.create_customer(session, _data(), by="aino")
    assert customers.customer_processes(session, customer) == []
    instance = _instance(session, "0737546-2")
    _instance(session, "2617416-4")
    assert customers.customer_processes(session, customer) == [instance]


def test_get_missing_customer_raises_customer_not_found(session):
    with pytest.raises(CustomerNotFound):
        customers.get_customer(session, 999)


def test_search_finds_by_name_part_or_business_id_prefix_and_pages(session):
    ids = ["0737546-2", "2617416-4", "1572860-0"]
    for name, bid in zip(["Alfa Oy", "Beta Oy", "Alfa-Palvelut Ky"], ids):
        customers.create_customer(session, _data(name=name, business_id=bid), by="aino")
    assert [c.name for c in customers.search_customers(session, "alfa").items] == ["Alfa Oy", "Alfa-Palvelut Ky"]
    assert [c.name for c in customers.search_customers(session, "26174").items] == ["Beta Oy"]
    assert customers.search_customers(session, "%").total == 0
    second = customers.search_customers(session, "", page=2, per_page=2)
    assert (second.total, second.pages, [c.name for c in second.items]) == (3, 2, ["Beta Oy"])


def test_customers_without_expert_includes_those_whose_expert_left(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    users.add_user(session, "eero", "salasana-123", ["expert"])
    customers.create_customer(session, _data(name="A Oy", responsible_expert="aino"), by="x")
    customers.create_customer(session, _data(name="B Oy", business_id="2617416-4", responsible_expert="eero"), by="x")
    customers.create_customer(session, _data(name="C Oy", business_id="1572860-0"), by="x")
    users.set_profile(session, "eero", active=False)
    assert [c.name for c in customers.customers_without_expert(session)] == ["B Oy", "C Oy"]
