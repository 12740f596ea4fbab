"""The polku CLI prints JSON and exits non-zero with a one-line error for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
