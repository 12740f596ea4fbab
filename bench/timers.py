"""Timer benchmark: how fast `polku worker` processes fire a burst of due timers, and how late.

Run: .venv/bin/python bench/timers.py [--timers 10000] [--runs postgresql:1,postgresql:2,postgresql:4,sqlite:1]
     .venv/bin/python bench/timers.py --cpu 300 [--runs postgresql:2,sqlite:1]   (CPU ms per firing, in process)

For each run: a fresh database (PostgreSQL: `polku_bench_<random>` on the server of
`scripts/postgres.sh`, or `POLKU_TEST_PG_URL`; SQLite: a temporary file in WAL mode), the
`reminder` process deployed, and N instances started so that their 14-day boundary timers all
come due at one real instant a few seconds after the last insert. Then K `polku worker`
processes start (default poll), and the script waits until every timer has fired.

Printed per run, from the `timer_fired` audit events (each firing records its own real instant):
  fire all    seconds from the due instant to the last firing (from the last insert when the inserts
              overran the due instant: timers not yet written cannot fire; a warning says so)
  rate        timers fired per second, first firing to last
  lag         firing instant minus due instant: min, median, p99, max
  once        every timer fired exactly once, no incident, no timer row left, workers' stderr clean
This measures; it asserts nothing.
"""

from __future__ import annotations

import os.path
import sys

# bench/ holds http.py: its folder must not shadow the standard library's `http` package (werkzeug needs it).
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(os.path.dirname(__file__))]

import argparse
import json
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from engine import deploy, runtime
from engine import timers as timers_module
from engine.db import make_engine, make_sessions, upgrade
from engine.models import AuditEvent, Incident, Timer

MODEL = ROOT / "tests" / "engine" / "bpmn" / "reminder.bpmn"
POLKU = Path(sys.executable).with_name("polku")
TIMER_DELAY = timedelta(days=14)  # the reminder's boundary timer: 'P14D' after the start
LEAD = 5.0  # seconds between the last insert and the due instant
BATCH = 100  # starts per transaction


@dataclass
class Result:
    """The figures of one run."""

    label: str
    timers: int
    workers: int
    fire_all: float
    rate: float
    lag: list[float]
    once: str


def _server_url() -> str:
    url = os.environ.get("POLKU_TEST_PG_URL")
    if url:
        return url
    done = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "start"], check=True, capture_output=True,
                          text=True)
    return done.stdout.strip().splitlines()[-1]


def _admin(server: str) -> psycopg.Connection:
    return psycopg.connect(make_url(server).set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)


def _new_database(kind: str, scratch: Path) -> tuple[str, str | None]:
    """Create an empty migrated database; return its URL and, for PostgreSQL, its name (to drop)."""
    if kind == "sqlite":
        url, name = f"sqlite:///{scratch / ('bench-' + secrets.token_hex(4) + '.db')}", None
    else:
        server = _server_url()
        name = f"polku_bench_{secrets.token_hex(6)}"
        with _admin(server) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    with make_sessions(engine).begin() as session:
        deploy.deploy_files(session, {MODEL.name: MODEL.read_bytes()}, by="bench")
    engine.dispose()
    return url, name


