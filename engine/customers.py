"""Customer companies: business ID check, create, update, search, and who lacks a responsible expert.

Field checks raise `FormInvalid({field: message}, values)` with every wrong field at once, so a
form can be shown again with what the user typed. Messages are plain English sentences; the web
UI translates them through its message catalogue (they are marked with `N_` for extraction).
Every change is recorded in the `users` audit stream through `_record`; the caller owns the
transaction.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, defer

from . import audit
from .access import Reader, customer_clause, instance_clause
from .db import utcnow
from .errors import CustomerNotFound, FormInvalid, InvalidInput, NotAllowed
from .models import AuditEvent, Customer, Instance, InstanceStatus, MessageWait, Task, TaskStatus, Variable
from .paging import Page
from .users import N_, experts

AUDIT_STREAM = "users"
FIELDS = ("name", "business_id", "industry", "founded_year", "headcount", "turnover_band", "situation",
          "segment", "responsible_expert", "contact_person", "phone")
CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)
BUSINESS_ID_PATTERN = re.compile(r"(\d{6,7})-(\d)")
INDUSTRY_PATTERN = re.compile(r"([A-U]|\d{2,5})(\s.*)?")
PHONE_PATTERN = re.compile(r"\+?[\d\s()-]{5,30}")
EARLIEST_FOUNDED = 1800


class Situation(enum.StrEnum):
    STEADY = "steady"
    GROWTH = "growth"
    DECLINING = "declining"


class Segment(enum.StrEnum):
    """The ministry's six segments, then the need-based segments proposed in Pirkanmaa."""

    STARTUP = "startup"
    LOCAL = "local"
    DOMESTIC = "domestic"
    INTERNATIONAL_GROWTH = "international_growth"
    LARGE = "large"
    COMMUNITY = "community"
    NEED_GROWING = "need_growing"
    NEED_EFFICIENCY = "need_efficiency"
    NEED_PROBLEMS = "need_problems"
    NEED_STARTUP_CHALLENGES = "need_startup_challenges"
    NEED_REPLACEMENT_RECRUITMENT = "need_replacement_recruitment"


MINISTRY_SEGMENTS = tuple(s for s in Segment if not s.startswith("need_"))
NEED_SEGMENTS = tuple(s for s in Segment if s.startswith("need_"))


class TurnoverBand(enum.StrEnum):
    """Yearly turnover in euros, cut at the EU's SME limits."""

    UNDER_200K = "under_200k"
    FROM_200K_TO_1M = "200k_1m"
    FROM_1M_TO_2M = "1m_2m"
    FROM_2M_TO_10M = "2m_10m"
    FROM_10M_TO_50M = "10m_50m"
    OVER_50M = "over_50m"


def validate_business_id(value: str) -> str:
    """Return the business ID as `1234567-8`; accept old 6-digit IDs by padding a leading 0.

    Raises:
        InvalidInput: the format or the mod-11 check digit is wrong.
    """
    match = BUSINESS_ID_PATTERN.fullmatch((value or "").strip())
    if match is None:
        raise InvalidInput(N_("Enter the business ID as 1234567-8."))
    digits, check = match.group(1).zfill(7), int(match.group(2))
    remainder = sum(int(d) * w for d, w in zip(digits, CHECK_WEIGHTS)) % 11
    if remainder == 1 or check != (0 if remainder == 0 else 11 - remainder):
        raise InvalidInput(N_("The check digit of this business ID does not match."))
    return f"{digits}-{check}"



def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value).strip()


field_text = _text  # the registry's forms (engine.providers) read their fields the same way


def clean_name_and_business_id(data: Mapping[str, Any], clean: dict[str, Any], errors: dict[str, str], *,
                               missing_name: str) -> bool:
    """Put a company's `name` and `business_id` from a form into `clean`, their messages into `errors`.

    Return whether the business ID itself is valid (so the caller may look for one already taken).
    """
    clean["name"] = _text(data, "name")
    if not clean["name"]:
        errors["name"] = missing_name
    elif len(clean["name"]) > 200:
        errors["name"] = N_("The name is too long (at most 200 characters).")
    try:
        clean["business_id"] = validate_business_id(_text(data, "business_id"))
    except InvalidInput as exc:
        errors["business_id"] = str(exc)
        return False
    return True


