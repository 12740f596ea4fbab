"""Evaluation limits: how long, how large and how much memory one expression or script may use.

The limits come from the settings (`POLKU_SCRIPT_*`, see `engine/config.py`) and are applied by
`configure(settings)` in every program that runs process steps: the web app factory, the CLI and
the timer worker. `engine/sandbox.py` enforces them:

- steps (loop iterations, function calls), the size of every value a guarded operation builds and
  the characters built in one run are counted in the evaluating thread itself;
- the wall clock and memory are enforced by running the code in an **evaluator process**: a child
  kept ready in a small pool, with an address-space ceiling (`RLIMIT_AS`) set inside it. The caller
  waits for the answer with a timeout and kills the child when the time is up, so a builtin that
  never returns to Python (a huge `sorted()`, `repr()` or comparison) is stopped too. This works
  from any thread of any process; no signal handler is involved.

Only code that is bounded by reading it (no loops, comprehensions, functions or costly calls; see
`sandbox._is_bounded`) is evaluated in the calling thread, which keeps ordinary conditions cheap.
The children are fresh interpreters (`python -m engine.limits`), so they never inherit a web
worker's threads, locks or database connections; a few are kept running for reuse.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Limits", "configure", "current", "run_isolated", "shutdown"]

log = logging.getLogger(__name__)

GRACE_SECONDS = 0.25  # the child stops itself at the limit; past this it is killed
STARTUP_SECONDS = 60.0  # a new evaluator process starts in about 0.3 s; on a very busy machine, longer
POOL_SIZE = 4  # idle evaluators kept per process (more are started when threads need them)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `engine` is importable


@dataclass(frozen=True)
class Limits:
    """The limits of one evaluation; `engine.config.Settings` holds the configured ones."""

    steps: int = 100_000
    timeout: float = 1.0
    max_bytes: int = 10_000_000
    memory: int = 256 * 1024 * 1024
    output: int = 10_000

    @property
    def max_allocated(self) -> int:
        """Characters or items all guarded operations of one run may build together."""
        return 5 * self.max_bytes


_configured = Limits()


def configure(settings: Any, **overrides: Any) -> Limits:
    """Apply the `script_*` settings of `settings` (None: keep) and `overrides` to this process."""
    global _configured
    if settings is not None:
        _configured = Limits(steps=settings.script_steps, timeout=settings.script_timeout,
                             max_bytes=settings.script_max_bytes, memory=settings.script_memory,
                             output=settings.script_output)
    _configured = replace(_configured, **overrides)
    if settings is not None:
        from . import lru, values

        lru.configure(settings)
        values.configure(max_bytes=settings.data_max_bytes, max_depth=settings.data_max_depth)  # POLKU_CACHE_*: the same entry points set the process-wide cache bounds
    return _configured


def current() -> Limits:
    """Return the limits configured for this process."""
    return _configured


class Breach(Exception):
    """The evaluator process went over the time (`timed_out`) or died (memory ceiling)."""

    def __init__(self, timed_out: bool):
        super().__init__("timed out" if timed_out else "evaluator died")
        self.timed_out = timed_out


class _Evaluator:
    """One child interpreter (`python -m engine.limits`) evaluating requests sent over a pipe."""

    def __init__(self, memory: int):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([_ROOT, os.environ.get("PYTHONPATH", "")])}
        self.memory = memory
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.limits", str(to_child_r), str(from_child_w), str(memory)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env=env, cwd=_ROOT)
        os.close(to_child_r)
        os.close(from_child_w)
        self.sender = Connection(to_child_w, readable=False)
        self.receiver = Connection(from_child_r, writable=False)
        # the time limit must not include the interpreter's start: wait until the child says it is ready
        if not self.receiver.poll(STARTUP_SECONDS) or self.receiver.recv_bytes() != b"ready":
            self.close()
            raise RuntimeError("the evaluator process did not start")

    def call(self, request: Any, timeout: float) -> Any:
        """Send one request and wait for its reply at most `timeout` seconds."""
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)  # before sending: may fail
        try:
            self.sender.send_bytes(data)
            if not self.receiver.poll(timeout):
                raise Breach(timed_out=True)
            return pickle.loads(self.receiver.recv_bytes())
        except (EOFError, OSError) as err:  # the child died: its memory ceiling, or killed
            raise Breach(timed_out=False) from err

    def alive(self) -> bool:
        """Tell whether the child is still running."""
        return self.process.poll() is None

    def close(self) -> None:
        """Kill the child (it may be busy with runaway code) and release the pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self.sender.close()
        self.receiver.close()

    def forget(self) -> None:
        """Close this process's copies of the pipes without touching the child (after a fork)."""
        self.sender.close()
        self.receiver.close()


_pool: list[_Evaluator] = []
_pool_lock = threading.Lock()
_pool_pid = os.getpid()


def _take(memory: int) -> _Evaluator:
    global _pool_pid
    with _pool_lock:
        if _pool_pid != os.getpid():  # forked (a gunicorn worker): the children are the parent's
            _pool.clear()
            _pool_pid = os.getpid()
        while _pool:
            evaluator = _pool.pop()
            if evaluator.memory == memory and evaluator.alive():
                return evaluator
            evaluator.close()
    return _Evaluator(memory)


def _give_back(evaluator: _Evaluator) -> None:
    with _pool_lock:
        if len(_pool) < POOL_SIZE and _pool_pid == os.getpid():
            _pool.append(evaluator)
            return
    evaluator.close()


def run_isolated(request: Any, limits: Limits) -> Any:
    """Run `request` in an evaluator process under `limits`; return the child's reply.

    Raises: Breach (over time: the child was killed; or the child died, e.g. out of memory).
    """
    evaluator = _take(limits.memory)
    try:
        reply = evaluator.call(request, limits.timeout + GRACE_SECONDS)
    except Breach:
        evaluator.close()
        raise
    except BaseException:
        evaluator.close()
        raise
    if isinstance(reply, tuple) and reply and reply[0] == "restart":  # the child ran out of memory
        evaluator.close()
        return reply[1]
    _give_back(evaluator)
    return reply


def shutdown() -> None:
    """Stop the idle evaluator processes of this process (tests, clean exits)."""
    with _pool_lock:
        idle = list(_pool) if _pool_pid == os.getpid() else []
        _pool.clear()
    for evaluator in idle:
        evaluator.close()


# --- the child -----------------------------------------------------------------------------------

def _set_memory_ceiling(memory: int) -> None:
    """Cap this process's address space at what it uses now plus `memory` bytes."""
    import resource

    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = in_use + memory
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))


def _serve(receiver: Connection, sender: Connection, memory: int) -> None:
    """Answer evaluation requests until the parent closes the pipe."""
    from engine import sandbox  # imported before the ceiling is set

    try:
        _set_memory_ceiling(memory)
    except (OSError, ValueError):  # no /proc (not Linux): the time limit and size guards still hold
        log.warning("evaluator process runs without a memory ceiling")
    sender.send_bytes(b"ready")
    while True:
        try:
            request = pickle.loads(receiver.recv_bytes())
        except (EOFError, OSError):
            return
        reply = sandbox.serve_request(request)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            data = pickle.dumps(("restart", ("error", MemoryError(), None)))
        sender.send_bytes(data)


def _forget_after_fork() -> None:
    """In a forked child, drop the parent's evaluators without killing them."""
    global _pool_pid
    for evaluator in _pool:
        evaluator.forget()
    _pool.clear()
    _pool_pid = os.getpid()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(shutdown)  # idle evaluators would end on their own (end of input); do not leave them behind

if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False),
           int(sys.argv[3]))
