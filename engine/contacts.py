"""Contact log and worklists: customer work outside (or beside) single service processes.

An expert records a contact with a customer (date, channel, who took part, topic, notes, next
contact date). A company visit with no active customership is a *prospecting* visit and may start
a service process (`customer_service`) right away; the contact then links to that case. Visits
count against the office's yearly visit target (`engine.office`, "visit_target").

Worklists: customers whose next contact date is due, customers whose last contact is older than
the office's contact interval, and companies imported from the web service (first vacancy
posted) that nobody has handled yet. Every change is audited in the `customers` stream.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session

from . import audit, office, runtime
from .customers import find_by_business_id, get_customer, validate_business_id
from .db import column_length, utcnow
from .errors import FormInvalid, InvalidInput
from .models import Customer, Instance, InstanceStatus
from .outreach_models import Contact, ImportedCompany
from .users import N_

AUDIT_STREAM = "customers"
CHANNELS = ("visit", "phone", "email", "event", "web")
SERVICE_PROCESS = "customer_service"
CASE_CONTACT_MESSAGE = "customer_contact_logged"  # a case ends with a contact for the log (record_from_case)
# how a service-needs assessment was made -> the contact log's channel (only a company visit is a visit)
ASSESSMENT_CHANNELS = {"company_visit": "visit", "office_meeting": "event", "phone": "phone", "video": "phone"}
MAX_IMPORT_ROWS = 10_000


def _date(value: Any, field: str, errors: dict[str, str], required: bool) -> date | None:
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not text:
        if required:
            errors[field] = N_("This field is required.")
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = N_("Enter the date as YYYY-MM-DD.")
        return None


def _flag(value: Any) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "on", "yes")


def log_contact(session: Session, customer_id: int, data: Mapping[str, Any], *, by: str,
                start_process: bool = False, now: datetime | None = None,
                instance_id: int | None = None) -> Contact:
    """Record a contact; with `start_process` (a prospecting visit) also start a service process.

    `instance_id` links the contact to the case it was made in (see `record_from_case`).

    Raises:
        CustomerNotFound: no such customer.
        FormInvalid: a field is wrong (every wrong field at once).
    """
    now = now or utcnow()
    customer = get_customer(session, customer_id)
    errors: dict[str, str] = {}
    contacted_on = _date(data.get("contacted_on"), "contacted_on", errors, required=True)
    channel = str(data.get("channel") or "").strip()
    if channel not in CHANNELS:
        errors["channel"] = N_("Choose a channel.")
    topic = str(data.get("topic") or "").strip()
    if not topic:
        errors["topic"] = N_("This field is required.")
    elif len(topic) > 200:
        errors["topic"] = N_("At most 200 characters.")
    next_on = _date(data.get("next_contact_on"), "next_contact_on", errors, required=False)
    if next_on is not None and contacted_on is not None and next_on < contacted_on:
        errors["next_contact_on"] = N_("The next contact date cannot be before the contact.")
    prospecting = _flag(data.get("prospecting"))
    if prospecting and channel and channel != "visit":
        errors["prospecting"] = N_("Only a company visit can be a prospecting visit.")
    notes = str(data.get("notes") or "").strip()
    participants = str(data.get("participants") or "").strip()
    if len(notes) > 10_000 or len(participants) > 2_000:
        errors["notes"] = N_("The text is too long.")
    if errors:
        raise FormInvalid(errors, dict(data))
    contact = Contact(customer_id=customer.id, contacted_on=contacted_on, channel=channel,
                      participants=participants or None, topic=topic, notes=notes or None,
                      next_contact_on=next_on, prospecting=prospecting, created_by=by, created_at=now,
                      instance_id=instance_id)
    session.add(contact)
    session.flush()
    if start_process:
        instance = runtime.start_instance(
            session, SERVICE_PROCESS, by=by, business_key=customer.business_id, now=now,
            data={"business_id": customer.business_id, "company_name": customer.name,
                  "contact_channel": "expert_initiative", "contact_reason": (notes or topic)[:2000]})
        contact.instance_id = instance.id
    audit.append(session, "contact_logged", actor=by, stream=AUDIT_STREAM, at=now,
                 data={"customer": customer.business_id, "contact_id": contact.id, "channel": channel,
                       "contacted_on": contacted_on.isoformat() if contacted_on else None, "topic": topic,
                       "prospecting": prospecting, "instance_id": contact.instance_id,
                       "next_contact_on": next_on.isoformat() if next_on else None})
    return contact


def record_from_case(session: Session, instance: Instance, payload: Mapping[str, Any], *, by: str,
                     now: datetime | None = None) -> Contact | None:
    """Log the contact a case ended with (message `customer_contact_logged`), linked to the case.

    The service process's exit "no service need now" throws it: the assessment becomes a contact on
    the customer (date, channel from how the assessment was made, topic, notes) and its agreed later
    contact date is the contact's `next_contact_on`, so the customers-to-contact worklist shows the
    customer when that day comes. A customer not yet in the registry is added with the case's
    company name and responsible expert (R5: a named contact for the future). Returns None, and
    records nothing, when the payload cannot make a valid contact (the case has ended either way).
    """
    business_id = str(payload.get("business_id") or "")
    customer = find_by_business_id(session, business_id)
    if customer is None:
        from .customers import create_customer

        try:
            customer = create_customer(session, {"name": payload.get("company_name") or business_id,
                                                 "business_id": business_id,
                                                 "responsible_expert": payload.get("responsible_expert") or ""},
                                       by=by)
        except FormInvalid:
            return None
    data = {"contacted_on": payload.get("contacted_on") or (now or utcnow()).date().isoformat(),
            "channel": ASSESSMENT_CHANNELS.get(str(payload.get("assessment_method")), "phone"),
            "topic": str(payload.get("topic") or "")[:200], "notes": payload.get("notes") or "",
            "next_contact_on": payload.get("next_contact_on") or ""}
    try:
        return log_contact(session, customer.id, data, by=by, now=now, instance_id=instance.id)
    except FormInvalid:
        return None


def customer_contacts(session: Session, customer_id: int) -> list[Contact]:
    """Return a customer's contacts, newest first."""
    return list(session.scalars(select(Contact).where(Contact.customer_id == customer_id)
                                .order_by(Contact.contacted_on.desc(), Contact.id.desc())))


