"""Mutation testing with mutmut 3: each module is mutated against the tests that cover it.

Usage: `.venv/bin/python scripts/mutate.py [module ...]` (default: every module in PLAN);
`make mutate` runs it. Each module runs in its own copy of the tree under var/mutate/<name>
(the working tree is never touched), with a `[tool.mutmut]` section naming that module and
its test subset, on two worker processes. The score of each module is printed as
`engine/forms.py: killed K of N (P %)` and the surviving mutants are listed with their diffs
in var/mutate/<name>/survivors.txt (with their diffs given --diffs; else `mutmut show NAME` in
var/mutate/<name>), to be judged (killed by a new test, or written down as
equivalent in docs/testing.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "mutate"

# module -> the tests that must kill its mutants (kept small enough for two cores); "-k=EXPR" narrows them
PLAN: dict[str, list[str]] = {
    "engine/forms.py": ["tests/engine/test_forms.py", "tests/engine/test_boundaries.py",
                        "-k=test_forms or text or equal or numbers or choice"],
    "engine/inbox.py": ["tests/engine/test_inbox.py", "tests/engine/test_inbox_spec.py", "tests/engine/test_actions_matrix.py",
                        "tests/engine/test_boundaries.py"],
    "engine/audit.py": ["tests/engine/test_audit.py", "tests/engine/test_audit_tamper.py",
                        "tests/engine/test_audit_chain_spec.py"],
    "engine/users.py": ["tests/engine/test_users.py", "tests/engine/test_users_gaps.py",
                        "tests/engine/test_users_spec.py"],
    # the web table (tests/webui/test_least_privilege.py) covers access.py too, but costs minutes a mutant
    "engine/access.py": ["tests/engine/test_access_rules.py", "tests/engine/test_actions_matrix.py"],
    "engine/kpi.py": ["tests/engine/test_boundaries.py", "tests/engine/test_kpi_contract.py",
                      "tests/engine/test_kpi_spec.py"],
    # test_timers_worker_loop.py runs Worker.run, start_thread and run_worker in the test process (mutmut sees them)
    "engine/timers.py": ["tests/engine/test_timers.py", "tests/engine/test_timers_spec.py", "tests/engine/test_boundaries.py",
                         "tests/engine/test_timer_batches.py", "tests/faults/test_worker_faults.py",
                         "tests/engine/test_timers_worker_loop.py", "tests/engine/test_hold_instances.py"],
    # the test_cli_* tests drive `polku` in new processes: mutmut cannot see what they cover, and they cost minutes
    "engine/external.py": ["tests/engine/test_external.py", "tests/engine/test_external_spec.py", "-k=not test_cli_"],
    "engine/sandbox.py": ["tests/engine/test_sandbox.py", "tests/engine/test_sandbox_limits.py",
                          "tests/engine/test_sandbox_spec.py"],
    # engine-level: the web tests (test_sessions.py, test_auth.py) cost ~40 s a surviving mutant
    "engine/signin.py": ["tests/engine/test_signin_spec.py", "tests/engine/test_users.py"],
    # API tokens (the REST API's sign-in); tests/api drives them through HTTP, at seconds a mutant
    "engine/tokens.py": ["tests/engine/test_tokens_spec.py"],
    # test_route_roles.py (the route x role table) is left out: minutes a surviving mutant
    "webui/auth.py": ["tests/webui/test_auth.py", "tests/webui/test_sessions.py", "tests/webui/test_auth_spec.py"],
    # test_constructs.py is left out (its cli variants take 20-30 s each); run by function, e.g.
    # `mutmut run "engine.runtime.x_complete_task*"` in var/mutate/engine_runtime (thousands of mutants)
    "engine/runtime.py": ["tests/engine/test_runtime.py", "tests/engine/test_actions_matrix.py",
                          "tests/engine/test_optimistic_lock.py", "tests/engine/test_revision_check.py",
                          "tests/engine/test_message_routing.py", "tests/engine/test_runtime_spec.py",
                          "tests/engine/test_signals_spec.py", "tests/engine/test_message_spec.py",
                          "tests/engine/test_runtime_records.py", "tests/engine/test_runtime_reads.py",
                          "tests/engine/test_runtime_routes.py", "tests/engine/test_runtime_held.py",
                          "tests/engine/test_runtime_completion.py", "tests/engine/test_external.py",
                          "tests/engine/test_external_spec.py", "tests/engine/test_migrate.py",
                          "tests/engine/test_cache.py", "tests/engine/test_jsonable.py", "tests/engine/test_forms.py",
                          "tests/engine/test_inbox_spec.py", "tests/engine/test_timers.py",
                          "tests/engine/test_timers_spec.py", "tests/engine/test_timer_batches.py",
                          "tests/engine/test_runtime_firing.py", "tests/engine/test_runtime_writes.py",
                          "tests/engine/test_hold_instances.py", "-k=not test_cli_"],
}
COPIED = ("engine", "webui", "tests", "bpmn", "pyproject.toml")


def _copy_tree(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "build")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def _configure(target: Path, module: str, tests: list[str], select: list[str]) -> None:
    text = (target / "pyproject.toml").read_text(encoding="utf-8")
    if "[tool.mutmut]" in text:
        text = text[: text.index("[tool.mutmut]")]
    section = (
        "\n[tool.mutmut]\n"
        f"source_paths = [{json.dumps(module.split('/')[0])}]\n"
        f"only_mutate = [{json.dumps(module)}]\n"
        'also_copy = ["engine", "webui", "bpmn"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', '-x', '-q', *(['-k', *select] if select else [])])}\n"
        "use_git_change_detection = false\n"
        # fork each mutant's run from a process that only collected the tests: forked from mutmut's main process
        # (the default), it inherits the caches the stats run filled (engine.sandbox's compiled code), and mutants
        # reached only through them (the sandbox policy) survive unseen
        'process_isolation = "forkserver"\n'
    )
    (target / "pyproject.toml").write_text(text + section, encoding="utf-8")


def _results(target: Path, env: dict[str, str]) -> dict[str, str]:
    """Return {mutant name: status} from mutmut's results (all statuses)."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=target, env=env,
                         capture_output=True, text=True, check=False).stdout
    found = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and status:
            found[name] = status
    return found


