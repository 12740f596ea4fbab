"""Forms: read `camunda:formData` from the XML and validate submitted data against it.

SpiffWorkflow ignores forms on start events and never enforces constraints, so Polku reads the
forms of user tasks and start events itself at deploy time (stored in the version's catalogue as
plain dicts) and validates every submission here, so the CLI, the web UI and tests all get the
same answers.

Besides Camunda's own constraints (`required`, `readonly`, `minlength`, `maxlength`, `min`, `max`)
a field may carry Polku's domain checks, each a `camunda:constraint` with a name and a config:

    not_future  config="true"             a date field: today or earlier (today in Europe/Helsinki)
    not_before  config="<field>"          a date field: the same day as that date or later
    after       config="<field>"          a date field: strictly later than that date
    max_span    config="<P..>:<field>"    a date field: at most that ISO duration (Y, M, W, D) after
                                          that date (P2Y: the same day two years later is allowed)
    email       config="true"             a string field: an e-mail address

`<field>` names another field of the same form or a variable the instance already has (for
example one set by an earlier task's form); when it has no date the check is skipped. "Today"
comes from the `now` the engine passes, so a moved clock moves it too.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from .errors import FormInvalid
from .values import INT_MAX, INT_MIN, whole_number

CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
FIELD_TYPES = ("string", "long", "boolean", "date", "enum")
LONG_MIN, LONG_MAX = INT_MIN, INT_MAX  # a Camunda long: 64 bits, as every whole number of case data
PROVIDER_KINDS = ("training", "consultant", "partner")  # engine.providers.ProviderKind, for the deploy check
OFFICE_TIMEZONE = "Europe/Helsinki"  # the office's calendar: what "today" means for a date field
DATE_CHECKS = ("not_future", "not_before", "after", "max_span")
SPAN = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


@dataclass
class Field:
    """One form field with its constraints."""

    id: str
    label: str
    type: str = "string"
    default: Any = None
    required: bool = False
    readonly: bool = False
    minlength: int | None = None
    maxlength: int | None = None
    min: float | None = None
    max: float | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    checks: list[tuple[str, str]] = field(default_factory=list)  # domain checks: (name, config)

    @property
    def multiple(self) -> bool:
        """Tell whether an enum takes several choices (property multiple=true)."""
        return self.type == "enum" and self.properties.get("multiple", "").lower() == "true"

    @property
    def help(self) -> str | None:
        """Return the help text (property help), if any."""
        return self.properties.get("help")

    @property
    def user_role(self) -> str | None:
        """Return the role a string field's value must hold as an active user (property userRole)."""
        return self.properties.get("userRole") if self.type == "string" else None

    @property
    def provider_kinds(self) -> tuple[str, ...] | None:
        """Return the provider kinds a string field's value must be a registry provider of (property
        `provider`: comma-separated kinds, or `any` for every kind: then the tuple is empty); None when
        the field is not a provider field."""
        if self.type != "string" or "provider" not in self.properties:
            return None
        text = self.properties["provider"].strip().lower()
        return () if text in ("", "any") else tuple(k.strip() for k in text.split(",") if k.strip())

    @property
    def provider_free_text(self) -> bool:
        """Tell whether a provider field also takes a name typed in free text (property providerFreeText)."""
        return self.properties.get("providerFreeText", "").lower() == "true"

    @property
    def textarea(self) -> bool:
        """Tell whether a string field wants a multi-line input."""
        return self.properties.get("textarea", "").lower() == "true"

    def as_dict(self) -> dict[str, Any]:
        """Return the field as JSON-able data (for the version catalogue)."""
        dct = asdict(self)
        dct["options"] = [list(o) for o in self.options]
        dct["checks"] = [list(c) for c in self.checks]
        return dct

    @classmethod
    def from_dict(cls, dct: dict[str, Any]) -> Field:
        """Rebuild a field from `as_dict` output."""
        values = dict(dct)
        values["options"] = [tuple(o) for o in values.get("options", [])]
        values["checks"] = [tuple(c) for c in values.get("checks", [])]  # older catalogues have none
        return cls(**values)


