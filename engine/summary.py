"""Case summary: which instance variables a task page shows beside the form, and with which field.

A model marks its summary fields with `<camunda:property id="summary" value="true" />` on a form
field. When no field of a version is marked, every field some form of it shows is a summary field.
Variables no form shows (scripts' working data, decision outputs) are never listed: an expert sees
labelled values, not variable names.
"""

from __future__ import annotations

from typing import Any

from .forms import Field


def _is_summary(item: Field) -> bool:
    return item.properties.get("summary", "").strip().lower() == "true"


def form_fields(catalogue: dict[str, Any]) -> list[Field]:
    """Return every form field of a version's catalogue, first occurrence of each id, in model order."""
    seen: dict[str, Field] = {}
    for entries in catalogue.get("processes", {}).values():
        for entry in entries.values():
            for dct in entry.get("form", []):
                item = Field.from_dict(dct)
                if item.id not in seen or (_is_summary(item) and not _is_summary(seen[item.id])):
                    seen[item.id] = item
    return list(seen.values())


def summary_fields(catalogue: dict[str, Any]) -> list[Field]:
    """Return the fields marked summary=true, or every form field when none is marked."""
    every = form_fields(catalogue)
    marked = [f for f in every if _is_summary(f)]
    return marked or every


def case_summary(catalogue: dict[str, Any], variables: dict[str, Any]) -> list[tuple[Field, Any]]:
    """Return (field, value) for every summary field the case has a value for."""
    return [(f, variables[f.id]) for f in summary_fields(catalogue)
            if variables.get(f.id) not in (None, "", [])]
