"""Service providers: the registry of training organisations, consultants and partners who deliver
purchased services, the providers' own feedback, the `provider` form field, and the report per provider.

R7: where a provider delivers, the process stays the office's. Service lines therefore pick their
provider from this registry (a string form field with the property `provider`, checked here), the
line's provider travels to the line's aftercare instance (`service_provider_id`,
`service_provider_name`), and `provider_report` puts together what the provider delivered, what the
customers said of those services in aftercare, the new needs found there, and what the provider
itself told the office.

Field checks raise `FormInvalid({field: message}, values)` with every wrong field at once; messages
are plain English sentences marked with `N_` (the web UI translates them). Every change is
recorded in the `providers` audit stream; the caller owns the transaction.
"""

from __future__ import annotations

import enum
import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer

from . import audit, deploy, forms, lru
from .access import Reader, instance_clause
from .customers import PHONE_PATTERN, clean_name_and_business_id
from .customers import field_text as _text
from .db import utcnow
from .errors import FormInvalid, ProviderNotFound
from .models import AuditEvent, Instance, ProcessVersion, Task, Variable
from .provider_models import Provider, ProviderFeedback
from .users import N_

AUDIT_STREAM = "providers"
CHANGED = "provider_changed"
FEEDBACK_RECORDED = "provider_feedback_recorded"
FIELDS = ("name", "business_id", "kind", "contact_person", "email", "phone", "active")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
FEEDBACK_MAX = 4000
ID_MAX = 2**31 - 1  # the id column is a 32-bit integer on PostgreSQL

# what a line's aftercare instance carries (docs/process.md, the aftercare contract)
PROVIDER_ID = "service_provider_id"
PROVIDER_NAME = "service_provider_name"
# aftercare variables the report reads
RATING = "service_rating"
MET_NEED = "service_met_need"
NEW_NEEDS = ("new_service_needs", "follow_up_new_needs")  # found in the aftercare talk, on the follow-up day
FOLLOW_UP_RATING = "follow_up_rating"  # the long-term benefit, rated on the follow-up day (R8)
FEEDBACK_TEXTS = ("feedback_went_well", "feedback_from_customer", "feedback_to_customer", "new_needs_description",
                  "follow_up_benefit", "follow_up_new_needs_description")
AFTERCARE_VARIABLES = (PROVIDER_ID, PROVIDER_NAME, RATING, MET_NEED, FOLLOW_UP_RATING, *NEW_NEEDS, "service_line",
                       "service_ended_on", "aftercare_outcome", "aftercare_contacted_on", "experience_positive",
                       *FEEDBACK_TEXTS)


class ProviderKind(enum.StrEnum):
    TRAINING = "training"  # training organisation (koulutusorganisaatio)
    CONSULTANT = "consultant"  # consultant (konsultti)
    PARTNER = "partner"  # Yritys-Suomi partner or other provider a need is referred to


assert tuple(ProviderKind) == forms.PROVIDER_KINDS, "the form check knows the same kinds"


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "on", "1", "yes", "kyllä")


