"""Inbox and audit queries on a large history: 100,000 finished instances, millions of audit events.

Run: .venv/bin/python bench/history.py [--instances 100000] [--database-url URL]

Fills a fresh database (SQLite file by default; any SQLAlchemy URL, e.g. the PostgreSQL of
`scripts/postgres.sh`) with finished instances of a 5-task process — their task rows, variables
(the responsible expert and what their aftercare left: service line and end, outcome, contact day or
attempts) and audit events, written with bulk inserts rather than through the engine, which would take hours
— plus 2,000 open tasks, then prints the median time of the queries behind the inbox and the
auditor's pages. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import os.path
import sys

# bench/ holds http.py: its folder must not shadow the standard library's `http` package (werkzeug needs it).
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(os.path.dirname(__file__))]

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import audit, deploy, history, inbox
from engine.db import make_engine, make_sessions, upgrade
from engine.models import AuditEvent, Instance, Task, Variable

HERE = Path(__file__).parent
T0 = datetime(2024, 1, 1, tzinfo=UTC)
EXPERTS = [f"expert{i}" for i in range(25)]


def fill(sessions, instances: int, *, open_rows: int = 2000, version_id: int | None = None, first_id: int = 1,
         experts: list[str] = EXPERTS, customers: int = 5000) -> None:
    """Insert finished instances with their tasks, variables and events, then `open_rows` waiting at a task.

    Instance n (from 0) belongs to customer `business_key(n % customers)` and to expert
    `experts[n % len(experts)]`; ids run from `first_id`. Without `version_id` the bench's
    five-task process is deployed first.
    """
    if version_id is None:
        with sessions.begin() as s:
            result = deploy.deploy_files(s, {"five_tasks.bpmn": (HERE / "five_tasks.bpmn").read_bytes()}, by="bench")
            version_id = result.created[0].id
    batch = 2000
    for first in range(0, instances + open_rows, batch):
        rows, tasks, variables, events = [], [], [], []
        for n in range(first, min(first + batch, instances + open_rows)):
            iid = first_id + n
            started = T0 + timedelta(minutes=7 * n)
            done = n < instances
            rows.append({"id": iid, "version_id": version_id, "process_id": "five_tasks",
                         "business_key": business_key(n % customers), "status": "completed" if done else "running",
                         "revision": 6, "state": "{}", "started_at": started, "started_by": "bench",
                         "ended_at": started + timedelta(days=30) if done else None, "open_incidents": 0})
            expert = experts[n % len(experts)]
            variables.append({"instance_id": iid, "name": "responsible_expert", "value": expert,
                              "updated_at": started})
            if done:  # what a finished case's aftercare leaves: the supervisor's and dashboard's figures read it
                variables += _aftercare_variables(iid, n, started)
            for k in range(1, 6):
                finished = done or k < 5
                tasks.append({"id": str(uuid.uuid4()), "instance_id": iid, "element_id": f"t{k}",
                              "name": f"Step {k}", "lane": None, "candidate_role": "expert",
                              "state": "completed" if finished else "ready",
                              "assignee": expert if finished or n % 2 else None,
                              "due_at": started + timedelta(days=k * 5), "created_at": started + timedelta(days=k),
                              "completed_at": started + timedelta(days=k + 2) if finished else None,
                              "completed_by": expert if finished else None})
            for seq in range(1, 16):  # 15 events per instance: 1.5 million for 100,000 instances
                events.append({"stream": f"instance:{iid}", "seq": seq, "kind": "task_completed",
                               "at": started + timedelta(hours=seq), "actor": expert, "instance_id": iid,
                               "version_id": version_id, "element_id": f"t{seq % 5 + 1}", "task_id": None,
                               "data": "{}", "prev_hash": "0" * 64, "hash": "0" * 64})
        with sessions.begin() as s:
            s.execute(insert(Instance), rows)
            s.execute(insert(Task), tasks)
            s.execute(insert(Variable), variables)
            s.connection().execute(insert(AuditEvent.__table__), events)


def _aftercare_variables(iid: int, n: int, started: datetime) -> list[dict]:
    """The aftercare variables of finished case n: its service ended 20 days after it started, and
    9 in 10 customers were reached 0–9 days later (the rest after two attempts), before the case ended."""
    ended_on = (started + timedelta(days=20)).date()
    reached = n % 10 != 0
    contact = ended_on + timedelta(days=n % 10)
    values = {"service_line": "recruitment", "service_ended_on": ended_on.isoformat(), "aftercare_target_days": 14,
              "aftercare_started_at": (started + timedelta(days=20)).isoformat(),
              "aftercare_outcome": "reached" if reached else "not_reached",
              "aftercare_attempts": [] if reached else [{"on": contact.isoformat(), "channel": "phone", "note": ""}] * 2}
    if reached:
        values["aftercare_contacted_on"] = contact.isoformat()
    return [{"instance_id": iid, "name": name, "value": value, "updated_at": started + timedelta(days=30)}
            for name, value in values.items()]


def business_key(k: int) -> str:
    """Return the business ID of bulk customer k (the shape of a Finnish business ID, 9 characters)."""
    return f"{1000000 + k}-{k % 10}"


def median_ms(fn, repeat: int = 15) -> float:
    """Return the median wall time of `fn` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    """Fill the database and print the query timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.database_url or f"sqlite:///{tmp}/history.db")
        upgrade(engine)
        sessions = make_sessions(engine)
        started = time.perf_counter()
        fill(sessions, args.instances)
        print(f"{args.instances:,} finished instances, {args.instances * 5:,} task rows, "
              f"{args.instances * 15:,} audit events on {engine.dialect.name} "
              f"(filled in {time.perf_counter() - started:.0f} s)")
        mine = inbox.TaskFilter(assignee="expert3", roles=frozenset({"expert"}))
        group = inbox.TaskFilter(roles=frozenset({"expert"}))
        checks = {
            "inbox: my tasks + my group's, page 1 by due date": lambda s: inbox.list_tasks(s, mine),
            "inbox: group's unassigned tasks, page 1": lambda s: inbox.list_tasks(s, group),
            "inbox: all open tasks, page 20 by created": lambda s: inbox.list_tasks(
                s, inbox.TaskFilter(), sort="-created", page=20, per_page=10),
            "inbox: overdue tasks": lambda s: inbox.overdue(s, now=T0 + timedelta(days=800)),
            "audit: search by customer": lambda s: history.search_instances(
                s, history.InstanceFilter(customer="1002345-5")),
            "audit: completed, started in one month, page 5": lambda s: history.search_instances(
                s, history.InstanceFilter(status="completed", started_from=T0 + timedelta(days=200),
                                          started_to=T0 + timedelta(days=230)), page=5),
            "audit: one instance's history": lambda s: audit.history(s, args.instances // 2),
        }
        for label, query in checks.items():
            def run(query=query):
                with sessions() as s:
                    query(s)
            print(f"  {label:<52} {median_ms(run):8.2f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
