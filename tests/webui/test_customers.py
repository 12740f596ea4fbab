"""Customer pages: register, edit, search, wrong input shown at its field, processes block."""

from __future__ import annotations

import pytest

from engine import customers, users
from engine.errors import InvalidInput


@pytest.fixture
def expert(login_as, sessions):
    name = login_as("expert")
    with sessions.begin() as s:
        users.set_profile(s, name, display_name="Aino Asiantuntija")
    return name


def _form(**overrides):
    data = {"name": "Pirkan Puu Oy", "business_id": "0737546-2", "industry": "16100", "founded_year": "1998",
            "headcount": "42", "turnover_band": "2m_10m", "situation": "growth", "segment": "domestic",
            "responsible_expert": "", "contact_person": "Matti Meikäläinen", "phone": "040 123 4567"}
    return {**data, **overrides}


def test_register_customer_and_see_its_page(client, expert):
    response = client.post("/customers/new", data=_form(responsible_expert=expert))
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Asiakas Pirkan Puu Oy lisätty." in page
    assert "0737546-2" in page and "Kasvu tai laajentuminen" in page and "Kotimarkkinayritykset" in page
    assert "Ei vielä palveluprosesseja." in page
    assert "Aino Asiantuntija" in page


def test_bad_business_id_rerenders_the_form_with_the_typed_values(client, expert):
    response = client.post("/customers/new", data=_form(business_id="0737546-3", headcount="paljon"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Y-tunnuksen tarkistusmerkki ei täsmää." in page
    assert "Anna henkilömäärä kokonaislukuna." in page
    assert 'value="0737546-3"' in page and 'value="paljon"' in page and 'value="Matti Meikäläinen"' in page
    assert 'id="f-business_id" name="business_id"' in page and 'aria-invalid="true"' in page
    assert '<option value="2m_10m" selected>' in page


def test_duplicate_business_id_is_refused_at_its_field(client, expert, sessions):
    with sessions.begin() as s:
        customers.create_customer(s, _form(), by="seed")
    response = client.post("/customers/new", data=_form(name="Toinen Oy"))
    assert response.status_code == 422
    assert "Asiakas tällä Y-tunnuksella on jo olemassa." in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert customers.search_customers(s, "").total == 1


def test_edit_customer_saves_changes(client, expert, sessions):
    with sessions.begin() as s:
        customer_id = customers.create_customer(s, _form(), by="seed").id
    page = client.get(f"/customers/{customer_id}/edit").get_data(as_text=True)
    assert 'value="Pirkan Puu Oy"' in page
    response = client.post(f"/customers/{customer_id}/edit", data=_form(headcount="1200", situation="declining"))
    assert response.headers["Location"] == f"/customers/{customer_id}"
    page = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert "1\xa0200" in page and "Heikkenevä" in page


def test_edit_with_a_wrong_field_changes_nothing(client, expert, sessions):
    with sessions.begin() as s:
        customer_id = customers.create_customer(s, _form(), by="seed").id
    response = client.post(f"/customers/{customer_id}/edit", data=_form(name="Uusi nimi", founded_year="3000"))
    assert response.status_code == 422
    assert 'value="Uusi nimi"' in response.get_data(as_text=True)
    with sessions.begin() as s:
        assert customers.get_customer(s, customer_id).name == "Pirkan Puu Oy"


def test_search_by_name_and_business_id_with_pages(client, expert, sessions):
    ids = [f"{1000000 + n}-{c}" for n in range(40) for c in range(10) if _valid(f"{1000000 + n}-{c}")][:30]
    with sessions.begin() as s:
        for n, business_id in enumerate(ids):
            customers.create_customer(s, _form(name=f"Yritys {n:02d} Oy", business_id=business_id), by="x")
    first = client.get("/customers/?q=yritys").get_data(as_text=True)
    assert "30 asiakasta vastaa hakua" in first and "Yritys 24 Oy" in first and "Yritys 25 Oy" not in first
    second = client.get("/customers/?q=yritys&page=2").get_data(as_text=True)
    assert "Yritys 25 Oy" in second and "Sivu 2 / 2" in second
    by_id = client.get(f"/customers/?q={ids[3]}").get_data(as_text=True)
    assert "Yritys 03 Oy" in by_id and "Yritys 04 Oy" not in by_id


def _valid(business_id):
    try:
        customers.validate_business_id(business_id)
    except InvalidInput:
        return False
    return True


def test_without_expert_lists_customers_needing_one(client, expert, sessions):
    with sessions.begin() as s:
        customers.create_customer(s, _form(name="Vailla Oy"), by="x")
        customers.create_customer(s, _form(name="Hoidettu Oy", business_id="2617416-4", responsible_expert=expert),
                                  by="x")
    page = client.get("/customers/without-expert").get_data(as_text=True)
    assert "Vailla Oy" in page and "Hoidettu Oy" not in page


def test_missing_customer_is_a_friendly_404(client, expert):
    response = client.get("/customers/999")
    assert response.status_code == 404
    assert "Sivua ei löydy" in response.get_data(as_text=True)