def run(module: str, children: int, diffs: bool = False) -> tuple[int, int, list[str]]:
    """Mutate one module; return (killed, total, surviving mutant names)."""
    tests = [t for t in PLAN[module] if not t.startswith("-k=") and (ROOT / t).exists()]
    select = [t.split("=", 1)[1] for t in PLAN[module] if t.startswith("-k=")]
    target = WORK / module.replace("/", "_").removesuffix(".py")
    _copy_tree(target)
    _configure(target, module, tests, select)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLKU_TEST_PG")}
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(children)], cwd=target,
                   env=env, check=False, stdout=subprocess.DEVNULL)
    statuses = _results(target, env)
    survivors = sorted(n for n, s in statuses.items() if s in ("survived", "no tests"))
    killed = sum(1 for s in statuses.values() if s in ("killed", "timeout", "segfault"))
    with (target / "survivors.txt").open("w", encoding="utf-8") as report:
        for name in survivors:  # `mutmut show` takes seconds per mutant: diffs only when asked
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=target, env=env,
                                  capture_output=True, text=True, check=False).stdout if diffs else ""
            report.write(f"## {name} ({statuses[name]})\n{diff}\n")
    return killed, len(statuses), survivors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(PLAN), help="modules to mutate (default: all)")
    parser.add_argument("--children", type=int, default=2, help="parallel test processes")
    parser.add_argument("--diffs", action="store_true", help="write each survivor's diff (slow)")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in PLAN]
    if unknown:
        parser.error(f"no test subset for {unknown}; add them to PLAN")
    for module in args.modules:
        killed, total, survivors = run(module, args.children, args.diffs)
        score = 100 * killed / total if total else 0.0
        print(f"{module}: killed {killed} of {total} ({score:.1f} %), {len(survivors)} survived", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
