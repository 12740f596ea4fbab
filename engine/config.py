"""Settings: the only code that reads the environment.

Every variable Polku understands, with its default:

POLKU_DATABASE_URL     SQLAlchemy URL               sqlite:///var/polku.db (relative to the cwd)
POLKU_SECRET_KEY       Flask session signing key    required in production; in development `polku serve`
                       makes one once and keeps it in var/secret_key (0600)
POLKU_ENV              development | production     development
POLKU_TIMEZONE         display time zone            Europe/Helsinki
POLKU_SCRIPT_STEPS     max loop iterations and function calls of one script or expression  100000
POLKU_SCRIPT_TIMEOUT   max seconds one script or expression may run (wall clock)             1.0
POLKU_SCRIPT_MAX_BYTES max characters (or items) of one value a script builds                10000000
POLKU_SCRIPT_MEMORY    max bytes of memory a script may add to its evaluator process         268435456
POLKU_SCRIPT_OUTPUT    max characters of print() output kept per script run                  10000
POLKU_DATA_MAX_BYTES   max JSON size of the data one action brings (form, variables, payload) 1000000
POLKU_DATA_MAX_DEPTH   max nesting of lists and objects in that data                          32
POLKU_MAX_UPLOAD       max bytes of one model file  5000000
POLKU_WORKER_POLL      worker poll interval, seconds 1.0
POLKU_EMBEDDED_WORKER  run the timer worker inside the web server (1/0)  1
POLKU_WEB_WORKERS      web processes of `polku serve` (gunicorn workers)  2
POLKU_WEB_THREADS      request threads per web process (1: gunicorn's sync worker)  2
POLKU_WEB_TIMEOUT      seconds a web process may spend on one request before it is restarted  60
POLKU_CACHE_INSTANCES  running instances each process keeps in memory (LRU)  2000
POLKU_CACHE_MB         approximate megabytes of that instance cache (LRU)    64
POLKU_SESSION_HOURS    absolute lifetime of a sign-in, hours             12
POLKU_IDLE_MINUTES     a sign-in ends after this long without a request  30
POLKU_INSECURE_COOKIES 1: session cookie without Secure (plain-http 127.0.0.1 only;
                       refused in production; `polku serve` on a loopback host sets it)  0
POLKU_TRUSTED_PROXIES  reverse proxies in front of the web server whose
                       X-Forwarded-For/-Proto are believed (hop count)   0
POLKU_API_RATE         REST API calls one token may make per minute (per server process)  600
POLKU_SMTP_HOST        SMTP server for e-mail notices; unset: e-mails are printed to the log  unset
POLKU_SMTP_PORT        SMTP port                    587 with STARTTLS, else 25
POLKU_SMTP_USER        SMTP user name (login only when set)  unset
POLKU_SMTP_PASSWORD    SMTP password                unset
POLKU_SMTP_FROM        sender address of notices    polku@localhost
POLKU_SMTP_STARTTLS    1: STARTTLS before login     0
FLASK_DEBUG            read only so `polku check-production` can flag it  unset
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///var/polku.db"
DEV_KEY_PREFIX = "polku-dev-random-"  # marks a key made up because POLKU_SECRET_KEY was not set


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; tests build one directly, programs call `from_env`."""

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = field(default_factory=lambda: DEV_KEY_PREFIX + secrets.token_hex(32))
    env: str = "development"
    timezone: str = "Europe/Helsinki"
    script_steps: int = 100_000
    script_timeout: float = 1.0
    script_max_bytes: int = 10_000_000
    script_memory: int = 256 * 1024 * 1024
    script_output: int = 10_000
    data_max_bytes: int = 1_000_000
    data_max_depth: int = 32
    max_upload_bytes: int = 5_000_000
    worker_poll_seconds: float = 1.0
    embedded_worker: bool = True
    web_workers: int = 2
    web_threads: int = 2  # 4 shared each interpreter's lock: a fifth fewer completions (docs/performance.md)
    web_timeout: float = 60.0
    cache_instances: int = 2000
    cache_mb: float = 64.0
    session_hours: float = 12.0
    idle_minutes: float = 30.0
    insecure_cookies: bool = False
    trusted_proxies: int = 0
    api_rate_per_minute: int = 600
    flask_debug: bool = False
    smtp_host: str = ""
    smtp_port: int = 0  # 0: 587 with STARTTLS, else 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "polku@localhost"
    smtp_starttls: bool = False

    @property
    def is_production(self) -> bool:
        """Tell whether this is a production deployment."""
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every POLKU_* variable, falling back to the defaults above."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        if "POLKU_DATABASE_URL" in env:
            kwargs["database_url"] = env["POLKU_DATABASE_URL"]
        if "POLKU_SECRET_KEY" in env:
            kwargs["secret_key"] = env["POLKU_SECRET_KEY"]
        if "POLKU_ENV" in env:
            kwargs["env"] = env["POLKU_ENV"]
        if "POLKU_TIMEZONE" in env:
            kwargs["timezone"] = env["POLKU_TIMEZONE"]
        if "POLKU_SCRIPT_STEPS" in env:
            kwargs["script_steps"] = int(env["POLKU_SCRIPT_STEPS"])
        if "POLKU_SCRIPT_TIMEOUT" in env:
            kwargs["script_timeout"] = float(env["POLKU_SCRIPT_TIMEOUT"])
        if "POLKU_SCRIPT_MAX_BYTES" in env:
            kwargs["script_max_bytes"] = int(env["POLKU_SCRIPT_MAX_BYTES"])
        if "POLKU_SCRIPT_MEMORY" in env:
            kwargs["script_memory"] = int(env["POLKU_SCRIPT_MEMORY"])
        if "POLKU_SCRIPT_OUTPUT" in env:
            kwargs["script_output"] = int(env["POLKU_SCRIPT_OUTPUT"])
        if "POLKU_DATA_MAX_BYTES" in env:
            kwargs["data_max_bytes"] = int(env["POLKU_DATA_MAX_BYTES"])
        if "POLKU_DATA_MAX_DEPTH" in env:
            kwargs["data_max_depth"] = int(env["POLKU_DATA_MAX_DEPTH"])
        if "POLKU_MAX_UPLOAD" in env:
            kwargs["max_upload_bytes"] = int(env["POLKU_MAX_UPLOAD"])
        if "POLKU_WORKER_POLL" in env:
            kwargs["worker_poll_seconds"] = float(env["POLKU_WORKER_POLL"])
        if "POLKU_EMBEDDED_WORKER" in env:
            kwargs["embedded_worker"] = env["POLKU_EMBEDDED_WORKER"] not in ("0", "false", "no")
        for name, key, kind in (("POLKU_WEB_WORKERS", "web_workers", int), ("POLKU_WEB_THREADS", "web_threads", int),
                                ("POLKU_WEB_TIMEOUT", "web_timeout", float),
                                ("POLKU_CACHE_INSTANCES", "cache_instances", int),
                                ("POLKU_CACHE_MB", "cache_mb", float)):
            if env.get(name):
                kwargs[key] = kind(env[name])
        if "POLKU_SESSION_HOURS" in env:
            kwargs["session_hours"] = float(env["POLKU_SESSION_HOURS"])
        if "POLKU_API_RATE" in env:
            kwargs["api_rate_per_minute"] = int(env["POLKU_API_RATE"])
        if "POLKU_IDLE_MINUTES" in env:
            kwargs["idle_minutes"] = float(env["POLKU_IDLE_MINUTES"])
        if "POLKU_INSECURE_COOKIES" in env:
            kwargs["insecure_cookies"] = env["POLKU_INSECURE_COOKIES"] not in ("", "0", "false", "no")
        if "POLKU_TRUSTED_PROXIES" in env:
            kwargs["trusted_proxies"] = int(env["POLKU_TRUSTED_PROXIES"])
        for name, key in (("POLKU_SMTP_HOST", "smtp_host"), ("POLKU_SMTP_USER", "smtp_user"),
                          ("POLKU_SMTP_PASSWORD", "smtp_password"), ("POLKU_SMTP_FROM", "smtp_from")):
            if name in env:
                kwargs[key] = env[name]
        if env.get("POLKU_SMTP_PORT"):
            kwargs["smtp_port"] = int(env["POLKU_SMTP_PORT"])
        if "POLKU_SMTP_STARTTLS" in env:
            kwargs["smtp_starttls"] = env["POLKU_SMTP_STARTTLS"] not in ("", "0", "false", "no")
        if "FLASK_DEBUG" in env:
            kwargs["flask_debug"] = env["FLASK_DEBUG"] not in ("", "0", "false", "no")
        return cls(**kwargs)  # type: ignore[arg-type]
