"""Polku's web UI: `create_app` wires settings, database, sign-in, i18n, error pages and blueprints.

Start here, then read `auth.py` (sign-in, roles, CSRF, form stash), `db.py` (the per-request
session) and one blueprint (`customers.py`) with its templates in `templates/customers/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from engine import limits
from engine.config import Settings
from engine.db import make_engine, make_sessions, reader

from . import (
    admin,
    audit,
    auth,
    customers,
    db,
    designer,
    errors,
    home,
    i18n,
    incidents,
    inputs,
    supervisor,
    tasks,
    vendor,
)
from . import api as rest_api
from .stash import FormStash
from .throttle import LoginThrottle

__all__ = ["Polku", "create_app"]


@dataclass
class Polku:
    """What the app shares across requests: `app.extensions["polku"]`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker
    throttle: LoginThrottle
    stash: FormStash
    reader: Engine  # a page's GET reads through it: on SQLite beside the writer, not after it


def _configure(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="polku_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.insecure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),  # a sign-in's absolute end
        # the cookie is set at sign-in to end with it, and again only when its content changes: not
        # signed again on every response, as an expiry that slides would outlive the sign-in anyway
        SESSION_REFRESH_EACH_REQUEST=False,
        POLKU_IDLE_TIMEOUT=timedelta(minutes=settings.idle_minutes),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session cookie
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 100_000,
    )


def create_app(settings: Settings | None = None, **config: Any) -> Flask:
    """Build the web application; `config` overrides Flask settings (tests)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    _configure(app, settings)
    limits.configure(settings)  # POLKU_SCRIPT_*: every request thread and the embedded worker
    app.config.update(config)
    engine = make_engine(settings.database_url)
    app.extensions["polku"] = Polku(settings, engine, make_sessions(engine), LoginThrottle(), FormStash(),
                                    reader(engine))
    CSRFProtect(app)
    inputs.init_app(app)  # first of all: invalid UTF-8 and unreadable JSON are a 400 before CSRF reads the form
    i18n.init_app(app, settings)
    auth.init_app(app)
    db.init_app(app)  # registered after auth: its commit runs first, so any error page still gets headers
    errors.init_app(app)
    home.init_app(app)
    from . import outreach  # contact log, worklists, notifications, absences, office settings

    outreach.init_app(app)
    from . import providers  # providers registry, reports, the provider select of process forms

    providers.init_app(app)
    for module in (auth, home, customers, admin, tasks, supervisor, designer, audit, vendor, incidents):
        app.register_blueprint(module.bp)
    from . import survey  # the national survey's results, entered on the KPI page

    survey.init_app(app)
    rest_api.init_app(app)  # /api/v1: bearer tokens only, exempt from CSRF, errors as problem+json
    return app
