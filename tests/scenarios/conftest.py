"""Scenario fixtures: the shipped models deployed on a fresh SQLite database, straight or reloading."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import deploy as deploy_mod
from engine import runtime, users
from engine.db import make_engine, make_sessions, upgrade

MODEL_DIR = Path(__file__).resolve().parents[2] / "bpmn"
EXPERTS = ("eeva.expert", "pekka.expert")  # the scenarios' responsible experts (test_service_process)


@pytest.fixture
def sessions(tmp_path):
    """Return a session factory on a fresh, migrated SQLite database."""
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    upgrade(engine)
    runtime.forget_cache()
    yield make_sessions(engine)
    runtime.forget_cache()
    engine.dispose()


@pytest.fixture
def deployed(sessions):
    """Deploy every .bpmn and .dmn file of bpmn/ as the designer; return the session factory."""
    files = {p.name: p.read_bytes() for p in sorted(MODEL_DIR.iterdir()) if p.suffix in {".bpmn", ".dmn"}}
    with sessions.begin() as session:
        deploy_mod.deploy_files(session, files, by="designer")
        for name in EXPERTS:  # the assessment's responsible expert must be an active expert
            users.add_user(session, name, "scenario-password", ["expert"])
    return sessions