def _clean(session: Session, data: Mapping[str, Any], current: Provider | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if clean_name_and_business_id(data, clean, errors, missing_name=N_("Enter the provider's name.")):
        taken = session.scalar(select(Provider.id).where(Provider.business_id == clean["business_id"]))
        if taken is not None and (current is None or taken != current.id):
            errors["business_id"] = N_("A provider with this business ID already exists.")
    clean["kind"] = _text(data, "kind")
    if clean["kind"] not in {k.value for k in ProviderKind}:
        errors["kind"] = N_("Choose one of the options.")
    clean["contact_person"] = _text(data, "contact_person")[:200] or None
    clean["email"] = _text(data, "email") or None
    if clean["email"] and (len(clean["email"]) > 200 or not EMAIL_PATTERN.fullmatch(clean["email"])):
        errors["email"] = N_("Enter an e-mail address, e.g. name@example.fi.")
    clean["phone"] = _text(data, "phone") or None
    if clean["phone"] and (not PHONE_PATTERN.fullmatch(clean["phone"]) or len(clean["phone"]) > 40):
        errors["phone"] = N_("Enter a phone number, e.g. +358 40 123 4567.")
    clean["active"] = _flag(data, "active", True if current is None else current.active)
    if errors:
        raise FormInvalid(errors, {k: _text(data, k) for k in FIELDS})
    return clean


def _record(session: Session, provider: Provider, action: str, by: str, data: dict[str, Any],
            at: datetime | None = None) -> None:
    audit.append(session, CHANGED, actor=by, stream=AUDIT_STREAM, at=at,
                 data={"provider": provider.id, "business_id": provider.business_id, "action": action, **data})


def create_provider(session: Session, data: Mapping[str, Any], by: str, now: datetime | None = None) -> Provider:
    """Add a provider from form data (active unless `active` says otherwise).

    Raises:
        FormInvalid: a field is wrong or the business ID is already registered.
    """
    now = now or utcnow()
    clean = _clean(session, data, None)
    provider = Provider(**clean, created_at=now, updated_at=now)
    session.add(provider)
    session.flush()
    _record(session, provider, "created", by, clean, at=now)
    return provider


def update_provider(session: Session, provider_id: int, data: Mapping[str, Any], by: str,
                    now: datetime | None = None) -> Provider:
    """Replace a provider's fields from form data; a missing `active` keeps the flag as it is.

    Raises:
        ProviderNotFound, FormInvalid: a field is wrong or the new business ID is taken.
    """
    now = now or utcnow()
    provider = get_provider(session, provider_id)
    clean = _clean(session, data, provider)
    changed = {k: [getattr(provider, k), v] for k, v in clean.items() if getattr(provider, k) != v}
    for key, (_old, new) in changed.items():
        setattr(provider, key, new)
    if changed:
        provider.updated_at = now
        session.flush()
        _record(session, provider, "updated", by, {"changes": changed}, at=now)
    return provider


def get_provider(session: Session, provider_id: int) -> Provider:
    """Return the provider with this id.

    Raises:
        ProviderNotFound: no such provider.
    """
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise ProviderNotFound(f"No provider {provider_id}.")
    return provider


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_providers(session: Session, q: str = "", kind: str | None = None,
                   active_only: bool = False) -> list[Provider]:
    """Return the providers whose name contains `q` or whose business ID starts with it, by name."""
    query = select(Provider)
    text = (q or "").strip()
    if text:
        pattern = _like_escape(text)
        query = query.where(or_(Provider.name.ilike(f"%{pattern}%", escape="\\"),
                                Provider.business_id.like(f"{pattern}%", escape="\\")))
    if kind:
        query = query.where(Provider.kind == kind)
    if active_only:
        query = query.where(Provider.active.is_(True))
    return list(session.scalars(query.order_by(Provider.name, Provider.id)))


def record_feedback(session: Session, provider_id: int, text: str, *, by: str, given_on: date | str | None = None,
                    now: datetime | None = None) -> ProviderFeedback:
    """Record feedback the provider gave the office (R7: the quality of purchased services is followed
    with the providers' own feedback too).

    Raises:
        ProviderNotFound, FormInvalid: no text, too long, or a wrong or future date.
    """
    now = now or utcnow()
    provider = get_provider(session, provider_id)
    errors: dict[str, str] = {}
    body = (text or "").strip()
    if not body:
        errors["text"] = N_("Write the provider's feedback.")
    elif len(body) > FEEDBACK_MAX:
        errors["text"] = N_("The feedback is too long (at most 4000 characters).")
    day: date | None = None
    today = forms.today_in_office(now)  # the office's calendar day (Europe/Helsinki)
    if isinstance(given_on, date):
        day = given_on
    elif given_on is None or not str(given_on).strip():
        day = today
    else:
        try:
            day = date.fromisoformat(str(given_on).strip())
        except ValueError:
            errors["given_on"] = N_("Enter a date as YYYY-MM-DD.")
    if day is not None and day > today:
        errors["given_on"] = N_("The date cannot be in the future.")
    if errors:
        raise FormInvalid(errors, {"text": text or "", "given_on": "" if given_on is None else str(given_on)})
    assert day is not None
    row = ProviderFeedback(provider_id=provider.id, given_on=day, text=body, recorded_by=by, recorded_at=now)
    session.add(row)
    session.flush()
    audit.append(session, FEEDBACK_RECORDED, actor=by, stream=AUDIT_STREAM, at=now,
                 data={"provider": provider.id, "feedback": row.id, "given_on": day.isoformat(), "text": body})
    return row


def feedback_of(session: Session, provider_id: int) -> list[ProviderFeedback]:
    """Return the provider's own feedback, newest first."""
    return list(session.scalars(select(ProviderFeedback).where(ProviderFeedback.provider_id == provider_id)
                                .order_by(ProviderFeedback.given_on.desc(), ProviderFeedback.id.desc())))


# ---------------------------------------------------------------------------------------------
# The `provider` form field (engine.forms): a string field whose value is a registry provider's id


def form_lookup(session: Session) -> Callable[[str, Collection[str]], tuple[int, str] | None]:
    """Return a lookup for `engine.forms.validate`: (value, kinds) → (id, name) of the active provider
    of one of those kinds (any kind when empty) whose id the value is, else None."""

    def lookup(value: str, kinds: Collection[str]) -> tuple[int, str] | None:
        number = _as_id(value)
        provider = session.get(Provider, number) if number is not None else None
        if provider is None or not provider.active or (kinds and provider.kind not in kinds):
            return None
        return provider.id, provider.name

    return lookup


def choices(session: Session, kinds: Collection[str] = ()) -> list[tuple[int, str, str]]:
    """Return (id, name, kind) of the active providers of these kinds (all kinds when empty), by name."""
    query = select(Provider).where(Provider.active.is_(True))
    if kinds:
        query = query.where(Provider.kind.in_(list(kinds)))
    return [(p.id, p.name, p.kind) for p in session.scalars(query.order_by(Provider.name, Provider.id))]


# ---------------------------------------------------------------------------------------------
# Report per provider


@dataclass
class Delivery:
    """One service a provider delivered: a completed task whose provider field named the provider."""

    instance_id: int
    business_key: str | None
    process_id: str  # the service line's process (e.g. recruitment)
    element_id: str
    closed_at: datetime
    closed_by: str
    ended_on: str | None
    outcome: str | None


@dataclass
class AftercareOfLine:
    """One aftercare instance of a line the provider delivered, with what the customer said."""

    instance_id: int
    business_key: str | None
    status: str
    variables: dict[str, Any]

    @property
    def texts(self) -> list[tuple[str, str]]:
        """Return (variable, text) of the feedback texts written in this aftercare."""
        return [(k, str(self.variables[k])) for k in FEEDBACK_TEXTS if self.variables.get(k) not in (None, "")]


@dataclass
class ProviderReport:
    """What the report page of one provider shows."""

    provider: Provider
    deliveries: list[Delivery]
    aftercare: list[AftercareOfLine]
    feedback: list[ProviderFeedback]
    ratings: list[int] = field(default_factory=list)
    follow_up_ratings: list[int] = field(default_factory=list)
    readable: set[int] | None = None  # the cases the reader may see (None: all)

    @property
    def shown_deliveries(self) -> list[Delivery]:
        """Return the services delivered in cases the reader may see (the figures count them all)."""
        return [d for d in self.deliveries if self.readable is None or d.instance_id in self.readable]

    @property
    def shown_aftercare(self) -> list[AftercareOfLine]:
        """Return the aftercare contacts the reader may see, with the customers' words."""
        return [a for a in self.aftercare if self.readable is None or a.instance_id in self.readable]

    @property
    def hidden(self) -> int:
        """Return how many services and aftercare contacts are counted in the figures but not listed."""
        return len(self.deliveries) + len(self.aftercare) - len(self.shown_deliveries) - len(self.shown_aftercare)
    met_need: Counter[str] = field(default_factory=Counter)
    new_needs: Counter[str] = field(default_factory=Counter)

    @property
    def rating_average(self) -> float | None:
        """Return the customers' average rating (1–5) of the provider's services, or None without ratings."""
        return round(sum(self.ratings) / len(self.ratings), 2) if self.ratings else None

    @property
    def follow_up_average(self) -> float | None:
        """Return the average long-term benefit rating (1–5) given on the follow-up days, or None."""
        return round(sum(self.follow_up_ratings) / len(self.follow_up_ratings), 2) if self.follow_up_ratings else None

    @property
    def aftercare_reached(self) -> int:
        """Return how many of the aftercare contacts reached the customer."""
        return sum(1 for a in self.aftercare if a.variables.get("aftercare_outcome") == "reached"
                   or a.variables.get("aftercare_contacted_on"))

    @property
    def with_new_needs(self) -> int:
        """Return how many aftercare contacts found at least one new service need."""
        return sum(1 for a in self.aftercare if any(a.variables.get(k) for k in NEW_NEEDS))


def provider_fields(session: Session) -> dict[tuple[int, str], tuple[str, str]]:
    """Return {(version id, element id): (process id, field id)} of every deployed task whose form has
    a provider field."""
    database = deploy.database_key(session)
    of_version = {v: _fields_of_version.get((database, v)) for v in session.scalars(select(ProcessVersion.id))}
    unknown = [v for v, fields in of_version.items() if fields is None]
    for part in (unknown[n:n + 500] for n in range(0, len(unknown), 500)):
        for version_id, catalogue in session.execute(select(ProcessVersion.id, ProcessVersion.catalogue)
                                                     .where(ProcessVersion.id.in_(part))):
            of_version[version_id] = _fields_of_version[(database, version_id)] = _provider_fields_of(catalogue)
    return {(version_id, element_id): (process_id, field_id)
            for version_id, fields in of_version.items() for process_id, element_id, field_id in fields or ()}


# Versions never change: each version's provider fields are found once per process (its catalogue is
# large; the providers pages asked for every version's on every request). LRU, bounded: engine.lru.
_fields_of_version: lru.BoundedCache[tuple[str, int], tuple[tuple[str, str, str], ...]] = lru.BoundedCache(
    "provider fields", max_entries=20000, byte_share=0.01, sizeof=lambda v: 100 + 200 * len(v))


def _provider_fields_of(catalogue: Any) -> tuple[tuple[str, str, str], ...]:
    """Return (process id, element id, field id) of each task form's provider field in a version's catalogue."""
    found = []
    for process_id, elements in (catalogue or {}).get("processes", {}).items():
        for element_id, entry in elements.items():
            for item in (entry or {}).get("form", []) if isinstance(entry, dict) else []:
                if item.get("type", "string") == "string" and "provider" in item.get("properties", {}):
                    found.append((process_id, element_id, item["id"]))
    return tuple(found)


def _completions(session: Session, fields: Mapping[tuple[int, str], Any]) -> list[AuditEvent]:
    """Return the task_completed events of the tasks that have a provider field.

    The cases come from the task rows of those elements, then their events by case. Asked for by kind
    and element, SQLite walked every task completion of the office's audit trail (1.3 s with 1.5
    million events); the task table is a fraction of it (0.1 s for 500,000 rows). An index on the
    task's element would make it a few ms, but costs every completion a write (about 5 % of the
    engine's rate), for a page a supervisor opens now and then.
    """
    elements = sorted({element for _v, element in fields})
    ids = sorted(set(session.scalars(select(Task.instance_id).where(Task.element_id.in_(elements)))))
    found: list[AuditEvent] = []
    for first in range(0, len(ids), 500):
        query = select(AuditEvent).where(AuditEvent.instance_id.in_(ids[first:first + 500]),
                                         AuditEvent.element_id.in_(elements))
        found += [e for e in session.scalars(query) if e.kind == audit.EventKind.TASK_COMPLETED]
    return found


def _as_id(value: Any) -> int | None:
    """Return a provider id written as a number or as ASCII digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number: int | None = value
    else:
        text = str(value).strip() if value is not None else ""
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None
    return number if number is not None and 0 < number <= ID_MAX else None


def _same(value: Any, provider_id: int) -> bool:
    return _as_id(value) == provider_id


def deliveries(session: Session, provider_id: int) -> list[Delivery]:
    """Return the services the provider delivered: every completed task whose provider field named it,
    newest first (read from the audit trail, so a line counted once per close, also after migration)."""
    fields = provider_fields(session)
    if not fields:
        return []
    events = sorted(_completions(session, fields), key=lambda e: (e.at, e.id), reverse=True)
    found: list[Delivery] = []
    keys: dict[int, str | None] = {}
    for event in events:
        where = fields.get((event.version_id or 0, event.element_id or ""))
        if where is None:
            continue
        submitted = json.loads(event.data).get("submitted", {})
        if not _same(submitted.get(where[1]), provider_id):
            continue
        ended = next((v for k, v in submitted.items() if k.endswith("_ended_on") and v), None)
        outcome = next((v for k, v in submitted.items() if k.endswith("_outcome") and isinstance(v, str)), None)
        assert event.instance_id is not None
        found.append(Delivery(event.instance_id, None, where[0], event.element_id or "", event.at,
                              event.actor, ended, outcome))
        keys[event.instance_id] = None
    if keys:
        for iid, key in session.execute(select(Instance.id, Instance.business_key).where(Instance.id.in_(keys))):
            keys[iid] = key
        for item in found:
            item.business_key = keys[item.instance_id]
    return found


def aftercare_of(session: Session, provider_id: int) -> list[AftercareOfLine]:
    """Return the aftercare instances of lines the provider delivered (they carry `service_provider_id`)."""
    rows = session.execute(select(Variable.instance_id, Variable.value).where(Variable.name == PROVIDER_ID))
    ids = [iid for iid, value in rows if _same(value, provider_id)]
    if not ids:
        return []
    values: dict[int, dict[str, Any]] = {iid: {} for iid in ids}
    for row in session.scalars(select(Variable).where(Variable.instance_id.in_(ids),
                                                      Variable.name.in_(AFTERCARE_VARIABLES))):
        values[row.instance_id][row.name] = row.value
    instances = session.scalars(select(Instance).where(Instance.id.in_(ids)).options(defer(Instance.state))
                                .order_by(Instance.started_at.desc(), Instance.id.desc()))
    return [AftercareOfLine(i.id, i.business_key, str(i.status), values[i.id]) for i in instances]


def provider_report(session: Session, provider_id: int, reader: Reader | None = None) -> ProviderReport:
    """Return the report of one provider: services delivered, the customers' ratings and feedback in
    the aftercare of those lines, new needs found there, and the provider's own feedback.

    The figures count every case (the provider's quality is the office's concern); with a `reader`
    who does not read everything, the lists of cases (customers, their words) keep only the cases
    that reader may see (`engine.access`): `shown_deliveries`, `shown_aftercare`, `hidden`.

    Raises:
        ProviderNotFound: no such provider.
    """
    provider = get_provider(session, provider_id)
    report = ProviderReport(provider, deliveries(session, provider_id), aftercare_of(session, provider_id),
                            feedback_of(session, provider_id))
    if reader is not None and not reader.reads_all:
        ids = {d.instance_id for d in report.deliveries} | {a.instance_id for a in report.aftercare}
        report.readable = set(session.scalars(select(Instance.id).where(Instance.id.in_(ids),
                                                                        instance_clause(reader)))) if ids else set()
    for item in report.aftercare:
        for name, ratings in ((RATING, report.ratings), (FOLLOW_UP_RATING, report.follow_up_ratings)):
            rating = item.variables.get(name)
            if isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5:
                ratings.append(rating)
        met = item.variables.get(MET_NEED)
        if isinstance(met, str) and met:
            report.met_need[met] += 1
        found: set[str] = set()
        for key in NEW_NEEDS:
            needs = item.variables.get(key) or []
            found.update(str(n) for n in (needs if isinstance(needs, list) else [needs]))
        for need in found:  # a need found in the talk and again on the follow-up day counts once
            report.new_needs[need] += 1
    return report


def summary_counts(session: Session) -> dict[int, tuple[int, int]]:
    """Return {provider id: (services delivered, aftercare contacts)} for the providers list."""
    counts: dict[int, list[int]] = {}
    for p_id in session.scalars(select(Provider.id)):
        counts[p_id] = [0, 0]
    fields = provider_fields(session)
    if fields:
        for event in _completions(session, fields):
            version_id, element_id, data = event.version_id, event.element_id, event.data
            where = fields.get((version_id or 0, element_id or ""))
            number = _as_id(json.loads(data).get("submitted", {}).get(where[1])) if where else None
            if number in counts:
                counts[number][0] += 1
    for value in session.scalars(select(Variable.value).where(Variable.name == PROVIDER_ID)):
        number = _as_id(value)
        if number in counts:
            counts[number][1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}

