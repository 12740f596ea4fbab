"""Instructions per task completion, counted by valgrind's callgrind: the web's expert cycle and the engine API.

Run: .venv/bin/python bench/instructions.py [--dbs sqlite,postgresql] [--counts 10,40] [--code DIR]
     (needs valgrind: `apt-get install valgrind`; about 3 minutes per database, 4–5 with --code)

Wall-clock and CPU-time benchmarks on a shared 2-core machine move by ±10–20 % from run to run, more
than most single changes to the web's work: this one counts the CPU instructions the Python process
executes (its own, in user space: not the kernel's, not PostgreSQL's server), which do not depend on
the machine's load. Per database a database is filled once (`bench/http.py`'s: the five-task bench
process, experts, 400 cases at their first task) and copied for each count, so every process starts
from the same state. Then, each in a new process under `valgrind --tool=callgrind`:

- **web**: the app (`create_app` and `settle_heap`, as in a web process of `polku serve`; Flask's test client: no gunicorn, no sockets) as one signed-in
  expert of `bench/http.py`'s Locust users works: open the group inbox when the redirect gives no next
  task, open a task, complete it with valid data, follow the redirect to the case's next task;
- **engine API**: `bench/http.py`'s engine API round: start a case, complete its five tasks, each in
  its own transaction.

Each runs the first count of completions (after a warm-up of 20) and then, in a new process, the
second; the difference divided by the difference of the counts is the cost of one completion,
start-up and warm-up left out. `--code DIR` runs the web cycle on another checkout of Polku (a git
worktree of an earlier commit) beside this one's: the before and after of a change, exactly.
This measures; it asserts nothing. Python's hash seed is fixed (PYTHONHASHSEED=0), the same inputs
are drawn (a seeded random): runs of the same code have given figures within about 1 % of each other.
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

# bench/http.py sits beside this file: the folder must not shadow the standard library's `http` package.
_FOLDER = os.path.realpath(os.path.dirname(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _FOLDER]

import argparse
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
TASK_LINK = re.compile(r'href="/tasks/([0-9a-f-]{36})"')
NEXT_TASK = re.compile(r"/tasks/([0-9a-f-]{36})$")
COLLECTED = re.compile(r"Collected : (\d+)")
WARM_UP = 20  # completions before the counted ones: four cases' tasks
CASE_TASKS = 5  # bench/http.py's CASE_TASKS (its module is loaded only later): the engine API completes whole cases



def web_cycle(url: str, completions: int) -> None:
    """Sign in as the first bench expert and complete tasks as bench/http.py's experts do."""
    os.environ["POLKU_DATABASE_URL"] = url
    os.environ.setdefault("POLKU_SECRET_KEY", "instructions-bench-" + "k" * 32)
    from engine.config import Settings
    from webui import create_app, server

    app = create_app(Settings.from_env())
    server.settle_heap()  # as `polku serve` does in each web process
    client = app.test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True))[1]  # type: ignore[index]
    signed = client.post("/login", data={"csrf_token": token, "username": "bench1", "password": "bench1-password"})
    assert signed.status_code == 302, f"sign-in answered {signed.status_code}"
    chosen, following = random.Random(7), None
    for _ in range(WARM_UP + completions):
        task_id, following = following, None
        if task_id is None:
            task_id = chosen.choice(TASK_LINK.findall(client.get("/tasks/?tab=group").get_data(as_text=True)))
        page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
        data = {"csrf_token": CSRF.search(page)[1],  # type: ignore[index]
                **{name: str(chosen.randint(1, 999)) for name in re.findall(r'name="(v[1-5])"', page)}}
        done = client.post(f"/tasks/{task_id}", data=data)
        assert done.status_code in (302, 303), f"completing answered {done.status_code}"
        found = NEXT_TASK.search(done.headers.get("Location") or "")
        following = found[1] if found else None


