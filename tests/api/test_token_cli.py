"""`polku token create|list|revoke`, every step a new OS process, against the web app's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import users

BINARY = Path(sys.executable).parent / "polku"


def test_cli_token_create_use_list_revoke(settings, sessions, api):
    env = {**os.environ, "POLKU_DATABASE_URL": settings.database_url}

    def polku(*argv: str) -> tuple[int, object, str]:
        done = subprocess.run([str(BINARY), "--json", *argv], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        out = done.stdout.strip()
        return done.returncode, json.loads(out) if out else None, done.stderr.strip()

    with sessions.begin() as s:
        users.add_user(s, "maija", "api-test-password", ["expert", "supervisor"], display_name="Maija")
    code, made, _ = polku("token", "create", "maija", "--expires-days", "7", "--roles", "expert",
                          "--name", "registry worker")
    assert code == 0 and made["roles"] == ["expert"] and made["state"] == "active"
    secret = made["secret"]
    assert api(secret).get("/me").get_json()["roles"] == ["expert"]
    code, _out, err = polku("token", "create", "maija", "--roles", "admin")
    assert code == 2 and "does not hold admin" in err
    code, _out, err = polku("token", "create", "maija", "--expires-days", "0")
    assert code == 2
    code, listed, _ = polku("token", "list", "maija")
    assert [t["id"] for t in listed] == [made["id"]] and "secret" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    code, revoked, _ = polku("token", "revoke", str(made["id"]))
    assert code == 0 and revoked["state"] == "revoked"
    assert api(secret).get("/me").status_code == 401
    assert polku("token", "revoke", "999")[0] == 1
