"""The polku CLI prints JSON and exits non-zero with a one-line error for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import Settings

MODELS = Path(__file__).parent / "bpmn"


@pytest.fixture
def polku(tmp_path, capsys):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/cli.db")

    def run(*argv: str) -> tuple[int, object, str]:
        code = main(["--json", *argv], settings=settings)
        captured = capsys.readouterr()
        out = captured.out.strip()
        try:
            data = json.loads(out) if out else None
        except json.JSONDecodeError:
            data = out
        return code, data, captured.err.strip()

    return run


def test_deploy_start_complete_history_verify(polku):
    code, data, _ = polku("deploy", str(MODELS / "order.bpmn"), "--by", "dora")
    assert code == 0 and data["created"] == [{"process_id": "order", "version": 1, "kind": "process"}]
    code, inst, _ = polku("start", "order", "--data", '{"customer": "Acme", "amount": 5000}',
                          "--business-key", "0737546-2", "--by", "anna")
    assert code == 0 and inst["tasks"][0]["element_id"] == "review"
    code, tasks, _ = polku("tasks", "--instance", str(inst["id"]))
    assert [t["name"] for t in tasks] == ["Review order"]
    code, after, _ = polku("complete", tasks[0]["id"], "--data", '{"channel": "phone"}', "--by", "anna")
    assert code == 0 and [t["element_id"] for t in after["tasks"] if t["state"] == "ready"] == ["approve"]
    code, events, _ = polku("history", str(inst["id"]))
    assert code == 0 and events[0]["kind"] == "instance_started"
    code, csv_text, _ = polku("history", str(inst["id"]), "--format", "csv")
    assert code == 0 and csv_text.splitlines()[0].startswith("seq,at,kind,actor")
    code, result, _ = polku("verify-audit")
    assert code == 0 and result["ok"] is True


@pytest.mark.parametrize("argv, code, phrase", [
    (["start", "nope"], 1, "no process 'nope'"),
    (["start", "order", "--data", "{bad"], 2, "not valid JSON"),
    (["start", "order", "--data", "@/no/such/file.json"], 2, "cannot be read"),
    (["start", "order", "--data", "[1, 2]"], 2, "must be a JSON object"),
    (["fire-timers", "--now", "tomorrow"], 2, "ISO 8601"),
    (["start", "order", "--data", '{"customer": "A"}'], 2, "customer"),
    (["complete", "no-such-task", "--by", "x"], 1, "no task"),
    (["instance", "99"], 1, "no instance 99"),
    (["message", "payment_received"], 1, "no running instance"),
    (["start", "order", "--by", "b" * 81], 2, "argument --by: a user name has at most 80 characters, not 81"),
    (["assign", "t", "--by", "anna", "--to", "t" * 90], 2, "argument --to: a user name has at most 80"),
    (["contact", "1", "--channel", "phone", "--topic", "t", "--by", "c" * 81], 2, "argument --by: a user name has at most 80"),
    (["start", "order", "--data", '{"customer": "A", "amount": 1}', "--business-key", "k" * 201], 2,
     "a business key has at most 200 characters, not 201"),
])
def test_bad_input_exits_non_zero_with_one_line(polku, argv, code, phrase):
    polku("deploy", str(MODELS / "order.bpmn"))
    got, _data, err = polku(*argv)
    assert got == code and phrase in err and len(err.splitlines()) == 1, err


def test_invalid_model_lists_problems(polku, tmp_path):
    bad = tmp_path / "bad.bpmn"
    bad.write_text((MODELS / "order.bpmn").read_text().replace("</bpmn:process>", '<bpmn:task id="lost" /></bpmn:process>'))
    code, data, err = polku("deploy", str(bad))
    assert code == 3 and data["problems"][0]["element"] == "lost" and "bad.bpmn" in err


def test_fire_timers_is_refused_in_production(tmp_path, capsys):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/p.db", env="production")
    assert main(["fire-timers", "--now", "2030-01-01T00:00:00Z"], settings=settings) == 1
    assert "production" in capsys.readouterr().err


def test_console_script_runs(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    polku_bin = Path(sys.executable).parent / "polku"
    out = subprocess.run([str(polku_bin), "deploy", str(MODELS / "loop.bpmn")], env=env, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout)["created"][0]["process_id"] == "loop"


# Production guards: no demo users, `check-production`, ending a user's sessions.


def _production(tmp_path, **changes):
    return Settings(**{"database_url": f"sqlite:///{tmp_path}/p.db", "env": "production", "secret_key": "s" * 48,
                       **changes})


def test_seed_demo_is_refused_in_production_with_one_line(tmp_path, capsys):
    assert main(["seed-demo"], settings=_production(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "refused when POLKU_ENV=production" in err and len(err.strip().splitlines()) == 1


def test_worker_refuses_to_start_in_production_while_a_demo_account_is_active(tmp_path, capsys):
    development = Settings(database_url=f"sqlite:///{tmp_path}/p.db")
    assert main(["seed-demo"], settings=development) == 0
    capsys.readouterr()
    assert main(["worker", "--once"], settings=_production(tmp_path)) == 1
    assert "demo accounts" in capsys.readouterr().err
    assert main(["remove-demo"], settings=_production(tmp_path)) == 0
    assert json.loads(capsys.readouterr().out)["deactivated"][0] == "admin"
    assert main(["worker", "--once"], settings=_production(tmp_path)) == 0


def test_check_production_lists_what_is_unsafe(tmp_path, capsys):
    unsafe = Settings(database_url=f"sqlite:///{tmp_path}/p.db", insecure_cookies=True, flask_debug=True)
    assert main(["seed-demo"], settings=unsafe) == 0
    capsys.readouterr()
    assert main(["--json", "check-production"], settings=unsafe) == 1
    captured = capsys.readouterr()
    found = json.loads(captured.out)["unsafe"]
    for phrase in ("POLKU_ENV is 'development'", "POLKU_SECRET_KEY is not set", "POLKU_INSECURE_COOKIES",
                   "demo accounts", "FLASK_DEBUG", "SQLite"):
        assert sum(phrase in line for line in found) == 1, phrase
    assert "6 thing(s) unsafe" in captured.err


@pytest.mark.parametrize("secret, phrase", [("short-key", "shorter than 32"), ("change-me", "well-known")])
def test_check_production_names_a_weak_secret_key(tmp_path, capsys, secret, phrase):
    assert main(["--json", "check-production"], settings=_production(tmp_path, secret_key=secret)) == 1
    assert any(phrase in line for line in json.loads(capsys.readouterr().out)["unsafe"])


def test_a_safe_production_setup_has_no_problems(tmp_path):
    from engine import production
    from engine.db import make_engine, make_sessions, upgrade

    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    upgrade(engine)
    safe = _production(tmp_path, database_url="postgresql://polku@db-host/polku")
    with make_sessions(engine).begin() as session:
        assert production.problems(session, safe) == []
        production.refuse_unsafe_start(session, safe)
    engine.dispose()


def test_sessions_end_user_ends_every_session(tmp_path, capsys):
    from engine import signin, users
    from engine.db import make_engine, make_sessions, utcnow

    settings = Settings(database_url=f"sqlite:///{tmp_path}/p.db")
    assert main(["user", "aino", "--password", "salasana-123", "--roles", "expert"], settings=settings) == 0
    engine = make_engine(settings.database_url)
    with make_sessions(engine).begin() as s:
        user = users.get_user(s, "aino")
        tokens = [signin.start_session(s, user.id, now=utcnow(), lifetime=timedelta(hours=12)) for _ in range(2)]
    capsys.readouterr()
    assert main(["--json", "sessions", "end", "AINO", "--by", "ops"], settings=settings) == 0
    assert json.loads(capsys.readouterr().out) == {"username": "aino", "ended": 2}
    with make_sessions(engine).begin() as s:
        assert {signin.find_session(s, t).ended_reason for t in tokens} == {"ended_by_admin"}
    engine.dispose()
    assert main(["sessions", "end", "nobody"], settings=settings) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cancel_ends_a_running_instance_with_its_reason(polku):
    polku("deploy", str(MODELS / "order.bpmn"), "--by", "dora")
    _, inst, _ = polku("start", "order", "--data", '{"customer": "Acme", "amount": 5000}', "--by", "anna")
    code, _, err = polku("cancel", str(inst["id"]), "--reason", " ", "--by", "sanna")
    assert code != 0 and "reason" in err.lower()
    code, done, _ = polku("cancel", str(inst["id"]), "--reason", "Asiakas luopui", "--by", "sanna")
    assert code == 0 and done == {"id": inst["id"], "status": "cancelled"}
    assert polku("tasks", "--instance", str(inst["id"]))[1] == []
    _, events, _ = polku("history", str(inst["id"]))
    assert [(e["actor"].split(" ")[0], e["data"]["reason"]) for e in events if e["kind"] == "instance_cancelled"] \
        == [("sanna", "Asiakas luopui")]
    code, _, err = polku("cancel", str(inst["id"]), "--reason", "again")
    assert code != 0 and "already cancelled" in err


def test_a_database_fault_in_writes_queued_by_timer_firings_is_said_as_that_fault(polku, monkeypatch):
    """seed-demo fires timers, whose rows are written later (engine.fastsql): a locked or lost database
    there is the same "try again later" (exit 75) as anywhere else, not an internal error."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from engine import demo
    from engine.fastsql import QueuedWriteFailed

    fault: list[Exception] = [OperationalError("INSERT INTO timer_fire …", {}, Exception("database is locked"))]

    def seed_office(session):
        raise QueuedWriteFailed(fault[0])

    monkeypatch.setattr(demo, "models_deployed", lambda session: True)
    monkeypatch.setattr(demo, "seed_office", seed_office)
    code, _out, err = polku("seed-demo")
    assert code == 75 and err.startswith("polku: the database is not available just now"), err
    assert "database is locked" in err and "QueuedWriteFailed" not in err
    fault[0] = IntegrityError("INSERT INTO audit_event …", {}, Exception("UNIQUE constraint failed"))
    code, _out, err = polku("seed-demo")
    assert code == 70 and err.startswith("polku: database error:") and "UNIQUE constraint failed" in err, err
