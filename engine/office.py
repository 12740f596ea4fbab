"""Office settings the supervisor can change: yearly visit target, contact interval, reminder lead time.

Each value is one `office_setting` row (JSON); a missing row means the default below. Every change
is audited in the `office` stream with the old and the new value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .errors import InvalidInput
from .outreach_models import OfficeSetting
from .users import N_

AUDIT_STREAM = "office"

# key -> (default, lowest, highest); all are whole numbers
SETTINGS: dict[str, tuple[int, int, int]] = {
    "visit_target": (1300, 0, 100_000),  # company visits per calendar year for the group
    "contact_interval_months": (12, 1, 120),  # a customer not contacted for this long is to be contacted
    "reminder_lead_days": (3, 0, 60),  # the daily digest lists tasks due within this many days
}


def get(session: Session, key: str) -> int:
    """Return the current value of a setting (its default when never set)."""
    default = SETTINGS[key][0]
    row = session.get(OfficeSetting, key)
    return default if row is None or row.value is None else int(row.value)


def all_settings(session: Session) -> dict[str, int]:
    """Return every setting's current value."""
    return {key: get(session, key) for key in SETTINGS}


def set_value(session: Session, key: str, value: Any, *, by: str) -> int:
    """Change a setting; return the new value.

    Raises:
        InvalidInput: unknown setting, not a whole number, or out of its range.
    """
    if key not in SETTINGS:
        raise InvalidInput(N_("Unknown office setting."))
    _, low, high = SETTINGS[key]
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(N_("Enter a whole number.")) from None
    if not low <= number <= high:
        raise InvalidInput(N_("The value is out of range."))
    old = get(session, key)
    row = session.get(OfficeSetting, key)
    if row is None:
        row = OfficeSetting(key=key, value=number, updated_by=by, updated_at=utcnow())
        session.add(row)
    else:
        row.value, row.updated_by, row.updated_at = number, by, utcnow()
    if old != number:
        audit.append(session, "office_setting_changed", actor=by, stream=AUDIT_STREAM,
                     data={"key": key, "old": old, "new": number})
    session.flush()
    return number