def _drop_database(name: str | None) -> None:
    if name is not None:
        with _admin(_server_url()) as conn:
            try:  # a plain DROP also stops autovacuum there, which FORCE may not do for a non-superuser
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            except psycopg.errors.ObjectInUse:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_instances(url: str, count: int, started_iso: str) -> None:
    """Start `count` reminders as of `started` (runs in a child process)."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    started = datetime.fromisoformat(started_iso)
    for first in range(0, count, BATCH):
        with sessions.begin() as session:
            for _ in range(min(BATCH, count - first)):
                runtime.start_instance(session, "reminder", by="bench", data={"due": "P7D"}, now=started)
    engine.dispose()


def _seconds_per_start(url: str) -> float:
    """Time one batch of starts that are not due for 14 days (they stay, as waiting timers do)."""
    began = time.perf_counter()
    _start_instances(url, BATCH, datetime.now(UTC).isoformat())
    return (time.perf_counter() - began) / BATCH


def _fill(url: str, kind: str, count: int) -> tuple[datetime, datetime]:
    """Start `count` instances whose timers come due together shortly after.

    Returns the due instant and the instant the burst is whole: the later of the due instant and the
    last insert's end (on a loaded machine the inserts may overrun the estimate).
    """
    inserters = 1 if kind == "sqlite" else min(2, os.cpu_count() or 1)  # SQLite has one writer anyway
    # the estimate comes from one batch on an empty database: a generous margin, the index grows as it fills
    estimate = _seconds_per_start(url) * count / inserters * 3 + 5
    due = datetime.now(UTC) + timedelta(seconds=estimate + LEAD)
    shares = [count // inserters + (1 if n < count % inserters else 0) for n in range(inserters)]
    began = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(inserters) as pool:
        pool.starmap(_start_instances, [(url, share, (due - TIMER_DELAY).isoformat()) for share in shares])
    left = (due - datetime.now(UTC)).total_seconds()
    print(f"  started {count} instances in {time.perf_counter() - began:.0f} s; due in {left:.1f} s",
          file=sys.stderr)
    if left < 2:
        print("  warning: the inserts overran the due instant; 'fire all' counts from the last insert, "
              "the lag from the due instant", file=sys.stderr)
    return due, max(due, datetime.now(UTC))


def _fired(sessions) -> int:
    with sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "timer_fired"))


def _run_workers(url: str, count: int, due: datetime, sessions, timers: int, logs: Path) -> list[str]:
    """Start the workers a moment before the due instant, wait for every firing, stop them."""
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 3))  # a worker needs ~1 s to start
    env = {**os.environ, "POLKU_DATABASE_URL": url}
    workers = []
    for n in range(count):
        with (logs / f"worker-{n}.log").open("wb") as err:
            workers.append(subprocess.Popen([str(POLKU), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=err))
    deadline = time.monotonic() + 900
    while _fired(sessions) < timers and time.monotonic() < deadline:
        time.sleep(0.5)
    problems = []
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    for n, proc in enumerate(workers):
        code = proc.wait(timeout=60)
        text = (logs / f"worker-{n}.log").read_text()
        if code != 0 or "Traceback" in text or "deadlock" in text:
            problems.append(f"worker {n} exited {code}: {text[-500:]}")
    return problems


def _measure(label: str, sessions, timers: int, workers: int, due: datetime, whole: datetime,
             problems: list[str]) -> Result:
    with sessions.begin() as session:
        rows = session.execute(select(AuditEvent.instance_id, AuditEvent.element_id, AuditEvent.at, AuditEvent.data)
                               .where(AuditEvent.kind == "timer_fired")).all()
        incidents = session.scalar(select(func.count()).select_from(Incident))
        left = session.scalar(select(func.count()).select_from(Timer).where(Timer.due_at <= due))
    lag = sorted((r.at - datetime.fromisoformat(json.loads(r.data)["due_at"])).total_seconds() for r in rows)
    instants = sorted(r.at for r in rows)
    duplicates = len(rows) - len({(r.instance_id, r.element_id) for r in rows})
    if len(rows) == timers and not duplicates and not incidents and not left and not problems:
        once = "yes"
    else:
        once = f"NO: {len(rows)} fired, {duplicates} twice, {incidents} incidents, {left} left; {problems}"
    span = (instants[-1] - instants[0]).total_seconds() if len(instants) > 1 else 0.0
    return Result(label, timers, workers, (instants[-1] - whole).total_seconds() if instants else float("nan"),
                  len(rows) / span if span else float("nan"), lag, once)


def run(kind: str, workers: int, timers: int) -> Result:
    """Run one configuration on a fresh database and return its figures."""
    label = "PostgreSQL" if kind == "postgresql" else "SQLite"
    print(f"{label}, {workers} worker(s), {timers} timers", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        url, name = _new_database(kind, Path(scratch))
        engine = make_engine(url)
        try:
            sessions = make_sessions(engine)
            due, whole = _fill(url, kind, timers)
            problems = _run_workers(url, workers, due, sessions, timers, Path(scratch))
            return _measure(label, sessions, timers, workers, due, whole, problems)
        finally:
            engine.dispose()
            _drop_database(name)


def cpu_per_firing(kind: str, timers: int) -> tuple[float, float]:
    """Fire `timers` reminders due at once in this process, one sweep; return (CPU ms, wall ms) per firing.

    CPU time of this process only: the client side of each firing (engine, SQLAlchemy, the driver);
    SQLite runs in the process, a PostgreSQL server's share is not counted.
    """
    with tempfile.TemporaryDirectory() as scratch:
        url, name = _new_database(kind, Path(scratch))
        engine = make_engine(url)
        try:
            sessions = make_sessions(engine)
            started = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
            _start_instances(url, timers, started.isoformat())
            runtime.forget_cache()  # as in a worker, which rarely holds the instance it fires
            cpu, wall = time.process_time(), time.perf_counter()
            fired = timers_module.fire_due_timers(sessions, now=started + TIMER_DELAY + timedelta(days=1))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            return cpu / fired * 1000, wall / fired * 1000
        finally:
            engine.dispose()
            _drop_database(name)


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


def print_table(results: list[Result]) -> None:
    """Print the figures as a Markdown table."""
    print("| database | workers | timers | fire all (s) | rate (timers/s) | lag min / median / p99 / max (s) "
          "| exactly once |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
    for r in results:
        lag = (f"{r.lag[0]:.2f} / {statistics.median(r.lag):.2f} / {_percentile(r.lag, 0.99):.2f} / "
               f"{r.lag[-1]:.2f}") if r.lag else "-"
        print(f"| {r.label} | {r.workers} | {r.timers:,} | {r.fire_all:.1f} | {r.rate:.0f} | {lag} | {r.once} |")


def main() -> None:
    """Run every configuration asked for and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--runs", default="postgresql:1,postgresql:2,postgresql:4,sqlite:1",
                        help="comma-separated database:workers")
    parser.add_argument("--cpu", type=int, default=0,
                        help="instead: CPU ms per firing in this process, one sweep of this many timers per database")
    args = parser.parse_args()
    if args.cpu:
        for kind in dict.fromkeys(spec.split(":")[0] for spec in args.runs.split(",")):
            cpu, wall = cpu_per_firing(kind, args.cpu)
            print(f"{kind:10s} {args.cpu} timers in one sweep: CPU {cpu:.2f} ms, wall {wall:.2f} ms per firing;"
                  f" load average {os.getloadavg()[0]:.1f}")
        return
    results = []
    load_at_start = os.getloadavg()[0]
    for spec in args.runs.split(","):
        kind, workers = spec.split(":")
        results.append(run(kind, int(workers), args.timers))
    print(f"\n{os.cpu_count()} cores; Python {sys.version.split()[0]}; load average at the end"
          f" {os.getloadavg()[0]:.1f} (at the start {load_at_start:.1f})\n")
    print_table(results)


if __name__ == "__main__":
    main()
