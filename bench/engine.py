"""Engine benchmark: Polku's engine API against raw SpiffWorkflow, in one run, side by side.

Run: .venv/bin/python bench/engine.py [--instances 1000] [--loops 10,100,1000] [--touch 20000]

Prints task completions per CPU second for a 5-user-task process, the contenders taking turns
(20 instances each) so that each meets the same load on a shared machine, after a turn each that is
not counted (a warm-up: what a process does once, such as compiling statements and filling its caches,
belongs to no completion of a server that has been running):
  1. raw SpiffWorkflow in memory (no persistence at all);
  2. raw SpiffWorkflow stateless per task: load row, deserialize, complete, serialize, SQLite write;
  3. Polku's engine API: load, validate form, complete, persist task rows/variables/timers, audit
     hash chain, commit — one transaction per completion, on SQLite (WAL).
Then the cost of one completion after 10, 100 and 1,000 completed loop iterations, for Polku and
for raw stateless SpiffWorkflow (which stops finding the ready task after about 250 iterations).
This script imports SpiffWorkflow directly for the baseline: it measures, it is not product code.
"""

from __future__ import annotations

import os.path
import sys

# bench/ holds http.py: its folder must not shadow the standard library's `http` package (werkzeug needs it).
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(os.path.dirname(__file__))]

import argparse
import gc
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

# The raw baseline parses with SpiffWorkflow's own Camunda parser classes, as they are before Polku's
# engine.spiff registers its overrides (a copy taken before the engine is imported).
_RAW_OVERRIDES = dict(CamundaParser.OVERRIDE_PARSER_CLASSES)


class RawParser(CamundaParser):
    """SpiffWorkflow's Camunda parser without Polku's overrides."""

    OVERRIDE_PARSER_CLASSES = _RAW_OVERRIDES


HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from engine import deploy, inbox, runtime
from engine.db import make_engine, make_sessions, upgrade

SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
# CPU time of this process (SQLite runs in it too): steady on a busy shared machine, where wall-clock
# rates swing with everyone else's load. fsync waits are not counted; both sides use the same SQLite.
CLOCK = time.process_time


def _spec(name: str, process_id: str):
    parser = RawParser()
    parser.add_bpmn_file(str(HERE / name))
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def _ready_user_task(workflow):
    return workflow.get_next_task(state=TaskState.READY, manual=True)


