"""Languages: Finnish by default, a switch to English, every UI string translated, the .mo up to date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel import dates
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from engine import users
from webui.catalogs import BABEL_CONFIG, HERE, TRANSLATIONS
from webui.i18n import NAMED_FORMATS, format_moment, localtime, number

PO = TRANSLATIONS / "fi" / "LC_MESSAGES" / "messages.po"
MO = TRANSLATIONS / "fi" / "LC_MESSAGES" / "messages.mo"


def _catalog():
    with PO.open("rb") as f:
        return read_po(f, locale="fi")


def test_finnish_is_the_default(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="fi">' in page and "Kirjaudu sisään" in page


def test_language_switch_before_sign_in_shows_english(client):
    response = client.post("/language", data={"lang": "en", "next": "/login"})
    assert response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page and ">Sign in<" in page and "Suomeksi" in page


def test_language_switch_is_remembered_for_the_user(client, login_as, sessions):
    username = login_as("expert")
    client.post("/language", data={"lang": "en", "next": "/customers/"})
    assert "Search by name or business ID" in client.get("/customers/").get_data(as_text=True)
    with sessions.begin() as s:
        assert users.get_user(s, username).locale == "en"
    client.post("/logout")
    client.post("/language", data={"lang": "fi"})
    login_as(username)
    assert "Search by name or business ID" in client.get("/customers/").get_data(as_text=True)


def test_user_locale_chooses_the_language(client, login_as, sessions):
    with sessions.begin() as s:
        users.add_user(s, "emma", "salasana-123", ["expert"], locale="en")
    login_as("emma", "salasana-123")
    assert "New customer" in client.get("/customers/").get_data(as_text=True)


def test_unknown_language_is_ignored(client):
    client.post("/language", data={"lang": "sv"})
    assert "Kirjaudu sisään" in client.get("/login").get_data(as_text=True)


def test_every_ui_string_has_a_finnish_translation():
    method_map = [tuple(line[1:].split("]")[0].split(": ")[::-1]) for line in BABEL_CONFIG.read_text().splitlines()
                  if line.startswith("[")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "N_": None}
    found = {msg[2] if isinstance(msg[2], str) else msg[2][0]
             for msg in extract_from_dir(HERE.parent, method_map, keywords=keywords)}
    catalog = _catalog()
    untranslated = sorted(m for m in found if not (catalog.get(m) and _translated(catalog.get(m))))
    assert not untranslated, f"run `python -m webui.catalogs` and translate: {untranslated}"


def _translated(message):
    return all(message.string) if isinstance(message.string, tuple) else bool(message.string)


def test_compiled_catalogue_matches_the_po_file():
    with MO.open("rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    source = {_key(m.id): _key(m.string) for m in _catalog() if m.id and not m.fuzzy}
    assert compiled == source, "run `python -m webui.catalogs` to compile the .mo"


def _key(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def test_localtime_shows_helsinki_time_in_the_users_language(app):
    summer = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
    with app.test_request_context():
        assert localtime(summer) == "15.7.2026 13.00"
        assert localtime(None) == ""
        assert number(1234567) == "1\xa0234\xa0567"
    with app.test_request_context():
        from flask import session

        session["lang"] = "en"
        assert localtime(summer) == "7/15/26, 1:00\u202fPM"
        assert number(1234567) == "1,234,567"


@pytest.mark.parametrize("locale", ["fi", "en", "sv", "de", "en_GB"])
@pytest.mark.parametrize("format", NAMED_FORMATS)
def test_times_are_written_as_babel_writes_them(locale, format):
    zone = ZoneInfo("Europe/Helsinki")
    start = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    for step in range(0, 400 * 24, 37):  # every hour of the day, midnight and noon, days and months of a year
        moment = (start + timedelta(hours=step, minutes=step % 60)).astimezone(zone)
        assert format_moment(moment, locale, format) == dates.format_datetime(moment, format, tzinfo=zone,
                                                                              locale=locale), moment


def test_a_language_changed_during_a_request_is_used_from_then_on(app):
    from flask import render_template_string, session
    from flask_babel import refresh

    moment = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    with app.test_request_context("/"):
        session["lang"] = "fi"
        assert (render_template_string("{{ _('Task') }}"), localtime(moment)) == ("Tehtävä", "5.1.2026 12.00")
        session["lang"] = "en"
        refresh()  # as Flask-Babel asks after changing the language within a request
        assert (render_template_string("{{ _('Task') }}"), localtime(moment)) == ("Task", "1/5/26, 12:00\u202fPM")  # CLDR: a narrow no-break space


@pytest.mark.parametrize("lang", ["fi", "en"])
def test_numbers_are_written_as_babel_writes_them(app, lang):
    from flask import session
    from flask_babel import format_decimal

    values = [0, 7, -7, 999, 1000, -1000, 12345, 999999, 1000000, -1234567, 10**15 + 1, 2.5, -1234.75]
    with app.test_request_context():
        session["lang"] = lang
        for value in values:
            assert number(value) == format_decimal(value), value


def test_a_language_whose_numbers_are_not_grouped_by_threes_is_left_to_babel():
    from webui.i18n import _whole_number_style

    assert _whole_number_style("fi") == ("\xa0", "-") and _whole_number_style("en") == (",", "-")
    assert _whole_number_style("hi") is None  # 12,34,567: groups of two after the first three
