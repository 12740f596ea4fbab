"""The token page of the UI: make a token (shown once), use it, revoke it; admins for others; roles bounded."""

from __future__ import annotations

import re

from engine import users

SECRET = re.compile(r'<code id="new-token">(polku_[^<]+)</code>')


def test_expert_makes_uses_and_revokes_own_token(client, login_as, api):
    login_as("expert")
    page = client.get("/tokens/")
    assert page.status_code == 200 and "API" in page.get_data(as_text=True)
    made = client.post("/tokens/", data={"name": "my script", "days": "30"})
    assert made.status_code == 200
    secret = SECRET.search(made.get_data(as_text=True)).group(1)
    assert api(secret).get("/me").get_json()["username"] == "test-expert"
    again = client.get("/tokens/").get_data(as_text=True)
    assert secret not in again and secret[:12] in again, "shown once, then only its first characters"
    too_much = client.post("/tokens/", data={"name": "x", "roles": ["admin"]})
    assert too_much.status_code == 422
    token_id = api(secret).get("/me").get_json()["token_id"]
    assert client.post("/tokens/", data={"revoke": str(token_id)}).status_code == 200
    assert api(secret).get("/me").status_code == 401


def test_admin_makes_a_token_for_an_auditor_and_others_cannot(client, login_as, sessions, api):
    with sessions.begin() as s:
        users.add_user(s, "tarja", "api-test-password", ["auditor"], display_name="Tarja")
    login_as("admin")
    made = client.post("/tokens/", data={"name": "exports", "username": "tarja", "roles": ["auditor"]})
    secret = SECRET.search(made.get_data(as_text=True)).group(1)
    assert api(secret).get("/me").get_json() == {"username": "tarja", "roles": ["auditor"],
                                                 "token_id": api(secret).get("/me").get_json()["token_id"]}
    client.post("/logout")
    login_as("expert")
    client.post("/tokens/", data={"name": "mine", "username": "tarja"})
    listed = client.get("/tokens/").get_data(as_text=True)
    assert "exports" not in listed, "an expert sees only their own tokens"


def test_auditor_has_no_token_page(client, login_as):
    login_as("auditor")
    assert client.get("/tokens/").status_code == 403


def test_every_api_route_ignores_the_sign_in_cookie(app, client, login_as):
    login_as("admin")
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint in {"api.openapi", "api.docs", "api.docs_asset"}:
            continue
        url = rule.build({k: "1" for k in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods & {"GET", "POST", "PUT"}):
            response = client.open(url, method=method, json={})
            assert response.status_code == 401, (method, rule.endpoint)
