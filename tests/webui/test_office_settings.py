"""Web: the office settings page shows the aftercare day counts as the office's own choices, saves
them audited and lists the earlier values."""

from __future__ import annotations

from engine import office


def test_aftercare_settings_are_saved_and_their_history_listed(client, login_as, sessions):
    boss = login_as("supervisor")
    client.post("/language", data={"lang": "en"})
    page = client.get("/office/settings").get_data(as_text=True)
    assert "office's own choice" in page and 'id="aftercare_target_days_training" name="aftercare_target_days_training" value="7"' in page
    assert 'value="365"' in page and "No setting has been changed yet" in page
    response = client.post("/office/settings", data={"aftercare_target_days_training": "10", "aftercare_attempts": "4"})
    assert response.status_code == 302
    page = client.get("/office/settings").get_data(as_text=True)
    assert 'name="aftercare_target_days_training" value="10"' in page
    history = page.split('id="setting-history"')[1].split("</table>")[0]
    assert "Aftercare target after joint-purchase training (days)</td><td>7</td><td>10</td>" in history
    assert "Contact attempts before a customer counts as not reached</td><td>3</td><td>4</td>" in history
    bad = client.post("/office/settings", data={"follow_up_offset_days": "0"})
    assert bad.status_code == 302
    with sessions() as s:
        assert office.get(s, "follow_up_offset_days") == 365
        assert [c.by for c in office.history(s)] == [boss, boss]


def test_aftercare_settings_in_finnish(client, login_as):
    login_as("supervisor")
    page = client.get("/office/settings").get_data(as_text=True)
    assert "Jälkihoito: toimiston omat valinnat" in page and "toimiston oma valinta" in page and "Aiemmat arvot" in page
