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
The children are started by a fork server, so they never inherit a web worker's threads, locks or
database connections.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Limits", "configure", "current", "run_isolated", "shutdown"]

log = logging.getLogger(__name__)

GRACE_SECONDS = 0.25  # the child stops itself at the limit; past this it is killed
POOL_SIZE = 4  # idle evaluators kept per process (more are started when threads need them)


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
    """One child process that evaluates requests sent over a pipe, one at a time."""

    def __init__(self, memory: int):
        context = multiprocessing.get_context("forkserver")
        parent, child = context.Pipe()
        self.memory = memory
        self.process = context.Process(target=_serve, args=(child, memory), name="polku-evaluator",
                                       daemon=True)
        self.process.start()
        child.close()
        self.connection: Connection = parent

    def call(self, request: Any, timeout: float) -> Any:
        """Send one request and wait for its reply at most `timeout` seconds."""
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)  # before sending: may fail
        try:
            self.connection.send_bytes(data)
            if not self.connection.poll(timeout):
                raise Breach(timed_out=True)
            return pickle.loads(self.connection.recv_bytes())
        except (EOFError, OSError) as err:  # the child died: its memory ceiling, or killed
            raise Breach(timed_out=False) from err

    def close(self) -> None:
        """Kill the child (it may be busy with runaway code) and release the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


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
            if evaluator.memory == memory and evaluator.process.is_alive():
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


def _serve(connection: Connection, memory: int) -> None:
    """Answer evaluation requests until the parent closes the pipe."""
    try:
        _set_memory_ceiling(memory)
    except (OSError, ValueError):  # no /proc (not Linux): the time limit and size guards still hold
        log.warning("evaluator process runs without a memory ceiling")
    from engine import sandbox  # the fork server has it imported already

    handle: Callable[[Any], Any] = sandbox.serve_request
    while True:
        try:
            request = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return
        reply = handle(request)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            data = pickle.dumps(("restart", ("error", MemoryError(), None)))
        connection.send_bytes(data)


multiprocessing.get_context("forkserver").set_forkserver_preload(["engine.sandbox"])
