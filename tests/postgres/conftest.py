"""PostgreSQL fixtures: the server's URL, a fresh migrated database per module, sessions on it.

The server is the throwaway one of `scripts/postgres.sh`; its URL comes from `POLKU_TEST_PG_URL`
(set by the test runner) or from starting the script. Every database made here is called
`polku_test_<random>`, created by role `polku` (which has CREATEDB) and dropped afterwards:
`pg_url` lives for one module, `fresh_pg_url` for one test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from engine import deploy as deploy_mod
from engine import runtime
from engine.db import make_engine, make_sessions, upgrade

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "engine" / "bpmn"


def _server_url() -> str:
    url = os.environ.get("POLKU_TEST_PG_URL")
    if url:
        return url
    done = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "start"], check=False, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"scripts/postgres.sh start failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def _admin(url: str) -> psycopg.Connection:
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(plain, autocommit=True)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """Return the URL of the test server's `polku` database (starting the server if need be)."""
    return _server_url()


def _create_database(server_url: str) -> str:
    name = f"polku_test_{secrets.token_hex(6)}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url


def _drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    with _admin(server_url) as conn:
        try:  # a plain DROP also stops autovacuum there, which FORCE may not do for a non-superuser
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        except psycopg.errors.ObjectInUse:  # a client is still connected: a worker left by a failed test
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create a migrated `polku_test_<random>` database, yield its URL, drop it afterwards."""
    url = _create_database(server_url)
    try:
        yield url
    finally:
        _drop_database(server_url, url)


@pytest.fixture(scope="module")
def pg_url(pg_server_url) -> Iterator[str]:
    """Return the URL of a fresh database for this test module."""
    with fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture
def fresh_pg_url(pg_server_url) -> Iterator[str]:
    """Return the URL of a fresh database for this one test."""
    with fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def sessions(pg_url) -> Iterator[sessionmaker]:
    """Return a session factory on this module's PostgreSQL database."""
    engine = make_engine(pg_url)
    runtime.forget_cache()  # instance ids repeat across databases: never trust another's cache
    yield make_sessions(engine)
    runtime.forget_cache()
    engine.dispose()


def deploy_models(sessions: sessionmaker, *names: str) -> None:
    """Deploy test models from tests/engine/bpmn by file name."""
    files = {n: (MODELS / n).read_bytes() for n in names}
    with sessions.begin() as session:
        deploy_mod.deploy_files(session, files, by="designer")
