"""HTTP benchmark: `polku serve` (gunicorn) driven by Locust, headless, on SQLite and PostgreSQL.

Run: .venv/bin/python bench/http.py [--users 20] [--seconds 60] [--dbs sqlite,postgresql] [--web-workers 2]
     [--levels 5,10,20 --chart docs/http-latency.svg]

Per database: a fresh migrated database with the five-user-task bench process, `--users` experts and one
supervisor, `--instances` cases waiting at their first task. `polku serve` starts with 2 web processes
(POLKU_EMBEDDED_WORKER=0), then Locust runs `bench/locust/locustfile.py`: each expert signs in once, then opens
the group inbox, opens one of its tasks, completes it with valid data and goes on to the case's next task
where the app's redirect leads; the supervisor refreshes the supervisor view. Printed per page: requests/s and client-side p50/p95/p99 (Locust), and the server time
p50/p95 from the access log (gunicorn's %(M)s). Task completions over HTTP per second (counted in the
database: over the whole run, and from the first completion to the last, which leaves out the sign-ins
of the ramp-up, each a deliberately slow password hash) are compared with the engine API's completions
per second measured in the same run (the median of six rounds of 40 cases, one connection, no think time: three
before Locust and three after, as the host's speed drifts within minutes).
Where /proc can be read (Linux), `bench/cpushare.py` samples once a second the CPU of the web processes, of
Locust and of the PostgreSQL server (every process named `postgres`), and the machine's busy time; printed are
each one's CPU per completion over the run's steady part (from 5 s after the first completion, past the sign-ins' password hashes,
to the last; the supervisor's views are in it), and the engine API's in its three rounds after the run.
With several `--levels`, the p95 per page against the number of users is drawn as an SVG chart.
This measures; it asserts nothing. Figures depend on the machine's load: the load average is printed.
"""

from __future__ import annotations

import os.path
import sys

from benchmodules import DBS_HELP, at_least_one, database_kinds  # bench/ is still on sys.path here
from cpushare import CpuShare, Share
from cpushare import available as cpu_share_available

# This file is named http.py: its folder must not shadow the standard library's `http` package.
_FOLDER = os.path.realpath(os.path.dirname(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _FOLDER]

import argparse
import csv
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from engine import deploy, inbox, runtime, users
from engine.config import Settings
from engine.db import make_engine, make_sessions, upgrade
from engine.models import AuditEvent

BIN = Path(sys.executable).parent
PAGES = ("sign in", "inbox", "task page", "complete task", "supervisor view")
CASE_TASKS = 5  # the user tasks of bench/five_tasks.bpmn: completions per case
API_ROUND = 40  # cases in one round of the engine API
RAMP_UP = 5.0  # seconds after the first completion left out of the CPU figures: the sign-ins' password hashes
WEB, LOAD, SERVER = "web processes", "Locust", "PostgreSQL server"
ACCESS = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \S+ (\d+)ms')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _new_database(kind: str, scratch: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{scratch / ('http-' + secrets.token_hex(4) + '.db')}", None
    import psycopg

    server = os.environ.get("POLKU_TEST_PG_URL") or subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "url"], check=True, capture_output=True, text=True).stdout.strip()
    name = f"polku_http_{secrets.token_hex(6)}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False), name