def _c(tag: str) -> str:
    return f"{{{CAMUNDA}}}{tag}"


def _number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return float(text)


def parse_form(element: etree._Element) -> tuple[list[Field], list[str]]:
    """Read the camunda:formData of a BPMN element; return (fields, problems in plain words)."""
    fields: list[Field] = []
    problems: list[str] = []
    for node in element.iter(_c("formField")):
        fid = node.get("id") or ""
        ftype = node.get("type") or "string"
        if not fid.isidentifier():
            problems.append(f"form field id '{fid}' must be a name usable as a variable (letters, digits, _)")
            continue
        if ftype not in FIELD_TYPES:
            problems.append(f"form field '{fid}' has unsupported type '{ftype}' (use {', '.join(FIELD_TYPES)})")
            continue
        item = Field(id=fid, label=node.get("label") or fid, type=ftype, default=node.get("defaultValue"))
        for constraint in node.iter(_c("constraint")):
            name, config = constraint.get("name"), constraint.get("config")
            try:
                if name == "required":
                    item.required = True
                elif name == "readonly":
                    item.readonly = True
                elif name in ("minlength", "maxlength"):
                    setattr(item, name, int(config or ""))
                elif name in ("min", "max"):
                    setattr(item, name, _number(config))
                elif name in DATE_CHECKS or name == "email":
                    problem = _check_problem(item, name or "", (config or "").strip())
                    if problem:
                        problems.append(f"form field '{fid}': {problem}")
                    else:
                        item.checks.append((name or "", (config or "").strip()))
                else:
                    problems.append(f"form field '{fid}' has unknown constraint '{name}'")
            except ValueError:
                problems.append(f"form field '{fid}': constraint '{name}' needs a number, got '{config}'")
        for prop in node.iter(_c("property")):
            if prop.get("id"):
                item.properties[prop.get("id")] = prop.get("value") or ""
        item.options = [(v.get("id") or "", v.get("name") or v.get("id") or "") for v in node.iter(_c("value"))]
        if ftype == "enum" and not item.options:
            problems.append(f"enum form field '{fid}' has no values to choose from")
        fields.append(item)
    ids = {f.id for f in fields}
    for item in fields:
        if "provider" in item.properties and item.type != "string":
            problems.append(f"form field '{item.id}': property 'provider' applies to string fields only")
        unknown = [k for k in item.provider_kinds or () if k not in PROVIDER_KINDS]
        if unknown:
            problems.append(f"provider field '{item.id}' names unknown provider kinds {', '.join(unknown)} "
                            f"(use {', '.join(PROVIDER_KINDS)} or any)")
        if item.provider_kinds is not None and f"{item.id}_name" in ids:
            problems.append(f"provider field '{item.id}' sets '{item.id}_name' itself: remove that field")
    return fields, problems


def _span(config: str) -> tuple[tuple[int, int, int], str] | None:
    """Split a max_span config 'P2Y:start' into ((years, months, days), field), or None if malformed."""
    duration, _, other = config.partition(":")
    match = SPAN.fullmatch(duration.strip().upper())
    if not match or duration.strip().upper() == "P" or not other.strip().isidentifier():
        return None
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return (years, months, weeks * 7 + days), other.strip()


def _check_problem(item: Field, name: str, config: str) -> str | None:
    """Return what is wrong with a domain check on a field (None when it is usable)."""
    wanted = "string" if name == "email" else "date"
    if item.type != wanted:
        return f"constraint '{name}' applies to {wanted} fields only"
    if name in ("not_before", "after") and (not config.isidentifier() or config == item.id):
        return f"constraint '{name}' needs the id of another date field, got '{config}'"
    span = _span(config) if name == "max_span" else None
    if name == "max_span" and (span is None or span[1] == item.id):
        return f"constraint 'max_span' needs a duration and another date field such as 'P2Y:start_date', got '{config}'"
    return None


