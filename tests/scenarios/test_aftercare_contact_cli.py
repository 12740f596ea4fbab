"""The aftercare contact through `polku`, every step a new OS process (see test_aftercare_contact.py).

The case is started in this process (as customer_service's throw of `service_line_ended` would
start it); everything after is a `polku` command on the same SQLite file. The CLI runs at the real
time, so the dates typed are yesterday's and the follow-up timer is fired with `fire-timers --now`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import office, runtime
from engine.db import make_engine, make_sessions

ROOT = Path(__file__).resolve().parents[2]
POLKU = Path(sys.executable).parent / "polku"
EXPERT = "eeva.expert"
YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


class Cli:
    def __init__(self, tmp_path: Path, smtp_port: int = 0) -> None:
        self.url = f"sqlite:///{tmp_path}/cli.db"
        self.env = {**os.environ, "POLKU_DATABASE_URL": self.url}
        if smtp_port:
            self.env |= {"POLKU_SMTP_HOST": "127.0.0.1", "POLKU_SMTP_PORT": str(smtp_port),
                         "POLKU_SMTP_FROM": "polku@te.fi"}

    def __call__(self, *argv: str) -> Any:
        done = subprocess.run([str(POLKU), "--json", *argv], check=False, env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def setup(self, **settings: int) -> None:
        self("init")
        self("deploy", str(ROOT / "bpmn"))
        self("user", EXPERT, "--password", "cli-password-123", "--roles", "expert")
        engine = make_engine(self.url)
        with make_sessions(engine).begin() as s:
            for key, value in settings.items():
                office.set_value(s, key, value, by="sanna.supervisor")
        engine.dispose()

    def start(self, service_line: str, ended_on: str, **extra: Any) -> int:
        engine = make_engine(self.url)
        data = {"service_line": service_line, "service_ended_on": ended_on, "responsible_expert": EXPERT,
                "business_id": "0737546-2", "company_name": "Konepaja Virtanen Oy", "segment": "local", **extra}
        with make_sessions(engine).begin() as s:
            iid = runtime.start_instance(s, "aftercare", by="customer_service", data=data, business_key="0737546-2",
                                         validate_form=False, start_message="service_line_ended").id
        engine.dispose()
        runtime.forget_cache()
        return iid

    def contact(self, iid: int) -> dict[str, Any]:
        [task] = [t for t in self("tasks", "--instance", str(iid)) if t["element_id"] == "aftercare_contact"]
        return task

    def not_reached(self, iid: int, note: str) -> dict[str, Any]:
        data = {"aftercare_attempt_on": YESTERDAY, "aftercare_attempt_channel": "phone", "aftercare_attempt_note": note}
        return self("action", self.contact(iid)["id"], "customer_not_reached", "--data", json.dumps(data),
                    "--by", EXPERT)


def conversation(**extra: Any) -> str:
    return json.dumps({"aftercare_contacted_on": YESTERDAY, "aftercare_channel": "phone", "service_met_need": "yes",
                       "needs_reassessment": "Ei uusia tarpeita nyt.", "named_contact_confirmed": True, **extra})


def test_not_reached_twice_then_reached_through_the_cli(tmp_path):
    polku = Cli(tmp_path)
    polku.setup()
    iid = polku.start("recruitment", YESTERDAY)
    first = polku.contact(iid)
    polku.not_reached(iid, "Ei vastannut")
    second = polku.contact(iid)
    assert second["id"] != first["id"] and second["due_at"] == first["due_at"]
    polku.not_reached(iid, "Jätetty soittopyyntö")
    summary = polku("complete", polku.contact(iid)["id"], "--data", conversation(), "--by", EXPERT)
    assert summary["status"] == "completed"
    data = polku("instance", str(iid))["variables"]
    assert data["aftercare_outcome"] == "reached" and data["service_met_need"] == "yes"
    assert [a["note"] for a in data["aftercare_attempts"]] == ["Ei vastannut", "Jätetty soittopyyntö"]
    actions = [e for e in polku("history", str(iid)) if e["kind"] == "task_action"]
    assert [(e["element_id"], e["actor"].split(" (")[0]) for e in actions] == [("customer_not_reached", EXPERT)] * 2


def test_not_reached_as_many_times_as_the_office_says_through_the_cli(tmp_path):
    polku = Cli(tmp_path)
    polku.setup(aftercare_attempts=2)
    iid = polku.start("training", YESTERDAY)
    assert polku.not_reached(iid, "Ei vastannut")["status"] == "running"
    summary = polku.not_reached(iid, "Ei vastannut taaskaan")
    assert summary["status"] == "completed"
    data = polku("instance", str(iid))["variables"]
    assert data["aftercare_outcome"] == "not_reached" and len(data["aftercare_attempts"]) == 2
    assert polku("tasks", "--instance", str(iid)) == []


def test_follow_up_day_with_new_needs_and_the_consultants_invitation_through_the_cli(tmp_path, smtp):
    polku = Cli(tmp_path, smtp.port)
    polku.setup(follow_up_offset_days=200)
    ended = (date.today() - timedelta(days=3)).isoformat()
    iid = polku.start("business_development", ended, service_consultant_name="Kaisa Konsultti",
                      service_consultant_email="kaisa@konsultointi.fi")
    summary = polku("complete", polku.contact(iid)["id"], "--by", EXPERT, "--data", conversation(
        new_service_needs=["recruitment"], service_consultant_name="Kaisa Konsultti",
        service_consultant_email="kaisa@konsultointi.fi"))
    assert summary["status"] == "running"  # the follow-up day is kept although new needs started a new process
    data = polku("instance", str(iid))["variables"]
    due = date.fromisoformat(ended) + timedelta(days=200)
    assert data["follow_up_due"] == due.isoformat() and data["aftercare_outcome"] == "reached"
    started = [e for e in polku("history", str(iid)) if e["kind"] == "message_thrown"]
    assert len(started) == 1 and len(started[0]["data"]["started"]) == 1
    assert polku("run-jobs")["sent"] == 1
    assert polku("run-jobs")["sent"] == 0
    assert [to for to, _content in smtp.messages] == [["kaisa@konsultointi.fi"]]
    opens = datetime.combine(due - timedelta(days=14), datetime.min.time(), tzinfo=UTC)
    polku("fire-timers", "--now", (opens - timedelta(minutes=1)).isoformat())
    assert polku("tasks", "--instance", str(iid)) == []
    polku("fire-timers", "--now", opens.isoformat())
    [held] = polku("tasks", "--instance", str(iid))
    assert held["element_id"] == "hold_follow_up_day" and held["assignee"] == EXPERT


def test_one_contact_covers_another_line_through_the_cli(tmp_path):
    polku = Cli(tmp_path)
    polku.setup()
    engine = make_engine(polku.url)
    ended = (date.today() - timedelta(days=2)).isoformat()
    with make_sessions(engine).begin() as s:
        parent = runtime.start_instance(s, "customer_service", by="cli", business_key="0737546-2", data={
            "business_id": "0737546-2", "company_name": "Konepaja Virtanen Oy", "contact_channel": "phone_service",
            "contact_reason": "Kasvu"}).id
        iids = [runtime.start_instance(s, "aftercare", by="customer_service", business_key="0737546-2",
                                       validate_form=False, start_message="service_line_ended", parent_instance_id=parent,
                                       data={"service_line": line, "service_ended_on": ended, "responsible_expert": EXPERT,
                                             "business_id": "0737546-2", "company_name": "Konepaja Virtanen Oy",
                                             "segment": "local"}).id for line in ("recruitment", "change_security")]
    engine.dispose()
    runtime.forget_cache()
    summary = polku("complete", polku.contact(iids[0])["id"], "--by", EXPERT, "--data", conversation(),
                    "--covers", polku.contact(iids[1])["id"])
    assert summary["status"] == "completed"
    covered = polku("instance", str(iids[1]))
    assert covered["status"] == "completed" and covered["variables"]["aftercare_covered_by"] == iids[0]
    assert covered["variables"]["aftercare_outcome"] == "reached"