def visits_in_year(session: Session, year: int) -> int:
    """Return how many company visits were logged with a contact date in this calendar year."""
    return session.scalar(select(func.count(Contact.id)).where(*_VISITS), _year(year)) or 0


# a calendar year's logged visits: the year's first and last day are bound values (`_year`)
_VISITS = (Contact.channel == "visit", Contact.contacted_on >= bindparam("b_first"),
           Contact.contacted_on <= bindparam("b_last"))


def _year(year: int) -> dict[str, date]:
    return {"b_first": date(year, 1, 1), "b_last": date(year, 12, 31)}


def visits_by_expert(session: Session, year: int) -> dict[str, int]:
    """Return this year's logged visits per expert who logged them."""
    query = select(Contact.created_by, func.count(Contact.id)).where(*_VISITS).group_by(Contact.created_by)
    return {who: count for who, count in session.execute(query, _year(year)).all()}


def visit_progress(session: Session, today: date) -> dict[str, Any]:
    """Return the year's visits against the office target, and the share expected by today."""
    year = _year(today.year)
    done, stored = session.execute(_VISITS_AND_TARGET, year).one()
    target = office.value_of("visit_target", stored)
    start, end = year["b_first"], year["b_last"]
    expected = round(target * ((today - start).days + 1) / ((end - start).days + 1))
    return {"year": today.year, "target": target, "done": done, "expected": expected,
            "percent": round(100 * done / target) if target else 0}


# the year's visits and the office's target in one statement, built once (the supervisor view's every request)
_VISITS_AND_TARGET = select(func.count(Contact.id), office.stored("visit_target")).where(*_VISITS)


# ---------------------------------------------------------------------------------------------
# Worklists


@dataclass
class ToContact:
    """A row of the "customers to contact" worklist."""

    customer: Customer
    reason: str  # due | stale | never
    last_contact_on: date | None
    next_contact_on: date | None
    topic: str | None


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)


def customers_to_contact(session: Session, today: date, *, expert: str | None = None) -> list[ToContact]:
    """Return customers whose next contact date is due or whose last contact is older than the interval.

    With `expert`, only the customers that expert is responsible for. Due ones come first.
    """
    months = office.get(session, "contact_interval_months")
    cutoff = _add_months(today, -months)
    latest = (select(Contact.customer_id, func.max(Contact.id).label("last_id"))
              .group_by(Contact.customer_id).subquery())
    query = (select(Customer, Contact).outerjoin(latest, latest.c.customer_id == Customer.id)
             .outerjoin(Contact, Contact.id == latest.c.last_id))
    if expert is not None:
        query = query.where(Customer.responsible_expert == expert)
    rows: list[ToContact] = []
    for customer, contact in session.execute(query).all():
        if contact is None:
            if customer.created_at.date() <= cutoff:
                rows.append(ToContact(customer, "never", None, None, None))
            continue
        if contact.next_contact_on is not None and contact.next_contact_on <= today:
            rows.append(ToContact(customer, "due", contact.contacted_on, contact.next_contact_on, contact.topic))
        elif contact.contacted_on <= cutoff and (contact.next_contact_on is None or contact.next_contact_on <= today):
            rows.append(ToContact(customer, "stale", contact.contacted_on, contact.next_contact_on, contact.topic))
    order = {"due": 0, "stale": 1, "never": 2}
    rows.sort(key=lambda r: (order[r.reason], r.next_contact_on or r.last_contact_on or date.min, r.customer.name))
    return rows


def due_reminders(session: Session, today: date) -> list[tuple[Contact, Customer]]:
    """Return contacts whose next contact date has come and whose reminder is not made yet."""
    query = (select(Contact, Customer).join(Customer, Customer.id == Contact.customer_id)
             .where(Contact.next_contact_on <= today, Contact.reminded.is_(False))
             .order_by(Contact.next_contact_on, Contact.id))
    return [(c, k) for c, k in session.execute(query).all()]


