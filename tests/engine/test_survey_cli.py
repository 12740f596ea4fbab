"""Through the polku CLI, every step a new OS process: an office setting changed, aftercare instances
started by the `service_line_ended` message (in this process, as customer_service's throw) keep it, contacts on and after the target day counted by
`polku kpi`, the national survey recorded and imported (a wrong file names its lines, saves nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import runtime
from engine.db import make_engine, make_sessions

ROOT = Path(__file__).resolve().parents[2]
POLKU = Path(sys.executable).parent / "polku"


def test_settings_survey_and_kpi_through_the_cli(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}

    def polku(*argv: str, code: int = 0):
        done = subprocess.run([str(POLKU), "--json", *argv], check=False, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == code, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    polku("init")
    polku("deploy", str(ROOT / "bpmn"))
    assert polku("office-setting", "aftercare_target_days_recruitment", "10", "--by", "sanna")[
        "aftercare_target_days_recruitment"] == 10
    contacts = {"1572860-0": "2026-11-11", "0737546-2": "2026-11-12"}  # the last target day, a day later
    for business_id, contacted_on in contacts.items():
        start = {"service_line": "recruitment", "service_ended_on": "2026-11-01", "responsible_expert": "eeva",
                 "business_id": business_id, "company_name": "Oy", "segment": "local"}
        engine = make_engine(env["POLKU_DATABASE_URL"])  # started here, as customer_service's throw starts it
        with make_sessions(engine).begin() as s:
            runtime.start_instance(s, "aftercare", by="customer_service", data=start, business_key=business_id,
                                   validate_form=False, start_message="service_line_ended")
        engine.dispose()
        [task] = [t for t in polku("tasks", "--assignee", "eeva") if t["element_id"] == "aftercare_contact"]
        instance = polku("instance", str(task["instance_id"]))
        assert instance["variables"]["office"]["aftercare_target_days_recruitment"] == 10
        assert instance["variables"]["aftercare_target_days"] == 10
        polku("complete", task["id"], "--by", "eeva", "--data", json.dumps({
            "aftercare_contacted_on": contacted_on, "aftercare_channel": "phone", "service_met_need": "yes",
            "feedback_went_well": "Hyvin.", "needs_reassessment": "Ei uusia tarpeita.",
            "named_contact_confirmed": True}))
    polku("survey", "record", "2025-H1", "71,5", "--answers", "412", "--by", "sanna")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("period;positive_percent\n2024;66\n", encoding="utf-8")
    bad.write_text("period;positive_percent\n2023;60\n2023-H3;60\n", encoding="utf-8")
    errors = polku("survey", "import", str(bad), code=2)["errors"]
    assert list(errors) == ["line 3"]
    polku("survey", "import", str(good), "--by", "sanna")
    figures = polku("kpi", "--from", "2026-11-01", "--to", "2026-11-30")
    assert (figures["contacts_made"], figures["within_target"], figures["after_target"]) == (2, 1, 1)
    assert [(s["period"], s["positive_percent"], s["meets_target"]) for s in figures["national_survey"]] == [
        ("2024", 66.0, False), ("2025-H1", 71.5, True)]
    assert figures["national_survey_target_percent"] == 69.0
