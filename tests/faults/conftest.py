"""Fault injection: a real full disk (a small tmpfs), a read-only SQLite database, a stopped
PostgreSQL server, killed connections and killed processes.

`tiny_disk` mounts a tmpfs of a few megabytes (the suite runs as root, as CI does) and unmounts
it at the end; `fill_disk(path)` writes a filler file until the disk is full and returns a
function that frees it again. The root conftest's `settings` fixture is overridden here so the
web app and the test share a database on that disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from engine.config import Settings
from engine.db import make_engine, upgrade

REPO = Path(__file__).parents[2]
POLKU = REPO / ".venv" / "bin" / "polku"


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Path]:
    """Return a directory on a fresh 24 MB tmpfs, unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(directory: Path) -> Callable[[], None]:
    """Fill the file system of `directory` to the last byte; return a function that frees it."""
    for db in directory.glob("*.db"):  # an empty WAL: the next commit needs new blocks
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return lambda: os.remove(filler)


@pytest.fixture
def settings(tiny_disk) -> Settings:
    """Return settings with the SQLite database on the tiny disk."""
    return Settings(database_url=f"sqlite:///{tiny_disk}/polku.db", secret_key="test-secret-key")


# --- a private PostgreSQL server: stopped, restarted and killed without disturbing other tests ---

PG_PORT = "55439"
PG_DATA = REPO / "var" / "pg-faults"
PG_ENV = {**os.environ, "POLKU_PG_PORT": PG_PORT, "POLKU_PG_DATA": str(PG_DATA)}


def pg(command: str) -> str:
    """Run `scripts/postgres.sh start|stop|url` for the fault suite's own server; return its output."""
    done = subprocess.run([str(REPO / "scripts" / "postgres.sh"), command], env=PG_ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def pg_is_up() -> bool:
    """Tell whether the fault suite's server answers."""
    try:
        with contextlib.closing(psycopg.connect(admin_url(pg("url")), connect_timeout=2)):
            return True
    except psycopg.OperationalError:
        return False


def admin_url(url: str) -> str:
    """Return a libpq URL (no SQLAlchemy driver name)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def fault_pg_server() -> Iterator[str]:
    """Start the suite's own throwaway server (scripts/postgres.sh, another port and data folder)."""
    url = pg("start").splitlines()[-1]
    try:
        yield url
    finally:
        pg("stop")
        shutil.rmtree(PG_DATA, ignore_errors=True)


@pytest.fixture
def fault_pg_url(fault_pg_server) -> Iterator[str]:
    """Return the URL of a fresh, migrated database on the suite's server (dropped afterwards)."""
    if not pg_is_up():
        pg("start")
    name = f"polku_fault_{secrets.token_hex(5)}"
    with psycopg.connect(admin_url(fault_pg_server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = fault_pg_server.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if not pg_is_up():  # a test stopped it: the server is running again at the end
            pg("start")
        with psycopg.connect(admin_url(fault_pg_server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
