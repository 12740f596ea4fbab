"""Run a conformance case three ways and say what came out.

- `straight`: in this process, one database session per step, every cache left warm.
- `reload`: in this process, but before every step everything held in memory is dropped (the
  runtime's instance cache and the deploy module's version, file and spec caches), so each step
  rebuilds the specs and the instance from the database.
- `cli`: every step is a new OS process (`.venv/bin/polku …`) on the case's own SQLite file; the
  outcome is then read from that file through the API.

Every case starts from a copy of a database its models were deployed in (the same way: by the
API, or by `polku deploy`), so one deploy serves many cases and no case sees another's instances.
`run_case(case, mode)` returns an `Outcome` (the deploy refusal, or the observed instances, and
the first step that failed); `mismatches(case, outcome)` lists how it differs from the case's
expectations (empty: the case holds). `run_cases` runs many, the CLI ones two at a time in the
background while the in-process ones run.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .cases import Case, Expect, Step

MODES = ("straight", "reload", "cli")
MODELS = Path(__file__).parent / "models"
ROOT = Path(__file__).resolve().parents[2]
POLKU = ROOT / ".venv" / "bin" / "polku"
ACTOR = "conformance"
WORKER = "conformance-worker"
FIRE_SECONDS = 20
_alembic_lock = threading.Lock()
CLI_SECONDS = 60


@dataclass
class Outcome:
    """What one case did in one mode."""

    case: str
    mode: str
    refusal: list[dict[str, Any]] | None = None  # deploy problems (as_dict) when deploy refused
    instances: list[dict[str, Any]] = field(default_factory=list)  # observed instances, main first
    error: str | None = None  # the first step that failed, and why
    seconds: float = 0.0


class StepFailed(Exception):
    """A step of a case raised or exited non-zero."""


def _instant(step: Step) -> datetime:
    if step.args.get("at"):
        return datetime.fromisoformat(step.args["at"])
    return datetime.now(UTC) + step.args["after"]


def _path(events: list[dict[str, Any]]) -> list[str]:
    """Return the element ids an instance went through, as its audit trail records them."""
    path: list[str] = []
    for event in events:
        if event["kind"] == "path_taken":
            path.extend(event["data"].get("elements", []))
        elif event["kind"] == "task_completed" and event["element_id"]:  # a person's step runs outside the engine steps
            path.append(event["element_id"])
    return path


def _observation(summary: dict[str, Any], events: list[dict[str, Any]], stuck: str | None) -> dict[str, Any]:
    return {"id": summary["id"], "process_id": summary["process_id"], "status": summary["status"], "stuck": stuck,
            "path": _path(events), "variables": summary["variables"],
            "tasks": sorted(t["element_id"] for t in summary["tasks"]),
            "ready": sorted(t["element_id"] for t in summary["tasks"] if t["state"] == "ready"),
            "incidents": [(i["element_id"], i["message"]) for i in summary["incidents"]]}


# ---------------------------------------------------------------------------------------------
# In this process


def forget_everything() -> None:
    """Drop every process-wide cache the engine keeps of instances, versions, files and specs."""
    from engine import deploy, runtime

    runtime.forget_cache()
    for name in ("_versions", "_files_by_deployment"):  # deploy's per-database caches
        cache = getattr(deploy, name, None)
        if isinstance(cache, dict):
            cache.clear()
    for value in vars(deploy).values():  # the parsed specs (lru_cache)
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


class InProcess:
    """Drive a case through the engine's Python API on a fresh SQLite database."""

    def __init__(self, workdir: Path, reload: bool):
        from engine.db import make_engine, make_sessions, upgrade

        self.reload = reload
        self.engine = make_engine(f"sqlite:///{workdir}/conformance.db")
        with _alembic_lock:  # Alembic keeps its context in module globals: one migration at a time
            upgrade(self.engine)
        self.sessions = make_sessions(self.engine)

    def close(self) -> None:
        """Release the database."""
        self.engine.dispose()

    def deploy(self, files: dict[str, bytes]) -> list[dict[str, Any]] | None:
        """Deploy; return the problems when deploy refuses."""
        from engine import deploy
        from engine.errors import InvalidModel

        try:
            with self.sessions.begin() as session:
                deploy.deploy_files(session, files, by=ACTOR)
        except InvalidModel as err:
            return [p.as_dict() for p in err.problems]
        return None

    def run(self, step: Step) -> int | None:
        """Run one step in its own transaction; return the instance id a start created."""
        from sqlalchemy import select

        from engine import external, runtime, timers
        from engine.models import Task, TaskStatus

        if self.reload:
            forget_everything()
        a = step.args
        if step.kind == "fire":
            stop = threading.Event()
            guard = threading.Timer(FIRE_SECONDS, stop.set)  # a timer that never stops firing must not hang us
            guard.start()
            try:
                timers.fire_due_timers(self.sessions, now=_instant(step), worker_id=ACTOR, stop=stop)
            finally:
                guard.cancel()
            if stop.is_set():
                raise StepFailed(f"firing timers did not end within {FIRE_SECONDS} s")
            return None
        with self.sessions.begin() as session:
            if step.kind == "start":
                instance = runtime.start_instance(session, a["process"], by=ACTOR, data=a["data"],
                                                  business_key=a["key"])
                return instance.id
            if step.kind == "complete":
                task = session.scalars(select(Task).where(Task.element_id == a["element"],
                                                          Task.state == TaskStatus.READY)
                                       .order_by(Task.created_at, Task.id)).first()
                if task is None:
                    raise StepFailed(f"no ready user task '{a['element']}'")
                runtime.complete_task(session, task.id, a["data"], by=ACTOR)
            elif step.kind == "message":
                runtime.deliver_message(session, a["name"], by=ACTOR, data=a["data"], business_key=a["key"])
            elif step.kind == "signal":
                runtime.broadcast_signal(session, a["name"], by=ACTOR, data=a["data"])
            elif step.kind == "external":
                locked = external.fetch_and_lock(session, WORKER, [a["topic"]], max_tasks=1, lock_seconds=60)
                if not locked:
                    raise StepFailed(f"no external task of topic '{a['topic']}' to fetch")
                if a["fail"] is not None:
                    external.fail(session, locked[0].id, WORKER, a["fail"], retries=a["retries"])
                else:
                    external.complete(session, locked[0].id, WORKER, a["complete"] or {})
            else:
                raise ValueError(f"unknown step {step.kind}")
        return None

    def observe(self, main_id: int | None) -> list[dict[str, Any]]:
        """Return every instance of the database as an observation, the main one first."""
        from sqlalchemy import select

        from engine import audit, runtime
        from engine.models import Instance

        if self.reload:
            forget_everything()
        with self.sessions.begin() as session:
            ids = list(session.scalars(select(Instance.id).order_by(Instance.id)))
            ids.sort(key=lambda i: i != main_id)
            stuck = {s["instance_id"]: s["reason"] for s in runtime.stuck_instances(session)}
            return [_observation(runtime.instance_summary(session, i),
                                 [audit.event_dict(e) for e in audit.history(session, i)], stuck.get(i)) for i in ids]


