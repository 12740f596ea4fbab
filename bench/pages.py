"""Server time of the busiest pages on a large office: 100,000 finished cases, 2,000 open tasks, 100 versions.

Run: .venv/bin/python bench/pages.py [--dbs sqlite,postgresql] [--instances 100000] [--open 2000]
     [--versions 100] [--requests 200] [--keep DIR]

Per database, a fresh migrated database is filled:
- the shipped models (`bpmn/`) deployed again and again, each round a new `camunda:versionTag` on every
  process, until at least `--versions` process versions are deployed (real deployments: validated,
  hashed, their catalogues built);
- the demo users and the demo office (`engine.demo`: 40 customers, a year of their cases driven
  through the engine);
- `--open` cases of the bench's five-task process started through the engine, each waiting at its
  first task, for 25 experts (the demo's among them), half of them assigned;
- `--instances` finished cases with their tasks, variables (their aftercare's too) and 15 audit events
  each, bulk-inserted (`bench/history.py`), belonging to 5,000 customers (20 each).
Then the real web app (`webui.create_app`, in this process, Flask's test client) serves each page
`--requests` times to a signed-in user of the page's role, after a few warm-up requests; printed
per page: server time p50 / p95 / p99 (wall clock, from the request entering the app to its response),
the median CPU time of this process per request (SQLite's work included, PostgreSQL's server not) and
the SQL statements one request runs (median). The load average is printed: a busy machine inflates every figure.
With `--keep DIR` the filled databases are kept (SQLite: a file in DIR; PostgreSQL: the database
`polku_pages_kept`) with what the pages will be asked for (a JSON file in DIR), and a later run with the
same DIR migrates them to the code's schema and measures them again without filling: for comparing code
changes on the same data. Delete DIR (and drop that database) to fill anew.
This measures; it asserts nothing.
"""

from __future__ import annotations

import os.path
import sys

from benchmodules import (  # bench/ is still on sys.path here
    DBS_HELP,
    at_least_one,
    bench_module,
    database_kinds,
)

# bench/ holds http.py: its folder must not shadow the standard library's `http` package (werkzeug needs it).
_FOLDER = os.path.realpath(os.path.dirname(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _FOLDER]

import argparse
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from engine import demo, deploy, fastsql, inbox, runtime, users
from engine.config import Settings
from engine.db import make_engine, make_sessions, upgrade
from engine.models import Customer, Instance, ProcessVersion, Task, TaskStatus
from webui import create_app, server

history_bench = bench_module("history")
http_bench = bench_module("http")

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
PROCESS_TAG = re.compile(rb'(<bpmn:process id="[^"]+")')
EXPERT = "asiantuntija"  # a demo expert: signs in as "asiantuntija" / "asiantuntija-demo"
KEPT_PG = "polku_pages_kept"  # the PostgreSQL database `--keep` fills once and measures again
BULK_EXPERTS = [EXPERT, "expert2", *(f"bench-expert{n}" for n in range(3, 26))]


def _model_files(tag: int) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted([*(ROOT / "bpmn").glob("*.bpmn"), *(ROOT / "bpmn").glob("*.dmn")])}
    if tag:
        files = {name: PROCESS_TAG.sub(rb'\1 camunda:versionTag="%d"' % tag, content) for name, content in files.items()}
    return files


def _deploy_versions(sessions: Any, wanted: int) -> int:
    """Deploy the shipped models in rounds until at least `wanted` process versions exist; return the count."""
    tag = 0
    while True:
        with sessions.begin() as s:
            deploy.deploy_files(s, _model_files(tag), by="bench")
            count = s.scalar(select(func.count()).select_from(ProcessVersion).where(ProcessVersion.kind == "process"))
        if count >= wanted:
            return int(count)
        tag += 1


def _start_open(sessions: Any, count: int) -> None:
    """Start `count` five-task cases through the engine for the bulk customers; assign every other task."""
    with sessions.begin() as s:
        deploy.deploy_files(s, {"five_tasks.bpmn": (HERE / "five_tasks.bpmn").read_bytes()}, by="bench")
    for first in range(0, count, 100):
        with sessions.begin() as s:
            for n in range(first, min(first + 100, count)):
                expert = BULK_EXPERTS[n % len(BULK_EXPERTS)]
                instance = runtime.start_instance(s, "five_tasks", by="bench", data={"responsible_expert": expert},
                                                  business_key=history_bench.business_key(n % 5000))
                if n % 2:
                    [task] = inbox.tasks(s, instance_id=instance.id)
                    inbox.assign(s, task.id, expert, by="bench")


