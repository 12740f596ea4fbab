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


# The templates' `_()`, `gettext()` and `localtime` (webui.i18n.template_gettext, template_localtime) give
# what Jinja's new-style gettext (over Flask-Babel's translations) and `localtime` give.
_MESSAGES = ["Task", "Sign out", "Tasks of %(name)s", "100 %% done", "no such message <b>"]


def _jinjas_own(autoescape: bool):
    """Return a Jinja environment of its own with Jinja's new-style gettext over Flask-Babel's (its way)."""
    from flask_babel import gettext as babel_gettext
    from flask_babel import ngettext as babel_ngettext
    from jinja2 import Environment

    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=autoescape)
    env.install_gettext_callables(babel_gettext, babel_ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


@pytest.mark.parametrize("lang", ["fi", "en"])
@pytest.mark.parametrize("autoescape", [True, False])
def test_the_templates_gettext_gives_what_jinjas_gives(app, lang, autoescape):
    from flask import session

    own = _jinjas_own(autoescape)
    with app.test_request_context("/"):
        session["lang"] = lang
        for message in _MESSAGES:
            for source in ("{{ _(m) }}", "{{ gettext(m) }}", "{{ _(m, name=who) }}"):
                if ("%(name)s" in message) != ("name=" in source):
                    continue  # a message without its variable fails (below); one with an unused one is not written
                ours = app.jinja_env.overlay(autoescape=autoescape).from_string(source)
                for context in ({}, {"current_locale": lang}):  # drawn by render_template, or not
                    values = {"m": message, "who": "<Aino & Eino>", **context}
                    assert ours.render(values) == own.from_string(source).render(values), (message, source)
                    assert ours.render(values) == own.from_string(source).render(values)  # kept: the same again


def test_a_message_needing_variables_without_them_fails_as_in_jinja(app):
    with app.test_request_context("/"), pytest.raises(KeyError):
        app.jinja_env.from_string("{{ _('Tasks of %(name)s') }}").render(current_locale="fi")


def test_the_templates_texts_follow_the_pages_language(client, login_as):
    login_as("expert")
    assert ">Kirjaudu ulos<" in client.get("/tasks/").get_data(as_text=True)
    client.post("/language", data={"lang": "en", "next": "/tasks/"})
    page = client.get("/tasks/").get_data(as_text=True)
    assert ">Sign out<" in page and "Kirjaudu ulos" not in page
    client.post("/language", data={"lang": "fi", "next": "/tasks/"})
    assert ">Kirjaudu ulos<" in client.get("/tasks/").get_data(as_text=True)


@pytest.mark.parametrize("lang", ["fi", "en"])
def test_the_templates_localtime_gives_what_localtime_gives(app, lang):
    from flask import session

    zone = ZoneInfo("Europe/Helsinki")
    start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # over the spring change to summer time, and the autumn's
    moments = [start + timedelta(minutes=29 * n) for n in range(20)]
    moments += [datetime(2026, 10, 25, 0, 30, tzinfo=UTC) + timedelta(minutes=20 * n) for n in range(8)]
    moments += [datetime(2026, 5, 1, 12, 0), None]  # naive: taken as UTC, as localtime takes it
    with app.test_request_context("/"):
        session["lang"] = lang
        for moment in moments:
            for fmt in (*NAMED_FORMATS, "yyyy-MM-dd HH:mm"):
                for context in ({}, {"current_locale": lang}):
                    drawn = app.jinja_env.from_string("{{ t|localtime(f) }}").render(t=moment, f=fmt, **context)
                    assert drawn == str(localtime(moment, fmt)), (moment, fmt, context)
        aware = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
        assert localtime(aware) == dates.format_datetime(aware, "short", tzinfo=zone, locale=lang)
