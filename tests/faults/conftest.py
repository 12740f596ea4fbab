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
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.config import Settings

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
