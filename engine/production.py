"""What makes a deployment unsafe for production, for `polku check-production` and the start guards.

`problems(session, settings)` lists everything unsafe (the checklist in `docs/security.md`);
`refuse_unsafe_start(session, settings)` is called by `create_app`, `polku serve` and `polku worker`
and refuses to start a production process while a demo account is active or cookies are insecure.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from . import users
from .config import DEV_KEY_PREFIX, Settings
from .errors import NotAllowed

MIN_SECRET_LENGTH = 32
WEAK_SECRETS = {"", "dev", "development", "secret", "changeme", "change-me", "polku", "test-secret-key",
                "browser-test"}


def _secret_problem(key: str) -> str | None:
    if key.startswith(DEV_KEY_PREFIX):
        return "POLKU_SECRET_KEY is not set: each process signs cookies with its own random key"
    if key.lower() in WEAK_SECRETS:
        return "POLKU_SECRET_KEY is a well-known default value"
    if len(key) < MIN_SECRET_LENGTH:
        return f"POLKU_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def _start_refusals(session: Session, settings: Settings) -> list[str]:
    found = []
    if settings.insecure_cookies:
        found.append("POLKU_INSECURE_COOKIES is set: session cookies would travel over plain HTTP")
    demo = users.demo_accounts(session)
    if demo:
        found.append(f"demo accounts with published passwords are active: {', '.join(demo)} "
                     "(`polku remove-demo` deactivates them)")
    return found


def problems(session: Session, settings: Settings) -> list[str]:
    """Return one sentence per thing that is unsafe for production (empty: nothing found)."""
    found = []
    if not settings.is_production:
        found.append(f"POLKU_ENV is {settings.env!r}, not 'production'")
    secret = _secret_problem(settings.secret_key)
    if secret:
        found.append(secret)
    found.extend(_start_refusals(session, settings))
    if settings.flask_debug:
        found.append("FLASK_DEBUG is on: the debugger runs code for anyone who can reach it")
    if settings.database_url.startswith("sqlite"):
        found.append("POLKU_DATABASE_URL is SQLite: several web processes and timer workers need PostgreSQL")
    return found


def refuse_unsafe_start(session: Session, settings: Settings) -> None:
    """Refuse to start a production process while a demo account is active or cookies are insecure.

    Raises:
        NotAllowed: naming what to fix.
    """
    if not settings.is_production:
        return
    found = _start_refusals(session, settings)
    if found:
        raise NotAllowed("Polku refuses to start in production: " + "; ".join(found))