# ---------------------------------------------------------------------------------------------
# Through the CLI, a new OS process per step


class Cli:
    """Drive a case through `polku`, every step a new OS process."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{workdir}/conformance.db",
                    "POLKU_ENV": "development"}
        self.known: list[dict[str, Any]] = []  # ready tasks of the last printed instance summary

    def close(self) -> None:
        """Nothing to release: every step was its own process."""

    def polku(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, Any]:
        """Run one polku command; return (exit code, parsed JSON output)."""
        done = subprocess.run([str(POLKU), "--json", *args], check=False, cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=CLI_SECONDS)
        if done.returncode not in ok:
            lines = [x for x in done.stderr.strip().splitlines() if x.strip()]
            raise StepFailed(f"`polku {args[0]}` exit {done.returncode}: {lines[-1] if lines else '(no message)'}")
        try:
            return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None
        except json.JSONDecodeError:
            raise StepFailed(f"`polku {args[0]}` printed no JSON: {done.stdout[:200]}") from None

    def deploy(self, files: dict[str, bytes]) -> list[dict[str, Any]] | None:
        """Deploy; return the problems when deploy refuses."""
        paths = []
        for name, content in files.items():
            (self.workdir / name).write_bytes(content)
            paths.append(name)
        code, out = self.polku("deploy", *paths, "--by", ACTOR, ok=(0, 3))
        return out["problems"] if code == 3 else None

    def _remember(self, summary: dict[str, Any]) -> None:
        self.known = [t for t in summary.get("tasks", []) if t["state"] == "ready"]

    def _task_id(self, element: str) -> str:
        for task in self.known:
            if task["element_id"] == element:
                return task["id"]
        _code, tasks = self.polku("tasks")
        ready = sorted((t for t in tasks if t["element_id"] == element and t["state"] == "ready"),
                       key=lambda t: t["created_at"])
        if not ready:
            raise StepFailed(f"no ready user task '{element}'")
        return ready[0]["id"]

    def run(self, step: Step) -> int | None:
        """Run one step as its own process(es); return the instance id a start created."""
        a = step.args
        data = json.dumps(a.get("data") or {})
        if step.kind == "start":
            args = ["start", a["process"], "--data", data, "--by", ACTOR]
            if a["key"]:
                args += ["--business-key", a["key"]]
            _code, out = self.polku(*args)
            self._remember(out)
            return out["id"]
        if step.kind == "complete":
            task_id = self._task_id(a["element"])
            _code, out = self.polku("complete", task_id, "--data", data, "--by", ACTOR)
            self._remember(out)
            return None
        self.known = []
        if step.kind == "message":
            args = ["message", a["name"], "--data", data, "--by", ACTOR]
            if a["key"]:
                args += ["--business-key", a["key"]]
            self.polku(*args)
        elif step.kind == "signal":
            self.polku("signal", a["name"], "--data", data, "--by", ACTOR)
        elif step.kind == "fire":
            self.polku("fire-timers", "--now", _instant(step).isoformat())
        elif step.kind == "external":
            _code, locked = self.polku("external", "fetch", "--worker", WORKER, "--topic", a["topic"],
                                       "--lock-seconds", "60", "--max", "1")
            if not locked:
                raise StepFailed(f"no external task of topic '{a['topic']}' to fetch")
            task_id = str(locked[0]["id"])
            if a["fail"] is not None:
                args = ["external", "fail", task_id, "--worker", WORKER, "--message", a["fail"]]
                if a["retries"] is not None:
                    args += ["--retries", str(a["retries"])]
                self.polku(*args)
            else:
                self.polku("external", "complete", task_id, "--worker", WORKER,
                           "--data", json.dumps(a["complete"] or {}))
        else:
            raise ValueError(f"unknown step {step.kind}")
        return None

    def observe(self, main_id: int | None) -> list[dict[str, Any]]:
        """Read the outcome from the case's database (the steps were the OS processes, not this).

        This process never held anything of this database, so there is no cache to drop (and
        dropping the engine's caches here would disturb the in-process runs going on meanwhile).
        """
        reader = InProcess(self.workdir, reload=False)
        try:
            return reader.observe(main_id)
        finally:
            reader.close()


# ---------------------------------------------------------------------------------------------
# One case, many cases


# Deployed databases to copy: every case starts from a copy, so deploying is shared, state is not.
_templates: dict[tuple[str, tuple[str, ...]], tuple[Path, list[dict[str, Any]] | None]] = {}
_template_lock = threading.Lock()
_template_root = Path(tempfile.mkdtemp(prefix="conformance-templates-"))
atexit.register(shutil.rmtree, _template_root, True)


def _build_template(kind: str, files: tuple[str, ...]) -> tuple[Path, list[dict[str, Any]] | None]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=_template_root))
    driver: InProcess | Cli = Cli(workdir) if kind == "cli" else InProcess(workdir, reload=False)
    try:
        problems = driver.deploy({name: (MODELS / name).read_bytes() for name in files})
    finally:
        driver.close()
    return workdir / "conformance.db", problems


def deployed_database(kind: str, files: list[str]) -> tuple[Path, list[dict[str, Any]] | None]:
    """Return a database holding `files` deployed the `kind` way ("cli" or "api"), or deploy's refusal.

    One deploy of every model that a case expects to run serves all such cases; when that deploy
    is refused (some model is not accepted yet), each case's own files are deployed on their own.
    """
    from .cases import CASES

    wanted = tuple(sorted(files))
    shared = tuple(sorted({f for c in CASES if c.refused is None for f in c.files}))
    with _template_lock:
        if set(wanted) <= set(shared):
            if (kind, shared) not in _templates:
                _templates[(kind, shared)] = _build_template(kind, shared)
            if _templates[(kind, shared)][1] is None:
                return _templates[(kind, shared)]
        if (kind, wanted) not in _templates:
            _templates[(kind, wanted)] = _build_template(kind, wanted)
        return _templates[(kind, wanted)]


def run_case(case: Case, mode: str) -> Outcome:
    """Run a case's steps in `mode` on a copy of a database its models are deployed in; observe the result."""
    began = time.monotonic()
    outcome = Outcome(case.name, mode)
    try:
        template, outcome.refusal = deployed_database("cli" if mode == "cli" else "api", case.files)
    except Exception as err:  # noqa: BLE001 - a deploy that crashes is this case's finding, not the suite's end
        outcome.error = f"deploy: {type(err).__name__}: {_first_line(err)}"
        outcome.seconds = time.monotonic() - began
        return outcome
    if outcome.refusal is not None:
        outcome.seconds = time.monotonic() - began
        return outcome
    with tempfile.TemporaryDirectory(prefix=f"conformance-{case.name}-") as tmp:
        shutil.copyfile(template, Path(tmp) / "conformance.db")
        driver: InProcess | Cli = Cli(Path(tmp)) if mode == "cli" else InProcess(Path(tmp), mode == "reload")
        try:
            main_id = None
            for number, step in enumerate(case.steps, 1):
                try:
                    created = _check_now(driver, main_id, step) if step.kind == "check" else driver.run(step)
                except Exception as err:  # noqa: BLE001 - any failure of a step is the finding
                    outcome.error = f"step {number} ({step.label()}): {type(err).__name__}: {_first_line(err)}"
                    break
                if main_id is None:
                    main_id = created
            try:
                outcome.instances = driver.observe(main_id)
            except Exception as err:  # noqa: BLE001 - an instance that cannot even be shown is a finding too
                outcome.error = outcome.error or f"observing: {type(err).__name__}: {_first_line(err)}"
        finally:
            driver.close()
            outcome.seconds = time.monotonic() - began
    return outcome


def _check_now(driver: InProcess | Cli, main_id: int | None, step: Step) -> None:
    """Compare the main instance, between two steps, with what the case expects of it at that point."""
    seen = driver.observe(main_id)[0]
    for key in ("status", "ready", "path"):
        want = step.args.get(key)
        if want is not None and seen[key] != (sorted(want) if key == "ready" else want):
            raise StepFailed(f"{key} {seen[key]}, expected {want}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def start_cli_runs(cases: list[Case], pool: ThreadPoolExecutor) -> dict[str, Future[Outcome]]:
    """Start the CLI runs of cases in the background (they mostly wait for their OS processes)."""
    return {c.name: pool.submit(run_case, c, "cli") for c in cases}


def run_cases(cases: list[Case], modes: tuple[str, ...] = MODES, cli_workers: int = 2) -> dict[tuple[str, str], Outcome]:
    """Run cases in modes: the in-process ones here one by one while the CLI ones run `cli_workers` at a time."""
    results: dict[tuple[str, str], Outcome] = {}
    with ThreadPoolExecutor(max_workers=cli_workers) as pool:
        futures = start_cli_runs(cases, pool) if "cli" in modes else {}
        for mode in modes:
            if mode == "cli":
                continue
            for case in cases:
                results[(case.name, mode)] = run_case(case, mode)
        for name, future in futures.items():
            results[(name, "cli")] = future.result()
    return results


# ---------------------------------------------------------------------------------------------
# Judging


def _check_instance(label: str, expect: Expect, seen: dict[str, Any]) -> list[str]:
    wrong = []
    if seen.get("stuck"):  # never acceptable: running, no incident, and nothing can move it on
        wrong.append(f"{label}: stuck ({seen['stuck']})")
    if seen["status"] != expect.status:
        wrong.append(f"{label}: status {seen['status']}, expected {expect.status}")
    if expect.path is not None and seen["path"] != expect.path:
        wrong.append(f"{label}: path {seen['path']}, expected {expect.path}")
    for name, value in expect.variables.items():
        if name not in seen["variables"]:
            wrong.append(f"{label}: variable {name} missing, expected {value!r}")
        elif seen["variables"][name] != value:
            wrong.append(f"{label}: variable {name} = {seen['variables'][name]!r}, expected {value!r}")
    for name in expect.absent:
        if name in seen["variables"]:
            wrong.append(f"{label}: variable {name} = {seen['variables'][name]!r}, expected it gone")
    if seen["tasks"] != sorted(expect.tasks):
        wrong.append(f"{label}: user tasks {seen['tasks']}, expected {sorted(expect.tasks)}")
    if len(seen["incidents"]) != len(expect.incidents) or any(
            element != want_el or fragment.lower() not in (message or "").lower()
            for (element, message), (want_el, fragment) in zip(seen["incidents"], expect.incidents)):
        wrong.append(f"{label}: incidents {seen['incidents']}, expected {expect.incidents}")
    return wrong


def mismatches(case: Case, outcome: Outcome) -> list[str]:
    """List how an outcome differs from the case's expectations (empty: it holds)."""
    if case.refused is not None:
        element, fragment = case.refused
        if outcome.refusal is None:
            return [outcome.error or f"deploy accepted the model; expected a refusal naming {element}"]
        if not any(p.get("element") == element and fragment.lower() in p["message"].lower()
                   for p in outcome.refusal):
            return [f"deploy refused, but not with a sentence about {element} ({fragment!r}): "
                    + "; ".join(f"[{p.get('element')}] {p['message']}" for p in outcome.refusal)]
        return []
    if outcome.refusal is not None:
        return ["deploy refused: " + "; ".join(f"[{p.get('element')}] {p['message']}" for p in outcome.refusal)]
    wrong = [outcome.error] if outcome.error else []
    by_process: dict[str, dict[str, Any]] = {}
    for seen in outcome.instances[1:]:
        by_process.setdefault(seen["process_id"], seen)
    if not outcome.instances:
        return [*wrong, "no instance was started"]
    assert case.expect is not None
    wrong += _check_instance(outcome.instances[0]["process_id"], case.expect, outcome.instances[0])
    for process_id, expect in case.others.items():
        if process_id not in by_process:
            wrong.append(f"{process_id}: no instance")
        else:
            wrong += _check_instance(process_id, expect, by_process[process_id])
    return wrong


def refusal_sentence(outcome: Outcome) -> str:
    """Return the deploy refusal as one line."""
    return "; ".join(f"[{p.get('element')}] {p['message']}" for p in outcome.refusal or [])


if __name__ == "__main__":  # run one case by name in one mode, print what happened
    from .cases import BY_NAME

    result = run_case(BY_NAME[sys.argv[1]], sys.argv[2] if len(sys.argv) > 2 else "straight")
    print(json.dumps(result.__dict__, indent=2, default=str))
    print("\n".join(mismatches(BY_NAME[sys.argv[1]], result)) or "OK")
