"""Customer pages: register, edit, search, wrong input shown at its field, processes block."""

from __future__ import annotations

from pathlib import Path

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


def _timeline_of(page: str) -> str:
    """Return the timeline section of a customer page (the contact log above it names the contacts too)."""
    return page.split('id="timeline-heading"', 1)[1].split("</section>", 1)[0]


def _customer_with_calls(sessions, expert: str, days: int) -> int:
    """Register a customer of the expert with a phone call logged on each of 1..`days` January 2026
    ("Soitto 01", ...); return its id."""
    from engine import contacts

    with sessions.begin() as s:
        customer_id = customers.create_customer(s, _form(responsible_expert=expert), by=expert).id
        for day in range(1, days + 1):
            contacts.log_contact(s, customer_id, {"contacted_on": f"2026-01-{day:02d}", "channel": "phone",
                                                  "topic": f"Soitto {day:02d}"}, by=expert)
    return customer_id


def test_the_customer_timeline_pages_through_every_entry_newest_first(client, login_as, sessions):
    """A long history is not cut at the newest entries: the timeline shows 25 at a time, process events and
    logged contacts merged, and pages back to the oldest; a page past the end shows the last one."""
    from datetime import UTC, datetime

    from engine import deploy, runtime
    from webui.customers import TIMELINE_PAGE

    loop = (Path(__file__).parent.parent / "engine" / "bpmn" / "loop.bpmn").read_bytes()
    expert = login_as("expert")
    customer_id = _customer_with_calls(sessions, expert, 30)  # 1-30 January, the oldest entries
    with sessions.begin() as s:
        deploy.deploy_files(s, {"loop.bpmn": loop}, by="test")
        runtime.start_instance(s, "loop", by=expert, business_key="0737546-2",  # newer than every contact
                               now=datetime(2026, 2, 1, 8, 0, tzinfo=UTC), data={"responsible_expert": expert})
    assert TIMELINE_PAGE == 25
    first = _timeline_of(client.get(f"/customers/{customer_id}").get_data(as_text=True))
    assert first.count("<li>") == 25 and "Tapahtumat 1–25, uusin ensin" in first
    assert "Loop alkoi" in first and "Soitto 30" in first and "Soitto 07" in first and "Soitto 06" not in first
    assert f'href="/customers/{customer_id}?timeline=2#timeline-heading"' in first and "Uudemmat" not in first
    second = _timeline_of(client.get(f"/customers/{customer_id}?timeline=2").get_data(as_text=True))
    assert second.count("<li>") == 6 and "Tapahtumat 26–31, uusin ensin" in second
    assert "Soitto 06" in second and "Soitto 01" in second and "Soitto 07" not in second
    assert second.index("Soitto 06") < second.index("Soitto 01")
    assert f'href="/customers/{customer_id}?timeline=1#timeline-heading"' in second and "Vanhemmat" not in second
    assert _timeline_of(client.get(f"/customers/{customer_id}?timeline=9").get_data(as_text=True)) == second
    for wrong in ("0", "-1", "x", "9" * 40):
        assert _timeline_of(client.get(f"/customers/{customer_id}?timeline={wrong}").get_data(as_text=True)) == first


def test_the_deepest_timeline_page_says_that_older_entries_are_not_shown(client, login_as, sessions, monkeypatch):
    from webui import customers as customer_pages

    monkeypatch.setattr(customer_pages, "TIMELINE_PAGES", 1)
    expert = login_as("expert")
    customer_id = _customer_with_calls(sessions, expert, 27)
    for asked in ("", "?timeline=2"):
        shown = _timeline_of(client.get(f"/customers/{customer_id}{asked}").get_data(as_text=True))
        assert shown.count("<li>") == 25 and "Soitto 27" in shown and "Soitto 02" not in shown
        assert "Vanhempia tapahtumia ei näytetä tällä sivulla." in shown and "timeline=2" not in shown


def test_a_timeline_of_exactly_one_page_offers_no_other_page(client, login_as, sessions):
    expert = login_as("expert")
    customer_id = _customer_with_calls(sessions, expert, 25)
    shown = _timeline_of(client.get(f"/customers/{customer_id}").get_data(as_text=True))
    assert shown.count("<li>") == 25 and "Soitto 01" in shown
    assert "Vanhemmat" not in shown and "Tapahtumat" not in shown and "timeline=" not in shown
