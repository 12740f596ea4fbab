"""The customer-work commands through `polku`, every step a new OS process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import customers, notices
from engine.db import make_engine, make_sessions

ROOT = Path(__file__).resolve().parents[2]
POLKU = Path(sys.executable).parent / "polku"



def test_schedules_import_contact_reminder_and_mail_through_the_cli(tmp_path, smtp):
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {**os.environ, "POLKU_DATABASE_URL": url, "POLKU_SMTP_HOST": "127.0.0.1",
           "POLKU_SMTP_PORT": str(smtp.port), "POLKU_SMTP_FROM": "polku@te.fi"}

    def polku(*argv: str):
        done = subprocess.run([str(POLKU), "--json", *argv], check=False, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    polku("init")
    polku("deploy", str(ROOT / "bpmn" / "annual_customer_plan.bpmn"))
    assert polku("run-jobs", "--now", "2026-12-31T23:59:00+02:00")["started"] == []
    assert len(polku("run-jobs", "--now", "2027-01-01T00:00:00+02:00")["started"]) == 1
    assert polku("run-jobs", "--now", "2027-01-01T00:00:01+02:00")["started"] == []
    [schedule] = polku("schedules")
    assert schedule["next_due_at"].startswith("2027-12-31 22:00")
    csv = tmp_path / "companies.csv"
    csv.write_text("business_id;name;first_posting_on\n1572860-0;Uusi Oy;2027-01-07\n1572860-1;Väärä Oy;\n")
    result = polku("import-companies", str(csv), "--by", "esko")
    assert result["added"] == 1 and list(result["errors"]) == ["3"]
    engine = make_engine(url)
    with make_sessions(engine).begin() as s:
        customer_id = customers.create_customer(s, {"name": "Konepaja Oy", "business_id": "0737546-2"}, by="t").id
        notices.save_user_settings(s, "maija", email="maija@te.fi", email_opt_out=False, digest_opt_out=False)
    engine.dispose()
    polku("contact", str(customer_id), "--channel", "phone", "--topic", "Soitto", "--date", "2027-01-10",
          "--next", "2027-02-01", "--by", "maija")
    assert polku("run-jobs", "--now", "2027-01-31T12:00:00+02:00")["sent"] == 0
    assert polku("run-jobs", "--now", "2027-02-01T08:00:00+02:00")["sent"] == 1
    assert polku("run-jobs", "--now", "2027-02-01T08:01:00+02:00")["sent"] == 0
    assert [m[0] for m in smtp.messages] == [["maija@te.fi"]]
    assert polku("mail-outbox") == []
    assert polku("office-setting", "visit_target", "1400", "--by", "esko")["visit_target"] == 1400
    assert [r["reason"] for r in polku("to-contact", "--today", "2027-02-02")] == ["due"]