def active_customership(session: Session, business_id: str) -> bool:
    """Tell whether the customer has a running service process."""
    return bool(session.scalar(select(func.count(Instance.id)).where(
        Instance.business_key == business_id, Instance.status == InstanceStatus.RUNNING)))


# ---------------------------------------------------------------------------------------------
# Companies from the web service


@dataclass
class ImportResult:
    """What an import did: added rows, rows already known, and errors by line number."""

    added: int
    known: int
    errors: dict[int, str]


HEADER_ALIASES = {"business_id": ("business_id", "y-tunnus", "ytunnus", "y_tunnus"),
                  "name": ("name", "nimi", "company", "yritys"),
                  "first_posting_on": ("first_posting_on", "posted_on", "ilmoitettu", "date", "päivä")}


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    lowered = [h.strip().lower().lstrip("\ufeff") for h in header]
    for key, aliases in HEADER_ALIASES.items():
        for index, name in enumerate(lowered):
            if name in aliases:
                found[key] = index
                break
    return found


def _cells(row: list[str], cols: dict[str, int]) -> Callable[[str], str]:
    def cell(key: str) -> str:
        return row[cols[key]].strip() if key in cols and cols[key] < len(row) else ""
    return cell


def import_companies(session: Session, text: str, *, by: str, source: str = "web service",
                     now: datetime | None = None) -> ImportResult:
    """Import companies from CSV text (business_id, name, first_posting_on; `,` or `;`).

    A row with a wrong business ID is reported with its line number and skipped; a company
    already imported or already a customer is counted as known. Nothing is imported when the
    header lacks the business ID or name column.

    Raises:
        InvalidInput: no usable header, or more than MAX_IMPORT_ROWS rows.
    """
    now = now or utcnow()
    sample = text[:2000]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(N_("The file is empty.")) from None
    cols = _columns(header)
    if "business_id" not in cols or "name" not in cols:
        raise InvalidInput(N_("The first row must name the columns business_id and name."))
    added = known = 0
    errors: dict[int, str] = {}
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        if line > MAX_IMPORT_ROWS + 1:
            raise InvalidInput(N_("Too many rows in one file."))
        if not any(cell.strip() for cell in row):
            continue
        cell = _cells(row, cols)
        try:
            business_id = validate_business_id(cell("business_id"))
        except InvalidInput as err:
            errors[line] = str(err)
            continue
        name = cell("name")[:200]
        if not name:
            errors[line] = N_("The company name is missing.")
            continue
        posted: date | None = None
        if cell("first_posting_on"):
            try:
                posted = date.fromisoformat(cell("first_posting_on"))
            except ValueError:
                errors[line] = N_("Enter the date as YYYY-MM-DD.")
                continue
        if business_id in seen or session.scalar(
                select(ImportedCompany.id).where(ImportedCompany.business_id == business_id)) is not None:
            known += 1
            continue
        seen.add(business_id)
        handled = find_by_business_id(session, business_id) is not None  # already a customer
        session.add(ImportedCompany(business_id=business_id, name=name, first_posting_on=posted, source=source[:column_length(ImportedCompany, "source")],
                                    imported_at=now, imported_by=by,
                                    handled_at=now if handled else None, handled_by="registry" if handled else None))
        added += 1
    session.flush()
    audit.append(session, "companies_imported", actor=by, stream=AUDIT_STREAM, at=now,
                 data={"source": source, "added": added, "known": known, "errors": len(errors)})
    return ImportResult(added, known, errors)


def new_web_companies(session: Session) -> list[ImportedCompany]:
    """Return the imported companies nobody has handled yet (the group's worklist), oldest posting first."""
    return list(session.scalars(select(ImportedCompany).where(ImportedCompany.handled_at.is_(None))
                                .order_by(ImportedCompany.first_posting_on, ImportedCompany.id)))


def handle_company(session: Session, company_id: int, *, by: str, register: bool = False,
                   now: datetime | None = None) -> Customer | None:
    """Take an imported company off the worklist; with `register`, register it as a customer for `by`.

    Raises:
        InvalidInput: no such company, or it was handled already.
    """
    from .customers import create_customer

    now = now or utcnow()
    company = session.get(ImportedCompany, company_id, with_for_update=True)
    if company is None or company.handled_at is not None:
        raise InvalidInput(N_("This company is no longer on the worklist."))
    customer = find_by_business_id(session, company.business_id)
    if register and customer is None:
        from .users import experts

        mine = by if by in {u.username for u in experts(session)} else ""
        customer = create_customer(session, {"name": company.name, "business_id": company.business_id,
                                             "responsible_expert": mine}, by=by)
    company.handled_at, company.handled_by = now, by
    audit.append(session, "company_handled", actor=by, stream=AUDIT_STREAM, at=now,
                 data={"business_id": company.business_id, "registered": bool(register)})
    return customer


def contacts_between(session: Session, start: date, end: date) -> Iterable[Contact]:
    """Return contacts dated in [start, end]."""
    return session.scalars(select(Contact).where(and_(Contact.contacted_on >= start, Contact.contacted_on <= end)))
