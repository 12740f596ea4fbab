"""Languages, time zone and number formats: Flask-Babel set up with Finnish first, English second.

UI strings are written in English with `_()` and translated in
`webui/translations/fi/LC_MESSAGES/messages.po`; the compiled `.mo` beside it is committed, so a
fresh checkout runs as is. After changing strings run `python -m webui.catalogs` (extract, merge,
compile); a test fails while the `.mo` lags behind the `.po`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, dates, numbers
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
from flask_babel import timezone as babel_timezone
from jinja2 import pass_context
from markupsafe import Markup

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


NAMED_FORMATS = ("full", "long", "medium", "short")


Formatter = Callable[[Any], str]
_NUMERIC = {"d": "day", "M": "month", "y": "year", "H": "hour", "m": "minute", "s": "second"}


def _field(name: str, locale: Locale) -> Formatter | None:
    """Return a fast formatter of one CLDR pattern field (as Babel writes it), or None for the others."""
    char, width = name[0], len(name)
    if char == "y" and width == 2:
        return lambda v: f"{v.year % 100:02d}"
    if char in _NUMERIC and (char != "M" or width <= 2):
        attr = _NUMERIC[char]
        return lambda v: f"{getattr(v, attr):0{width}d}"
    if char == "h":
        return lambda v: f"{v.hour % 12 or 12:0{width}d}"
    if name == "a":
        am, pm = (str(dates.format_time(time(hour), "a", locale=locale)) for hour in (1, 13))
        return lambda v: pm if v.hour >= 12 else am
    return None


def _compile(pattern: Any, locale: Locale) -> Formatter:
    """Return a formatter giving the text of Babel's `pattern.apply` (Babel's own where a field is not numeric)."""
    names = re.findall(r"%\((\w+)\)s", pattern.format)
    fields = [_field(name, locale) for name in names]
    if any(f is None for f in fields):
        return lambda v: str(pattern.apply(v, locale))
    pairs = list(zip(names, fields, strict=True))
    return lambda v: str(pattern.format % {name: f(v) for name, f in pairs})  # type: ignore[misc]


@lru_cache(maxsize=32)
def _datetime_patterns(locale: str, format: str) -> tuple[str, Formatter, Formatter]:
    """Return how a language joins time and date in a named format, and its time and date formatters."""
    parsed = Locale.parse(locale)
    glue = dates.get_datetime_format(format, locale=parsed).replace("'", "")
    return (glue, _compile(dates.get_time_format(format, locale=parsed), parsed),
            _compile(dates.get_date_format(format, locale=parsed), parsed))


def localtime(value: datetime | None, format: str = "short") -> str:
    """Format an aware datetime in the display time zone and the user's language ('' for None).

    What Babel's `format_datetime` does, with the language's patterns parsed once per process and
    their numeric fields formatted directly: a customer page formats over a hundred times (40 µs
    each through Flask-Babel).
    """
    if value is None:
        return ""
    if format not in NAMED_FORMATS:
        return str(dates.format_datetime(value, format, tzinfo=get_timezone(), locale=get_locale()))
    kept = g.get("display_locale_zone")  # (Flask-Babel's locale object, its name, the zone), once per request
    if kept is None or kept[0] is None or kept[0] is not _babel_locale():
        name = str(get_locale() or DEFAULT_LOCALE)
        kept = g.display_locale_zone = (_babel_locale(), name, get_timezone())
    return format_moment((value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(kept[2]), kept[1], format)


_ZONE = "polku_display_zone"  # an attribute of the app's Jinja environment: the zone pages show times in


@pass_context
def template_localtime(context: Any, value: datetime | None, format: str = "short") -> str:
    """The templates' `localtime` filter: `localtime`, with the language and zone the page was drawn with.

    The page's `current_locale` and the app's display zone (kept on its Jinja environment) stand in
    for the two lookups in the request's globals per call that `localtime` makes (about half of its
    10 µs; the inbox formats two times a row).
    """
    locale, zone = context.get("current_locale"), getattr(context.environment, _ZONE, None)
    if value is None or locale is None or zone is None or format not in NAMED_FORMATS:
        return localtime(value, format)
    return format_moment((value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone), locale, format)


def format_moment(moment: datetime, locale: str, format: str = "short") -> str:
    """Format a datetime as it stands (no zone change) in a language's named format: Babel's text."""
    glue, time_text, date_text = _datetime_patterns(locale, format)
    return glue.replace("{0}", time_text(moment)).replace("{1}", date_text(moment))


def ui_translations() -> Any:
    """Return this request's UI translations, looked up once per request and language.

    Flask-Babel finds the domain, the locale and its cache on every `_()` of a template (about
    30 µs); a page of 25 task rows calls it hundreds of times. A language changed during the
    request (`flask_babel.refresh` drops the chosen locale) is looked up again.
    """
    kept = g.get("ui_translations")
    if kept is None or kept[0] is None or kept[0] is not _babel_locale():
        translations = get_translations()
        kept = g.ui_translations = (_babel_locale(), translations)
    return kept[1]


_TEXTS: dict[tuple[str, str, bool], Any] = {}  # (language, message, escaped): the message as templates show it


@pass_context
def template_gettext(context: Any, message: str, **variables: Any) -> Any:
    """The templates' `_()` and `gettext()`: Jinja's new-style gettext, each message looked up once per language.

    Jinja's goes through two context calls, the translations and a `%` of the text even with no
    variables on every call (about 8 µs; a task page calls it a dozen times, the inbox thirty). This
    gives the same: the translation, marked safe where the template escapes, `%`-formatted with the
    variables (escaped there). A message without variables is kept formatted per language (the
    page's `current_locale`; at most 10,000 messages: templates pass literal ones).
    """
    escape = context.eval_ctx.autoescape
    if variables:
        text = ui_translations().ugettext(message)
        return (Markup(text) if escape else text) % variables
    key = (context.get("current_locale") or language(), message, escape)
    done = _TEXTS.get(key)
    if done is None:
        text = ui_translations().ugettext(message)
        done = (Markup(text) if escape else text) % {}
        if len(_TEXTS) < 10_000:
            _TEXTS[key] = done
    return done


def language() -> str:
    """Return the code of this request's language, looked up once per request (and again after a change)."""
    kept = g.get("language")
    if kept is None or kept[0] is None or kept[0] is not _babel_locale():
        name = str(get_locale() or DEFAULT_LOCALE)
        kept = g.language = (_babel_locale(), name)
    return str(kept[1])


def label(text: Any) -> str:
    """Return a lazy label (`lazy_gettext`) as text in this request's language, each label translated once.

    `str()` of a lazy string asks Flask-Babel every time (about 30 µs); a timeline of a hundred
    entries names a dozen kinds.
    """
    kept = g.get("labels")
    if kept is None or kept[0] is None or kept[0] is not _babel_locale():
        kept = g.labels = (_babel_locale(), {})
    found = kept[1].get(id(text))
    if found is None or found[0] is not text:
        found = kept[1][id(text)] = (text, str(text))  # the label kept with its text: its id stays its own
    return found[1]


def _babel_locale() -> Any:
    """Return the locale Flask-Babel chose for this request (None before it chose, or after `refresh`)."""
    return getattr(g.get("_flask_babel"), "babel_locale", None)


def localdate(value: date | datetime | None, format: str = "short") -> str:
    """Format a date (or a datetime's date in the display time zone) in the user's language."""
    return "" if value is None else format_date(value, format)


def number(value: float | None) -> str:
    """Format a number with the user's language's separators ('' for None).

    A whole number is grouped here when Babel groups the language's whole numbers by threes (its own
    output for a sample, read once per language, gives the separator and the minus): the text is
    Babel's, without its pattern machinery (about 30 µs a number; a task page shows several).
    """
    if value is None:
        return ""
    if type(value) is int:
        style = _whole_number_style(language())
        if style is not None:
            grouped = f"{abs(value):,}".replace(",", style[0])
            return style[1] + grouped if value < 0 else grouped
    return str(format_decimal(value))


@lru_cache(maxsize=16)
def _whole_number_style(name: str) -> tuple[str, str] | None:
    """Return (group separator, minus) if Babel writes whole numbers of this language in plain groups of three."""
    negative = numbers.format_decimal(-1234567, locale=name)
    found = re.fullmatch(r"(?P<minus>\D*)1(?P<group>\D+)234(?P=group)567", negative)
    if found is None:
        return None
    minus, group = found["minus"], found["group"]
    expected = {7: "7", 1000: f"1{group}000", 1234567: f"1{group}234{group}567"}
    if any(numbers.format_decimal(n, locale=name) != text for n, text in expected.items()):
        return None
    return group, minus


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
    app.jinja_env.globals.update(_=template_gettext, gettext=template_gettext)
    setattr(app.jinja_env, _ZONE, babel_timezone(settings.timezone))  # what get_timezone() gives (the selector's)
    app.jinja_env.filters.update(localtime=template_localtime, localdate=localdate, number=number, translated=translated)
    app.context_processor(lambda: {"current_locale": language()})
