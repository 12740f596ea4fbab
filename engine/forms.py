"""Forms: read `camunda:formData` from the XML and validate submitted data against it.

SpiffWorkflow ignores forms on start events and never enforces constraints, so Polku reads the
forms of user tasks and start events itself at deploy time (stored in the version's catalogue as
plain dicts) and validates every submission here, so the CLI, the web UI and tests all get the
same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from lxml import etree

from .errors import FormInvalid

CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
FIELD_TYPES = ("string", "long", "boolean", "date", "enum")
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


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
    def textarea(self) -> bool:
        """Tell whether a string field wants a multi-line input."""
        return self.properties.get("textarea", "").lower() == "true"

    def as_dict(self) -> dict[str, Any]:
        """Return the field as JSON-able data (for the version catalogue)."""
        dct = asdict(self)
        dct["options"] = [list(o) for o in self.options]
        return dct

    @classmethod
    def from_dict(cls, dct: dict[str, Any]) -> Field:
        """Rebuild a field from `as_dict` output."""
        values = dict(dct)
        values["options"] = [tuple(o) for o in values.get("options", [])]
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
    return fields, problems


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
            text = str(raw).strip().replace("\u00a0", "").replace(" ", "")
            if not text.removeprefix("-").isdigit():  # one sign only: int() would fail on "--5"
                raise ValueError("enter a whole number")
            value = int(text)
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
             users_of_role: Callable[[str], set[str]] | None = None) -> dict[str, Any]:
    """Check submitted data against the fields; return clean typed values.

    Unknown keys are refused, readonly fields keep their current value, booleans missing from a
    submission mean False (an unticked checkbox sends nothing). A field with the property
    `userRole` takes the username of an active user holding that role, as `users_of_role(role)`
    (given by the engine) answers; without it such a field is not checked against users.

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
        if problem:
            errors[item.id] = problem
            continue
        clean[item.id] = value
    if errors:
        raise FormInvalid(errors, values=dict(data))
    return clean


def fields_from_catalogue(entry: dict[str, Any] | None) -> list[Field]:
    """Return the form fields stored for one element of a version's catalogue."""
    if not entry:
        return []
    return [Field.from_dict(d) for d in entry.get("form", [])]
