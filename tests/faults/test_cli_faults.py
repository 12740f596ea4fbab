"""The CLI under faults: one line on stderr (no traceback) and exit 75 (EX_TEMPFAIL, "try again
later") when the database is unreachable, read-only or full; the audit names the OS user beside
the self-declared `--by`. The unreachable server is tried as a new OS process; the rest run
`engine.cli.main` in this process (the same code, without a second of start-up per command)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from engine import cli
from engine.config import Settings

from .conftest import POLKU, fill_disk

BPMN = Path(__file__).parents[2] / "tests" / "engine" / "bpmn"


def polku(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POLKU_DATABASE_URL": url}
    return subprocess.run([str(POLKU), "--json", *args], check=False, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)


class Ran:
    """What one in-process `polku` command returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys):
    def _run(url: str, *args: str, cwd: Path) -> Ran:
        capsys.readouterr()
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            code = cli.main(["--json", *args], Settings(database_url=url, secret_key="k"))
        finally:
            os.chdir(previous)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return _run


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_unreachable_postgresql_is_exit_75_with_one_line(tmp_path):
    result = polku("postgresql://polku@127.0.0.1:9/polku", "processes", cwd=tmp_path)
    assert result.returncode == 75
    line = _one_line(result)
    assert line.startswith("polku: the database is not available just now, nothing was changed; try again later")


def test_read_only_sqlite_is_exit_75(tmp_path, run):
    url = f"sqlite:///{tmp_path}/ro.db"
    assert run(url, "init", cwd=tmp_path).returncode == 0
    result = run(f"sqlite:///file:{tmp_path}/ro.db?mode=ro&uri=true", "user", "maija", "--password",
                   "salasana-123", "--roles", "expert", cwd=tmp_path)
    assert result.returncode == 75
    assert "readonly database" in _one_line(result)


def test_full_disk_is_exit_75_and_nothing_is_half_written(tiny_disk, run):
    url = f"sqlite:///{tiny_disk}/polku.db"
    assert run(url, "deploy", str(BPMN / "reminder.bpmn"), cwd=tiny_disk).returncode == 0
    data = tiny_disk.parent / "data.json"
    data.write_text(json.dumps({"note": "x" * 200_000}))
    free = fill_disk(tiny_disk)
    try:
        result = run(url, "start", "reminder", "--data", f"@{data}", cwd=tiny_disk)
    finally:
        free()
    assert result.returncode == 75, result.stderr
    assert _one_line(result)  # "database or disk is full" or "disk I/O error", as SQLite meets it
    listed = run(url, "tasks", cwd=tiny_disk)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert run(url, "verify-audit", cwd=tiny_disk).returncode == 0


def test_bad_input_stays_exit_2_and_a_refusal_exit_1(tmp_path, run):
    url = f"sqlite:///{tmp_path}/t.db"
    assert _one_line(run(url, "start", "nothing", "--data", "{", cwd=tmp_path)).startswith("polku: --data")
    refused = run(url, "instance", "999", cwd=tmp_path)
    assert refused.returncode == 1 and _one_line(refused)
    usage = run(url, "complete", cwd=tmp_path)  # argparse's usage text is cut to the line that matters
    assert usage.returncode == 2
    assert _one_line(usage) == "polku complete: error: the following arguments are required: task_id, --by"


def test_cli_audit_names_the_os_user_beside_by(tmp_path, run):
    url = f"sqlite:///{tmp_path}/t.db"
    assert run(url, "deploy", str(BPMN / "reminder.bpmn"), "--by", "maija", cwd=tmp_path).returncode == 0
    started = run(url, "start", "reminder", "--by", "maija", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    instance_id = json.loads(started.stdout)["id"]
    history = json.loads(run(url, "history", str(instance_id), cwd=tmp_path).stdout)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert {e["actor"] for e in history if e["kind"] == "instance_started"} == {f"maija (cli, os user {me})"}