def _add_span(day: date, years: int, months: int, days: int) -> date:
    """Add years and months (the 29th-31st becomes the month's last day when it has none), then days."""
    month_index = day.month - 1 + months
    year, month = day.year + years + month_index // 12, month_index % 12 + 1
    if year > date.max.year:
        return date.max
    moved = date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    try:
        return moved + timedelta(days=days)
    except OverflowError:
        return date.max


def _as_date(value: Any) -> date | None:
    """Return a stored date value (date, ISO date or ISO datetime text) as a date, else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def today_in_office(now: datetime | None = None, timezone: str = OFFICE_TIMEZONE) -> date:
    """Return the office's calendar day at `now` (a naive `now` is read as UTC)."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone)).date()


def _domain_problem(item: Field, value: Any, known: dict[str, Any], today: date, relational: bool) -> str | None:
    """Return the first domain check the value breaks, in the engine's message style, else None.

    `relational` False runs the checks of the value alone (not_future, email), True those that
    compare it with another date.
    """
    for name, config in item.checks:
        if (name in ("not_future", "email")) == relational:
            continue
        if name == "email":
            if len(value) > 254 or not EMAIL.fullmatch(value):
                return "enter an e-mail address such as name@example.fi"
            continue
        day = date.fromisoformat(value)
        if name == "not_future":
            if day > today:
                return "the date cannot be in the future"
            continue
        if name == "max_span":
            span = _span(config)
            start = _as_date(known.get(span[1])) if span else None
            if span and start is not None and day > (last := _add_span(start, *span[0])):
                return f"must be on or before {last.isoformat()}"
            continue
        start = _as_date(known.get(config))
        if start is None:
            continue
        if name == "not_before" and day < start:
            return f"must be on or after {start.isoformat()}"
        if name == "after" and day <= start:
            return f"must be after {start.isoformat()}"
    return None


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list)) and len(value) == 0)


def _coerce(item: Field, raw: Any) -> Any:
    """Turn a submitted value into the field's type; raise ValueError with a message."""
    if item.type == "string":
        return str(raw).strip() if not isinstance(raw, str) else raw.strip()
    if item.type == "long":
        if isinstance(raw, bool):
            raise ValueError("enter a whole number")
        if isinstance(raw, int):
            value = raw
        else:
            number = whole_number(str(raw).strip().replace("\u00a0", "").replace(" ", ""), signed=True,
                                  any_size=True)
            if number is None:
                raise ValueError("enter a whole number")
            value = number
        if not LONG_MIN <= value <= LONG_MAX:
            raise ValueError("the number is too large")
        return value
    if item.type == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "on", "1", "yes", "kyllä"):
            return True
        if text in ("false", "off", "0", "no", "ei", ""):
            return False
        raise ValueError("choose yes or no")
    if item.type == "date":
        if isinstance(raw, date):
            return raw.isoformat()
        try:
            return date.fromisoformat(str(raw).strip()).isoformat()
        except ValueError:
            raise ValueError("enter a date as YYYY-MM-DD") from None
    if item.type == "enum":
        allowed = {o[0] for o in item.options}
        values = raw if isinstance(raw, list) else [raw]
        if not item.multiple and len(values) > 1:
            raise ValueError("choose one option")
        for v in values:
            if str(v) not in allowed:
                raise ValueError(f"'{v}' is not one of the options")
        return [str(v) for v in values] if item.multiple else str(values[0])
    raise ValueError(f"unsupported field type {item.type}")