def _bulk_customers(sessions: Any, count: int) -> None:
    rows = [{"business_id": history_bench.business_key(k), "name": f"Asiakas {k} Oy",
             "responsible_expert": BULK_EXPERTS[k % len(BULK_EXPERTS)], "industry": "Palvelut",
             "created_at": history_bench.T0, "updated_at": history_bench.T0} for k in range(count)]
    with sessions.begin() as s:
        s.execute(Customer.__table__.insert(), rows)


def _fix_sequences(engine: Any) -> None:
    """Move PostgreSQL's id sequences past the bulk-inserted ids (later starts would collide)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT setval(pg_get_serial_sequence('instance', 'id'), (SELECT max(id) FROM instance))"))


def fill(url: str, instances: int, open_count: int, versions: int) -> dict[str, Any]:
    """Fill a fresh database; return what the pages will be asked for and how long each part took."""
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessions(engine)
    took: dict[str, float] = {}
    began = time.perf_counter()
    took["versions"] = _deploy_versions(sessions, versions)
    with sessions.begin() as s:
        users.seed_demo_users(s)
        for name in BULK_EXPERTS[2:]:
            users.add_user(s, name, f"{name}-password", ["expert"], by="bench")
    with sessions.begin() as s:
        demo.seed_office(s)
    _bulk_customers(sessions, 5000)
    _start_open(sessions, open_count)
    with sessions.begin() as s:
        first_id = int(s.scalar(select(func.max(Instance.id))) or 0) + 1
        five = deploy.latest_version(s, "five_tasks")
        assert five is not None
        five_id = five.id
    history_bench.fill(sessions, instances, open_rows=0, version_id=five_id, first_id=first_id,
                       experts=BULK_EXPERTS)
    _fix_sequences(engine)
    http_bench.analyze(engine, vacuum=True)  # PostgreSQL: as autovacuum keeps a live database (after a bulk load)
    took["filled_s"] = time.perf_counter() - began
    with sessions() as s:
        mine = list(s.scalars(select(Task.id).where(Task.state == TaskStatus.READY, Task.assignee == EXPERT)
                              .order_by(Task.created_at).limit(50)))
        demo_customer = s.execute(
            select(Customer.id, func.count(Instance.id)).join(Instance, Instance.business_key == Customer.business_id)
            .where(Customer.business_id.not_like("10%")).group_by(Customer.id)
            .order_by(func.count(Instance.id).desc()).limit(1)).one()
        bulk_customer = s.scalar(select(Customer.id).where(Customer.business_id == history_bench.business_key(50)))
        took["open_tasks"] = s.scalar(select(func.count()).select_from(Task).where(Task.state == TaskStatus.READY))
        took["instances"] = s.scalar(select(func.count()).select_from(Instance))
    engine.dispose()
    runtime.forget_cache()
    return {"tasks": mine, "demo_customer": demo_customer[0], "demo_cases": demo_customer[1],
            "bulk_customer": bulk_customer, "took": took}


def _sign_in(client: Any, username: str, password: str) -> None:
    token = CSRF.search(client.get("/login").get_data(as_text=True))[1]
    reply = client.post("/login", data={"csrf_token": token, "username": username, "password": password})
    assert reply.status_code == 302, f"sign-in as {username} answered {reply.status_code}"


def pages(found: dict[str, Any]) -> list[tuple[str, str, Callable[[int], str]]]:
    """Return (page, who, URL of the n-th request) for every page measured."""
    tasks = found["tasks"]
    return [
        ("inbox: my tasks", "asiantuntija", lambda n: "/tasks/"),
        ("inbox: my group's", "asiantuntija", lambda n: "/tasks/?tab=group"),
        ("task page", "asiantuntija", lambda n: f"/tasks/{tasks[n % len(tasks)]}"),
        (f"customer page ({found['demo_cases']} demo cases)", "esimies",
         lambda n: f"/customers/{found['demo_customer']}"),
        ("customer page (20 finished)", "asiantuntija", lambda n: f"/customers/{found['bulk_customer']}"),
        ("supervisor view", "esimies", lambda n: "/supervisor/"),
        ("audit search: all, page 1", "tarkastaja", lambda n: "/audit/"),
        ("audit search: customer", "tarkastaja", lambda n: f"/audit/?customer={history_bench.business_key(n % 5000)}"),
        ("audit search: completed in a month, page 5", "tarkastaja",
         lambda n: "/audit/?status=completed&started_from=2024-08-01&started_to=2024-08-31&page=5"),
    ]


_ON_CURSOR = fastsql._run  # statements run on the cursor (engine.fastsql: the sign-in, a case's variables)


def measure(url: str, found: dict[str, Any], requests: int) -> Iterator[dict[str, Any]]:
    """Request every page `requests` times as its user; yield each page's server times and statements."""
    app = create_app(Settings(database_url=url, secret_key="bench-" + secrets.token_hex(16), insecure_cookies=True))
    server.settle_heap()  # as `polku serve` does in each web process
    statements = [0]
    event.listen(app.extensions["polku"].engine, "before_cursor_execute",
                 lambda *_args: statements.__setitem__(0, statements[0] + 1))

    def counted(*args: Any, **kwargs: Any) -> Any:  # statements on the cursor pass no SQLAlchemy event
        statements[0] += 1
        return _ON_CURSOR(*args, **kwargs)

    fastsql._run = counted  # type: ignore[assignment]
    clients: dict[str, Any] = {}
    for page, who, url_of in pages(found):
        if who not in clients:
            clients[who] = app.test_client()
            _sign_in(clients[who], who, f"{who}-demo")
        client = clients[who]
        for n in range(5):  # warm-up: the process's caches fill as on a running server
            reply = client.get(url_of(n))
            assert reply.status_code == 200, f"{page}: {url_of(n)} answered {reply.status_code}"
        times, cpu, counts = [], [], []
        for n in range(requests):
            statements[0] = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            reply = client.get(url_of(n))
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            counts.append(statements[0])
            assert reply.status_code == 200, f"{page}: {url_of(n)} answered {reply.status_code}"
        yield {"page": page, "p50": http_bench._pct(times, 0.50), "p95": http_bench._pct(times, 0.95),
               "p99": http_bench._pct(times, 0.99), "cpu": http_bench._pct(cpu, 0.50),
               "statements": sorted(counts)[len(counts) // 2]}
    app.extensions["polku"].engine.dispose()


def _kept_database(kind: str, folder: Path) -> tuple[str, str | None]:
    """A database to fill and keep for `--keep`; the name to drop if filling it fails."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        path = folder / "pages.db"
        path.unlink(missing_ok=True)
        return f"sqlite:///{path.resolve()}", None
    url, name = http_bench._new_database(kind, folder)
    assert name is not None
    http_bench._drop_database(KEPT_PG)
    import psycopg

    admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" RENAME TO {KEPT_PG}')
    return make_url(url).set(database=KEPT_PG).render_as_string(hide_password=False), KEPT_PG


def main() -> None:
    """Fill a database per kind, measure the pages, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", default="sqlite,postgresql", help=DBS_HELP)
    parser.add_argument("--instances", type=int, default=100_000, help="finished cases (default 100,000)")
    parser.add_argument("--open", type=int, default=2000, help="open cases of the five-task process, each at its first task (default 2,000)")
    parser.add_argument("--versions", type=int, default=100, help="deployed process versions, at least (default 100)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page (default 200)")
    parser.add_argument("--keep", type=Path, help="keep the filled databases here and measure them again next time")
    args = parser.parse_args()
    at_least_one(parser, args, "instances", "open", "versions", "requests")
    kinds = database_kinds(parser, args.dbs)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            kept = args.keep / f"pages-{kind}.json" if args.keep else None
            if kept is not None and kept.exists():
                found = json.loads(kept.read_text())
                url, dropname = found["url"], None
                kept_engine = make_engine(url)
                upgrade(kept_engine)  # kept by older code: the schema this code expects (new migrations)
                kept_engine.dispose()
            else:
                url, dropname = _kept_database(kind, args.keep) if args.keep else http_bench._new_database(kind, Path(tmp))
            try:
                if kept is None or not kept.exists():
                    found = fill(url, args.instances, args.open, args.versions)
                    if kept is not None:
                        kept.write_text(json.dumps({**found, "url": url}))
                        dropname = None
                took = found["took"]
                load = os.getloadavg()[0]
                print(f"{kind}: {took['instances']:,} instances, {took['open_tasks']:,} open tasks, "
                      f"{took['versions']} process versions (filled in {took['filled_s']:.0f} s); "
                      f"{args.requests} requests per page, load average {load:.1f} at the start")
                print(f"  {'page':<46}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'CPU p50':>9}{'SQL':>6}", flush=True)
                for row in measure(url, found, args.requests):
                    print(f"  {row['page']:<46}{row['p50']:8.1f}{row['p95']:8.1f}{row['p99']:8.1f}{row['cpu']:9.1f}"
                          f"{row['statements']:6d}", flush=True)
                print(f"  load average {os.getloadavg()[0]:.1f} at the end")
            finally:
                http_bench._drop_database(dropname)


if __name__ == "__main__":
    main()
