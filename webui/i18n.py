"""Languages, time zone and number formats: Flask-Babel set up with Finnish first, English second.

UI strings are written in English with `_()` and translated in
`webui/translations/fi/LC_MESSAGES/messages.po`; the compiled `.mo` beside it is committed, so a
fresh checkout runs as is. After changing strings run `python -m webui.catalogs` (extract, merge,
compile); a test fails while the `.mo` lags behind the `.po`.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel import dates
from flask import Flask, g, session
from flask_babel import (
    Babel,
    format_date,
    format_decimal,
    get_locale,
    get_timezone,
    get_translations,
    gettext,
)

from engine.config import Settings

LOCALES = ("fi", "en")
DEFAULT_LOCALE = "fi"
TRANSLATIONS = Path(__file__).parent / "translations"


def select_locale() -> str:
    """Return the signed-in user's language, else the one chosen in the session, else Finnish."""
    user = g.get("user")
    if user is not None and user.locale in LOCALES:
        return str(user.locale)
    chosen = session.get("lang")
    return chosen if chosen in LOCALES else DEFAULT_LOCALE


def localtime(value: datetime | None, format: str = "short") -> str:
    """Format an aware datetime in the display time zone and the user's language ('' for None).

    Babel directly, as Flask-Babel's `format_datetime` does it, without its per-call format lookup:
    task tables format two times a row.
    """
    return "" if value is None else dates.format_datetime(value, format, tzinfo=get_timezone(), locale=get_locale())


def ui_translations() -> Any:
    """Return this request's UI translations, looked up once per request and language.

    Flask-Babel finds the domain, the locale and its cache on every `_()` of a template (about
    30 µs); a page of 25 task rows calls it hundreds of times. A language changed during the
    request (`flask_babel.refresh` drops `g.babel_locale`) is looked up again.
    """
    kept = g.get("ui_translations")
    if kept is None or kept[0] is not g.get("babel_locale"):
        translations = get_translations()
        kept = g.ui_translations = (g.get("babel_locale"), translations)
    return kept[1]


def localdate(value: date | datetime | None, format: str = "short") -> str:
    """Format a date (or a datetime's date in the display time zone) in the user's language."""
    return "" if value is None else format_date(value, format)


def number(value: float | None) -> str:
    """Format a number with the user's language's separators ('' for None)."""
    return "" if value is None else format_decimal(value)


def translated(text: object) -> str:
    """Translate a message held in a variable, as plain text the template escapes.

    `{{ _(variable) }}` would mark the result safe (Jinja's new-style gettext returns Markup), so
    a message carrying user input could inject HTML: write `{{ variable|translated }}` instead.
    """
    return str(gettext(str(text)))


def init_app(app: Flask, settings: Settings) -> None:
    """Install Flask-Babel with Polku's locale choice, time zone and Jinja filters."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", settings.timezone)
    Babel(app, locale_selector=select_locale, timezone_selector=lambda: settings.timezone,
          default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.install_gettext_callables(  # as Flask-Babel installs them, the translations kept per request
        gettext=lambda s: ui_translations().ugettext(s),
        ngettext=lambda s, p, n: ui_translations().ungettext(s, p, n),
        pgettext=lambda c, s: ui_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: ui_translations().unpgettext(c, s, p, n),
        newstyle=True)
    app.jinja_env.filters.update(localtime=localtime, localdate=localdate, number=number, translated=translated)
    app.context_processor(lambda: {"current_locale": str(get_locale() or DEFAULT_LOCALE)})