class Rate:
    """CPU seconds spent and completions done by one contender, over all its rounds."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.done = 0

    def per_second(self) -> float:
        return self.done / self.spent


def raw_in_memory() -> tuple[Rate, Callable[[int], None]]:
    """Return the rate and a runner of `instances` more, with the workflow kept in memory."""
    spec, subs = _spec("five_tasks.bpmn", "five_tasks")
    rate = Rate()

    def run(instances: int) -> None:
        started = CLOCK()
        for _ in range(instances):
            wf = BpmnWorkflow(spec, subs)
            wf.do_engine_steps()
            while (task := _ready_user_task(wf)) is not None:
                task.data[f"v{rate.done % 5 + 1}"] = rate.done
                task.run()
                wf.do_engine_steps()
                rate.done += 1
        rate.spent += CLOCK() - started

    return rate, run


def _raw_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS wf (id INTEGER PRIMARY KEY, state TEXT)")
    return db


def _raw_step(db: sqlite3.Connection, wid: int, data: dict) -> bool:
    state = db.execute("SELECT state FROM wf WHERE id = ?", (wid,)).fetchone()[0]
    wf = SERIALIZER.deserialize_json(state)
    task = _ready_user_task(wf)
    if task is None:
        return False
    task.data.update(data)
    task.run()
    wf.do_engine_steps()
    db.execute("BEGIN")
    db.execute("UPDATE wf SET state = ? WHERE id = ?", (SERIALIZER.serialize_json(wf), wid))
    db.execute("COMMIT")
    return True


def raw_stateless(tmp: str) -> tuple[Rate, Callable[[int], None]]:
    """Return the rate and a runner of `instances` more, loading and saving the whole workflow around each task."""
    spec, subs = _spec("five_tasks.bpmn", "five_tasks")
    db = _raw_db(f"{tmp}/raw.db")
    rate = Rate()

    def run(instances: int) -> None:
        for _ in range(instances):
            wf = BpmnWorkflow(spec, subs)
            wf.do_engine_steps()
            wid = db.execute("INSERT INTO wf (state) VALUES (?)", (SERIALIZER.serialize_json(wf),)).lastrowid
            while True:  # the same span as Polku's rows: completing one task, the start not included
                t = CLOCK()
                more = _raw_step(db, wid, {"v": rate.done})
                rate.spent += CLOCK() - t
                if not more:
                    break
                rate.done += 1

    return rate, run


def _polku(tmp: str, name: str, files: list[str]):
    engine = make_engine(f"sqlite:///{tmp}/{name}.db")
    upgrade(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        deploy.deploy_files(s, {f: (HERE / f).read_bytes() for f in files}, by="bench")
    return sessions


def polku_api(tmp: str, *, cold: bool = False) -> tuple[Rate, Rate, Callable[[int], None]]:
    """Return the rate of load+complete+persist+audit+commit, the rate of next-task inbox lookups, and a runner.

    cold: the instance is not held in memory before each completion (as when another web process
    served the previous step): it is loaded from the database every time.
    """
    sessions = _polku(tmp, "polku-cold" if cold else "polku", ["five_tasks.bpmn"])
    rate, lookups = Rate(), Rate()

    def run(instances: int) -> None:
        for _ in range(instances):
            with sessions.begin() as s:
                iid = runtime.start_instance(s, "five_tasks", by="bench").id
            for step in range(1, 6):
                t = CLOCK()
                with sessions.begin() as s:  # what a caller does to find the task: one inbox query
                    [task] = inbox.tasks(s, instance_id=iid)
                if cold:
                    runtime.forget_cache()
                t2 = CLOCK()
                with sessions.begin() as s:
                    runtime.complete_task(s, task.id, {f"v{step}": rate.done}, by="bench")
                rate.spent += CLOCK() - t2
                lookups.spent += t2 - t
                rate.done += 1
                lookups.done += 1

    return rate, lookups, run


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(count: int, tmp: str) -> tuple[float, int, float]:
    """Start `count` instances (each waits at its first user task) and touch each once more.

    Return (RSS growth in MB, instances held by the cache, the cache's estimate in MB).
    """
    sessions = _polku(tmp, "rss", ["five_tasks.bpmn"])
    with sessions.begin() as s:  # warm up: parsed spec, caches of the first version
        runtime.start_instance(s, "five_tasks", by="bench")
    gc.collect()
    before = _rss_bytes()
    ids = []
    for _ in range(count):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "five_tasks", by="bench").id)
    for iid in ids:  # touch every open instance again: read its variables through the runtime
        with sessions.begin() as s:
            runtime.instance_variables(s, iid)
    gc.collect()
    return (_rss_bytes() - before) / 2**20, len(runtime._cache), runtime._cache.bytes / 2**20


# completions timed at each loop mark; their median is the cost (with 20, one burst of the host's load
# doubled a mark's median now and then)
SAMPLES = 50


def _sample(fn, count: int = SAMPLES) -> float:
    times = []
    for _ in range(count):
        t = CLOCK()
        fn()
        times.append(CLOCK() - t)
    return statistics.median(times) * 1000


def polku_loop_costs(marks: list[int], tmp: str) -> dict[int, float]:
    """Return the median ms of one completion after N completed loop iterations (Polku)."""
    sessions = _polku(tmp, "loop", ["loop.bpmn"])
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "loop", by="bench").id

    def complete() -> None:
        with sessions.begin() as s:
            [task] = inbox.tasks(s, instance_id=iid)
            runtime.complete_task(s, task.id, {"more": True}, by="bench")

    costs, done = {}, 0
    for mark in marks:
        while done < mark:
            complete()
            done += 1
        costs[mark] = _sample(complete)
        done += SAMPLES
    return costs


def raw_loop_costs(marks: list[int], tmp: str) -> dict[int, float | str]:
    """Return the median ms of one stateless raw completion after N loop iterations."""
    spec, subs = _spec("loop.bpmn", "loop")
    db = _raw_db(f"{tmp}/rawloop.db")
    wf = BpmnWorkflow(spec, subs)
    wf.do_engine_steps()
    wid = db.execute("INSERT INTO wf (state) VALUES (?)", (SERIALIZER.serialize_json(wf),)).lastrowid
    costs: dict[int, float | str] = {}
    done = 0

    def complete() -> None:
        if not _raw_step(db, wid, {"more": True}):
            raise LookupError("no ready task found")

    for mark in marks:
        try:
            while done < mark:
                complete()
                done += 1
            costs[mark] = _sample(complete)
            done += SAMPLES
        except (LookupError, RecursionError) as err:
            costs[mark] = f"fails after {done} iterations ({type(err).__name__}: {err})"
            break
    return costs


ROUNDS = 20  # instances per contender per turn


def main() -> None:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000,
                        help="instances per contender, counted (with 200 the warm ratio moved between 86 and 112 %% within an hour)")
    parser.add_argument("--loops", default="10,100,1000")
    parser.add_argument("--touch", type=int, default=20_000, help="open instances for the RSS line (0: skip)")
    args = parser.parse_args()
    if args.instances < 1:
        parser.error("--instances must be 1 or more")
    if args.touch < 0:
        parser.error("--touch must be 0 or more")
    try:
        marks = [int(x) for x in args.loops.split(",")]
    except ValueError:
        parser.error(f"--loops takes whole numbers separated by commas, not {args.loops!r}")
    if not marks or min(marks) < 0 or marks != sorted(marks):
        parser.error("--loops takes rising counts of 0 or more, e.g. 10,100,1000")
    with tempfile.TemporaryDirectory() as tmp:
        mem_rate, mem_run = raw_in_memory()
        raw_rate, raw_run = raw_stateless(tmp)
        warm_rate, lookups, warm_run = polku_api(tmp)
        cold_rate, _lookups, cold_run = polku_api(tmp, cold=True)
        for run in (mem_run, raw_run, warm_run, cold_run):  # the warm-up turn, not counted
            run(ROUNDS)
        for counted in (mem_rate, raw_rate, warm_rate, cold_rate, lookups):
            counted.spent, counted.done = 0.0, 0
        load = os.getloadavg()[0]
        # the contenders take turns, ROUNDS instances at a time: a shared machine's load changes over a
        # run, and run one after the other they would each meet a different share of it
        for start in range(0, args.instances, ROUNDS):
            count = min(ROUNDS, args.instances - start)
            for run in (mem_run, raw_run, warm_run, cold_run):
                run(count)
        mem, raw, polku, cold = (r.per_second() for r in (mem_rate, raw_rate, warm_rate, cold_rate))
        lookup_ms = lookups.spent / lookups.done * 1000
        print(f"5-user-task process, {args.instances} instances ({args.instances * 5} completions each,"
              f" in turns of {ROUNDS} instances, after a warm-up turn each); rates per CPU second,"
              f" load average {load:.1f} at the start,"
              f" {os.getloadavg()[0]:.1f} at the end")
        print(f"  raw SpiffWorkflow in memory            {mem:9.0f} completions/s")
        print(f"  raw SpiffWorkflow stateless + SQLite   {raw:9.0f} completions/s")
        print(f"  Polku engine API, warm (instance held) {polku:9.0f} completions/s"
              f"  = {polku / raw * 100:.0f} % of raw stateless")
        print(f"  Polku engine API, cold (read from DB)  {cold:9.0f} completions/s"
              f"  = {cold / raw * 100:.0f} % of raw stateless")
        print(f"  (finding the next task with an inbox query costs another {lookup_ms:.2f} ms, not included;"
              " the raw baseline finds it in memory)")
        print(f"cost of one completion after N completed loop iterations (median of {SAMPLES}, ms)")
        polku_costs = polku_loop_costs(marks, tmp)
        raw_costs = raw_loop_costs(marks, tmp)
        for mark in marks:
            raw_text = raw_costs.get(mark, "not reached")
            raw_text = f"{raw_text:.2f}" if isinstance(raw_text, float) else raw_text
            print(f"  N={mark:5d}  Polku {polku_costs[mark]:7.2f}   raw stateless {raw_text}")
        ratio = polku_costs[marks[-1]] / polku_costs[marks[0]]
        print(f"  Polku cost at N={marks[-1]} is {ratio:.2f}x the cost at N={marks[0]}")
        if args.touch:
            grown, held, estimate = rss_growth(args.touch, tmp)
            print(f"RSS growth after touching {args.touch:,} open instances: {grown:.0f} MB"
                  f" (instance cache holds {held:,}, ~{estimate:.0f} MB by its estimate;"
                  " POLKU_CACHE_INSTANCES / POLKU_CACHE_MB bound it)")


if __name__ == "__main__":
    main()
