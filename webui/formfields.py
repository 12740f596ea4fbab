"""Process forms on web pages: read posted values for `engine.forms.Field`s, show values, translate messages.

The task page and the start form of a service process share these helpers and the macros in
`templates/tasks/_form.html`. Documentation of a task is Markdown written by process designers;
`safe_markdown` renders it and strips everything but harmless formatting (nh3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import markdown as md
import nh3
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from engine import values
from engine.errors import DataInvalid
from engine.forms import Field

TRUE = ("true", "on", "1", "yes", "kyllä")

# The engine's form messages (engine/forms.py), marked here so the catalogue carries them.
MESSAGES = {
    "this field is required": _l("this field is required"),
    "enter a whole number": _l("enter a whole number"),
    "the number is too large": _l("the number is too large"),
    "choose yes or no": _l("choose yes or no"),
    "enter a date as YYYY-MM-DD": _l("enter a date as YYYY-MM-DD"),
    "choose one option": _l("choose one option"),
    "this field cannot be changed": _l("this field cannot be changed"),
    "this form has no such field": _l("this form has no such field"),
    "choose an active user with the expert role": _l("choose an expert from the list"),
    "choose an active provider from the registry": _l("choose a provider from the registry"),
    "the date cannot be in the future": _l("the date cannot be in the future"),
    "enter an e-mail address such as name@example.fi": _l("enter an e-mail address such as name@example.fi"),
}
PATTERNS = (
    (re.compile(r"must be at least (\S+)"), lambda m: _("must be at least %(n)s", n=m[1])),
    (re.compile(r"must be at most (\S+)"), lambda m: _("must be at most %(n)s", n=m[1])),
    (re.compile(r"enter at least (\d+) characters"), lambda m: _("enter at least %(n)s characters", n=m[1])),
    (re.compile(r"enter at most (\d+) characters"), lambda m: _("enter at most %(n)s characters", n=m[1])),
    (re.compile(r"enter at least (\d+) choices"), lambda m: _("choose at least %(n)s options", n=m[1])),
    (re.compile(r"enter at most (\d+) choices"), lambda m: _("choose at most %(n)s options", n=m[1])),
    (re.compile(r"'(.*)' is not one of the options"), lambda m: _("“%(v)s” is not one of the options", v=m[1])),
    (re.compile(r"must be on or after (\d{4}-\d{2}-\d{2})"),
     lambda m: _("the date must be %(day)s or later", day=_day(m[1]))),
    (re.compile(r"must be after (\d{4}-\d{2}-\d{2})"),
     lambda m: _("the date must be later than %(day)s", day=_day(m[1]))),
    (re.compile(r"must be on or before (\d{4}-\d{2}-\d{2})"),
     lambda m: _("the date must be %(day)s or earlier", day=_day(m[1]))),
)


def _day(iso: str) -> str:
    """Return an ISO date of an engine message as the user's language writes it."""
    return format_date(date.fromisoformat(iso), "medium")


def message(text: str) -> str:
    """Return an engine form message in the user's language, as a sentence (as is when it is not known)."""
    found = str(MESSAGES[text]) if text in MESSAGES else None
    for pattern, translate in PATTERNS:
        match = pattern.fullmatch(text)
        if found is None and match:
            found = str(translate(match))
    found = found or text
    return found[:1].upper() + found[1:]


def too_large(fields: list[Field], data: Mapping[str, Any]) -> dict[str, str]:
    """Return {field: message} when posted form data is too large to store as process data, else {}."""
    try:
        values.check_plain(dict(data), what="form")
    except DataInvalid as exc:
        name = exc.variable.split(".")[0].split("[")[0]
        return {name: _("This makes the form too large to save (at most %(limit)s kB in all). Shorten it.",
                        limit=values.MAX_BYTES // 1000)}
    return {}


def unsaved_message() -> str:
    """Return the message of a form whose save failed because the database could not write."""
    return _("Not saved: the database could not store this just now. What you typed is kept below: "
             "try again in a moment.")


def messages(errors: Mapping[str, str]) -> dict[str, str]:
    """Return the field errors with their messages translated."""
    return {name: message(text) for name, text in errors.items()}


def read_posted(fields: list[Field], form: MultiDict[str, str]) -> dict[str, Any]:
    """Return the engine's input from a posted form: lists for multiple choices, no readonly fields."""
    data: dict[str, Any] = {}
    for item in fields:
        if item.readonly:
            continue
        if item.multiple:
            data[item.id] = form.getlist(item.id)
        elif item.id in form:  # an unticked checkbox sends nothing: the engine reads that as False
            data[item.id] = form.get(item.id)
    return data


def shown(item: Field, value: Any) -> Any:
    """Return a value as the form macros want it: a list, a bool or a string."""
    if item.multiple:
        return [str(v) for v in value] if isinstance(value, list) else ([] if value in (None, "") else [str(value)])
    if item.type == "boolean":
        return value is True or str(value).strip().lower() in TRUE
    return "" if value is None else str(value)


def initial_values(fields: list[Field], known: Mapping[str, Any]) -> dict[str, Any]:
    """Return the values a fresh form shows: the instance's current data, else each field's default."""
    return {f.id: shown(f, known.get(f.id, f.default)) for f in fields}


def typed_values(fields: list[Field], initial: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Return what the user typed (readonly fields keep their initial value) for re-rendering."""
    values = dict(initial)
    for item in fields:
        if not item.readonly:
            values[item.id] = shown(item, data.get(item.id, False if item.type == "boolean" else ""))
    return values


def safe_markdown(text: str | None) -> Markup:
    """Render Markdown to HTML with only harmless tags and attributes left."""
    if not text:
        return Markup("")
    return Markup(nh3.clean(md.markdown(text, extensions=["sane_lists"])))
