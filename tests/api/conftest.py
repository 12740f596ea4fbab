"""REST API fixtures: the shipped models deployed, users with tokens, a client that sends the token.

`bearer("expert")` makes user `api-expert` holding that role and returns a token secret;
`api(secret)` returns a small caller whose get/post/put send `Authorization: Bearer`.
The web app, its database and the clock come from the root conftest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import deploy, runtime, tokens, users

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "bpmn"
EXAMPLES = ROOT / "examples"
START = {"business_id": "0737546-2", "company_name": "Konepaja Virtanen Oy",
         "contact_channel": "phone_service", "contact_reason": "Needs staff"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    runtime.forget_cache()
    yield
    runtime.forget_cache()


@pytest.fixture
def shipped(sessions):
    """Deploy every model of bpmn/ and the example model; return the session factory."""
    files = {p.name: p.read_bytes() for p in sorted(MODEL_DIR.iterdir()) if p.suffix in {".bpmn", ".dmn"}}
    files["registry_check.bpmn"] = (EXAMPLES / "registry_check.bpmn").read_bytes()
    with sessions.begin() as s:
        deploy.deploy_files(s, files, by="designer")
    return sessions


@pytest.fixture
def bearer(sessions) -> Callable[..., str]:
    """Make a user holding `roles` (first one names it) and a token for them; return the secret."""

    def make(*roles: str, username: str | None = None, token_roles: list[str] | None = None,
             days: int = 30) -> str:
        name = username or f"api-{roles[0]}"
        with sessions.begin() as s:
            if name not in {u.username for u in users.list_users(s)}:
                users.add_user(s, name, "api-test-password", list(roles), display_name=name)
            _row, secret = tokens.create_token(s, name, by="test", roles=token_roles, expires_days=days)
        return secret

    return make


class Api:
    """Calls the API with one token."""

    def __init__(self, client, secret: str | None):
        self.client, self.secret = client, secret

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        base = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        return {**base, **(headers or {})}

    def get(self, path: str, headers: dict[str, str] | None = None, **kw: Any):
        return self.client.get("/api/v1" + path, headers=self._headers(headers), **kw)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None, **kw: Any):
        if json is None and "data" not in kw:
            json = {}
        return self.client.post("/api/v1" + path, json=json, headers=self._headers(headers), csrf=False, **kw)

    def put(self, path: str, json: Any = None, headers: dict[str, str] | None = None):
        return self.client.put("/api/v1" + path, json=json, headers=self._headers(headers))


@pytest.fixture
def api(app) -> Callable[[str | None], Api]:
    """Return a maker of token-bearing callers (each with its own cookie-less client)."""
    return lambda secret: Api(app.test_client(), secret)