def _int(data: Mapping[str, Any], key: str, low: int, high: int, errors: dict[str, str],
         message: str) -> int | None:
    text = _text(data, key)
    if not text:
        return None
    if not re.fullmatch(r"\d{1,9}", text) or not low <= int(text) <= high:
        errors[key] = message
        return None
    return int(text)


def _choice(data: Mapping[str, Any], key: str, choices: type[enum.StrEnum], errors: dict[str, str]) -> str | None:
    text = _text(data, key)
    if not text:
        return None
    if text not in {c.value for c in choices}:
        errors[key] = N_("Choose one of the options.")
        return None
    return text


def _clean(session: Session, data: Mapping[str, Any], current: Customer | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if clean_name_and_business_id(data, clean, errors, missing_name=N_("Enter the company name.")):
        _check_business_id_change(session, clean["business_id"], current, errors)
    clean["industry"] = _text(data, "industry") or None
    if clean["industry"] and (len(clean["industry"]) > 200 or not INDUSTRY_PATTERN.fullmatch(clean["industry"])):
        errors["industry"] = N_("Start with a TOL 2008 code, e.g. 62010 or C.")
    clean["founded_year"] = _int(data, "founded_year", EARLIEST_FOUNDED, date.today().year, errors,
                                 N_("Enter a year between 1800 and this year."))
    clean["headcount"] = _int(data, "headcount", 0, 1_000_000, errors, N_("Enter a whole number of people."))
    clean["turnover_band"] = _choice(data, "turnover_band", TurnoverBand, errors)
    clean["situation"] = _choice(data, "situation", Situation, errors)
    clean["segment"] = _choice(data, "segment", Segment, errors)
    clean["responsible_expert"] = _text(data, "responsible_expert").lower() or None
    kept = current is not None and clean["responsible_expert"] == current.responsible_expert
    if clean["responsible_expert"] and not kept and clean["responsible_expert"] not in {
            u.username for u in experts(session)}:
        errors["responsible_expert"] = N_("Choose an expert from the list.")
    clean["contact_person"] = _text(data, "contact_person")[:200] or None
    clean["phone"] = _text(data, "phone") or None
    if clean["phone"] and (not PHONE_PATTERN.fullmatch(clean["phone"]) or len(clean["phone"]) > 40):
        errors["phone"] = N_("Enter a phone number, e.g. +358 40 123 4567.")
    if errors:
        raise FormInvalid(errors, {k: _text(data, k) for k in FIELDS})
    return clean


def _check_business_id_change(session: Session, business_id: str, current: Customer | None,
                              errors: dict[str, str]) -> None:
    if current is not None and current.business_id == business_id:
        return
    if session.scalar(select(Customer.id).where(Customer.business_id == business_id)) is not None:
        errors["business_id"] = N_("A customer with this business ID already exists.")
    elif current is not None and process_count(session, current.business_id):
        errors["business_id"] = N_("The business ID cannot be changed while service processes refer to it.")


def _record(session: Session, customer: Customer, action: str, by: str, data: dict[str, Any],
            at: datetime | None = None) -> None:
    audit.append(session, audit.EventKind.CUSTOMER_CHANGED, actor=by, stream=AUDIT_STREAM,
                 data={"customer": customer.business_id, "action": action, **data}, at=at)


def create_customer(session: Session, data: Mapping[str, Any], by: str) -> Customer:
    """Add a customer from form data.

    Raises:
        FormInvalid: a field is wrong or the business ID is already registered.
    """
    clean = _clean(session, data, None)
    customer = Customer(**clean)
    session.add(customer)
    session.flush()
    _record(session, customer, "created", by, clean)
    return customer


def update_customer(session: Session, customer_id: int, data: Mapping[str, Any], by: str) -> Customer:
    """Replace a customer's fields from form data.

    Raises:
        CustomerNotFound, FormInvalid: a field is wrong, the new business ID is taken, or
        service processes refer to the old one.
    """
    customer = get_customer(session, customer_id)
    clean = _clean(session, data, customer)
    changed = {k: v for k, v in clean.items() if getattr(customer, k) != v}
    for key, value in changed.items():
        setattr(customer, key, value)
    if changed:
        session.flush()
        _record(session, customer, "updated", by, changed)
    return customer


def get_customer(session: Session, customer_id: int) -> Customer:
    """Return the customer with this id.

    Raises:
        CustomerNotFound: no such customer.
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    return customer


def find_by_business_id(session: Session, business_id: str) -> Customer | None:
    """Return the customer with this business ID, or None."""
    return session.scalar(select(Customer).where(Customer.business_id == business_id))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_customers(session: Session, q: str = "", page: int = 1, per_page: int = 25,
                     reader: Reader | None = None) -> Page:
    """Return one page of customers whose name contains `q` or whose business ID starts with it.

    With a `reader`, only the customers they may see (`engine.access`).
    """
    query = select(Customer)
    if reader is not None:
        query = query.where(customer_clause(reader))
    text = (q or "").strip()
    if text:
        pattern = _like_escape(text)
        query = query.where(or_(Customer.name.ilike(f"%{pattern}%", escape="\\"),
                                Customer.business_id.like(f"{pattern}%", escape="\\")))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    per_page = max(1, min(per_page, 200))
    page = max(1, page)
    items = session.scalars(query.order_by(Customer.name, Customer.id)
                            .limit(per_page).offset((page - 1) * per_page))
    return Page(list(items), total, page, per_page)


def customers_without_expert(session: Session, active: Iterable[str] | None = None) -> list[Customer]:
    """Return customers with no responsible expert, or whose expert is no longer an active expert.

    `active`: the usernames of the active experts, when the caller has read them (`engine.users.experts`).
    """
    active = {u.username for u in experts(session)} if active is None else set(active)
    # the holders from the responsible_expert index, then those customers: not a NOT IN over every customer
    holders = session.scalars(_HOLDERS)
    gone = sorted(h for h in holders if h is not None and h not in active)
    return list(session.scalars(_WITHOUT_EXPERT, {"b_gone": gone}))


# built once (the supervisor view's every request)
_HOLDERS = select(Customer.responsible_expert).where(Customer.responsible_expert.is_not(None)).distinct()
_WITHOUT_EXPERT = (select(Customer).where(or_(Customer.responsible_expert.is_(None),
                                              Customer.responsible_expert.in_(bindparam("b_gone", expanding=True))))
                   .order_by(Customer.name, Customer.id))


def process_count(session: Session, business_id: str) -> int:
    """Return how many process instances carry this business ID as their business key."""
    query = select(func.count()).select_from(Instance).where(Instance.business_key == business_id)
    return session.scalar(query) or 0


@lru_cache(maxsize=512)
def _processes_query(reader: Reader | None) -> Select[tuple[Instance]]:
    """Return the customer's cases query for a reader (built once per reader: a customer page's every request)."""
    # not the serialized workflow (about 11 KB a case): the page lists the cases, their tasks come from `task`
    query = select(Instance).where(Instance.business_key == bindparam("business_id")).options(defer(Instance.state))
    if reader is not None:
        query = query.where(instance_clause(reader))
    return query.order_by(Instance.started_at.desc(), Instance.id.desc())


def customer_processes(session: Session, customer: Customer, reader: Reader | None = None) -> list[Instance]:
    """Return the customer's process instances (business key = business ID), newest first.

    With a `reader`, only the cases they may see (`engine.access`).
    """
    return list(session.scalars(_processes_query(reader), {"business_id": customer.business_id}))


TIMELINE_KINDS = ("instance_started", "task_completed", "task_action", "task_assigned", "timer_fired", "message_received",
                  "message_thrown", "incident_raised", "instance_completed", "instance_cancelled",
                  "instance_migrated")
FEEDBACK_VARIABLES = ("service_rating", "experience_positive", "feedback_from_customer", "aftercare_channel",
                      "aftercare_contacted_on")


@lru_cache(maxsize=512)
def _timeline_query(reader: Reader | None, limit: int, keyed: bool = False) -> Select[tuple[AuditEvent]]:
    """Return the customer timeline's query for a reader and length (built once per reader and length);
    `keyed`: only the events older than (`before_at`, `before_id`), the key of the last event shown."""
    # a join, not `instance_id IN (subquery)`: with the subquery SQLite walked the kind index through
    # every task_completed event of the office (390 ms with 10,000 cases); the join reads this customer's
    query = (select(AuditEvent).join(Instance, AuditEvent.instance_id == Instance.id)
             .where(Instance.business_key == bindparam("business_id"), AuditEvent.kind.in_(TIMELINE_KINDS)))
    if reader is not None:
        query = query.where(instance_clause(reader))
    if keyed:
        before_at = bindparam("before_at", type_=AuditEvent.__table__.c.at.type)
        query = query.where(or_(AuditEvent.at < before_at,
                                and_(AuditEvent.at == before_at, AuditEvent.id < bindparam("before_id"))))
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)


def customer_timeline(session: Session, customer: Customer, limit: int = 100,
                      reader: Reader | None = None, before: tuple[datetime, int] | None = None) -> list[AuditEvent]:
    """Return the newest events of the customer's processes that a person would call a step.

    With a `reader`, only events of the cases they may see; with `before` (an event's time and id),
    only the events after it in the timeline's order (newest first): the next page.
    """
    if before is None:
        return list(session.scalars(_timeline_query(reader, limit), {"business_id": customer.business_id}))
    return list(session.scalars(_timeline_query(reader, limit, True), {
        "business_id": customer.business_id, "before_at": before[0], "before_id": before[1]}))


def customer_feedback(session: Session, instance_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Return the aftercare feedback recorded in each instance (rating, positive, words, channel)."""
    found: dict[int, dict[str, Any]] = {}
    if not instance_ids:
        return found
    query = select(Variable).where(Variable.instance_id.in_(instance_ids), Variable.name.in_(FEEDBACK_VARIABLES))
    for row in session.scalars(query):
        if row.value not in (None, ""):
            found.setdefault(row.instance_id, {})[row.name] = row.value
    return found



RESPONSIBLE_CHANGED_MESSAGE = "responsible_expert_changed"


def may_change_responsible_expert(customer: Customer, by: str, roles: set[str] | None) -> bool:
    """Tell whether `by` may change the customer's responsible expert: a supervisor (or admin) for
    anyone, an expert for their own customers and those with none; the CLI (no roles) is a
    trusted operator."""
    if roles is None or roles & {"supervisor", "admin"}:
        return True
    return "expert" in roles and customer.responsible_expert in (None, by)


def change_responsible_expert(session: Session, customer_id: int, new_expert: str, *, by: str,
                              roles: set[str] | None = None, now: datetime | None = None) -> list[int]:
    """Make `new_expert` the customer's responsible expert, and move every open process with them.

    The customer record changes; each running process of the customer (business key = business ID)
    that waits for the `responsible_expert_changed` message receives it with the new expert, which
    reassigns its open tasks and opens its "inform the customer of the new contact person" task;
    open tasks of the customer's other running processes that were the old expert's are reassigned.
    The `users` audit stream records who, when, old and new. Returns the instances that received
    the message.

    Raises:
        CustomerNotFound, NotAllowed (an expert changing someone else's customer),
        FormInvalid (the new expert is not an active expert).
    """
    from . import (  # here, not at the top: customers loads with the access layer, before the engine
        inbox,
        runtime,
    )

    now = now or utcnow()
    customer = get_customer(session, customer_id)
    if not may_change_responsible_expert(customer, by, roles):
        raise NotAllowed(N_("Only the responsible expert or a supervisor can change the responsible expert."))
    new = (new_expert or "").strip().lower()
    if new not in {u.username for u in experts(session)}:
        raise FormInvalid({"responsible_expert": N_("Choose an expert from the list.")},
                          {"responsible_expert": new_expert or ""})
    old = customer.responsible_expert
    if new == old:
        return []
    customer.responsible_expert = new
    session.flush()
    running = list(session.scalars(select(Instance.id).where(Instance.business_key == customer.business_id,
                                                             Instance.status == InstanceStatus.RUNNING)
                                   .order_by(Instance.id)))
    waiting = set(session.scalars(select(MessageWait.instance_id).where(
        MessageWait.instance_id.in_(running), MessageWait.name == RESPONSIBLE_CHANGED_MESSAGE)))
    delivered: list[int] = []
    for instance_id in running:
        if instance_id in waiting:
            # the customer is told once: a service process always opens its inform task; an aftercare
            # (started later, so a higher id) opens one only when no case before it got the message
            data = {"responsible_expert": new, "customer_informed_elsewhere": bool(delivered)}
            delivered += runtime.deliver_message(session, RESPONSIBLE_CHANGED_MESSAGE, by=by,
                                                 data=data, instance_id=instance_id, now=now)
    if old:
        left = session.scalars(select(Task.id).where(Task.instance_id.in_(running), Task.state == TaskStatus.READY,
                                                     Task.assignee == old).order_by(Task.id))
        for task_id in list(left):
            inbox.assign(session, task_id, new, by=by)
    _record(session, customer, "responsible_expert_changed", by,
            {"old": old, "new": new, "instances": delivered}, at=now)
    return delivered


def may_cancel_case(session: Session, instance: Instance, by: str, roles: set[str] | None, *,
                    variables: Mapping[str, Any] | None = None, customer: Customer | None = None) -> bool:
    """Tell whether `by` may cancel a running case: a supervisor (or admin) any, an expert their own
    (the case's responsible expert, or the customer's); the CLI (no roles) is a trusted operator.

    `variables` (all of the case's) and `customer` (the case's), when the caller has read them, are
    not read again.
    """
    if roles is None or roles & {"supervisor", "admin"}:
        return True
    if "expert" not in roles:
        return False
    if variables is not None:
        case_expert = variables.get("responsible_expert")
    else:
        case_expert = session.scalar(select(Variable.value).where(Variable.instance_id == instance.id,
                                                                  Variable.name == "responsible_expert"))
    if case_expert == by:
        return True
    if customer is None or customer.business_id != instance.business_key:
        customer = find_by_business_id(session, instance.business_key) if instance.business_key else None
    return customer is not None and customer.responsible_expert == by


def cancel_case(session: Session, instance_id: int, reason: str, *, by: str, roles: set[str] | None = None,
                now: datetime | None = None) -> Instance:
    """Cancel a running case with a reason: its open tasks, timers and waits end; audited with the reason.

    Raises:
        InstanceNotFound, NotAllowed (not the expert's own case), FormInvalid (no reason),
        TaskNotAvailable (the case has already ended).
    """
    from . import runtime

    instance = runtime.get_instance(session, instance_id)
    if not may_cancel_case(session, instance, by, roles):
        raise NotAllowed(N_("Only the case's responsible expert or a supervisor can cancel it."))
    text = (reason or "").strip()
    if not text:
        raise FormInvalid({"reason": N_("Give the reason for cancelling.")}, {"reason": reason or ""})
    if len(text) > 2000:
        raise FormInvalid({"reason": N_("The reason is too long (at most 2000 characters).")}, {"reason": text})
    return runtime.cancel_instance(session, instance_id, by=by, reason=text, now=now)