def _drop_database(name: str | None) -> None:
    if name is None:
        return
    import psycopg

    server = os.environ.get("POLKU_TEST_PG_URL") or subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "url"], check=True, capture_output=True, text=True).stdout.strip()
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        try:  # a plain DROP also stops autovacuum there; FORCE, for a non-superuser, fails on it
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        except psycopg.errors.ObjectInUse:  # a client still connected (a web process that did not stop)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(engine: Any, *, vacuum: bool = False) -> None:
    """PostgreSQL: gather the planner's statistics of a database just filled, as autovacuum keeps a live one's.

    Without them the planner guesses until autovacuum comes by (within a minute or so, often during a
    run): in a fresh database, by pg_stat_statements, a case's open tasks took 0.2 ms a read instead of
    0.014 ms, and an expert's cycle (task page, completion, the inbox one time in five) 1.2 ms of the
    server's time instead of 0.8 ms. SQLite's planner keeps no statistics unless asked (Polku does not ask).

    With `vacuum`, VACUUM too (as after a bulk load, so that autovacuum does not come by to do it during
    the measurement): the new rows' visibility map is set and their hint bits written, as on a database
    that has lived with them.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)" if vacuum else "ANALYZE"))


def _prepare(url: str, experts: int, instances: int) -> tuple[str, list[float]]:
    """Fill the database; return the accounts for Locust and three rounds of `api_rounds`."""
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessions(engine)
    accounts = [("bench-sup", "bench-sup-password")] + [(f"bench{n}", f"bench{n}-password")
                                                         for n in range(1, experts + 1)]
    with sessions.begin() as s:
        deploy.deploy_files(s, {"five_tasks.bpmn": (HERE / "five_tasks.bpmn").read_bytes()}, by="bench")
        users.add_user(s, accounts[0][0], accounts[0][1], ["supervisor"])
        for name, password in accounts[1:]:
            users.add_user(s, name, password, ["expert"])
    for first in range(0, instances, 100):
        with sessions.begin() as s:
            for _ in range(min(100, instances - first)):
                runtime.start_instance(s, "five_tasks", by="bench")
    analyze(engine)
    rates = api_rounds(sessions, 3)
    engine.dispose()
    runtime.forget_cache()
    return ",".join(f"{u}:{p}" for u, p in accounts), rates


def api_rounds(sessions: Any, rounds: int) -> list[float]:
    """The engine API's completions per second on this database (wall clock, one connection, no pause),
    one figure per round of 40 cases from start to end (a round lasts about a second)."""
    rates = []
    for _round in range(rounds):
        started = time.perf_counter()
        done = complete_cases(sessions, API_ROUND)
        rates.append(done / (time.perf_counter() - started))
    return rates


def complete_cases(sessions: Any, cases: int) -> int:
    """Start `cases` cases of the five-task process and complete their tasks through the engine API, each
    task in its own transaction, found as a client finds it (the case's open tasks); return how many."""
    for _ in range(cases):
        with sessions.begin() as s:
            iid = runtime.start_instance(s, "five_tasks", by="bench-api").id
        for step in range(1, CASE_TASKS + 1):
            with sessions.begin() as s:
                [row] = inbox.tasks(s, instance_id=iid)
                runtime.complete_task(s, row.id, {f"v{step}": step}, by="bench-api")
    return cases * CASE_TASKS


def _api_after(url: str, rounds: int, mark: Callable[[], float]) -> tuple[list[float], tuple[float, float, float, int]]:
    """`api_rounds` again once Locust is done, on the database as the run left it; also return the rounds'
    span (what `mark` returned just before and after them: time.time, or a `CpuShare` sample's), the CPU
    seconds of this thread for them (not the process's: a `CpuShare` samples /proc in a thread of its own)
    and their completions."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    try:
        began, cpu = mark(), time.thread_time()
        rates = api_rounds(sessions, rounds)
        cpu = time.thread_time() - cpu
        return rates, (began, mark(), cpu, rounds * API_ROUND * CASE_TASKS)
    finally:
        engine.dispose()
        runtime.forget_cache()


def _completions(url: str, start: float | None = None, end: float | None = None) -> tuple[int, float, float]:
    """Return how many tasks the simulated experts completed (between `start` and `end`, time.time, if given),
    and when the first and the last of them were (time.time; 0.0 if none)."""
    engine = make_engine(url)
    when = [AuditEvent.kind == "task_completed", AuditEvent.actor.like("bench%"), AuditEvent.actor != "bench-api"]
    if start is not None and end is not None:
        when += [AuditEvent.at >= datetime.fromtimestamp(start, UTC), AuditEvent.at <= datetime.fromtimestamp(end, UTC)]
    with make_sessions(engine).begin() as s:
        count, first, last = s.execute(select(func.count(), func.min(AuditEvent.at), func.max(AuditEvent.at))
                                       .where(*when)).one()
    engine.dispose()
    return int(count or 0), first.timestamp() if first else 0.0, last.timestamp() if last else 0.0


def _page_of(method: str, path: str) -> str | None:
    if path.startswith("/login"):
        return "sign in" if method == "POST" else None
    if path.startswith("/tasks/?"):
        return "inbox"
    if path.startswith("/tasks/"):
        return "complete task" if method == "POST" else "task page"
    if path.startswith("/supervisor/"):
        return "supervisor view"
    return None


def _server_times(log: Path) -> dict[str, list[int]]:
    times: dict[str, list[int]] = {}
    for line in log.read_text(errors="replace").splitlines():
        found = ACCESS.search(line)
        if found and (page := _page_of(found[1], found[2])):
            times.setdefault(page, []).append(int(found[4]))
    return times


def _pct(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(share * len(ordered)))]) if ordered else float("nan")


def run(kind: str, users_count: int, seconds: int, web_workers: int, threads: int, instances: int,
        scratch: Path, think: float) -> dict:
    """One Locust run against a fresh database; return the figures."""
    url, dropname = _new_database(kind, scratch)
    try:
        accounts, api_before = _prepare(url, users_count, instances)
        port = _free_port()
        log = scratch / f"access-{kind}-{users_count}.log"
        env = {**os.environ, "POLKU_DATABASE_URL": url, "POLKU_EMBEDDED_WORKER": "0",
               "POLKU_SECRET_KEY": "bench-" + secrets.token_hex(24), "POLKU_WEB_WORKERS": str(web_workers),
               "POLKU_WEB_THREADS": str(threads), "POLKU_BENCH_USERS": accounts, "POLKU_BENCH_THINK": str(think)}
        server = subprocess.Popen([str(BIN / "polku"), "serve", "--port", str(port), "--access-log", str(log)],
                                  env=env, cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.2)
            before = _completions(url)[0]
            prefix = scratch / f"locust-{kind}-{users_count}"
            load = os.getloadavg()[0]
            share = _share(server.pid, kind)
            began = time.perf_counter()
            locust = subprocess.Popen(
                [str(BIN / "locust"), "-f", str(HERE / "locust" / "locustfile.py"), "--headless",
                 "-u", str(users_count + 1), "-r", str(max(1, users_count)), "--run-time", f"{seconds}s",
                 "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary",
                 "--loglevel", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if share is not None:
                share.tree(LOAD, locust.pid)
            try:
                locust.wait(timeout=seconds + 120)
            except subprocess.TimeoutExpired:
                locust.kill()
                locust.wait()
            elapsed = time.perf_counter() - began
            completed, first, last = _completions(url)
            completed -= before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        # the engine API's rate again, after the run: the host's speed drifts within minutes, and the
        # run left the database larger; the median of all six rounds is the figure compared with
        api_after, api_work = _api_after(url, 3, share.sample if share is not None else time.time)
        api_rate = statistics.median(api_before + api_after)
        cpu = None
        if share is not None:
            share.stop()
            cpu = _cpu_figures(url, share, first + RAMP_UP, last, api_work)
        pages = {}
        with open(f"{prefix}_stats.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["Name"] in PAGES:
                    pages[row["Name"]] = {"rps": float(row["Requests/s"]), "p50": float(row["50%"]),
                                          "p95": float(row["95%"]), "p99": float(row["99%"]),
                                          "count": int(row["Request Count"]), "failures": int(row["Failure Count"])}
        server_times = _server_times(log)
        for page, figures in pages.items():
            measured = server_times.get(page, [])
            figures["server_p50"] = _pct(measured, 0.50)
            figures["server_p95"] = _pct(measured, 0.95)
        expert_requests = sum(pages.get(p, {}).get("count", 0) for p in ("inbox", "task page", "complete task"))
        return {"kind": kind, "users": users_count, "think": think, "workers": web_workers, "threads": threads,
                "pages": pages, "http_rate": completed / elapsed,
                "steady_rate": (completed - 1) / (last - first) if completed > 1 and last > first else float("nan"),
                "api_rate": api_rate, "api_rounds": api_before + api_after, "load": load, "seconds": elapsed,
                "completed": completed, "cpu": cpu, "tasks": instances * CASE_TASKS,
                "per_completion": expert_requests / completed if completed else float("nan")}
    finally:
        _drop_database(dropname)


def _share(server_pid: int, kind: str) -> CpuShare | None:
    """Start sampling the web processes' (and PostgreSQL's) CPU; None where /proc is not there to read."""
    if not cpu_share_available():
        return None
    share = CpuShare()
    share.tree(WEB, server_pid)
    if kind == "postgresql":
        share.command(SERVER, "postgres")
    share.start()
    return share


def _cpu_figures(url: str, share: CpuShare, start: float, end: float,
                 api: tuple[float, float, float, int]) -> dict[str, Any] | None:
    """Return the CPU per completion over HTTP between `start` and `end` (the steady part of the run), per
    group of processes, and the engine API's in its rounds after the run (its thread; PostgreSQL's server)."""
    steady = share.between(start, end)
    count = _completions(url, steady.start, steady.end)[0] if steady is not None else 0
    if steady is None or not count:  # a run too short to leave two samples past the ramp-up
        return None
    api_began, api_ended, api_cpu, api_count = api
    api_share: Share | None = share.between(api_began, api_ended)
    return {"start": steady.start, "end": steady.end, "completions": count,
            "ms": {group: 1000 * seconds / count for group, seconds in steady.seconds.items()},
            "rest_ms": 1000 * steady.rest / count, "busy": steady.busy / steady.total if steady.total else 0.0,
            "api_ms": 1000 * api_cpu / api_count,
            "api_server_ms": 1000 * api_share.seconds[SERVER] / api_count
            if api_share is not None and SERVER in api_share.seconds else None}


def print_run(result: dict) -> None:
    """Print one run's table."""
    print(f"{result['kind']}, {result['users']} experts + 1 supervisor (pausing 0-{result['think']:g} s before a task),"
          f" {result['workers']} web processes x {result['threads']} threads, {result['seconds']:.0f} s,"
          f" load average {result['load']:.1f} at the start")
    print(f"  {'page':<16}{'req/s':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'server p50':>12}{'server p95':>12}"
          f"{'fails':>7}")
    for page in PAGES:
        f = result["pages"].get(page)
        if f:
            print(f"  {page:<16}{f['rps']:7.1f}{f['p50']:8.0f}{f['p95']:8.0f}{f['p99']:8.0f}{f['server_p50']:12.0f}"
                  f"{f['server_p95']:12.0f}{f['failures']:7d}")
    ratio = result["http_rate"] / result["api_rate"] * 100 if result["api_rate"] else float("nan")
    steady = result["steady_rate"] / result["api_rate"] * 100 if result["api_rate"] else float("nan")
    print(f"  task completions over HTTP {result['http_rate']:.1f}/s over the run, {result['steady_rate']:.1f}/s from"
          f" the first to the last ({result['completed']} in all, {result['per_completion']:.1f} expert requests"
          f" each); engine API {result['api_rate']:.1f}/s (same database, wall clock; median of six rounds,"
          f" {min(result['api_rounds']):.0f}-{max(result['api_rounds']):.0f}/s, three before and three after the run)"
          f" = {ratio:.0f} % / {steady:.0f} %")
    if result["completed"] >= result["tasks"]:
        print(f"  every one of the {result['tasks']} tasks was completed before the run ended: the rate over the run"
              " is a lower bound (give more --instances)")
    cpu = result.get("cpu")
    if cpu:
        groups = ", ".join(f"{group} {ms:.2f} ms" for group, ms in cpu["ms"].items())
        server = f" + {SERVER} {cpu['api_server_ms']:.2f} ms" if cpu["api_server_ms"] is not None else ""
        print(f"  CPU per completion over HTTP ({cpu['completions']} completions,"
              f" {time.strftime('%H:%M:%S', time.localtime(cpu['start']))}-"
              f"{time.strftime('%H:%M:%S', time.localtime(cpu['end']))}): {groups}, other {cpu['rest_ms']:.2f} ms;"
              f" the machine {100 * cpu['busy']:.0f} % busy ({os.cpu_count()} cores). Engine API, its rounds after"
              f" the run: {cpu['api_ms']:.2f} ms in its thread{server}")


