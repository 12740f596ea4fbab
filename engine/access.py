"""Least-privilege reads: which tasks, cases and customers a user may see.

Supervisors, auditors and admins read everything (`READ_ALL_ROLES`). Everyone else (an expert)
reads only what they work on or what their roles may take:

- a **task**: assigned to them, completed by them, of a candidate role they hold (the task a
  colleague of their group holds, too), or in a case they are responsible for;
- a **case** (instance): they are its responsible expert (the customer's, or the case's
  `responsible_expert` variable), a task of it is or was theirs (assigned, completed), or it waits
  on an unassigned task their roles may take;
- a **customer**: they are its responsible expert, it has no active responsible expert (any expert
  may take it), or one of its cases is theirs as above.

A task page shows the case data only when the case is readable too. The filters are SQL clauses
(one query per page, however many rows); the single-object checks reuse them. Each clause is a
correlated EXISTS probing the indexes of one case's tasks, variables and customer, so a check on one
task, case or customer reads only that case's rows, however large the office's history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, cast, false, or_, select, true
from sqlalchemy.orm import Session

from .errors import CustomerNotFound, TaskNotFound
from .fastsql import Fast, adopt
from .models import Customer, Instance, Task, TaskStatus, User, Variable

READ_ALL_ROLES = frozenset({"supervisor", "auditor", "admin"})
RESPONSIBLE_VARIABLE = "responsible_expert"


@dataclass(frozen=True)
class Reader:
    """Who is reading: a username and the roles they hold."""

    username: str
    roles: frozenset[str]

    @classmethod
    def of(cls, username: str, roles: Iterable[str]) -> Reader:
        """Return a reader for a username and roles."""
        return cls(username, frozenset(roles))

    @property
    def reads_all(self) -> bool:
        """Tell whether the roles allow reading every task, case and customer."""
        return bool(self.roles & READ_ALL_ROLES)


def _responsible_cases(reader: Reader) -> ColumnElement[bool]:
    mine = json.dumps(reader.username)  # the variable holds JSON text: "name"
    by_variable = select(Variable.instance_id).where(Variable.instance_id == Instance.id,
                                                     Variable.name == RESPONSIBLE_VARIABLE,
                                                     cast(Variable.value, String) == mine).exists()
    by_customer = select(Customer.id).where(Customer.business_id == Instance.business_key,
                                            Customer.responsible_expert == reader.username).exists()
    return or_(by_variable, by_customer)


def _of_roles(reader: Reader) -> ColumnElement[bool]:
    """Return "the task's candidate role is one of the reader's", each role a bound value of its own.

    Not an expanding IN: the statements built once per reader run as `Fast` statements too, which
    take no expanding parameter; the database sees the same `IN (...)` either way.
    """
    if not reader.roles:
        return false()
    return Task.candidate_role.in_([bindparam(None, role, type_=String) for role in sorted(reader.roles)])


def instance_clause(reader: Reader) -> ColumnElement[bool]:
    """Return a WHERE clause on `Instance` that keeps the cases this reader may see."""
    if reader.reads_all:
        return true()
    # correlated to the case only: in a statement that reads a task too, any task of the case counts
    worked = select(Task.id).where(Task.instance_id == Instance.id, or_(
        Task.assignee == reader.username, Task.completed_by == reader.username,
        and_(Task.state == TaskStatus.READY, Task.assignee.is_(None),
             _of_roles(reader)))).correlate(Instance).exists()
    return or_(worked, _responsible_cases(reader))


def task_clause(reader: Reader) -> ColumnElement[bool]:
    """Return a WHERE clause on `Task` (joined with its `Instance`) that keeps the readable tasks."""
    if reader.reads_all:
        return true()
    role = _of_roles(reader)
    return or_(Task.assignee == reader.username, Task.completed_by == reader.username, role,
               _responsible_cases(reader))


def customer_clause(reader: Reader) -> ColumnElement[bool]:
    """Return a WHERE clause on `Customer` that keeps the customers this reader may see."""
    if reader.reads_all:
        return true()
    cases = select(Instance.id).where(Instance.business_key == Customer.business_id, instance_clause(reader)).exists()
    return or_(Customer.responsible_expert == reader.username, Customer.responsible_expert.is_(None),
               Customer.responsible_expert.not_in(select(User.username).where(
                   User.active.is_(True), User.roles.contains("expert"))),
               cases)


# The single-object checks run on every task and customer page: each reader's statement is built
# once (the object's id a bound parameter), so SQLAlchemy neither rebuilds it nor recomputes its
# cache key per request. Only the statement's shape is kept; every check reads the database.
@lru_cache(maxsize=512)
def _instance_check(reader: Reader) -> Select[tuple[int]]:
    return select(Instance.id).where(Instance.id == bindparam("object_id"), instance_clause(reader))


@lru_cache(maxsize=512)
def _customer_check(reader: Reader) -> Select[tuple[int]]:
    return select(Customer.id).where(Customer.id == bindparam("object_id"), customer_clause(reader))


@lru_cache(maxsize=512)
def _customer_row(reader: Reader) -> Select[tuple[Customer]]:
    return select(Customer).where(Customer.id == bindparam("object_id"), customer_clause(reader))


_TASK_COLUMNS = tuple(Task.__table__.columns)
_INSTANCE_COLUMNS = tuple(Instance.__table__.columns)
_INSTANCE_AT, _READABLE_AT = len(_TASK_COLUMNS), len(_TASK_COLUMNS) + len(_INSTANCE_COLUMNS)


@lru_cache(maxsize=512)
def _task_page_rows(reader: Reader) -> Fast:
    # every column of both tables in table order, as `fastsql.adopt` takes them: the ORM's select of
    # the two entities cost twice as much CPU (its cache key is computed again on every call)
    case = true() if reader.reads_all else instance_clause(reader)
    return Fast(select(*_TASK_COLUMNS, *_INSTANCE_COLUMNS, case.label("case_readable"))
                .join(Instance, Instance.id == Task.instance_id)
                .where(Task.id == bindparam("object_id"), task_clause(reader)))


def readable_task(session: Session, reader: Reader, task_id: str) -> tuple[Task, Instance, bool]:
    """Return a task the reader may open, its case, and whether the case's data is readable too: the
    task's check, both rows and the case's check (`can_read_instance`) in one statement.

    Both rows are the session's objects, as the ORM's select would give them (one the session holds
    already is returned as it is; a change is flushed before the read).

    Raises:
        TaskNotFound: no such task, or not readable: refused as if it did not exist (no case data leaks).
    """
    found = _task_page_rows(reader).first(session, {"object_id": task_id}, autoflush=True)
    if found is None:
        raise TaskNotFound(f"no task {task_id}")
    return (adopt(session, Task, found[:_INSTANCE_AT]), adopt(session, Instance, found[_INSTANCE_AT:_READABLE_AT]),
            bool(found[_READABLE_AT]))


def readable_customer(session: Session, reader: Reader, customer_id: int) -> Customer:
    """Return the customer if the reader may open its page: the check and the row in one statement.

    Raises:
        CustomerNotFound: no such customer, or not readable (as `require_customer`).
    """
    customer = session.get(Customer, customer_id) if reader.reads_all else \
        session.scalar(_customer_row(reader), {"object_id": customer_id})
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    return customer


def can_read_instance(session: Session, reader: Reader, instance_id: int) -> bool:
    """Tell whether the reader may see this case's data."""
    return reader.reads_all or session.scalar(_instance_check(reader), {"object_id": instance_id}) is not None


def can_read_customer(session: Session, reader: Reader, customer_id: int) -> bool:
    """Tell whether the reader may open this customer's page."""
    return reader.reads_all or session.scalar(_customer_check(reader), {"object_id": customer_id}) is not None


def require_customer(session: Session, reader: Reader, customer_id: int) -> None:
    """Refuse a customer the reader may not see as if it did not exist.

    Raises:
        CustomerNotFound: no such customer, or not readable.
    """
    if not can_read_customer(session, reader, customer_id):
        raise CustomerNotFound(f"No customer {customer_id}.")