def engine_cycle(url: str, completions: int) -> None:
    """Complete tasks through the engine API as bench/http.py's engine API rounds do (`complete_cases`)."""
    from engine.db import make_engine, make_sessions

    http_bench = bench_module("http")  # it puts this checkout first on sys.path: the engine is counted here only
    http_bench.complete_cases(make_sessions(make_engine(url)), (WARM_UP + completions) // CASE_TASKS)


class Databases:
    """A filled database per kind, and fresh copies of it."""

    def __init__(self, kind: str, scratch: Path, instances: int):
        http_bench = bench_module("http")  # the parent measures this checkout's code only in its children
        self.kind, self.scratch, self.http = kind, scratch, http_bench
        self.url, self.name = http_bench._new_database(kind, scratch)
        http_bench._prepare(self.url, 2, instances)
        self.copies: list[str] = []

    def copy(self) -> str:
        """Return the URL of a new copy of the filled database."""
        if self.kind == "sqlite":
            source = Path(self.url.removeprefix("sqlite:///"))
            target = self.scratch / f"copy-{len(self.copies)}.db"
            shutil.copyfile(source, target)
            self.copies.append(str(target))
            return f"sqlite:///{target}"
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"{self.name}_c{len(self.copies)}"
        admin = make_url(self.url).set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        self.copies.append(name)
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.kind == "postgresql":
            for name in [*self.copies, self.name]:
                self.http._drop_database(name)


def count(kind: str, url: str, completions: int, code: Path) -> int:
    """Return the instructions a new process executes running `kind` ('web' or 'engine') on `url`."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(code)}
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out", sys.executable,
             str(Path(__file__).resolve()), "--child", kind, url, str(completions)],
            env=env, cwd=code, capture_output=True, text=True, check=False)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"the {kind} cycle failed under callgrind:\n{done.stderr[-3000:]}")
    return int(found[1])


def per_completion(databases: Databases, kind: str, counts: tuple[int, int], code: Path) -> float:
    low, high = (count(kind, databases.copy(), n, code) for n in counts)
    return (high - low) / (counts[1] - counts[0])


def _counts(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    """Return the two counts of `--counts`, or stop with a message saying what they must be."""
    try:
        low, high = (int(n) for n in text.split(","))
    except ValueError:
        parser.error(f"--counts {text}: two whole numbers, such as 10,40")
    if not 0 <= low < high or low % CASE_TASKS or high % CASE_TASKS:
        parser.error(f"--counts {text}: the first smaller than the second, both multiples of {CASE_TASKS} "
                     "(the engine API completes whole cases)")
    return low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", default="sqlite,postgresql", help=DBS_HELP)
    parser.add_argument("--counts", default="10,40", help="the two numbers of completions counted, multiples of 5 (default 10,40)")
    parser.add_argument("--instances", type=int, default=400, help="cases waiting in the filled database (default 400)")
    parser.add_argument("--code", type=Path, help="another checkout: its web cycle is counted beside this one's")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, completions = args.child
        sys.path.insert(0, os.getcwd())  # the checkout measured (cwd and PYTHONPATH name it)
        (web_cycle if kind == "web" else engine_cycle)(url, int(completions))  # validated by the parent
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    low, high = _counts(parser, args.counts)
    at_least_one(parser, args, "instances")
    kinds = database_kinds(parser, args.dbs)
    if args.code is not None and not (args.code / "webui" / "__init__.py").is_file():
        parser.error(f"--code {args.code}: not a checkout of Polku (no webui/__init__.py in it)")
    with tempfile.TemporaryDirectory() as scratch:
        for kind in kinds:
            databases = Databases(kind, Path(scratch), args.instances)
            try:
                web = per_completion(databases, "web", (low, high), ROOT)
                engine = per_completion(databases, "engine", (low, high), ROOT)
                print(f"{kind}: instructions per task completion (callgrind; {low} and {high} completions after "
                      f"{WARM_UP} of warm-up)")
                print(f"  web, the expert's cycle (inbox when no next task, task page, completion): {web / 1e6:6.2f} M")
                print(f"  engine API (a case's five tasks, one transaction each):                   {engine / 1e6:6.2f} M")
                print(f"  the web cycle costs {web / engine:.1f}x the engine API's completion in this process")
                if args.code:
                    other = per_completion(databases, "web", (low, high), args.code.resolve())
                    print(f"  web cycle of {args.code}: {other / 1e6:6.2f} M ({(web - other) / other:+.1%} here)")
            finally:
                databases.drop()


if __name__ == "__main__":
    main()
