"""The shipped close task refuses a future end date through `polku`, every step a new OS process.

The CLI runs on the real clock, so the dates are taken from today in Helsinki with a margin of a
day either side (the test holds across midnight).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
POLKU = Path(sys.executable).parent / "polku"


def test_close_recruitment_refuses_a_future_end_date_through_the_cli(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}

    def polku(*argv: str, code: int = 0) -> tuple[object, str]:
        done = subprocess.run([str(POLKU), "--json", *argv], check=False, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == code, done.stderr
        return (json.loads(done.stdout) if done.stdout.strip() else None), done.stderr

    def task_id(instance_id: int, element_id: str) -> str:
        tasks, _ = polku("tasks", "--instance", str(instance_id))
        [found] = [t["id"] for t in tasks if t["element_id"] == element_id]
        return found

    today = datetime.now(ZoneInfo("Europe/Helsinki")).date()
    polku("init")
    polku("deploy", str(ROOT / "bpmn" / "recruitment.bpmn"))
    start = {"responsible_expert": "eeva.expert", "assessment_date": (today - timedelta(days=10)).isoformat()}
    instance, _ = polku("start", "recruitment", "--data", json.dumps(start), "--business-key", "0737546-2",
                        "--by", "eeva.expert")
    iid = instance["id"]
    plan = {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
            "recruitment_planned_end": (today + timedelta(days=30)).isoformat()}
    polku("complete", task_id(iid, "plan_recruitment"), "--data", json.dumps(plan), "--by", "eeva.expert")
    polku("complete", task_id(iid, "deliver_recruitment"), "--data", "{}", "--by", "eeva.expert")
    close = task_id(iid, "close_recruitment")
    data = {"recruitment_positions_filled": 1, "recruitment_outcome": "completed",
            "recruitment_provider_delivered": False}
    future = {**data, "recruitment_ended_on": (today + timedelta(days=2)).isoformat()}
    out, err = polku("complete", close, "--data", json.dumps(future), "--by", "eeva.expert", code=2)
    assert out == {"errors": {"recruitment_ended_on": "the date cannot be in the future"}}
    assert "recruitment_ended_on (the date cannot be in the future)" in err
    early = {**data, "recruitment_ended_on": (today - timedelta(days=11)).isoformat()}
    out, _ = polku("complete", close, "--data", json.dumps(early), "--by", "eeva.expert", code=2)
    assert out == {"errors": {"recruitment_ended_on": f"must be on or after {start['assessment_date']}"}}
    assert task_id(iid, "close_recruitment") == close, "the refused task stays open"
    past = {**data, "recruitment_ended_on": (today - timedelta(days=1)).isoformat()}
    done, _ = polku("complete", close, "--data", json.dumps(past), "--by", "eeva.expert")
    assert done["status"] == "completed"
    summary, _ = polku("instance", str(iid))
    assert summary["status"] == "completed"