def _nice_top(value: float) -> float:
    """Return a round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    step = 10 ** max(0, len(str(int(value or 1))) - 1)
    for factor in (1, 2, 5, 10):
        if factor * step >= value:
            return float(factor * step)
    return float(10 * step)


def chart(results: list[dict], path: Path) -> None:
    """Write an SVG line chart: client p95 per page (one colour each) against the number of simulated
    experts, SQLite solid and PostgreSQL dashed, the legend beside the plot."""
    width, height, left, right, top_edge, bottom = 820, 400, 70, 590, 40, 50
    levels = sorted({r["users"] for r in results})
    colours = {"inbox": "#1f77b4", "task page": "#d62728", "complete task": "#2ca02c", "supervisor view": "#9467bd"}
    top = _nice_top(max((f["p95"] for r in results for page, f in r["pages"].items() if page in colours), default=1))
    kinds = sorted({r["kind"] for r in results}, key=lambda k: k != "sqlite")

    def x(u: int) -> float:
        span = (levels[-1] - levels[0]) or 1
        return left + (u - levels[0]) / span * (right - left) if len(levels) > 1 else (left + right) / 2

    def y(ms: float) -> float:
        return height - bottom - ms / top * (height - bottom - top_edge)

    load = ", ".join(f"{r['kind']} {r['users']}: {r['load']:.1f}" for r in results)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'),
             f'<rect width="{width}" height="{height}" fill="white"/>',
             (f'<text x="{left}" y="20" font-size="14" font-weight="bold">Page latency (p95, Locust) against '
              'simulated experts, 2 gunicorn workers</text>'),
             f'<text x="{left}" y="{height - 6}" font-size="10" fill="#555">load average at each start: {load}</text>']
    for tick in range(6):
        ms = top * tick / 5
        parts.append(f'<line x1="{left}" y1="{y(ms):.1f}" x2="{right}" y2="{y(ms):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms:,.0f}</text>')
    parts += [f'<line x1="{left}" y1="{height - bottom}" x2="{right}" y2="{height - bottom}" stroke="black"/>',
              f'<line x1="{left}" y1="{top_edge}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
              (f'<text x="{(left + right) / 2}" y="{height - bottom + 32}" text-anchor="middle">'
               'simulated experts (+ 1 supervisor)</text>'),
              (f'<text x="16" y="{(height - bottom + top_edge) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(height - bottom + top_edge) / 2})">p95 latency, ms</text>')]
    for u in levels:
        parts.append(f'<text x="{x(u):.1f}" y="{height - bottom + 16}" text-anchor="middle">{u}</text>')
    row = 0
    for kind in kinds:
        dash = ' stroke-dasharray="6 4"' if kind != "sqlite" else ""
        for page, colour in colours.items():
            points = [(r["users"], r["pages"][page]["p95"]) for r in sorted(results, key=lambda r: r["users"])
                      if r["kind"] == kind and page in r["pages"]]
            if not points:
                continue
            line = " ".join(f"{x(u):.1f},{y(ms):.1f}" for u, ms in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{line}"/>')
            for u, ms in points:
                parts.append(f'<circle cx="{x(u):.1f}" cy="{y(ms):.1f}" r="3" fill="{colour}">'
                             f'<title>{kind}, {page}, {u} experts: p95 {ms:,.0f} ms</title></circle>')
            legend_y = top_edge + 8 + 18 * row
            parts.append(f'<line x1="{right + 20}" y1="{legend_y}" x2="{right + 50}" y2="{legend_y}" '
                         f'stroke="{colour}" stroke-width="2"{dash}/>')
            parts.append(f'<text x="{right + 56}" y="{legend_y + 4}">{kind}: {page}</text>')
            row += 1
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def main() -> None:
    """Run every database at every user level and print the tables (and the chart)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="simulated experts (default 20)")
    parser.add_argument("--levels", help="several user counts, e.g. 5,10,20 (overrides --users)")
    parser.add_argument("--seconds", type=int, default=60, help="how long Locust runs at each level (default 60)")
    parser.add_argument("--dbs", default="sqlite,postgresql", help=DBS_HELP)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn web processes (default 2)")
    parser.add_argument("--threads", type=int, default=Settings.web_threads,
                        help=f"request threads per web process, 1 for gunicorn's sync worker (default {Settings.web_threads})")
    parser.add_argument("--instances", type=int, default=6000,
                        help="cases waiting at their first task (default 6000; five tasks each: enough for 300"
                             " completions/s for 100 s)")
    parser.add_argument("--think", type=float, default=0.2,
                        help="an expert's pause before each task, 0 to this many seconds (0: none)")
    parser.add_argument("--chart", type=Path, help="write the p95-against-users SVG here")
    args = parser.parse_args()
    if args.think < 0:
        parser.error("--think must be 0 or more seconds")
    at_least_one(parser, args, "users", "seconds", "web_workers", "threads", "instances")
    try:
        levels = [int(v) for v in args.levels.split(",")] if args.levels else [args.users]
    except ValueError:
        parser.error(f"--levels {args.levels}: user counts separated by commas, e.g. 5,10,20")
    if any(level < 1 for level in levels):
        parser.error(f"--levels {args.levels}: every user count must be 1 or more")
    kinds = database_kinds(parser, args.dbs)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for level in levels:
                result = run(kind, level, args.seconds, args.web_workers, args.threads, args.instances, Path(tmp),
                             args.think)
                print_run(result)
                results.append(result)
    if args.chart:
        chart(results, args.chart)
        print(f"chart: {args.chart}")
    if results:
        print(f"(medians over runs of the HTTP/API ratio: "
              f"{statistics.median(r['http_rate'] / r['api_rate'] * 100 for r in results):.0f} %)")


if __name__ == "__main__":
    main()