def _check_constraints(item: Field, value: Any) -> str | None:
    if item.type == "string" or (item.type == "enum" and item.multiple):
        size = len(value)
        unit = "characters" if item.type == "string" else "choices"
        if item.minlength is not None and size < item.minlength:
            return f"enter at least {item.minlength} {unit}"
        if item.maxlength is not None and size > item.maxlength:
            return f"enter at most {item.maxlength} {unit}"
    if item.type == "long":
        if item.min is not None and value < item.min:
            return f"must be at least {item.min:g}"
        if item.max is not None and value > item.max:
            return f"must be at most {item.max:g}"
    if item.type == "date":
        return None
    return None


def validate(fields: list[Field], data: dict[str, Any], current: dict[str, Any] | None = None,
             users_of_role: Callable[[str], set[str]] | None = None, *, now: datetime | None = None,
             timezone: str = OFFICE_TIMEZONE,
             providers: Callable[[str, tuple[str, ...]], tuple[int, str] | None] | None = None) -> dict[str, Any]:
    """Check submitted data against the fields; return clean typed values.

    Unknown keys are refused, readonly fields keep their current value, booleans missing from a
    submission mean False (an unticked checkbox sends nothing). A field with the property
    `userRole` takes the username of an active user holding that role, as `users_of_role(role)`
    (given by the engine) answers; without it such a field is not checked against users.
    A field with the property `provider` takes the id of an active registry provider of its kinds, as
    `providers(value, kinds)` answers with (id, name): the clean data then holds the id (a number)
    and the provider's name as `<field>_name`; with `providerFreeText=true` a name that is not an id
    is kept as `<field>_name` with no id. Without `providers` such a field is a plain string.
    Domain checks (see the module docstring) compare dates with the other fields' submitted values,
    else with `current` (the instance's variables), and "today" is `now`'s day in `timezone`.

    Raises:
        FormInvalid: with a message for every wrong field and the submitted values.
    """
    current = current or {}
    known = {f.id for f in fields}
    errors: dict[str, str] = {}
    for key in data:
        if key not in known:
            errors[key] = "this form has no such field"
    clean: dict[str, Any] = {}
    for item in fields:
        if item.readonly:
            if item.id in data and data[item.id] != current.get(item.id, item.default):
                errors[item.id] = "this field cannot be changed"
            continue
        raw = data.get(item.id)
        if item.type == "boolean" and raw is None:
            raw = False
        if _is_empty(raw):
            if item.required:
                errors[item.id] = "this field is required"
            else:
                clean[item.id] = [] if item.multiple else None
                if item.provider_kinds is not None and providers is not None:
                    clean[f"{item.id}_name"] = None
            continue
        try:
            value = _coerce(item, raw)
        except ValueError as err:
            errors[item.id] = str(err)
            continue
        if item.required and _is_empty(value):
            errors[item.id] = "this field is required"
            continue
        problem = _check_constraints(item, value)
        if problem is None and item.user_role and users_of_role is not None:
            value = value.lower()
            if value not in users_of_role(item.user_role):
                problem = f"choose an active user with the {item.user_role} role"
        if problem is None and item.provider_kinds is not None and providers is not None:
            found = providers(value, item.provider_kinds)
            if found is not None:
                value, clean[f"{item.id}_name"] = found
            elif item.provider_free_text and not value.isdigit():
                value, clean[f"{item.id}_name"] = None, value
            else:
                problem = "choose an active provider from the registry"
        if problem:
            errors[item.id] = problem
            continue
        clean[item.id] = value
    today = today_in_office(now, timezone)
    for relational in (False, True):  # a date breaking its own check is no base for another's
        dates = {**current, **clean, **dict.fromkeys(errors)}
        for item in fields:
            if item.checks and clean.get(item.id) is not None and item.id not in errors:
                problem = _domain_problem(item, clean[item.id], dates, today, relational)
                if problem:
                    errors[item.id] = problem
    if errors:
        raise FormInvalid(errors, values=dict(data))
    return clean


def fields_from_catalogue(entry: dict[str, Any] | None) -> list[Field]:
    """Return the form fields stored for one element of a version's catalogue."""
    if not entry:
        return []
    return [Field.from_dict(d) for d in entry.get("form", [])]
