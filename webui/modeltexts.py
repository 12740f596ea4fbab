"""Model texts in the user's language, and the case data shown beside a task.

Models are written in Finnish; `engine.model_texts.translate` finds a text's translation in the
version's stored translations, then in the current `models` catalogue, and falls back to the
model's own text. Templates call `model_text(text, version_id)` (a global installed by the tasks
blueprint); views translate form fields with `fields` and process names with `process_names`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from flask import g
from flask_babel import gettext as _

from engine import deploy, model_texts, runtime, summary
from engine.errors import VersionNotFound
from engine.forms import Field

from .auth import read_with_signin
from .db import get_session
from .i18n import language, localdate, number


def locale() -> str:
    """Return the user's language code."""
    return language()


def catalogue(version_id: int | None) -> dict[str, Any]:
    """Return a version's catalogue (once per request), {} when there is none."""
    if version_id is None:
        return {}
    cache = g.setdefault("model_catalogues", {})
    if version_id not in cache:
        try:
            cache[version_id] = deploy.version_by_id(get_session(), version_id).catalogue or {}
        except VersionNotFound:  # a page must still render without its version's texts
            cache[version_id] = {}
    return cache[version_id]


def instance_version(instance_id: int) -> int:
    """Return the version id of an instance."""
    return runtime.get_instance(get_session(), instance_id).version_id


def text(value: str | None, version_id: int | None = None) -> str:
    """Return a model text in the user's language (the version's translation, the catalogue's, or itself)."""
    if not value or locale() == model_texts.MODEL_LOCALE:
        return value or ""
    return model_texts.translate(value, locale(), catalogue(version_id))


def field(item: Field, version_id: int | None) -> Field:
    """Return a form field with its label, option names and help in the user's language."""
    props = {k: text(v, version_id) if k in model_texts.PEOPLE_PROPERTIES else v for k, v in item.properties.items()}
    return replace(item, label=text(item.label, version_id), properties=props,
                   options=[(key, text(name, version_id)) for key, name in item.options])


def fields(items: list[Field], version_id: int | None) -> list[Field]:
    """Return form fields in the user's language."""
    return [field(item, version_id) for item in items]


def latest_fields(process_id: str, items: list[Field]) -> list[Field]:
    """Return the start form fields of a process's newest version in the user's language."""
    version = deploy.latest_version(get_session(), process_id, required=False)
    return fields(items, version.id if version is not None else None)


def option_names(process_id: str, field_id: str) -> dict[str, str]:
    """Return {option id: name in the user's language} of an enum field of a process's newest version."""
    version = deploy.latest_version(get_session(), process_id, required=False)
    if version is None:
        return {}
    found = next((f for f in summary.form_fields(version.catalogue) if f.id == field_id), None)
    return {key: text(name, version.id) for key, name in (found.options if found is not None else [])}


def process_names() -> dict[str, str]:
    """Return {process id: name in the user's language} of the newest deployed versions (once per request)."""
    if "process_names" not in g:
        known = read_with_signin("last_version_id")
        g.process_names = {process_id: text(name, version_id) for version_id, process_id, name
                           in deploy.newest_process_versions(get_session(), last_version=known)}
    return dict(g.process_names)


@dataclass(frozen=True)
class Fact:
    """One line of the case data beside a task: a label and a value, both ready to show."""

    id: str
    label: str
    value: str


def _value(item: Field, value: Any, version_id: int | None) -> str:
    if item.type == "boolean":
        return _("yes") if value is True or str(value).lower() == "true" else _("no")
    if item.type == "enum":
        names = dict(item.options)
        values = value if isinstance(value, list) else [value]
        return ", ".join(text(names.get(str(v), str(v)), version_id) for v in values)
    if item.type == "date":
        try:
            return localdate(date.fromisoformat(str(value)[:10]))
        except ValueError:
            return str(value)
    if item.type == "long" and isinstance(value, int | float) and not isinstance(value, bool):
        return number(value)
    return str(value)


def case_facts(version_id: int | None, variables: dict[str, Any]) -> list[Fact]:
    """Return the case data a task page shows: the model's summary fields, labelled and formatted."""
    found = summary.case_summary(catalogue(version_id), variables)
    return [Fact(item.id, text(item.label, version_id), _value(item, value, version_id)) for item, value in found]
