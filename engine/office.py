"""Office settings the supervisor can change: yearly visit target, contact interval, reminder lead
time, and the aftercare day counts (target days per service line, attempts, follow-up day).

Every number here is the office's own choice, not a rule of the thesis or of the law: the thesis
only says aftercare comes "as soon as possible" after a service ends. Each value is one
`office_setting` row (JSON); a missing row means the default below. Every change is audited in the
`office` stream with the old and the new value, who and when; `history` reads those events back.
`snapshot` is what `runtime.start_instance` gives every new instance of a model that reads the
settings (`deploy.reads_office_settings`) as its variable `office`, so a case keeps the settings of
the day it started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, select
from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .errors import InvalidInput
from .models import AuditEvent
from .outreach_models import OfficeSetting
from .users import N_

AUDIT_STREAM = "office"

# key -> (default, lowest, highest); all are whole numbers
SETTINGS: dict[str, tuple[int, int, int]] = {
    "visit_target": (1300, 0, 100_000),  # company visits per calendar year for the group
    "contact_interval_months": (12, 1, 120),  # a customer not contacted for this long is to be contacted
    "reminder_lead_days": (3, 0, 60),  # the daily digest lists tasks due within this many days
    # aftercare contact within this many days of the line's end (the office's target, per service line)
    "aftercare_target_days_recruitment": (14, 0, 365),
    "aftercare_target_days_training": (7, 0, 365),
    "aftercare_target_days_business_development": (14, 0, 365),
    "aftercare_target_days_change_security": (14, 0, 365),
    "aftercare_target_days_startup": (14, 0, 365),
    "aftercare_target_days_referral": (14, 0, 365),
    "aftercare_attempts": (3, 1, 20),  # failed contact attempts before the customer counts as not reached
    "follow_up_offset_days": (365, 1, 1095),  # follow-up day this many days after the consulting ended
    "follow_up_lead_days": (14, 0, 180),  # the follow-up day's task opens this many days before the day
}
SERVICE_LINES = ("recruitment", "training", "business_development", "change_security", "startup", "referral")
TARGET_PREFIX = "aftercare_target_days_"
CHANGED = "office_setting_changed"


@dataclass(frozen=True)
class Change:
    """One audited change of a setting: its old and new value, who and when."""

    key: str
    old: int
    new: int
    by: str
    at: datetime


def get(session: Session, key: str) -> int:
    """Return the current value of a setting (its default when never set)."""
    row = session.get(OfficeSetting, key)
    return value_of(key, None if row is None else row.value)


def stored(key: str) -> ScalarSelect[Any]:
    """Return a scalar subquery of a setting's stored value (NULL when never set), to read with another
    statement: pass what it gives to `value_of`."""
    return select(OfficeSetting.value).where(OfficeSetting.key == key).scalar_subquery()


def value_of(key: str, value: Any) -> int:
    """Return a setting's current value from its stored value (None: never set, its default)."""
    return SETTINGS[key][0] if value is None else int(value)


def all_settings(session: Session) -> dict[str, int]:
    """Return every setting's current value (one query)."""
    kept = {row.key: row.value for row in session.scalars(select(OfficeSetting))}
    return {key: value_of(key, kept.get(key)) for key in SETTINGS}


def snapshot(session: Session) -> dict[str, int]:
    """Return the settings a new instance keeps as its variable `office` (every setting, by key)."""
    return all_settings(session)


def target_days(session: Session, service_line: str) -> int | None:
    """Return the office's aftercare target in days for a service line (None for an unknown line)."""
    key = TARGET_PREFIX + service_line
    return get(session, key) if key in SETTINGS else None


def history(session: Session, key: str | None = None, limit: int = 200) -> list[Change]:
    """Return the audited changes of the settings (or of one), newest first."""
    query = (select(AuditEvent).where(AuditEvent.stream == AUDIT_STREAM, AuditEvent.kind == CHANGED)
             .order_by(AuditEvent.seq.desc()))
    changes: list[Change] = []
    for event in session.scalars(query):
        data = json.loads(event.data)
        if key is None or data.get("key") == key:
            changes.append(Change(data.get("key", ""), data.get("old"), data.get("new"), event.actor, event.at))
        if len(changes) >= limit:
            break
    return changes


def set_value(session: Session, key: str, value: Any, *, by: str, now: datetime | None = None) -> int:
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
    now = now or utcnow()
    old = get(session, key)
    row = session.get(OfficeSetting, key)
    if row is None:
        row = OfficeSetting(key=key, value=number, updated_by=by, updated_at=now)
        session.add(row)
    else:
        row.value, row.updated_by, row.updated_at = number, by, now
    if old != number:
        audit.append(session, CHANGED, actor=by, stream=AUDIT_STREAM,
                     data={"key": key, "old": old, "new": number}, at=now)
    session.flush()
    return number
