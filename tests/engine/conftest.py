"""Engine fixtures: a migrated database per test and a helper to deploy test models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import deploy as deploy_mod
from engine import runtime
from engine.db import make_engine, make_sessions, upgrade

MODELS = Path(__file__).parent / "bpmn"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Return the instant `seconds` after T0 (the tests' clock)."""
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def sessions(tmp_path):
    """Return a session factory on a fresh, migrated SQLite database."""
    engine = make_engine(f"sqlite:///{tmp_path}/engine.db")
    upgrade(engine)
    runtime.forget_cache()
    yield make_sessions(engine)
    engine.dispose()


@pytest.fixture
def deploy(sessions):
    """Deploy test model files by name; return the created versions as (process_id, version)."""

    def _deploy(*names: str, by: str = "designer"):
        files = {n: (MODELS / n).read_bytes() for n in names}
        with sessions.begin() as session:
            result = deploy_mod.deploy_files(session, files, by=by)
            return [(v.process_id, v.version) for v in result.created]

    return _deploy
