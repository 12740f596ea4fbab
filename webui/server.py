"""`polku serve`: the web UI under gunicorn, plus one embedded timer worker per server.

The gunicorn master (arbiter) forks `settings.web_workers` web processes, each with
`settings.web_threads` request threads (1: gunicorn's sync worker) and its own database pool, made
after the fork. The embedded timer worker is not a thread of a web process (that would be one per
web process): the master starts one `polku worker` child process when it is ready and stops it when
the server stops, so a server runs exactly one.

The development secret key (`dev_secret_key`) is made once and kept in `var/secret_key` so every web
process signs and reads the same session cookies; production requires POLKU_SECRET_KEY.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from engine.config import Settings

log = logging.getLogger(__name__)

SECRET_FILE = Path("var") / "secret_key"
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'  # %(M)s: server time of the request


def dev_secret_key(path: Path = SECRET_FILE) -> str:
    """Return the development signing key kept in `path`, making it (mode 0600) on first use."""
    try:
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "polku-dev-file-" + secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key


def heartbeat_dir(candidate: Path = Path("/dev/shm")) -> str | None:
    """Return a memory-backed folder for gunicorn's worker heartbeat files, or None for the temporary folder.

    Each web process tells the master it lives by setting its heartbeat file's time, at every turn
    of its request loop; on a disk-backed file system (often `/tmp`) that write can wait on the
    journal, behind the database's own writes to the same disk. gunicorn's documentation advises a
    memory-backed one. Where there is none (not Linux), gunicorn's default is kept.
    """
    return str(candidate) if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK) else None


def bind_address(host: str, port: int) -> str:
    """Return gunicorn's bind string (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def worker_command() -> list[str]:
    """Return the command line of the embedded timer worker child."""
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main(['worker']))"]


def worker_environment(settings: Settings) -> dict[str, str]:
    """Return the child's environment: this server's database and poll interval win over the inherited ones."""
    env = dict(os.environ)
    env["POLKU_DATABASE_URL"] = settings.database_url
    env["POLKU_WORKER_POLL"] = str(settings.worker_poll_seconds)
    return env


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have Linux send `sig` to this process when its parent ends (a `kill -9` of the master ends the server)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc/musl: the web processes still notice a lost master by themselves
        log.debug("PR_SET_PDEATHSIG is not available")


# The cyclic collector's first threshold in a web process (Python's default is 700): see settle_heap
YOUNG_OBJECTS = 10_000


def settle_heap() -> None:
    """Put what is alive now (the imports, the app) out of the cyclic garbage collector's reach.

    A web process holds about 120,000 long-lived objects; every full collection walked them all
    (about 80 ms, once in 60-100 requests: the slowest requests of a page). Called once per web
    process, when its app is built.

    The youngest generation is collected once `YOUNG_OBJECTS` more container objects are alive than
    at its last collection, not 700: a page holds more than 700 at once while it is drawn (the
    inbox's rows, the form's fields), all freed by their reference counts at the request's end,
    so at 700 the collector ran a few times a request for nothing and, every tenth and hundredth
    time, walked the older generations too (about 3 % of a completion's CPU in process: docs/performance.md,
    Pages, "Nineteenth round").
    Real cycles (a few objects a request) are still collected, later; a higher threshold set
    before is kept, and so is 0 (collection turned off).
    """
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    if young and young < YOUNG_OBJECTS:  # 0: automatic collection is off, and stays off
        gc.set_threshold(YOUNG_OBJECTS, older, oldest)


class AccessLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, the access line's values made for `ACCESS_LOG_FORMAT` alone.

    gunicorn's `atoms` gathers every request and response header and every environ variable and
    formats the time for each line, whatever the format uses: about 3 % of a web process's CPU under
    load. The line is the same.
    """

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        """Return the values `ACCESS_LOG_FORMAT` names, as gunicorn makes them."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        return {"h": environ.get("REMOTE_ADDR", "-"),
                "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
                "s": status, "b": sent is not None and str(sent) or "-",
                "M": request_time.seconds * 1000 + int(request_time.microseconds / 1000),
                "p": f"<{os.getpid()}>"}


class PolkuServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving `create_app(settings)` in every web process."""

    def __init__(self, settings: Settings, *, host: str, port: int, access_log: str | None = None):
        self.settings = settings
        self.host = host
        self.port = port
        self.access_log = access_log
        self.timer_worker: subprocess.Popen[bytes] | None = None
        super().__init__()

    def load_config(self) -> None:
        """Set gunicorn's options from the settings."""
        threads = max(1, self.settings.web_threads)
        options: dict[str, Any] = {
            "bind": [bind_address(self.host, self.port)],
            "workers": max(1, self.settings.web_workers),
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "timeout": max(1, round(self.settings.web_timeout)),
            "graceful_timeout": 10,
            "worker_tmp_dir": heartbeat_dir(),
            "proc_name": "polku",
            "access_log_format": ACCESS_LOG_FORMAT,
            "logger_class": AccessLogger,
            "when_ready": self._when_ready,
            "post_fork": lambda _arbiter, _worker: die_with_parent(signal.SIGKILL),
            "on_exit": self._on_exit,
        }
        if self.access_log:
            options["accesslog"] = self.access_log
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the Flask app inside each web process (after the fork: a pool of its own)."""
        from . import create_app

        app = create_app(self.settings)  # create_app never starts a timer worker: the master's child does
        settle_heap()
        return app

    def _when_ready(self, arbiter: Any) -> None:
        if self.settings.embedded_worker and self.timer_worker is None:
            self.timer_worker = subprocess.Popen(worker_command(), env=worker_environment(self.settings),
                                                 preexec_fn=lambda: die_with_parent(signal.SIGTERM))  # noqa: PLW1509 - the arbiter has one thread
            arbiter.log.info("embedded timer worker started (pid %s)", self.timer_worker.pid)

    def _on_exit(self, arbiter: Any) -> None:
        child, self.timer_worker = self.timer_worker, None
        if child is None or child.poll() is not None:
            return
        child.terminate()  # SIGTERM: the worker finishes the instance in hand and hands the rest back
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
